/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cli_replica.c - replicas: add-replicas (bulk registration of data already
 * on storage, from a list file or by walking an RSE's local directory),
 * list-file-replicas, delete-replica.
 *
 * Walking (--walk DIR): DIR is the local view of the RSE's storage under its
 * protocol prefix (e.g. an XRootD server's data directory + prefix).  Every
 * regular file is checksummed (size, adler32, optionally md5) and mapped to
 * a DID:
 *   - deterministic RSE, lfn2pfn "hash": the path must be
 *     <scope'>/<h0h1>/<h2h3>/<name> with md5("scope:name") starting h0..h3,
 *     which makes the mapping unambiguous;
 *   - deterministic RSE, "identity": <scope'>/<name> (give --scope when
 *     names or user/group scopes contain '/');
 *   - non-deterministic RSE: scope from --scope, name = the relative path,
 *     stored with its PFN.
 * Files that do not map (dark data, leftovers of failed uploads, names
 * Rucio would refuse) are reported and skipped; --strict makes any of them
 * abort the whole registration.  Everything registered by one command is one
 * transaction.
 */
#include "cli.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct reg {
	struct cli *c;
	struct cat_bulk *bulk;
	const char *rse;
	const char *scope;  /* --scope */
	int deterministic;
	char algo[64];
	struct cat_protocol proto; /* for non-deterministic PFNs */
	char *proto_strs[3];
	int with_md5;
	int strict;
	int state;
	uint64_t seen, registered_bytes, skipped;
	int failed;
};

static int reg_add(struct reg *r, const char *scope, const char *name, uint64_t bytes,
		   const char *adler, const char *md5, const char *pfn)
{
	struct cat_file_in f = { scope, name, bytes, adler, md5, pfn, r->state };

	if (cat_bulk_add(r->bulk, &f)) {
		r->failed = 1;
		return -1;
	}
	r->seen++;
	r->registered_bytes += bytes;
	return 0;
}

static void skip(struct reg *r, const char *path, const char *why)
{
	fprintf(stderr, "didfs: %s: %s: %s\n", r->strict ? "error" : "skipped", path, why);
	r->skipped++;
	if (r->strict)
		r->failed = 1;
}

static int hex2(const char *s)
{
	return isxdigit((unsigned char)s[0]) && isxdigit((unsigned char)s[1]);
}

/* Map a relative path to scope:name; 0 on success. */
static int map_path(struct reg *r, const char *rel, char *scope, char *name, const char **why)
{
	struct dm_err e;
	size_t len = strlen(rel);

	*why = "does not follow the RSE's path layout";
	if (!r->deterministic) {
		if (!r->scope) {
			*why = "a non-deterministic RSE needs --scope";
			return -1;
		}
		dm_strlcpy(scope, r->scope, CAT_SCOPE_MAX + 1);
		if (len > CAT_NAME_MAX || cat_validate_name(rel, &e)) {
			*why = "not a valid Rucio name";
			return -1;
		}
		dm_strlcpy(name, rel, CAT_NAME_MAX + 1);
		return 0;
	}
	for (size_t i = 1; i < len; i++) {
		char cand[CAT_SCOPE_MAX + 1];
		const char *rest;
		int userish;

		if (rel[i] != '/')
			continue;
		if (i > CAT_SCOPE_MAX)
			break;
		memcpy(cand, rel, i);
		cand[i] = 0;
		userish = !strncmp(cand, "user", 4) || !strncmp(cand, "group", 5);
		if (!userish && strchr(cand, '/'))
			break;
		if (userish)
			for (char *p = cand; *p; p++)
				if (*p == '/')
					*p = '.';
		if (cat_validate_scope(cand, &e))
			continue;
		if (r->scope && strcmp(cand, r->scope))
			continue;
		rest = rel + i + 1;
		if (!strcmp(r->algo, "identity")) {
			if (cat_validate_name(rest, &e))
				continue;
			dm_strlcpy(scope, cand, CAT_SCOPE_MAX + 1);
			dm_strlcpy(name, rest, CAT_NAME_MAX + 1);
			return 0;
		}
		/* hash: rest = aa/bb/name */
		if (strlen(rest) > 6 && rest[2] == '/' && rest[5] == '/' && hex2(rest) && hex2(rest + 3)) {
			char want[5], md5[33];
			struct dm_buf did = DM_BUF_INIT;
			const char *nm = rest + 6;
			memcpy(want, rest, 2);
			memcpy(want + 2, rest + 3, 2);
			want[4] = 0;
			if (cat_validate_name(nm, &e))
				continue;
			dm_buf_addf(&did, "%s:%s", cand, nm);
			dm_md5_hex(did.s, did.len, md5);
			dm_buf_release(&did);
			if (strncmp(md5, want, 4) == 0) {
				dm_strlcpy(scope, cand, CAT_SCOPE_MAX + 1);
				dm_strlcpy(name, nm, CAT_NAME_MAX + 1);
				return 0;
			}
		}
	}
	return -1;
}

static int walk_file(struct reg *r, const char *path, const char *rel)
{
	char scope[CAT_SCOPE_MAX + 1], name[CAT_NAME_MAX + 1], adler[9], md5[33];
	const char *why;
	uint64_t bytes;
	struct dm_err err = { 0 };
	struct dm_buf pfn = DM_BUF_INIT;
	size_t rl = strlen(rel);
	int rc;

	if (rl > 13 && !strcmp(rel + rl - 13, ".rucio.upload")) {
		skip(r, path, "leftover of an unfinished upload");
		return 0;
	}
	if (map_path(r, rel, scope, name, &why)) {
		skip(r, path, why);
		return 0;
	}
	if (dm_file_checksums(path, &bytes, adler, r->with_md5 ? md5 : NULL, &err)) {
		skip(r, path, err.msg);
		return 0;
	}
	if (!r->deterministic)
		cat_pfn_join(&r->proto, rel, &pfn);
	rc = reg_add(r, scope, name, bytes, adler, r->with_md5 ? md5 : NULL,
		     r->deterministic ? NULL : pfn.s);
	dm_buf_release(&pfn);
	return rc;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Depth-first, names sorted, so registration order is reproducible. */
static int walk_dir(struct reg *r, struct dm_buf *path, size_t root_len)
{
	DIR *d = opendir(path->s);
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, cap = 0, base = path->len;
	int rc = 0;

	if (!d) {
		skip(r, path->s, strerror(errno));
		return 0;
	}
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 64;
			names = dm_xrealloc(names, cap * sizeof *names);
		}
		names[n++] = dm_xstrdup(de->d_name);
	}
	closedir(d);
	qsort(names, n, sizeof *names, cmp_str);
	for (size_t i = 0; i < n && !rc && !r->failed; i++) {
		struct stat st;
		path->len = base;
		path->s[base] = 0;
		dm_buf_addf(path, "/%s", names[i]);
		if (lstat(path->s, &st))
			skip(r, path->s, strerror(errno));
		else if (S_ISDIR(st.st_mode))
			rc = walk_dir(r, path, root_len);
		else if (S_ISREG(st.st_mode))
			rc = walk_file(r, path->s, path->s + root_len + 1);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	path->len = base;
	path->s[base] = 0;
	return rc;
}

/* "scope:name bytes adler32 [md5] [pfn]" per line; '#' starts a comment. */
static int read_list(struct reg *r, const char *file)
{
	FILE *f = strcmp(file, "-") ? fopen(file, "r") : stdin;
	char *line = NULL;
	size_t cap = 0;
	long lineno = 0;
	int rc = 0;

	if (!f)
		return cli_failf(r->c, "InputValidationError", "cannot read '%s': %s", file, strerror(errno));
	while (!rc && getline(&line, &cap, f) > 0) {
		char *tok[6] = { 0 }, *save = NULL, *p;
		char scope[CAT_SCOPE_MAX + 1], name[CAT_NAME_MAX + 1];
		int nt = 0;
		uint64_t bytes;
		struct dm_err e = { 0 };

		lineno++;
		line[strcspn(line, "\r\n")] = 0;
		p = line + strspn(line, " \t");
		if (!*p || *p == '#')
			continue;
		for (char *t = strtok_r(p, " \t", &save); t && nt < 6; t = strtok_r(NULL, " \t", &save))
			tok[nt++] = t;
		if (nt < 3 || nt > 5) {
			rc = cli_failf(r->c, "InputValidationError",
				       "%s:%ld: expected 'scope:name bytes adler32 [md5] [pfn]'", file, lineno);
			break;
		}
		if (cat_parse_did(tok[0], scope, name, &e)) {
			rc = cli_failf(r->c, e.cls, "%s:%ld: %s", file, lineno, e.msg);
			break;
		}
		if (dm_parse_u64(tok[1], &bytes)) {
			rc = cli_failf(r->c, "InputValidationError", "%s:%ld: bytes must be a number, not '%s'",
				       file, lineno, tok[1]);
			break;
		}
		{
			const char *md5 = NULL, *pfn = NULL;
			if (nt >= 4) {
				if (strstr(tok[3], "://"))
					pfn = tok[3];
				else
					md5 = tok[3];
			}
			if (nt == 5)
				pfn = tok[4];
			if (reg_add(r, scope, name, bytes, tok[2], md5, pfn)) {
				const struct dm_err *ce = cat_error(r->c->db);
				rc = cli_failf(r->c, ce->cls, "%s:%ld: %s", file, lineno, ce->msg);
			}
		}
	}
	free(line);
	if (f != stdin)
		fclose(f);
	return rc;
}

static int best_write_proto(void *ud, const struct cat_protocol *p)
{
	struct reg *r = ud;
	int prio = p->prio[CAT_WAN][CAT_OP_WRITE] >= 0 ? p->prio[CAT_WAN][CAT_OP_WRITE]
						       : p->prio[CAT_LAN][CAT_OP_WRITE];
	int have = r->proto.scheme ? (r->proto.prio[CAT_WAN][CAT_OP_WRITE] >= 0
					      ? r->proto.prio[CAT_WAN][CAT_OP_WRITE]
					      : r->proto.prio[CAT_LAN][CAT_OP_WRITE]) : -1;

	if (prio < 0 || (have >= 0 && prio >= have))
		return 0;
	for (int i = 0; i < 3; i++)
		free(r->proto_strs[i]);
	r->proto = *p;
	r->proto.scheme = r->proto_strs[0] = dm_xstrdup(p->scheme);
	r->proto.hostname = r->proto_strs[1] = dm_xstrdup(p->hostname);
	r->proto.prefix = r->proto_strs[2] = dm_xstrdup(p->prefix);
	r->proto.impl = NULL;
	r->proto.extended_attributes = NULL;
	return 0;
}

static int rse_info(void *ud, const struct cat_rse *x)
{
	struct reg *r = ud;

	r->deterministic = x->deterministic;
	return 0;
}

int cli_add_replicas(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "rse", required_argument, NULL, 'r' },
		{ "list", required_argument, NULL, 'l' },
		{ "walk", required_argument, NULL, 'w' },
		{ "scope", required_argument, NULL, 's' },
		{ "dataset", required_argument, NULL, 'd' },
		{ "md5", no_argument, NULL, 'm' },
		{ "strict", no_argument, NULL, 'S' },
		{ "state", required_argument, NULL, 't' },
		{ "ignore-availability", no_argument, NULL, 'i' },
		{ NULL, 0, NULL, 0 },
	};
	struct reg r = { 0 };
	const char *list = NULL, *walk = NULL, *dataset = NULL;
	char ds_scope[CAT_SCOPE_MAX + 1], ds_name[CAT_NAME_MAX + 1];
	unsigned flags = 0;
	uint64_t added = 0;
	double t0 = dm_now_f();
	int opt, rc = 0;

	r.c = c;
	r.state = -1;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'r': r.rse = optarg; break;
		case 'l': list = optarg; break;
		case 'w': walk = optarg; break;
		case 's': r.scope = optarg; break;
		case 'd': dataset = optarg; break;
		case 'm': r.with_md5 = 1; break;
		case 'S': r.strict = 1; break;
		case 'i': flags |= CAT_REPLICA_IGNORE_AVAILABILITY; break;
		case 't': {
			enum cat_replica_state st;
			if (cat_replica_state_parse(optarg, &st))
				return cli_failf(c, "InvalidObject", "unknown replica state '%s'", optarg);
			r.state = (int)st;
			break;
		}
		default: return cli_usage(c);
		}
	}
	if (!r.rse || (!list && !walk && optind == argc) || ((argc - optind) % 3) != 0)
		return cli_usage(c);
	if (r.scope) {
		struct dm_err e = { 0 };
		if (cat_validate_scope(r.scope, &e))
			return cli_fail(c, &e);
	}
	if (dataset && cli_did(c, dataset, ds_scope, ds_name))
		return 1;
	if (cli_open(c))
		return 1;
	if (cat_rse_get(c->db, r.rse, rse_info, &r))
		return cli_fail(c, NULL);
	if (cat_rse_attr_get(c->db, r.rse, "lfn2pfn_algorithm", r.algo, sizeof r.algo))
		dm_strlcpy(r.algo, "hash", sizeof r.algo);
	if (!r.deterministic && walk) {
		if (cat_protocol_list(c->db, r.rse, best_write_proto, &r))
			return cli_fail(c, NULL);
		if (!r.proto.scheme)
			return cli_failf(c, "RSEProtocolNotSupported",
					 "RSE '%s' has no protocol to build PFNs from", r.rse);
	}
	if (cat_bulk_begin(c->db, r.rse, dataset ? ds_scope : NULL, dataset ? ds_name : NULL,
			   flags, &r.bulk)) {
		rc = cli_fail(c, NULL);
		goto out;
	}
	for (int i = optind; i + 2 < argc && !rc; i += 3) {
		char scope[CAT_SCOPE_MAX + 1], name[CAT_NAME_MAX + 1];
		uint64_t bytes;
		if (cli_did(c, argv[i], scope, name) || cli_parse_u64(c, "BYTES", argv[i + 1], &bytes))
			rc = 1;
		else if (reg_add(&r, scope, name, bytes, argv[i + 2], NULL, NULL))
			rc = cli_fail(c, NULL);
	}
	if (!rc && list)
		rc = read_list(&r, list);
	if (!rc && walk) {
		struct dm_buf path = DM_BUF_INIT;
		struct stat st;
		dm_buf_adds(&path, walk);
		while (path.len > 1 && path.s[path.len - 1] == '/')
			path.s[--path.len] = 0;
		if (stat(path.s, &st) || !S_ISDIR(st.st_mode)) {
			rc = cli_failf(c, "InputValidationError", "--walk: '%s' is not a directory", walk);
		} else {
			walk_dir(&r, &path, path.len);
			if (r.failed) {
				const struct dm_err *e = cat_error(c->db);
				rc = e->code ? cli_fail(c, NULL)
					     : cli_failf(c, "InputValidationError",
							 "%llu file(s) could not be registered (--strict)",
							 (unsigned long long)r.skipped);
			}
		}
		dm_buf_release(&path);
	}
	if (rc) {
		struct dm_err keep = *cat_error(c->db);
		cat_bulk_abort(r.bulk);
		(void)keep;
		goto out;
	}
	if (cat_bulk_commit(r.bulk, &added)) {
		rc = cli_fail(c, NULL);
		goto out;
	}
	{
		double dt = dm_now_f() - t0;
		char h[32];
		if (c->json)
			printf("{\"rse\": \"%s\", \"files\": %llu, \"new_replicas\": %llu, \"bytes\": %llu,"
			       " \"skipped\": %llu, \"seconds\": %.3f}\n", r.rse,
			       (unsigned long long)r.seen, (unsigned long long)added,
			       (unsigned long long)r.registered_bytes, (unsigned long long)r.skipped, dt);
		else
			printf("Registered %llu file(s) (%s) on %s: %llu new replica(s), %llu skipped, %.2f s\n",
			       (unsigned long long)r.seen, cli_human_bytes(r.registered_bytes, h), r.rse,
			       (unsigned long long)added, (unsigned long long)r.skipped, dt);
	}
out:
	for (int i = 0; i < 3; i++)
		free(r.proto_strs[i]);
	return rc;
}

/* ---- list-file-replicas ---- */

struct rep_print {
	struct cli *c;
	struct cli_out *o;
	char **rses; /* names matching --rses, NULL = all */
	size_t nrses;
	const char *scheme;
	int pfns_only;
};

static int keep_rse(void *ud, const struct cat_rse *x)
{
	struct rep_print *p = ud;

	p->rses = dm_xrealloc(p->rses, (p->nrses + 1) * sizeof *p->rses);
	p->rses[p->nrses++] = dm_xstrdup(x->rse);
	return 0;
}

static int replica_row(void *ud, const struct cat_replica *x)
{
	struct rep_print *p = ud;
	struct dm_buf pfn = DM_BUF_INIT;
	int keep = !p->rses;

	for (size_t i = 0; i < p->nrses && !keep; i++)
		keep = !strcmp(p->rses[i], x->rse);
	if (!keep)
		return 0;
	/* No usable protocol leaves the PFN empty rather than failing the list. */
	if (cat_lfn2pfn(p->c->db, x->rse, x->scope, x->name, p->scheme, CAT_OP_READ, &pfn))
		dm_buf_reset(&pfn);
	if (p->pfns_only)
		cli_out_row(p->o, "s", pfn.s);
	else
		cli_out_row(p->o, "ssussss", x->scope, x->name, x->bytes, x->adler32, x->rse,
			    cat_replica_state_name(x->state), pfn.s);
	dm_buf_release(&pfn);
	return 0;
}

int cli_list_file_replicas(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "rses", required_argument, NULL, 'r' },
		{ "all-states", no_argument, NULL, 'a' },
		{ "pfns", no_argument, NULL, 'p' },
		{ "scheme", required_argument, NULL, 's' },
		{ "protocols", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	static const char *const cols[] = { "scope", "name", "bytes", "adler32", "rse", "state", "pfn" };
	static const char *const pcols[] = { "pfn" };
	char scope[CAT_SCOPE_MAX + 1], name[CAT_NAME_MAX + 1];
	struct rep_print p = { 0 };
	const char *expr = NULL;
	unsigned mask = 0;
	int opt, rc;

	p.c = c;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'r': expr = optarg; break;
		case 'a': mask = ~0u; break;
		case 'p': p.pfns_only = 1; break;
		case 's': p.scheme = optarg; break;
		default: return cli_usage(c);
		}
	}
	if (optind != argc - 1)
		return cli_usage(c);
	if (cli_did(c, argv[optind], scope, name) || cli_open(c))
		return 1;
	if (expr) {
		p.rses = dm_xcalloc(1, sizeof *p.rses);
		if (cat_rse_expr_list(c->db, expr, keep_rse, &p)) {
			rc = cli_fail(c, NULL);
			goto out;
		}
	}
	p.o = p.pfns_only ? cli_out_begin(c, pcols, 1) : cli_out_begin(c, cols, 7);
	rc = cat_replica_list(c->db, scope, name, NULL, mask, replica_row, &p);
	rc = cli_out_finish(c, p.o, rc);
out:
	for (size_t i = 0; i < p.nrses; i++)
		free(p.rses[i]);
	free(p.rses);
	return rc;
}

int cli_delete_replica(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "rse", required_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	char scope[CAT_SCOPE_MAX + 1], name[CAT_NAME_MAX + 1];
	const char *rse = NULL;
	int opt;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (opt != 'r')
			return cli_usage(c);
		rse = optarg;
	}
	if (!rse || optind != argc - 1)
		return cli_usage(c);
	if (cli_did(c, argv[optind], scope, name) || cli_open(c))
		return 1;
	if (cat_replica_del(c->db, rse, scope, name))
		return cli_fail(c, NULL);
	return 0;
}
