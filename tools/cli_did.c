/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cli_did.c - data identifiers: add-dataset, add-container, attach, detach,
 * close, reopen, list-dids, list-files, list-content, list-parent-dids,
 * get-metadata, set-metadata, delete-metadata.
 */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int add_collection(struct cli *c, int argc, char **argv, enum cat_did_type type)
{
	static const struct option opts[] = {
		{ "lifetime", required_argument, NULL, 'l' },
		{ "monotonic", no_argument, NULL, 'm' },
		{ NULL, 0, NULL, 0 },
	};
	char scope[CAT_SCOPE_MAX + 1], name[CAT_NAME_MAX + 1];
	int64_t lifetime = 0;
	int opt;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'l':
			if (cli_parse_int(c, "--lifetime", optarg, 0, DM_DURATION_MAX,
					  "seconds", &lifetime))
				return 1;
			break;
		case 'm': break;
		default: return cli_usage(c);
		}
	}
	if (optind != argc - 1)
		return cli_usage(c);
	if (cli_did(c, argv[optind], scope, name) || cli_open(c))
		return 1;
	if (cat_did_add(c->db, scope, name, type, lifetime))
		return cli_fail(c, NULL);
	if (!c->json)
		printf("Added %s:%s\n", scope, name);
	return 0;
}

int cli_add_dataset(struct cli *c, int argc, char **argv)
{
	return add_collection(c, argc, argv, CAT_DID_DATASET);
}

int cli_add_container(struct cli *c, int argc, char **argv)
{
	return add_collection(c, argc, argv, CAT_DID_CONTAINER);
}

/* DIDs from the arguments and, with --from-file, one per line of a file. */
struct did_list {
	struct cat_did_ref *refs;
	char (*scopes)[CAT_SCOPE_MAX + 1];
	char (*names)[CAT_NAME_MAX + 1];
	size_t n, cap;
};

static int did_list_add(struct cli *c, struct did_list *l, const char *arg)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 64;
		l->refs = dm_xrealloc(l->refs, l->cap * sizeof *l->refs);
		l->scopes = dm_xrealloc(l->scopes, l->cap * sizeof *l->scopes);
		l->names = dm_xrealloc(l->names, l->cap * sizeof *l->names);
	}
	if (cli_did(c, arg, l->scopes[l->n], l->names[l->n]))
		return 1;
	l->n++;
	return 0;
}

static void did_list_free(struct did_list *l)
{
	free(l->refs);
	free(l->scopes);
	free(l->names);
}

static int attach_detach(struct cli *c, int argc, char **argv, int attach)
{
	static const struct option opts[] = {
		{ "from-file", required_argument, NULL, 'f' },
		{ NULL, 0, NULL, 0 },
	};
	char scope[CAT_SCOPE_MAX + 1], name[CAT_NAME_MAX + 1];
	struct did_list l = { 0 };
	const char *file = NULL;
	int opt, rc = 0;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (opt != 'f')
			return cli_usage(c);
		file = optarg;
	}
	if (optind >= argc || (optind == argc - 1 && !file))
		return cli_usage(c);
	if (cli_did(c, argv[optind], scope, name))
		return 1;
	for (int i = optind + 1; i < argc && !rc; i++)
		rc = did_list_add(c, &l, argv[i]);
	if (file && !rc) {
		FILE *f = strcmp(file, "-") ? fopen(file, "r") : stdin;
		char line[512];
		if (!f) {
			did_list_free(&l);
			return cli_failf(c, "InputValidationError", "cannot read '%s': %s", file, strerror(errno));
		}
		while (!rc && fgets(line, sizeof line, f)) {
			line[strcspn(line, "\r\n")] = 0;
			if (line[0] && line[0] != '#')
				rc = did_list_add(c, &l, line);
		}
		if (f != stdin)
			fclose(f);
	}
	if (rc) {
		did_list_free(&l);
		return 1;
	}
	for (size_t i = 0; i < l.n; i++) {
		l.refs[i].scope = l.scopes[i];
		l.refs[i].name = l.names[i];
	}
	if (cli_open(c)) {
		did_list_free(&l);
		return 1;
	}
	rc = attach ? cat_did_attach(c->db, scope, name, l.refs, l.n, 0)
		    : cat_did_detach(c->db, scope, name, l.refs, l.n);
	if (rc) {
		did_list_free(&l);
		return cli_fail(c, NULL);
	}
	if (!c->json)
		printf("%s %zu DID(s) %s %s:%s\n", attach ? "Attached" : "Detached", l.n,
		       attach ? "to" : "from", scope, name);
	did_list_free(&l);
	return 0;
}

int cli_attach(struct cli *c, int argc, char **argv)
{
	return attach_detach(c, argc, argv, 1);
}

int cli_detach(struct cli *c, int argc, char **argv)
{
	return attach_detach(c, argc, argv, 0);
}

static int set_open(struct cli *c, int argc, char **argv, int open)
{
	char scope[CAT_SCOPE_MAX + 1], name[CAT_NAME_MAX + 1];

	if (argc != 2)
		return cli_usage(c);
	if (cli_did(c, argv[1], scope, name) || cli_open(c))
		return 1;
	if (cat_did_set_open(c->db, scope, name, open))
		return cli_fail(c, NULL);
	if (!c->json)
		printf("%s:%s has been %s.\n", scope, name, open ? "reopened" : "closed");
	return 0;
}

int cli_close(struct cli *c, int argc, char **argv)
{
	return set_open(c, argc, argv, 0);
}

int cli_reopen(struct cli *c, int argc, char **argv)
{
	return set_open(c, argc, argv, 1);
}

static int did_row(void *ud, const struct cat_did *d)
{
	struct cli_out *o = ud;
	char did[CAT_SCOPE_MAX + CAT_NAME_MAX + 2];

	snprintf(did, sizeof did, "%s:%s", d->scope, d->name);
	cli_out_row(o, "ss", did, cat_did_type_name(d->type));
	return 0;
}

static int type_mask_parse(const char *s, unsigned *mask)
{
	if (!strcasecmp(s, "all"))
		*mask = 7;
	else if (!strcasecmp(s, "collection"))
		*mask = (1u << CAT_DID_DATASET) | (1u << CAT_DID_CONTAINER);
	else if (!strcasecmp(s, "dataset"))
		*mask = 1u << CAT_DID_DATASET;
	else if (!strcasecmp(s, "container"))
		*mask = 1u << CAT_DID_CONTAINER;
	else if (!strcasecmp(s, "file"))
		*mask = 1u << CAT_DID_FILE;
	else
		return -1;
	return 0;
}

int cli_list_dids(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "type", required_argument, NULL, 't' },
		{ "filter", required_argument, NULL, 'f' },
		{ NULL, 0, NULL, 0 },
	};
	static const char *const cols[] = { "did", "type" };
	unsigned mask = (1u << CAT_DID_DATASET) | (1u << CAT_DID_CONTAINER);
	char scope[CAT_SCOPE_MAX + 1];
	const char *pattern = "*", *colon, *type = NULL;
	struct cli_out *o;
	int opt, rc;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 't': type = optarg; break;
		case 'f':
			if (strncmp(optarg, "type=", 5))
				return cli_failf(c, "DIDFilterSyntaxError",
						 "unsupported filter '%s' (supported: type=all|collection|dataset|container|file)",
						 optarg);
			type = optarg + 5;
			break;
		default: return cli_usage(c);
		}
	}
	if (optind != argc - 1)
		return cli_usage(c);
	if (type && type_mask_parse(type, &mask))
		return cli_failf(c, "UnsupportedDIDType",
				 "type must be all, collection, dataset, container or file, not '%s'", type);
	colon = strchr(argv[optind], ':');
	if (colon) {
		if ((size_t)(colon - argv[optind]) > CAT_SCOPE_MAX)
			return cli_failf(c, "InvalidObject", "scope of '%s' is too long", argv[optind]);
		memcpy(scope, argv[optind], (size_t)(colon - argv[optind]));
		scope[colon - argv[optind]] = 0;
		pattern = colon + 1;
	} else {
		dm_strlcpy(scope, argv[optind], sizeof scope);
	}
	if (cli_open(c))
		return 1;
	o = cli_out_begin(c, cols, 2);
	rc = cat_did_list(c->db, scope, pattern, mask, did_row, o);
	return cli_out_finish(c, o, rc);
}

struct files_print {
	struct cli_out *o;
	uint64_t n, bytes;
};

static int file_row(void *ud, const struct cat_did *d)
{
	struct files_print *p = ud;
	char did[CAT_SCOPE_MAX + CAT_NAME_MAX + 2];

	snprintf(did, sizeof did, "%s:%s", d->scope, d->name);
	cli_out_row(p->o, "ssu", did, d->adler32, d->bytes);
	p->n++;
	p->bytes += d->bytes;
	return 0;
}

int cli_list_files(struct cli *c, int argc, char **argv)
{
	static const char *const cols[] = { "did", "adler32", "bytes" };
	char scope[CAT_SCOPE_MAX + 1], name[CAT_NAME_MAX + 1], h[32];
	struct files_print p = { 0 };
	int rc;

	if (argc != 2)
		return cli_usage(c);
	if (cli_did(c, argv[1], scope, name) || cli_open(c))
		return 1;
	p.o = cli_out_begin(c, cols, 3);
	rc = cat_did_list_files(c->db, scope, name, file_row, &p);
	rc = cli_out_finish(c, p.o, rc);
	if (!rc && !c->json)
		printf("Total files : %llu\nTotal size : %s\n", (unsigned long long)p.n,
		       dm_human_bytes(p.bytes, 3, h));
	return rc;
}

int cli_list_content(struct cli *c, int argc, char **argv)
{
	static const char *const cols[] = { "did", "type" };
	char scope[CAT_SCOPE_MAX + 1], name[CAT_NAME_MAX + 1];
	struct cli_out *o;
	int rc;

	if (argc != 2)
		return cli_usage(c);
	if (cli_did(c, argv[1], scope, name) || cli_open(c))
		return 1;
	o = cli_out_begin(c, cols, 2);
	rc = cat_did_list_content(c->db, scope, name, did_row, o);
	return cli_out_finish(c, o, rc);
}

int cli_list_parent_dids(struct cli *c, int argc, char **argv)
{
	static const char *const cols[] = { "did", "type" };
	char scope[CAT_SCOPE_MAX + 1], name[CAT_NAME_MAX + 1];
	struct cli_out *o;
	int rc;

	if (argc != 2)
		return cli_usage(c);
	if (cli_did(c, argv[1], scope, name) || cli_open(c))
		return 1;
	o = cli_out_begin(c, cols, 2);
	rc = cat_did_list_parents(c->db, scope, name, did_row, o);
	return cli_out_finish(c, o, rc);
}

struct meta_print {
	struct cli *c;
	struct cat_did d;
	char *strs[6];
	int found;
};

static int keep_did(void *ud, const struct cat_did *d)
{
	struct meta_print *m = ud;

	m->d = *d;
	m->d.scope = m->strs[0] = dm_xstrdup(d->scope);
	m->d.name = m->strs[1] = dm_xstrdup(d->name);
	m->d.account = m->strs[2] = dm_xstrdup(d->account);
	m->d.adler32 = m->strs[3] = d->adler32 ? dm_xstrdup(d->adler32) : NULL;
	m->d.md5 = m->strs[4] = d->md5 ? dm_xstrdup(d->md5) : NULL;
	m->found = 1;
	return 0;
}

struct meta_kv {
	const char **keys;
	char **vals;
	int n, cap;
};

static int keep_kv(void *ud, const char *k, const char *v)
{
	struct meta_kv *m = ud;

	if (m->n == m->cap) {
		m->cap = m->cap ? 2 * m->cap : 16;
		m->keys = dm_xrealloc(m->keys, (size_t)m->cap * sizeof *m->keys);
		m->vals = dm_xrealloc(m->vals, (size_t)m->cap * sizeof *m->vals);
	}
	m->keys[m->n] = dm_xstrdup(k);
	m->vals[m->n] = dm_xstrdup(v ? v : "");
	m->n++;
	return 0;
}

int cli_get_metadata(struct cli *c, int argc, char **argv)
{
	static const char *const keys[] = { "scope", "name", "account", "did_type", "is_open",
					    "bytes", "length", "adler32", "md5", "availability",
					    "created_at", "updated_at", "expired_at", "closed_at" };
	char scope[CAT_SCOPE_MAX + 1], name[CAT_NAME_MAX + 1];
	struct meta_print m = { 0 };
	struct meta_kv kv = { 0 };
	int rc = 0;

	if (argc != 2)
		return cli_usage(c);
	if (cli_did(c, argv[1], scope, name) || cli_open(c))
		return 1;
	m.c = c;
	if (cat_did_get(c->db, scope, name, keep_did, &m) ||
	    cat_did_meta_list(c->db, scope, name, keep_kv, &kv)) {
		rc = cli_fail(c, NULL);
		goto out;
	}
	if (c->json) {
		/* one object: the DID columns, then the free metadata keys */
		struct dm_buf b = DM_BUF_INIT;
		char t[40];
		dm_buf_addf(&b, "{\n  \"scope\": \"%s\",\n  \"name\": \"%s\",\n  \"account\": \"%s\",\n"
				"  \"did_type\": \"%s\",\n  \"is_open\": %s,\n  \"bytes\": %llu,\n"
				"  \"length\": %llu,\n  \"adler32\": %s%s%s,\n  \"md5\": %s%s%s,\n"
				"  \"availability\": \"%s\"",
			    m.d.scope, m.d.name, m.d.account, cat_did_type_name(m.d.type),
			    m.d.type == CAT_DID_FILE ? "null" : m.d.is_open ? "true" : "false",
			    (unsigned long long)m.d.bytes, (unsigned long long)m.d.length,
			    m.d.adler32 ? "\"" : "", m.d.adler32 ? m.d.adler32 : "null", m.d.adler32 ? "\"" : "",
			    m.d.md5 ? "\"" : "", m.d.md5 ? m.d.md5 : "null", m.d.md5 ? "\"" : "",
			    m.d.availability);
		dm_fmt_time(m.d.created_at, t);
		dm_buf_addf(&b, ",\n  \"created_at\": \"%s\"", t);
		dm_fmt_time(m.d.updated_at, t);
		dm_buf_addf(&b, ",\n  \"updated_at\": \"%s\"", t);
		if (m.d.expired_at) {
			dm_fmt_time(m.d.expired_at, t);
			dm_buf_addf(&b, ",\n  \"expired_at\": \"%s\"", t);
		} else {
			dm_buf_adds(&b, ",\n  \"expired_at\": null");
		}
		for (int i = 0; i < kv.n; i++) {
			dm_buf_addf(&b, ",\n  \"%s\": \"", kv.keys[i]);
			for (const char *p = kv.vals[i]; *p; p++) {
				if (*p == '"' || *p == '\\')
					dm_buf_addc(&b, '\\');
				if ((unsigned char)*p < 0x20)
					dm_buf_addf(&b, "\\u%04x", *p);
				else
					dm_buf_addc(&b, *p);
			}
			dm_buf_addc(&b, '"');
		}
		dm_buf_adds(&b, "\n}\n");
		fputs(b.s, stdout);
		dm_buf_release(&b);
	} else {
		cli_out_kv(c, keys, 14, "sssssuussstttt", m.d.scope, m.d.name, m.d.account,
			   cat_did_type_name(m.d.type),
			   m.d.type == CAT_DID_FILE ? "" : m.d.is_open ? "True" : "False",
			   m.d.bytes, m.d.length, m.d.adler32, m.d.md5, m.d.availability,
			   m.d.created_at, m.d.updated_at, m.d.expired_at, m.d.closed_at);
		for (int i = 0; i < kv.n; i++)
			printf("%-14s %s\n", kv.keys[i], kv.vals[i]);
	}
out:
	for (int i = 0; i < 6; i++)
		free(m.strs[i]);
	for (int i = 0; i < kv.n; i++) {
		free((char *)kv.keys[i]);
		free(kv.vals[i]);
	}
	free(kv.keys);
	free(kv.vals);
	return rc;
}

static int meta_args(struct cli *c, int argc, char **argv, char *scope, char *name,
		     const char **key, const char **value, int need_value)
{
	const char *did;
	int rc = cli_target_key_value(c, argc, argv, "did", "key", &did, key, value, need_value);

	return rc ? rc : cli_did(c, did, scope, name);
}

int cli_set_metadata(struct cli *c, int argc, char **argv)
{
	char scope[CAT_SCOPE_MAX + 1], name[CAT_NAME_MAX + 1];
	const char *key, *value;
	int rc = meta_args(c, argc, argv, scope, name, &key, &value, 1);

	if (rc)
		return rc;
	if (cli_open(c))
		return 1;
	if (cat_did_meta_set(c->db, scope, name, key, value))
		return cli_fail(c, NULL);
	return 0;
}

int cli_delete_metadata(struct cli *c, int argc, char **argv)
{
	char scope[CAT_SCOPE_MAX + 1], name[CAT_NAME_MAX + 1];
	const char *key, *value;
	int rc = meta_args(c, argc, argv, scope, name, &key, &value, 0);

	if (rc)
		return rc;
	if (cli_open(c))
		return 1;
	if (cat_did_meta_del(c->db, scope, name, key))
		return cli_fail(c, NULL);
	return 0;
}
