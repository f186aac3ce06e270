/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cli_transfer.c - moving data: upload and download, as Rucio's clients do.
 *
 * upload (Rucio's safe protocol, client/uploadclient.py): compute size,
 * adler32 and md5 locally; register the file and its replica as COPYING
 * with a rule (copies 1 on the RSE, or on the dataset) so nothing reaps it;
 * write to <pfn>.rucio.upload; check size and server checksum; rename to the
 * PFN; only then mark the replica AVAILABLE (its locks turn OK) and attach
 * it to the dataset, and record the file's per-block checksum manifest
 * (catalog/manifest.c) from the local bytes.  A failed upload removes its temporary file and the
 * registration it made: a file is never left under its final name
 * unverified, and a replica is never AVAILABLE before its bytes are.
 *
 * download (client/downloadclient.py): every file under the DIDs, its
 * AVAILABLE replicas (optionally inside an RSE expression) ordered by read
 * availability and protocol priority; many files in flight on shared
 * connections; each written to <dest>.part, adler32 (and md5) verified,
 * renamed; a failing or corrupted source falls over to the next replica,
 * and a corrupted one (wrong size or checksum) is declared suspicious in the
 * catalog (cat_replica_declare_suspicious: BAD, its locks STUCK for repair).
 *
 * Storage credentials: --ca-path/$X509_CERT_DIR, --ca-file,
 * --cert/$X509_USER_CERT, --key/$X509_USER_KEY, --token/$BEARER_TOKEN,
 * --timeout seconds (default 60; stalls end a stream after the same time).
 *
 * On a terminal both draw a progress line on stderr (util/progress.h: files,
 * bytes, rate, ETA; download counts bytes as they arrive, upload each file
 * once written); off a terminal they print nothing of it.
 */
#include "cli.h"
#include "progress.h"
#include "xfer.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { O_CAPATH = 300, O_CAFILE, O_CERT, O_KEY, O_TOKEN, O_TIMEOUT, O_INSECURE, O_PARALLEL };

#define XFER_OPTIONS \
	{ "ca-path", required_argument, NULL, O_CAPATH }, \
	{ "ca-file", required_argument, NULL, O_CAFILE }, \
	{ "cert", required_argument, NULL, O_CERT }, \
	{ "key", required_argument, NULL, O_KEY }, \
	{ "token", required_argument, NULL, O_TOKEN }, \
	{ "timeout", required_argument, NULL, O_TIMEOUT }, \
	{ "insecure", no_argument, NULL, O_INSECURE }, \
	{ "parallel", required_argument, NULL, O_PARALLEL }

static void xfer_defaults(struct xfer_config *x)
{
	struct dm_cred_env ce;
	const char *e;

	memset(x, 0, sizeof *x);
	dm_cred_env(&ce);
	x->ca_path = ce.ca_dir;
	x->client_cert = ce.user_cert;
	x->client_key = ce.user_key;
	x->bearer_token = ce.bearer_token;
	x->timeout_s = 60;
	x->parallel = 8;
	if ((e = getenv("DIDFS_TIMEOUT")) && *e) {
		int64_t v;
		if (dm_parse_i64(e, &v) == 0 && v > 0 && v <= 86400)
			x->timeout_s = (int)v;
	}
	x->stall_timeout_s = x->timeout_s;
}

/* 1 if opt was a transfer option (consumed), 0 if not, -1 on a bad value. */
static int xfer_option(struct cli *c, struct xfer_config *x, int opt, const char *arg)
{
	int64_t v;

	switch (opt) {
	case O_CAPATH: x->ca_path = arg; return 1;
	case O_CAFILE: x->ca_file = arg; return 1;
	case O_CERT: x->client_cert = arg; return 1;
	case O_KEY: x->client_key = arg; return 1;
	case O_TOKEN: x->bearer_token = arg; return 1;
	case O_INSECURE: x->insecure = 1; return 1;
	case O_TIMEOUT:
		if (dm_parse_i64(arg, &v) || v <= 0 || v > 86400)
			return cli_failf(c, "InputValidationError", "--timeout takes seconds (1..86400), not '%s'", arg), -1;
		x->timeout_s = x->stall_timeout_s = (int)v;
		return 1;
	case O_PARALLEL:
		if (dm_parse_i64(arg, &v) || v <= 0 || v > 256)
			return cli_failf(c, "InputValidationError", "--parallel takes 1..256, not '%s'", arg), -1;
		x->parallel = (int)v;
		return 1;
	}
	return 0;
}

/* bytes moved, from the transfer layer's threads */
static void progress_bytes(void *arg, uint64_t n)
{
	dm_progress_add(arg, 0, n);
}

/* A progress line for the files on the command line (NULL off a TTY). */
static struct dm_progress *upload_progress(int argc, char **argv, int first)
{
	uint64_t bytes = 0;
	struct stat st;

	for (int i = first; i < argc; i++)
		if (stat(argv[i], &st) == 0 && S_ISREG(st.st_mode))
			bytes += (uint64_t)st.st_size;
	return dm_progress_new("upload", (uint64_t)(argc - first), bytes);
}

/* ------------------------------------------------------------------ */
/* upload                                                              */

struct upload {
	struct cli *c;
	struct xfer_ctx *x;
	const char *rse;
	const char *scope;
	const char *ds_scope, *ds_name;
	int64_t lifetime;
	struct cli_out *out; /* --json rows */
};

struct did_state {
	int exists;
	uint64_t bytes;
	char adler32[9];
};

static int keep_did_state(void *ud, const struct cat_did *d)
{
	struct did_state *s = ud;

	s->exists = 1;
	s->bytes = d->bytes;
	dm_strlcpy(s->adler32, d->adler32 ? d->adler32 : "", sizeof s->adler32);
	return 0;
}

struct rep_state {
	int available;
	int exists;
};

static int keep_rep_state(void *ud, const struct cat_replica *r)
{
	struct rep_state *s = ud;

	s->exists = 1;
	s->available |= r->state == CAT_REPLICA_AVAILABLE;
	return 0;
}

static int rse_writable(void *ud, const struct cat_rse *r)
{
	*(int *)ud = r->availability_write;
	return 0;
}

/* Undo the registration of a failed upload (only what this upload made). */
static void upload_undo(struct upload *u, const char *scope, const char *name, const char *rule_id)
{
	struct cat_db *db = u->c->db;
	struct dm_err keep = *cat_error(db);

	if (rule_id && *rule_id)
		cat_rule_delete_now(db, rule_id);
	cat_replica_del(db, u->rse, scope, name);
	*(struct dm_err *)cat_error(db) = keep;
}

/* The per-piece manifest of an uploaded file (catalog/manifest.c), so
 * readers can verify every block they fetch.  A failure is only a warning:
 * the whole-file adler32 still protects the file. */
static void record_manifest(struct cat_db *db, const char *path, const char *scope,
			    const char *name)
{
	struct cat_manifest_builder b;
	struct cat_manifest m = { 0 };
	unsigned char *buf = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t r = -1;

	if (fd >= 0) {
		buf = dm_xmalloc(1 << 20);
		cat_manifest_builder_init(&b);
		while ((r = read(fd, buf, 1 << 20)) > 0)
			cat_manifest_builder_add(&b, buf, (size_t)r);
		cat_manifest_builder_finish(&b, &m);
		close(fd);
	}
	if (r != 0 || cat_manifest_set(db, scope, name, &m) != DM_OK)
		fprintf(stderr, "didfs: warning: no block manifest recorded for %s:%s: %s\n", scope,
			name, r != 0 ? strerror(errno) : cat_error(db)->msg);
	cat_manifest_free(&m);
	free(buf);
}

static int upload_one(struct upload *u, const char *path, const char *name_opt)
{
	struct cli *c = u->c;
	struct cat_db *db = c->db;
	char name[CAT_NAME_MAX + 1], adler[9], md5[33], remote[65], rule_id[33] = "";
	char *pathdup;
	uint64_t bytes;
	struct dm_err err = { 0 };
	struct dm_buf pfn = DM_BUF_INIT, tmp = DM_BUF_INIT;
	struct did_state ds = { 0 };
	struct rep_state rs = { 0 };
	struct xfer_stat st;
	int rc = 1;
	double t0 = dm_now_f();

	pathdup = dm_xstrdup(path);
	dm_strlcpy(name, name_opt ? name_opt : basename(pathdup), sizeof name);
	free(pathdup);
	if (cat_validate_name(name, &err))
		return cli_fail(c, &err);
	if (dm_file_checksums(path, &bytes, adler, md5, &err))
		return cli_fail(c, &err);
	/* an existing file must be the same file */
	if (cat_did_get(db, u->scope, name, keep_did_state, &ds) && cat_error(db)->code != DM_ENOENT)
		return cli_fail(c, NULL);
	if (ds.exists && (ds.bytes != bytes || strcasecmp(ds.adler32, adler)))
		return cli_failf(c, "DataIdentifierAlreadyExists",
				 "%s:%s exists with %llu bytes, adler32 %s; '%s' has %llu bytes, adler32 %s",
				 u->scope, name, (unsigned long long)ds.bytes, ds.adler32, path,
				 (unsigned long long)bytes, adler);
	if (ds.exists && cat_replica_list(db, u->scope, name, u->rse, ~0u, keep_rep_state, &rs))
		return cli_fail(c, NULL);
	if (rs.available) {
		fprintf(stderr, "didfs: %s:%s is already on %s, not uploaded again\n", u->scope, name, u->rse);
		goto attach;
	}
	if (cat_lfn2pfn(db, u->rse, u->scope, name, NULL, CAT_OP_WRITE, &pfn))
		return cli_fail(c, NULL);
	{
		/* refuse what cannot be written before registering anything */
		char scheme[32];
		if (xfer_url_scheme(pfn.s, scheme, sizeof scheme) || !xfer_scheme_supported(scheme)) {
			rc = cli_failf(c, "RSEProtocolNotSupported",
				       "RSE '%s' writes with scheme '%s', which didfs cannot speak (%s)",
				       u->rse, scheme, pfn.s);
			goto out;
		}
	}
	/* 1. register: replica COPYING and, without a dataset, a rule on the file */
	if (!rs.exists) {
		struct cat_file_in f = { u->scope, name, bytes, adler, md5, NULL, CAT_REPLICA_COPYING };
		if (cat_replicas_add(db, u->rse, &f, 1, NULL, NULL, 0)) {
			rc = cli_fail(c, NULL);
			goto out;
		}
	}
	if (!u->ds_name) {
		struct cat_rule_opts o;
		cat_rule_opts_init(&o);
		o.rse_expression = u->rse;
		o.lifetime = u->lifetime;
		o.activity = "Upload/Download (User)";
		if (cat_rule_add(db, u->scope, name, &o, rule_id) && strcmp(cat_error(db)->cls, "DuplicateRule")) {
			rc = cli_fail(c, NULL);
			upload_undo(u, u->scope, name, NULL);
			goto out;
		}
	}
	/* 2. write under the temporary name, check, rename */
	dm_buf_addf(&tmp, "%s.rucio.upload", pfn.s);
	if (xfer_put(u->x, path, tmp.s, &err) ||
	    xfer_stat(u->x, tmp.s, &st, &err)) {
		xfer_delete(u->x, tmp.s, &(struct dm_err){ 0 });
		upload_undo(u, u->scope, name, rule_id);
		rc = cli_fail(c, &err);
		goto out;
	}
	if (st.size != bytes) {
		xfer_delete(u->x, tmp.s, &(struct dm_err){ 0 });
		upload_undo(u, u->scope, name, rule_id);
		rc = cli_failf(c, "FileConsistencyMismatch", "%s: the storage has %llu bytes of %llu after upload",
			       tmp.s, (unsigned long long)st.size, (unsigned long long)bytes);
		goto out;
	}
	if (xfer_checksum(u->x, tmp.s, "adler32", remote, sizeof remote, &err) == DM_OK &&
	    strcasecmp(remote, adler)) {
		xfer_delete(u->x, tmp.s, &(struct dm_err){ 0 });
		upload_undo(u, u->scope, name, rule_id);
		rc = cli_failf(c, "FileConsistencyMismatch", "%s: server adler32 %s, local adler32 %s",
			       tmp.s, remote, adler);
		goto out;
	}
	if (xfer_rename(u->x, tmp.s, pfn.s, &err)) {
		xfer_delete(u->x, tmp.s, &(struct dm_err){ 0 });
		upload_undo(u, u->scope, name, rule_id);
		rc = cli_fail(c, &err);
		goto out;
	}
	/* 3. only now is the replica AVAILABLE */
	if (cat_replica_set_state(db, u->rse, u->scope, name, CAT_REPLICA_AVAILABLE)) {
		rc = cli_fail(c, NULL);
		goto out;
	}
	record_manifest(db, path, u->scope, name);
	if (!c->json)
		printf("Uploaded %s as %s:%s to %s (%llu bytes, adler32 %s, %.2f s)\n", path, u->scope, name,
		       u->rse, (unsigned long long)bytes, adler, dm_now_f() - t0);
attach:
	if (u->ds_name) {
		struct cat_did_ref r = { u->scope, name };
		if (cat_did_attach(db, u->ds_scope, u->ds_name, &r, 1, CAT_IGNORE_DUPLICATE)) {
			rc = cli_fail(c, NULL);
			goto out;
		}
	}
	if (u->out) {
		char did[CAT_SCOPE_MAX + CAT_NAME_MAX + 2];
		snprintf(did, sizeof did, "%s:%s", u->scope, name);
		cli_out_row(u->out, "ssusss", did, u->rse, bytes, adler, md5, pfn.s);
	}
	rc = 0;
out:
	dm_buf_release(&pfn);
	dm_buf_release(&tmp);
	return rc;
}

static int ds_exists(void *ud, const struct cat_did *d)
{
	*(int *)ud = d->type == CAT_DID_DATASET ? 1 : 2;
	return 0;
}

int cli_upload(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "rse", required_argument, NULL, 'r' },
		{ "scope", required_argument, NULL, 's' },
		{ "dataset", required_argument, NULL, 'd' },
		{ "lifetime", required_argument, NULL, 'l' },
		{ "name", required_argument, NULL, 'n' },
		XFER_OPTIONS,
		{ NULL, 0, NULL, 0 },
	};
	struct upload u = { 0 };
	struct xfer_config xc;
	char scope_buf[CAT_SCOPE_MAX + 1], ds_scope[CAT_SCOPE_MAX + 1], ds_name[CAT_NAME_MAX + 1];
	const char *name = NULL, *dataset = NULL;
	struct dm_err err = { 0 };
	struct dm_progress *prog = NULL;
	int opt, rc = 0, writable = 1, failed = 0;

	u.c = c;
	xfer_defaults(&xc);
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		int r = xfer_option(c, &xc, opt, optarg);
		if (r < 0)
			return 1;
		if (r)
			continue;
		switch (opt) {
		case 'r': u.rse = optarg; break;
		case 's': u.scope = optarg; break;
		case 'd': dataset = optarg; break;
		case 'n': name = optarg; break;
		case 'l':
			if (cli_parse_i64(c, "--lifetime", optarg, &u.lifetime) || u.lifetime < 0)
				return 1;
			break;
		default: return cli_usage(c);
		}
	}
	if (!u.rse || optind >= argc || (name && argc - optind != 1))
		return cli_usage(c);
	if (dataset) {
		if (cli_did(c, dataset, ds_scope, ds_name))
			return 1;
		u.ds_scope = ds_scope;
		u.ds_name = ds_name;
	}
	for (int i = optind; i < argc; i++) {
		struct stat sb;
		if (stat(argv[i], &sb) || !S_ISREG(sb.st_mode))
			return cli_failf(c, "InputValidationError", "'%s' is not a readable regular file", argv[i]);
	}
	if (cli_open(c))
		return 1;
	if (!u.scope) {
		/* Rucio's default: the account's user scope */
		snprintf(scope_buf, sizeof scope_buf, "user.%s", cat_issuer(c->db));
		u.scope = scope_buf;
	}
	if (cat_validate_scope(u.scope, &err))
		return cli_fail(c, &err);
	if (cat_rse_get(c->db, u.rse, rse_writable, &writable))
		return cli_fail(c, NULL);
	if (!writable)
		return cli_failf(c, "RSEWriteBlocked", "RSE '%s' is not available for writing", u.rse);
	if (u.ds_name) {
		int have = 0;
		if (cat_did_get(c->db, ds_scope, ds_name, ds_exists, &have) && cat_error(c->db)->code != DM_ENOENT)
			return cli_fail(c, NULL);
		if (have == 2)
			return cli_failf(c, "UnsupportedOperation", "'%s' is not a dataset", dataset);
		if (!have) {
			/* Rucio creates the dataset with a rule on the RSE */
			struct cat_rule_opts o;
			if (cat_did_add(c->db, ds_scope, ds_name, CAT_DID_DATASET, 0))
				return cli_fail(c, NULL);
			cat_rule_opts_init(&o);
			o.rse_expression = u.rse;
			o.lifetime = u.lifetime;
			o.activity = "Upload/Download (User)";
			if (cat_rule_add(c->db, ds_scope, ds_name, &o, NULL))
				return cli_fail(c, NULL);
		}
	}
	prog = upload_progress(argc, argv, optind);
	if (prog) {
		xc.on_bytes = progress_bytes;
		xc.on_bytes_arg = prog;
	}
	if (xfer_ctx_new(&xc, &u.x, &err)) {
		dm_progress_done(prog);
		return cli_fail(c, &err);
	}
	if (c->json) {
		static const char *const cols[] = { "did", "rse", "bytes", "adler32", "md5", "pfn" };
		u.out = cli_out_begin(c, cols, 6);
	}
	for (int i = optind; i < argc; i++) {
		failed += upload_one(&u, argv[i], name) != 0;
		dm_progress_add(prog, 1, 0);
	}
	xfer_ctx_free(u.x);
	dm_progress_done(prog);
	if (u.out)
		cli_out_end(u.out);
	if (failed)
		rc = 1;
	return rc;
}

/* ------------------------------------------------------------------ */
/* download                                                            */

struct source {
	char rse[CAT_RSE_MAX + 1];
	char *pfn;
};

struct dl_file {
	char scope[CAT_SCOPE_MAX + 1];
	char name[CAT_NAME_MAX + 1];
	char adler32[9];
	char md5[33];
	uint64_t bytes;
	char *dest;
	char *part;
	struct source *src;
	int nsrc, next;
	int done;
	struct dm_err err;
};

struct download {
	struct cli *c;
	struct dl_file *files;
	size_t n, cap;
	char **rses;      /* RSEs allowed by --rse, NULL = all */
	size_t nrses;
	char **unreadable; /* RSEs with availability_read off */
	size_t nunread;
	const char *dir;
	int no_subdir;
};

static int collect_file(void *ud, const struct cat_did *d)
{
	struct download *dl = ud;
	struct dl_file *f;

	if (dl->n == dl->cap) {
		dl->cap = dl->cap ? 2 * dl->cap : 64;
		dl->files = dm_xrealloc(dl->files, dl->cap * sizeof *dl->files);
	}
	f = &dl->files[dl->n++];
	memset(f, 0, sizeof *f);
	dm_strlcpy(f->scope, d->scope, sizeof f->scope);
	dm_strlcpy(f->name, d->name, sizeof f->name);
	dm_strlcpy(f->adler32, d->adler32 ? d->adler32 : "", sizeof f->adler32);
	dm_strlcpy(f->md5, d->md5 ? d->md5 : "", sizeof f->md5);
	f->bytes = d->bytes;
	return 0;
}

static int cmp_file(const void *a, const void *b)
{
	const struct dl_file *x = a, *y = b;
	int r = strcmp(x->scope, y->scope);

	return r ? r : strcmp(x->name, y->name);
}

/* A file under several of the DIDs asked for is downloaded once. */
static void unique_files(struct download *dl)
{
	size_t k = 0;

	if (dl->n < 2)
		return;
	qsort(dl->files, dl->n, sizeof *dl->files, cmp_file);
	for (size_t i = 1; i < dl->n; i++)
		if (cmp_file(&dl->files[k], &dl->files[i]))
			dl->files[++k] = dl->files[i];
	dl->n = k + 1;
}

static int keep_unreadable(void *ud, const struct cat_rse *r)
{
	struct download *dl = ud;

	if (r->availability_read)
		return 0;
	dl->unreadable = dm_xrealloc(dl->unreadable, (dl->nunread + 1) * sizeof *dl->unreadable);
	dl->unreadable[dl->nunread++] = dm_xstrdup(r->rse);
	return 0;
}

static int keep_rse_name(void *ud, const struct cat_rse *r)
{
	struct download *dl = ud;

	dl->rses = dm_xrealloc(dl->rses, (dl->nrses + 1) * sizeof *dl->rses);
	dl->rses[dl->nrses++] = dm_xstrdup(r->rse);
	return 0;
}

struct rep_collect {
	struct download *dl;
	struct dl_file *f;
};

static int collect_source(void *ud, const struct cat_replica *r)
{
	struct rep_collect *rc = ud;
	struct dl_file *f = rc->f;
	struct dm_buf pfn = DM_BUF_INIT;
	int allowed = !rc->dl->rses;

	for (size_t i = 0; i < rc->dl->nrses && !allowed; i++)
		allowed = !strcmp(rc->dl->rses[i], r->rse);
	for (size_t i = 0; i < rc->dl->nunread && allowed; i++)
		allowed = strcmp(rc->dl->unreadable[i], r->rse) != 0;
	if (!allowed)
		return 0;
	if (cat_lfn2pfn(rc->dl->c->db, r->rse, r->scope, r->name, NULL, CAT_OP_READ, &pfn)) {
		dm_buf_release(&pfn);
		return 0; /* no readable protocol there: not a source */
	}
	f->src = dm_xrealloc(f->src, (size_t)(f->nsrc + 1) * sizeof *f->src);
	dm_strlcpy(f->src[f->nsrc].rse, r->rse, sizeof f->src[f->nsrc].rse);
	f->src[f->nsrc].pfn = dm_buf_detach(&pfn);
	f->nsrc++;
	return 0;
}

/* Does a local file already hold the right bytes? */
static int already_there(const struct dl_file *f)
{
	uint64_t bytes;
	char adler[9];
	struct stat st;

	if (stat(f->dest, &st) || (uint64_t)st.st_size != f->bytes)
		return 0;
	if (dm_file_checksums(f->dest, &bytes, adler, NULL, NULL))
		return 0;
	return !strcasecmp(adler, f->adler32);
}

int cli_download(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "rse", required_argument, NULL, 'r' },
		{ "rses", required_argument, NULL, 'r' },
		{ "no-subdir", no_argument, NULL, 'n' },
		XFER_OPTIONS,
		{ NULL, 0, NULL, 0 },
	};
	struct download dl = { 0 };
	struct xfer_config xc;
	struct xfer_ctx *x = NULL;
	struct xfer_job *jobs = NULL;
	size_t *job_file = NULL;
	const char *expr = NULL;
	struct dm_err err = { 0 };
	uint64_t total = 0;
	struct dm_progress *prog = NULL;
	int opt, rc = 0, failed = 0, skipped = 0, round;
	double t0 = dm_now_f();

	dl.c = c;
	dl.dir = ".";
	xfer_defaults(&xc);
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		int r = xfer_option(c, &xc, opt, optarg);
		if (r < 0)
			return 1;
		if (r)
			continue;
		switch (opt) {
		case 'd': dl.dir = optarg; break;
		case 'r': expr = optarg; break;
		case 'n': dl.no_subdir = 1; break;
		default: return cli_usage(c);
		}
	}
	if (optind >= argc)
		return cli_usage(c);
	if (cli_open(c))
		return 1;
	if (cat_rse_list(c->db, keep_unreadable, &dl)) {
		rc = cli_fail(c, NULL);
		goto out;
	}
	if (expr) {
		dl.rses = dm_xcalloc(1, sizeof *dl.rses);
		if (cat_rse_expr_list(c->db, expr, keep_rse_name, &dl)) {
			rc = cli_fail(c, NULL);
			goto out;
		}
	}
	for (int i = optind; i < argc; i++) {
		char scope[CAT_SCOPE_MAX + 1], name[CAT_NAME_MAX + 1];
		if (cli_did(c, argv[i], scope, name)) {
			rc = 1;
			goto out;
		}
		if (cat_did_list_files(c->db, scope, name, collect_file, &dl)) {
			rc = cli_fail(c, NULL);
			goto out;
		}
	}
	unique_files(&dl);
	for (size_t i = 0; i < dl.n; i++) {
		struct dl_file *f = &dl.files[i];
		struct rep_collect rcx = { &dl, f };
		struct dm_buf d = DM_BUF_INIT;
		if (cat_replica_list(c->db, f->scope, f->name, NULL, 0, collect_source, &rcx)) {
			rc = cli_fail(c, NULL);
			goto out;
		}
		if (dl.no_subdir)
			dm_buf_addf(&d, "%s/%s", dl.dir, f->name);
		else
			dm_buf_addf(&d, "%s/%s/%s", dl.dir, f->scope, f->name);
		f->dest = dm_buf_detach(&d);
		dm_buf_addf(&d, "%s.part", f->dest);
		f->part = dm_buf_detach(&d);
		if (!f->nsrc)
			dm_seterr(&f->err, DM_ENOENT, "ReplicaNotFound", "%s:%s has no available replica%s%s",
				  f->scope, f->name, expr ? " matching " : "", expr ? expr : "");
		else if (dm_mkdir_parent(f->dest, 0755)) {
			dm_seterr(&f->err, DM_EIO, "RucioException", "cannot create the directory of '%s': %s",
				  f->dest, strerror(errno));
			f->next = f->nsrc;
		}
		else if (already_there(f)) {
			f->done = 1;
			skipped++;
		}
	}
	{
		uint64_t nfiles = 0, nbytes = 0;

		for (size_t i = 0; i < dl.n; i++)
			if (!dl.files[i].done && dl.files[i].nsrc) {
				nfiles++;
				nbytes += dl.files[i].bytes;
			}
		prog = nfiles ? dm_progress_new("download", nfiles, nbytes) : NULL;
	}
	if (prog) {
		xc.on_bytes = progress_bytes;
		xc.on_bytes_arg = prog;
	}
	if (xfer_ctx_new(&xc, &x, &err)) {
		rc = cli_fail(c, &err);
		goto out;
	}
	jobs = dm_xcalloc(dl.n ? dl.n : 1, sizeof *jobs);
	job_file = dm_xcalloc(dl.n ? dl.n : 1, sizeof *job_file);
	/* Round r tries each unfinished file's r-th source; all in flight at once. */
	for (round = 0;; round++) {
		size_t nj = 0;
		for (size_t i = 0; i < dl.n; i++) {
			struct dl_file *f = &dl.files[i];
			if (f->done || f->next >= f->nsrc)
				continue;
			memset(&jobs[nj], 0, sizeof jobs[nj]);
			jobs[nj].kind = XFER_JOB_GET;
			jobs[nj].src = f->src[f->next].pfn;
			jobs[nj].dst = f->part;
			job_file[nj++] = i;
		}
		if (!nj)
			break;
		xfer_run_jobs(x, jobs, nj, xc.parallel);
		for (size_t j = 0; j < nj; j++) {
			struct dl_file *f = &dl.files[job_file[j]];
			struct source *s = &f->src[f->next++];
			if (jobs[j].status != DM_OK) {
				f->err = jobs[j].err;
				fprintf(stderr, "didfs: %s:%s from %s failed (%s)%s\n", f->scope, f->name, s->rse,
					jobs[j].err.msg, f->next < f->nsrc ? ", trying the next replica" : "");
				unlink(f->part);
				continue;
			}
			if (jobs[j].res.bytes != f->bytes || strcasecmp(jobs[j].res.adler32, f->adler32) ||
			    (f->md5[0] && jobs[j].res.md5[0] && strcasecmp(jobs[j].res.md5, f->md5))) {
				dm_seterr(&f->err, DM_ECONFLICT, "ChecksumMismatch",
					  "%s:%s from %s: got %llu bytes adler32 %s, expected %llu bytes adler32 %s",
					  f->scope, f->name, s->rse, (unsigned long long)jobs[j].res.bytes,
					  jobs[j].res.adler32, (unsigned long long)f->bytes, f->adler32);
				fprintf(stderr, "didfs: %s%s\n", f->err.msg,
					f->next < f->nsrc ? ", trying the next replica" : "");
				unlink(f->part);
				/* the bytes are proof: later readers skip that copy */
				if (cat_replica_declare_suspicious(c->db, s->rse, f->scope, f->name,
								   f->err.msg) == DM_OK)
					fprintf(stderr, "didfs: %s:%s on %s declared suspicious (now BAD)\n",
						f->scope, f->name, s->rse);
				else
					fprintf(stderr, "didfs: declaring %s:%s on %s suspicious failed: %s\n",
						f->scope, f->name, s->rse, cat_error(c->db)->msg);
				continue;
			}
			if (rename(f->part, f->dest)) {
				dm_seterr(&f->err, DM_EIO, "RucioException", "cannot rename '%s': %s", f->part,
					  strerror(errno));
				unlink(f->part);
				f->next = f->nsrc;
				continue;
			}
			f->done = 1;
			total += f->bytes;
			dm_progress_add(prog, 1, 0);
			if (c->verbose)
				fprintf(stderr, "didfs: %s:%s from %s\n", f->scope, f->name, s->rse);
		}
	}
	xfer_ctx_free(x);
	x = NULL;
	dm_progress_done(prog);
	prog = NULL;
	{
		struct cli_out *o = NULL;
		static const char *const cols[] = { "did", "state", "path", "error" };
		if (c->json)
			o = cli_out_begin(c, cols, 4);
		for (size_t i = 0; i < dl.n; i++) {
			struct dl_file *f = &dl.files[i];
			char did[CAT_SCOPE_MAX + CAT_NAME_MAX + 2];
			snprintf(did, sizeof did, "%s:%s", f->scope, f->name);
			if (!f->done) {
				failed++;
				fprintf(stderr, "didfs: %s: %s\n", f->err.cls[0] ? f->err.cls : "RucioException",
					f->err.msg[0] ? f->err.msg : "download failed");
			}
			if (o)
				cli_out_row(o, "ssss", did, f->done ? "DONE" : "FAILED", f->done ? f->dest : NULL,
					    f->done ? NULL : f->err.msg);
		}
		if (o)
			cli_out_end(o);
		else {
			double dt = dm_now_f() - t0;
			char h[32];
			printf("Downloaded %zu file(s) (%s) in %.2f s%s; %d already present, %d failed\n",
			       dl.n - (size_t)failed - (size_t)skipped, dm_human_bytes(total, 3, h), dt,
			       dt > 0 && total ? "" : "", skipped, failed);
		}
	}
	rc = failed ? 1 : 0;
out:
	xfer_ctx_free(x);
	dm_progress_done(prog);
	for (size_t i = 0; i < dl.n; i++) {
		for (int s = 0; s < dl.files[i].nsrc; s++)
			free(dl.files[i].src[s].pfn);
		free(dl.files[i].src);
		free(dl.files[i].dest);
		free(dl.files[i].part);
	}
	free(dl.files);
	for (size_t i = 0; i < dl.nrses; i++)
		free(dl.rses[i]);
	free(dl.rses);
	for (size_t i = 0; i < dl.nunread; i++)
		free(dl.unreadable[i]);
	free(dl.unreadable);
	free(jobs);
	free(job_file);
	return rc;
}
