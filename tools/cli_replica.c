/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cli_replica.c - replicas: add-replicas (bulk registration of data already
 * on storage, from a list file or by walking an RSE's local directory),
 * list-file-replicas, delete-replica.
 *
 * Walking (--walk DIR): DIR is the local view of the RSE's storage under its
 * protocol prefix (e.g. an XRootD server's data directory + prefix).  Every
 * regular file is mapped to a DID and checksummed (size, adler32, optionally
 * md5, and the per-block manifest of catalog/manifest.c, recorded once the
 * files are registered) by hash_file(), the one function that reads a
 * file's bytes:
 *   - deterministic RSE, lfn2pfn "hash": the path must be
 *     <scope'>/<h0h1>/<h2h3>/<name> with md5("scope:name") starting h0..h3,
 *     which makes the mapping unambiguous;
 *   - deterministic RSE, "identity": <scope'>/<name> (give --scope when
 *     names or user/group scopes contain '/');
 *   - non-deterministic RSE: scope from --scope, name = the relative path,
 *     stored with its PFN.
 * With --scope on a deterministic RSE, files of other scopes are ignored and
 * counted.  Files that do not map (dark data, leftovers of failed uploads,
 * names Rucio would refuse) are reported (the first few per reason, then a
 * count) and skipped; --strict makes any of them refuse the whole walk.
 *
 * No write transaction is ever held while files are read or hashed: every
 * record (from arguments, --list or --walk) is first validated and spooled to
 * an unlinked temporary file, and only then registered.  Arguments and a
 * --list are all or nothing: one transaction after every line parsed (a line
 * that does not parse is an error naming its line number, and nothing is
 * registered).  A walk registers in batches of WALK_BATCH files, each its
 * own short transaction, so other writers (the daemons, setfattr through the
 * mount, other commands) proceed while a walk hashes terabytes; --strict is
 * decided before the first batch.  A walk interrupted or refused by the
 * catalog in a later batch leaves the earlier batches registered; running
 * it again is idempotent (replicas already registered with the same
 * checksums are skipped).  On a terminal, progress (files, bytes, rate, ETA)
 * is drawn on stderr (util/progress.h); off a terminal nothing is.
 */
#include "cli.h"
#include "listparse.h"
#include "progress.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Files per transaction when registering a walk: ~20 ms at bulk speed. */
#define WALK_BATCH 2000
/* Paths printed per skip reason before the rest are only counted. */
#define SKIP_EXAMPLES 3

struct skip_reason {
	char why[160];
	uint64_t count;
};

struct reg {
	struct cli *c;
	const char *rse;
	const char *scope;  /* --scope */
	int deterministic;
	char algo[64];
	struct cat_protocol proto; /* for non-deterministic PFNs */
	struct dm_buf proto_strs;  /* its strings */
	int with_md5;
	int strict;
	int state;
	FILE *spool;        /* validated records waiting for registration */
	FILE *mspool;       /* a walk's per-block manifests, recorded after it */
	uint64_t spooled, seen, registered_bytes, skipped, ignored;
	struct skip_reason reasons[16];
	size_t nreasons;
	struct dm_progress *prog;
	int failed;
};

/* ---- the spool: one record a line, tab-separated, every field validated
 * (names and scopes hold no tabs or newlines), "where" names the record's
 * origin for errors (FILE:LINE, argument N, or the walked path). */

static int spool_put(struct reg *r, const char *where, const char *scope, const char *name,
		     uint64_t bytes, const char *adler, const char *md5, const char *pfn)
{
	if (strpbrk(where, "\t\n") || (pfn && strpbrk(pfn, "\t\n")))
		return cli_failf(r->c, "InputValidationError", "%s: tab or newline in a field", where);
	if (fprintf(r->spool, "%s\t%s\t%s\t%llu\t%s\t%s\t%s\t%d\n", where, scope, name,
		    (unsigned long long)bytes, adler, md5 ? md5 : "", pfn ? pfn : "", pfn ? 1 : 0) < 0)
		return cli_failf(r->c, "RucioException", "cannot write the temporary spool: %s",
				 strerror(errno));
	r->spooled++;
	return 0;
}

struct spooled {
	char *where, *scope, *name, *adler, *md5, *pfn;
	uint64_t bytes;
};

static int spool_split(char *line, struct spooled *x)
{
	char *f[8], *p = line, *t;
	int n = 0;

	line[strcspn(line, "\n")] = 0;
	while (n < 8 && (t = strsep(&p, "\t")))
		f[n++] = t;
	if (p)
		return -1;
	if (n != 8 || dm_parse_u64(f[3], &x->bytes))
		return -1;
	x->where = f[0];
	x->scope = f[1];
	x->name = f[2];
	x->adler = f[4];
	x->md5 = *f[5] ? f[5] : NULL;
	x->pfn = *f[7] == '1' ? f[6] : NULL;
	return 0;
}

/* Register everything spooled: in one transaction (batch 0) or in
 * transactions of batch records.  A transaction the catalog asks to redo
 * (DM_AGAIN: PostgreSQL restarted or a connection lost mid-transaction, a
 * serialization failure) is redone from its first record, a few times
 * with a back-off; what earlier batches committed stays.  Returns 0 or the
 * CLI's failure. */
#define REDO_ATTEMPTS 6
static int register_spool(struct reg *r, const char *ds_scope, const char *ds_name, unsigned flags,
			  size_t batch, uint64_t *added)
{
	struct cat_bulk *bulk = NULL;
	char *line = NULL;
	size_t cap = 0, in_batch = 0;
	long batch_at = 0;
	uint64_t seen_at = 0, bytes_at = 0;
	int rc = 0, attempt = 1;
	enum { OK, FAILED, REDO } st = OK;

	*added = 0;
	if (fflush(r->spool) || fseek(r->spool, 0, SEEK_SET))
		return cli_failf(r->c, "RucioException", "cannot read the temporary spool: %s",
				 strerror(errno));
	dm_progress_reset(r->prog, "registering", r->spooled, 0);
	for (;;) {
		ssize_t got = getline(&line, &cap, r->spool);
		struct spooled x;
		struct cat_file_in f;

		st = OK;
		if (got <= 0)
			break;
		if (spool_split(line, &x)) {
			rc = cli_failf(r->c, "RucioException", "the temporary spool is damaged");
			break;
		}
		if (!bulk && cat_bulk_begin(r->c->db, r->rse, ds_scope, ds_name, flags, &bulk)) {
			bulk = NULL;
			st = FAILED;
		}
		f = (struct cat_file_in){ x.scope, x.name, x.bytes, x.adler, x.md5, x.pfn, r->state };
		if (st == OK && cat_bulk_add(bulk, &f))
			st = FAILED;
		if (st == OK) {
			r->seen++;
			r->registered_bytes += x.bytes;
			dm_progress_add(r->prog, 1, 0);
		}
		if (st == OK && batch && ++in_batch == batch) {
			uint64_t n = 0;
			int failed = cat_bulk_commit(bulk, &n) != DM_OK;
			bulk = NULL;
			if (failed) {
				st = FAILED;
			} else {
				in_batch = 0;
				*added += n;
				batch_at = ftell(r->spool);
				seen_at = r->seen;
				bytes_at = r->registered_bytes;
				attempt = 1;
			}
		}
		if (st == FAILED && cat_error(r->c->db)->code == DM_AGAIN && attempt < REDO_ATTEMPTS)
			st = REDO;
		if (st == FAILED) {
			const struct dm_err *ce = cat_error(r->c->db);
			rc = bulk ? cli_failf(r->c, ce->cls, "%s: %s", x.where, ce->msg)
				  : cli_fail(r->c, NULL);
			break;
		}
		if (st == REDO) {
			dm_log(DM_LOG_WARN, "add-replicas", "%s; redoing the transaction (attempt %d of %d)",
			       cat_error(r->c->db)->msg, attempt + 1, REDO_ATTEMPTS);
			cat_bulk_abort(bulk);
			bulk = NULL;
			usleep(200000u << (attempt - 1));
			attempt++;
			in_batch = 0;
			r->seen = seen_at;
			r->registered_bytes = bytes_at;
			if (fseek(r->spool, batch_at, SEEK_SET)) {
				rc = cli_failf(r->c, "RucioException", "cannot read the temporary spool: %s",
					       strerror(errno));
				break;
			}
		}
	}
	free(line);
	line = NULL;
	cap = 0;
	if (rc) {
		cat_bulk_abort(bulk);
		return rc;
	}
	for (;;) {
		uint64_t n = 0;

		if (!bulk && r->seen == 0 && cat_bulk_begin(r->c->db, r->rse, ds_scope, ds_name, flags, &bulk))
			return cli_fail(r->c, NULL); /* nothing to add: still check the RSE and dataset */
		if (!bulk)
			return 0;
		if (cat_bulk_commit(bulk, &n) == DM_OK) {
			*added += n;
			return 0;
		}
		bulk = NULL;
		if (cat_error(r->c->db)->code != DM_AGAIN || attempt >= REDO_ATTEMPTS)
			return cli_fail(r->c, NULL);
		/* the last transaction again, from its first record */
		dm_log(DM_LOG_WARN, "add-replicas", "%s; redoing the transaction (attempt %d of %d)",
		       cat_error(r->c->db)->msg, attempt + 1, REDO_ATTEMPTS);
		usleep(200000u << (attempt - 1));
		attempt++;
		r->seen = seen_at;
		r->registered_bytes = bytes_at;
		if (fseek(r->spool, batch_at, SEEK_SET))
			return cli_failf(r->c, "RucioException", "cannot read the temporary spool: %s",
					 strerror(errno));
		{
			struct spooled x;
			struct cat_file_in f;
			ssize_t got;

			if (cat_bulk_begin(r->c->db, r->rse, ds_scope, ds_name, flags, &bulk))
				return cli_fail(r->c, NULL);
			while ((got = getline(&line, &cap, r->spool)) > 0) {
				if (spool_split(line, &x)) {
					free(line);
					cat_bulk_abort(bulk);
					return cli_failf(r->c, "RucioException", "the temporary spool is damaged");
				}
				f = (struct cat_file_in){ x.scope, x.name, x.bytes, x.adler, x.md5, x.pfn,
							  r->state };
				if (cat_bulk_add(bulk, &f))
					break;
				r->seen++;
				r->registered_bytes += x.bytes;
			}
			free(line);
			line = NULL;
			cap = 0;
		}
	}
}

/* A walk saw every byte of its files: record their per-block manifests
 * (catalog/manifest.c), one short transaction each, after registration.
 * An existing manifest is kept; a failure is reported and the walk's
 * registration stands (the mount then verifies by whole-file adler32). */
static void record_manifests(struct reg *r)
{
	char *line = NULL;
	size_t cap = 0;
	uint64_t failed = 0;

	if (fflush(r->mspool) || fseek(r->mspool, 0, SEEK_SET))
		return;
	while (getline(&line, &cap, r->mspool) > 0) {
		char *p = line, *scope = strsep(&p, "\t"), *name = strsep(&p, "\t"), *bs = strsep(&p, "\t");
		struct cat_manifest m = { 0 };
		size_t len;

		if (!p || !bs || dm_parse_u64(bs, &m.bytes))
			continue;
		len = strcspn(p, "\n");
		m.chunk = CAT_MANIFEST_CHUNK;
		m.n = len / 8;
		m.sums = dm_xmalloc((m.n ? m.n : 1) * sizeof *m.sums);
		for (size_t i = 0; i < m.n; i++) {
			char h[9];
			memcpy(h, p + 8 * i, 8);
			h[8] = 0;
			m.sums[i] = (uint32_t)strtoul(h, NULL, 16);
		}
		if (cat_manifest_set(r->c->db, scope, name, &m) && failed++ < 3) {
			const struct dm_err *e = cat_error(r->c->db);
			fprintf(stderr, "didfs: warning: no block manifest for %s:%s: %s: %s\n", scope,
				name, e->cls, e->msg);
		}
		free(m.sums);
	}
	free(line);
	if (failed > 3)
		fprintf(stderr, "didfs: warning: no block manifest for %llu more file(s)\n",
			(unsigned long long)(failed - 3));
}

/* ---- walking ---- */

static void skip(struct reg *r, const char *path, const char *why)
{
	struct skip_reason *sr = NULL;

	for (size_t i = 0; i < r->nreasons && !sr; i++)
		if (!strcmp(r->reasons[i].why, why))
			sr = &r->reasons[i];
	if (!sr && r->nreasons < DM_ARRAY_SIZE(r->reasons)) {
		sr = &r->reasons[r->nreasons++];
		dm_strlcpy(sr->why, why, sizeof sr->why);
	}
	if (!sr || sr->count < SKIP_EXAMPLES)
		fprintf(stderr, "%sdidfs: %s: %s: %s\n", r->prog ? "\r\033[K" : "",
			r->strict ? "error" : "skipped", path, why);
	if (sr)
		sr->count++;
	r->skipped++;
	if (r->strict)
		r->failed = 1;
}

static void skip_summary(struct reg *r)
{
	for (size_t i = 0; i < r->nreasons; i++)
		if (r->reasons[i].count > SKIP_EXAMPLES)
			fprintf(stderr, "didfs: %s %llu more file(s): %s\n",
				r->strict ? "refused" : "skipped",
				(unsigned long long)(r->reasons[i].count - SKIP_EXAMPLES), r->reasons[i].why);
	if (r->ignored)
		fprintf(stderr, "didfs: ignored %llu file(s) of scopes other than --scope %s\n",
			(unsigned long long)r->ignored, r->scope);
}

static int hex2(const char *s)
{
	return isxdigit((unsigned char)s[0]) && isxdigit((unsigned char)s[1]);
}

/* Map a relative path to scope:name; 0 on success.  only_scope: the scope
 * a deterministic path must belong to (NULL: any). */
static int map_path(struct reg *r, const char *rel, const char *only_scope, char *scope,
		    char *name, const char **why)
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
		if (only_scope && strcmp(cand, only_scope))
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

/* The one function that reads a walked file's bytes: size, adler32 and
 * (md5 != NULL) md5, in 4 MiB reads, with progress.  No catalog
 * transaction is open while it runs. */
static enum dm_status hash_file(struct reg *r, const char *path, uint64_t *bytes, char adler[9],
				char *md5, struct cat_manifest_builder *mb, struct dm_err *err)
{
	enum { BUFSZ = 4 << 20 };
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	unsigned char *buf;
	uint32_t a = DM_ADLER32_INIT;
	struct dm_md5 *m = NULL;
	uint64_t total = 0;
	ssize_t n;

	if (fd < 0)
		return dm_seterr(err, DM_EIO, NULL, "cannot open: %s", strerror(errno));
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	buf = dm_xmalloc(BUFSZ);
	if (md5)
		m = dm_md5_new();
	while ((n = read(fd, buf, BUFSZ)) > 0) {
		a = dm_adler32_update(a, buf, (size_t)n);
		cat_manifest_builder_add(mb, buf, (size_t)n);
		if (m)
			dm_md5_update(m, buf, (size_t)n);
		total += (uint64_t)n;
		dm_progress_add(r->prog, 0, (uint64_t)n);
	}
	if (n < 0)
		dm_seterr(err, DM_EIO, NULL, "read error: %s", strerror(errno));
	free(buf);
	close(fd);
	if (m) {
		char tmp[33];
		dm_md5_final_hex(m, n < 0 ? tmp : md5);
	}
	if (n < 0)
		return DM_EIO;
	*bytes = total;
	dm_adler32_hex(a, adler);
	return DM_OK;
}

static int walk_file(struct reg *r, const char *path, const char *rel)
{
	char scope[CAT_SCOPE_MAX + 1], name[CAT_NAME_MAX + 1], adler[9], md5[33];
	const char *why;
	uint64_t bytes = 0;
	struct dm_err err = { 0 };
	struct dm_buf pfn = DM_BUF_INIT;
	size_t rl = strlen(rel);
	int rc;

	if (rl > 13 && !strcmp(rel + rl - 13, ".rucio.upload")) {
		skip(r, path, "leftover of an unfinished upload");
		return 0;
	}
	if (map_path(r, rel, r->deterministic ? r->scope : NULL, scope, name, &why)) {
		/* another scope's file, when --scope picked one: not ours to judge */
		if (r->deterministic && r->scope && !map_path(r, rel, NULL, scope, name, &why)) {
			r->ignored++;
			dm_progress_add(r->prog, 1, 0);
			return 0;
		}
		skip(r, path, why);
		return 0;
	}
	struct cat_manifest_builder mb;
	struct cat_manifest man;

	cat_manifest_builder_init(&mb);
	if (hash_file(r, path, &bytes, adler, r->with_md5 ? md5 : NULL, &mb, &err)) {
		cat_manifest_builder_finish(&mb, &man);
		cat_manifest_free(&man);
		skip(r, path, err.msg);
		return 0;
	}
	cat_manifest_builder_finish(&mb, &man);
	/* the per-block manifest, recorded once the file is registered */
	if (r->mspool) {
		fprintf(r->mspool, "%s\t%s\t%llu\t", scope, name, (unsigned long long)man.bytes);
		for (size_t i = 0; i < man.n; i++)
			fprintf(r->mspool, "%08x", man.sums[i]);
		fputc('\n', r->mspool);
	}
	cat_manifest_free(&man);
	dm_progress_add(r->prog, 1, 0);
	if (!r->deterministic)
		cat_pfn_join(&r->proto, rel, &pfn);
	rc = spool_put(r, rel, scope, name, bytes, adler, r->with_md5 ? md5 : NULL,
		       r->deterministic ? NULL : pfn.s);
	dm_buf_release(&pfn);
	return rc;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Depth-first, names sorted, so registration order is reproducible.
 * count_only: add up files and bytes for the progress totals. */
static int walk_dir(struct reg *r, struct dm_buf *path, size_t root_len, int count_only,
		    uint64_t *files, uint64_t *bytes)
{
	DIR *d = opendir(path->s);
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, cap = 0, base = path->len;
	int rc = 0;

	if (!d) {
		if (!count_only)
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
		if (lstat(path->s, &st)) {
			if (!count_only)
				skip(r, path->s, strerror(errno));
		} else if (S_ISDIR(st.st_mode)) {
			rc = walk_dir(r, path, root_len, count_only, files, bytes);
		} else if (S_ISREG(st.st_mode)) {
			if (count_only) {
				(*files)++;
				*bytes += (uint64_t)st.st_size;
			} else {
				rc = walk_file(r, path->s, path->s + root_len + 1);
			}
		}
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	path->len = base;
	path->s[base] = 0;
	return rc;
}

/* Parse and validate every line of a --list file into the spool; the first
 * bad line is an error naming its number, before anything is registered. */
static int read_list(struct reg *r, const char *file)
{
	FILE *f = strcmp(file, "-") ? fopen(file, "r") : stdin;
	char *line = NULL, where[64];
	size_t cap = 0;
	long lineno = 0, n;
	int rc = 0;

	if (!f)
		return cli_failf(r->c, "InputValidationError", "cannot read '%s': %s", file, strerror(errno));
	while (!rc && (n = list_read_line(f, &line, &cap, 64 * 1024)) != -1) {
		struct list_rec x;
		struct dm_err e = { 0 };
		int got;

		lineno++;
		if (n == -2) {
			rc = cli_failf(r->c, "InputValidationError", "%s:%ld: line longer than 64 KiB",
				       file, lineno);
			break;
		}
		got = list_parse_line(line, (size_t)n, &x, &e);
		if (got < 0) {
			rc = cli_failf(r->c, e.cls, "%s:%ld: %s", file, lineno, e.msg);
			break;
		}
		if (got == 0)
			continue;
		snprintf(where, sizeof where, "line %ld", lineno);
		rc = spool_put(r, where, x.scope, x.name, x.bytes, x.adler32, x.md5[0] ? x.md5 : NULL,
			       x.pfn);
	}
	if (!rc && ferror(f))
		rc = cli_failf(r->c, "InputValidationError", "error reading '%s': %s", file, strerror(errno));
	free(line);
	if (f != stdin)
		fclose(f);
	return rc;
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
	struct reg r = { .proto_strs = DM_BUF_INIT };
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
		/* the catalog's protocol choice for writing (policy.h) */
		enum dm_status prc = cat_rse_protocol_for(c->db, r.rse, CAT_OP_WRITE, NULL, &r.proto,
							  &r.proto_strs);
		if (prc == DM_ENOTSUP) {
			dm_buf_release(&r.proto_strs);
			return cli_failf(c, "RSEProtocolNotSupported",
					 "RSE '%s' has no protocol to build PFNs from", r.rse);
		}
		if (prc) {
			dm_buf_release(&r.proto_strs);
			return cli_fail(c, NULL);
		}
	}
	r.spool = tmpfile();
	if (!r.spool) {
		rc = cli_failf(c, "RucioException", "cannot create a temporary spool file: %s",
			       strerror(errno));
		goto out;
	}
	if (walk)
		r.mspool = tmpfile(); /* without one, a walk records no manifests */
	/* 1: validate (and for a walk, hash) everything, no transaction open */
	for (int i = optind; i + 2 < argc && !rc; i += 3) {
		char scope[CAT_SCOPE_MAX + 1], name[CAT_NAME_MAX + 1], where[32];
		struct dm_err e = { 0 };
		uint64_t bytes;
		snprintf(where, sizeof where, "argument %d", i - optind + 1);
		if (cli_did(c, argv[i], scope, name) || cli_parse_u64(c, "BYTES", argv[i + 1], &bytes))
			rc = 1;
		else if (cat_validate_adler32(argv[i + 2], &e))
			rc = cli_fail(c, &e);
		else
			rc = spool_put(&r, where, scope, name, bytes, argv[i + 2], NULL, NULL);
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
			uint64_t files = 0, bytes = 0;
			if (isatty(STDERR_FILENO)) /* totals for the ETA: a stat-only pass */
				walk_dir(&r, &path, path.len, 1, &files, &bytes);
			r.prog = dm_progress_new(r.with_md5 ? "hashing (adler32, md5)" : "hashing (adler32)",
						 files, bytes);
			rc = walk_dir(&r, &path, path.len, 0, NULL, NULL);
			if (r.prog && r.failed)
				fputc('\n', stderr);
			skip_summary(&r);
			if (!rc && r.failed)
				rc = cli_failf(c, "InputValidationError",
					       "%llu file(s) could not be registered (--strict): nothing registered",
					       (unsigned long long)r.skipped);
		}
		dm_buf_release(&path);
	}
	if (rc)
		goto out;
	/* 2: register; a walk alone in short batches, anything else at once */
	if (!r.prog && r.spooled >= 100000)
		r.prog = dm_progress_new("registering", r.spooled, 0);
	rc = register_spool(&r, dataset ? ds_scope : NULL, dataset ? ds_name : NULL, flags,
			    walk && !list && optind == argc ? WALK_BATCH : 0, &added);
	dm_progress_done(r.prog);
	r.prog = NULL;
	if (rc)
		goto out;
	if (r.mspool)
		record_manifests(&r);
	{
		double dt = dm_now_f() - t0;
		char h[32];
		if (c->json)
			printf("{\"rse\": \"%s\", \"files\": %llu, \"new_replicas\": %llu, \"bytes\": %llu,"
			       " \"skipped\": %llu, \"ignored\": %llu, \"seconds\": %.3f}\n", r.rse,
			       (unsigned long long)r.seen, (unsigned long long)added,
			       (unsigned long long)r.registered_bytes, (unsigned long long)r.skipped,
			       (unsigned long long)r.ignored, dt);
		else
			printf("Registered %llu file(s) (%s) on %s: %llu new replica(s), %llu skipped, %.2f s\n",
			       (unsigned long long)r.seen, dm_human_bytes(r.registered_bytes, 3, h), r.rse,
			       (unsigned long long)added, (unsigned long long)r.skipped, dt);
	}
out:
	if (r.prog) {
		dm_progress_done(r.prog);
		r.prog = NULL;
	}
	if (r.spool)
		fclose(r.spool);
	if (r.mspool)
		fclose(r.mspool);
	dm_buf_release(&r.proto_strs);
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
	/* No usable protocol leaves the PFN empty rather than failing the list;
	 * a REST catalog gives the server's PFN with the replica. */
	if (x->pfn && !p->scheme)
		dm_buf_adds(&pfn, x->pfn);
	else if (cat_lfn2pfn(p->c->db, x->rse, x->scope, x->name, p->scheme, CAT_OP_READ, &pfn))
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

/* ---- declare-bad-replicas --rse RSE --reason R DID... (catalog/necromancer.c) ---- */

int cli_declare_bad_replicas(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "rse", required_argument, NULL, 'r' },
		{ "reason", required_argument, NULL, 'R' },
		{ NULL, 0, NULL, 0 },
	};
	const char *rse = NULL, *reason = NULL;
	char scope[CAT_SCOPE_MAX + 1], name[CAT_NAME_MAX + 1];
	int opt, n = 0;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'r': rse = optarg; break;
		case 'R': reason = optarg; break;
		default: return cli_usage(c);
		}
	}
	if (!rse || optind >= argc)
		return cli_usage(c);
	if (!reason)
		return cli_failf(c, "InvalidObject", "declare-bad-replicas needs --reason");
	for (int i = optind; i < argc; i++)
		if (cli_did(c, argv[i], scope, name))
			return 1;
	if (cli_open(c))
		return 1;
	/* one transaction: all of them or none */
	if (cat_batch_begin(c->db))
		return cli_fail(c, NULL);
	for (int i = optind; i < argc; i++) {
		cli_did(c, argv[i], scope, name);
		if (cat_replicas_declare_bad(c->db, rse, scope, name, reason)) {
			struct dm_err keep = *cat_error(c->db);

			cat_batch_end(c->db, DM_EINVAL);
			return cli_fail(c, &keep);
		}
		n++;
	}
	if (cat_batch_end(c->db, DM_OK))
		return cli_fail(c, NULL);
	printf("Declared %d replica(s) on %s bad\n", n, rse);
	return 0;
}
