/* SPDX-License-Identifier: Apache-2.0 */
/*
 * data.c - the data path of the mount: which replica to read, the block
 * cache's fetch callback over xfer_pread, and open / read / release.
 *
 * Sources.  At open, a file's AVAILABLE replicas on RSEs with
 * availability_read become sources, one per (RSE, protocol the transfer
 * layer speaks), each with the PFN from cat_lfn2pfn for that scheme.  They
 * are sorted: an RSE that failed a fetch in the last FAIL_PENALTY seconds
 * last, then RSEs whose `site` attribute equals --site, then protocol read
 * priority (the LAN priority for local RSEs, WAN otherwise), then RSE name.
 * The list is cached on the node for SOURCES_TTL seconds and shared by the
 * open handles (refcounted under ns_lock).  The catalog is only used here,
 * never during a fetch.
 *
 * Fetches.  The block cache calls fetch_range() for each block it needs
 * (readers and its prefetch threads, concurrently).  It starts with the
 * source that served the handle last and falls over to the next on any
 * error; each xfer_pread ends within --timeout (connect, request and stall
 * timeouts of the transfer context), and no new source is tried once
 * --timeout has passed since the first attempt, so a read that cannot be
 * served ends in EIO within about twice --timeout, never hangs.  The block
 * cache verifies the whole-file adler32 once every block was stored; a
 * mismatch drops the blocks and fails the read with EIO.
 *
 * Reads.  A read of a file whose bytes are all in the cache is served in
 * the FUSE worker (a local pread).  Any other read is queued to the I/O
 * pool (--io-threads threads that may wait on storage), which replies when
 * the block cache returns, so the few FUSE workers (sized for the CPUs)
 * keep answering lookups and listings while storage is slow.  Files are
 * opened with keep_cache: Rucio file content never changes, so the kernel
 * page cache stays valid across opens.
 *
 * Lifetimes: an fs_file holds a ref on its node and on its sources; the
 * kernel sends RELEASE only after every READ of the handle was answered, so
 * a queued job never outlives its file.  Files still open at unmount (a
 * lazy or forced unmount) are closed by fs_data_stop().
 */
#include "fs_i.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#define SOURCES_TTL 30.0
#define RSES_TTL 30.0
#define FAIL_PENALTY 60.0

struct fs_job {
	struct fs_job *next;
	fuse_req_t req;
	struct fs_file *f;
	size_t size;
	uint64_t off;
};

void fs_file_key(const struct fs_node *n, char *out, size_t size)
{
	snprintf(out, size, "%s:%s:%s", n->scope, n->name, n->adler32);
}

/* ------------------------------------------------------------------ */
/* RSE cache                                                           */

struct rse_rows {
	struct fs_rse *v;
	size_t n;
};

static int keep_rse(void *ud, const struct cat_rse *r)
{
	struct rse_rows *rr = ud;

	rr->v = dm_xrealloc(rr->v, (rr->n + 1) * sizeof *rr->v);
	memset(&rr->v[rr->n], 0, sizeof rr->v[rr->n]);
	rr->v[rr->n].rse = dm_xstrdup(r->rse);
	rr->v[rr->n].readable = r->availability_read;
	rr->n++;
	return 0;
}

static void rses_free(struct fs_rse *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].rse);
		free(v[i].site);
	}
	free(v);
}

/* Reload the RSE list (readability, site) when older than RSES_TTL. */
static void rses_refresh(struct fs *fs, struct cat_db *db)
{
	struct rse_rows rr = { 0 };
	double now = dm_now_f();

	pthread_mutex_lock(&fs->rse_lock);
	if (fs->rses && now - fs->rses_at < RSES_TTL) {
		pthread_mutex_unlock(&fs->rse_lock);
		return;
	}
	pthread_mutex_unlock(&fs->rse_lock);
	if (cat_rse_list(db, keep_rse, &rr)) {
		rses_free(rr.v, rr.n);
		return;
	}
	for (size_t i = 0; i < rr.n; i++) {
		char site[256];
		if (cat_rse_attr_get(db, rr.v[i].rse, "site", site, sizeof site) == DM_OK)
			rr.v[i].site = dm_xstrdup(site);
	}
	pthread_mutex_lock(&fs->rse_lock);
	/* keep the failure marks */
	for (size_t i = 0; i < rr.n; i++)
		for (size_t j = 0; j < fs->nrses; j++)
			if (strcmp(rr.v[i].rse, fs->rses[j].rse) == 0)
				rr.v[i].failed_at = fs->rses[j].failed_at;
	rses_free(fs->rses, fs->nrses);
	fs->rses = rr.v;
	fs->nrses = rr.n;
	fs->rses_at = now;
	pthread_mutex_unlock(&fs->rse_lock);
}

static void rse_failed(struct fs *fs, const char *rse)
{
	pthread_mutex_lock(&fs->rse_lock);
	for (size_t i = 0; i < fs->nrses; i++)
		if (strcmp(fs->rses[i].rse, rse) == 0)
			fs->rses[i].failed_at = dm_now_f();
	pthread_mutex_unlock(&fs->rse_lock);
}

/* ------------------------------------------------------------------ */
/* sources                                                             */

struct rep_rows {
	char **rse;
	size_t n;
};

static int keep_replica(void *ud, const struct cat_replica *r)
{
	struct rep_rows *rr = ud;

	rr->rse = dm_xrealloc(rr->rse, (rr->n + 1) * sizeof *rr->rse);
	rr->rse[rr->n++] = dm_xstrdup(r->rse);
	return 0;
}

struct proto_rows {
	char *scheme[16];
	int prio[16][CAT_DOMAIN_COUNT];
	size_t n;
};

static int keep_proto(void *ud, const struct cat_protocol *p)
{
	struct proto_rows *pr = ud;

	if (pr->n >= DM_ARRAY_SIZE(pr->scheme))
		return 1;
	pr->scheme[pr->n] = dm_xstrdup(p->scheme);
	pr->prio[pr->n][CAT_LAN] = p->prio[CAT_LAN][CAT_OP_READ];
	pr->prio[pr->n][CAT_WAN] = p->prio[CAT_WAN][CAT_OP_READ];
	pr->n++;
	return 0;
}

struct sort_src {
	struct fs_source s;
	int penalised;
};

static int cmp_src(const void *a, const void *b)
{
	const struct sort_src *x = a, *y = b;

	if (x->penalised != y->penalised)
		return x->penalised - y->penalised;
	if (x->s.local != y->s.local)
		return y->s.local - x->s.local;
	if (x->s.prio != y->s.prio)
		return x->s.prio - y->s.prio;
	return strcmp(x->s.rse, y->s.rse);
}

static struct fs_sources *sources_build(struct fs *fs, struct cat_db *db, const char *scope,
					const char *name, char **bad, size_t nbad,
					struct dm_err *err)
{
	struct rep_rows rr = { 0 };
	struct sort_src *v = NULL;
	size_t n = 0;
	struct fs_sources *s;
	double now = dm_now_f();

	if (cat_replica_list(db, scope, name, NULL, 0, keep_replica, &rr)) {
		*err = *cat_error(db);
		return NULL;
	}
	rses_refresh(fs, db);
	for (size_t i = 0; i < rr.n; i++) {
		struct proto_rows pr = { 0 };
		int readable = 0, local = 0, penalised = 0;

		pthread_mutex_lock(&fs->rse_lock);
		for (size_t j = 0; j < fs->nrses; j++) {
			if (strcmp(fs->rses[j].rse, rr.rse[i]))
				continue;
			readable = fs->rses[j].readable;
			local = fs->o.site && fs->rses[j].site && !strcmp(fs->o.site, fs->rses[j].site);
			penalised = fs->rses[j].failed_at > 0 && now - fs->rses[j].failed_at < FAIL_PENALTY;
		}
		pthread_mutex_unlock(&fs->rse_lock);
		for (size_t j = 0; j < nbad; j++)
			readable &= strcmp(bad[j], rr.rse[i]) != 0;
		if (!readable || cat_protocol_list(db, rr.rse[i], keep_proto, &pr))
			goto next;
		for (size_t k = 0; k < pr.n; k++) {
			struct dm_buf pfn = DM_BUF_INIT;
			int prio, dup = 0, dom = local ? CAT_LAN : CAT_WAN;

			prio = pr.prio[k][dom] >= 0 ? pr.prio[k][dom] : pr.prio[k][1 - dom];
			if (prio < 0 || !xfer_scheme_supported(pr.scheme[k]))
				continue;
			for (size_t m = 0; m < k; m++)
				dup |= strcmp(pr.scheme[m], pr.scheme[k]) == 0;
			if (dup)
				continue;
			if (cat_lfn2pfn(db, rr.rse[i], scope, name, pr.scheme[k], CAT_OP_READ, &pfn)) {
				dm_buf_release(&pfn);
				continue;
			}
			v = dm_xrealloc(v, (n + 1) * sizeof *v);
			v[n].s.rse = dm_xstrdup(rr.rse[i]);
			v[n].s.pfn = dm_buf_detach(&pfn);
			v[n].s.scheme = dm_xstrdup(pr.scheme[k]);
			v[n].s.local = local;
			v[n].s.prio = prio;
			v[n].penalised = penalised;
			n++;
		}
next:
		for (size_t k = 0; k < pr.n; k++)
			free(pr.scheme[k]);
		free(rr.rse[i]);
	}
	free(rr.rse);
	if (n > 1)
		qsort(v, n, sizeof *v, cmp_src);
	s = dm_xcalloc(1, sizeof *s);
	s->refs = 1;
	s->n = n;
	s->v = dm_xcalloc(n ? n : 1, sizeof *s->v);
	for (size_t i = 0; i < n; i++)
		s->v[i] = v[i].s;
	free(v);
	return s;
}

struct fs_sources *fs_sources_get(struct fs *fs, struct fs_node *n, struct dm_err *err)
{
	struct fs_sources *s, *old;
	struct cat_db *db;
	double now = dm_now_f();
	char **bad = NULL;
	size_t nbad;

	pthread_mutex_lock(&fs->ns_lock);
	s = n->src;
	if (s && now - n->src_at < SOURCES_TTL) {
		s->refs++;
		pthread_mutex_unlock(&fs->ns_lock);
		return s;
	}
	nbad = n->nbad_rses;
	if (nbad) {
		bad = dm_xcalloc(nbad, sizeof *bad);
		for (size_t i = 0; i < nbad; i++)
			bad[i] = dm_xstrdup(n->bad_rses[i]);
	}
	pthread_mutex_unlock(&fs->ns_lock);
	db = fs_db(fs, err);
	s = db ? sources_build(fs, db, n->scope, n->name, bad, nbad, err) : NULL;
	for (size_t i = 0; i < nbad; i++)
		free(bad[i]);
	free(bad);
	if (!s)
		return NULL;
	if (!s->n)
		return s; /* not cached: a replica may appear any moment */
	pthread_mutex_lock(&fs->ns_lock);
	old = n->src;
	n->src = s;
	n->src_at = now;
	s->refs++; /* the caller's */
	pthread_mutex_unlock(&fs->ns_lock);
	if (old)
		fs_sources_put(fs, old);
	return s;
}

void fs_sources_put(struct fs *fs, struct fs_sources *s)
{
	int last;

	if (!s)
		return;
	pthread_mutex_lock(&fs->ns_lock);
	last = --s->refs == 0;
	pthread_mutex_unlock(&fs->ns_lock);
	if (!last)
		return;
	for (size_t i = 0; i < s->n; i++) {
		free(s->v[i].rse);
		free(s->v[i].pfn);
		free(s->v[i].scheme);
	}
	free(s->v);
	free(s);
}

/* ------------------------------------------------------------------ */
/* fetch callback                                                      */

static enum dm_status fetch_range(void *ud, uint64_t off, void *buf, size_t len, size_t *got,
				  struct dm_err *err)
{
	struct fs_file *f = ud;
	struct fs *fs = f->fs;
	struct fs_sources *s = f->src;
	struct dm_err e = { 0 };
	enum dm_status rc = DM_EIO;
	double t0 = dm_now_f();
	size_t start = (size_t)__atomic_load_n(&f->cur, __ATOMIC_RELAXED), tried = 0;

	if (!s->n)
		return dm_seterr(err, DM_EIO, "ReplicaNotFound",
				 "%s: no AVAILABLE replica on a readable RSE", f->key);
	if (start >= s->n)
		start = 0;
	for (size_t k = 0; k < s->n; k++) {
		size_t i = k == 0 ? start : (k - 1 < start ? k - 1 : k);

		*got = 0;
		tried++;
		rc = xfer_pread(fs->xfer, s->v[i].pfn, buf, len, off, got, &e);
		if (rc == DM_OK && *got < len && off + *got < f->size)
			rc = dm_seterr(&e, DM_EIO, "FileConsistencyMismatch",
				       "%s: %zu bytes at offset %llu of a %llu-byte file", s->v[i].pfn,
				       *got, (unsigned long long)off, (unsigned long long)f->size);
		if (rc == DM_OK) {
			if (i != start)
				__atomic_store_n(&f->cur, (int)i, __ATOMIC_RELAXED);
			return DM_OK;
		}
		rse_failed(fs, s->v[i].rse);
		dm_log(DM_LOG_WARN, WHO_FS, "reading %s at %llu from %s failed: %s%s", f->key,
		       (unsigned long long)off, s->v[i].rse, fs_errmsg(&e),
		       k + 1 < s->n ? "; trying the next replica" : "");
		if (dm_now_f() - t0 >= fs->o.timeout_s)
			break;
	}
	return dm_seterr(err, rc == DM_ETIMEDOUT ? DM_ETIMEDOUT : DM_EIO,
			 e.cls[0] ? e.cls : "SourceNotFound",
			 "%s: %zu of %zu replica source(s) failed; last: %s", f->key, tried, s->n,
			 e.msg);
}

/* ------------------------------------------------------------------ */
/* open / read / release                                               */

static void files_link(struct fs *fs, struct fs_file *f)
{
	pthread_mutex_lock(&fs->ns_lock);
	f->next = fs->files;
	if (fs->files)
		fs->files->prev = f;
	fs->files = f;
	pthread_mutex_unlock(&fs->ns_lock);
}

static int files_unlink(struct fs *fs, struct fs_file *f)
{
	int linked;

	pthread_mutex_lock(&fs->ns_lock);
	linked = f->prev || fs->files == f;
	if (linked) {
		if (f->prev)
			f->prev->next = f->next;
		else
			fs->files = f->next;
		if (f->next)
			f->next->prev = f->prev;
		f->next = f->prev = NULL;
	}
	pthread_mutex_unlock(&fs->ns_lock);
	return linked;
}

static void file_free(struct fs *fs, struct fs_file *f)
{
	if (f->bcf)
		fs_bc_file_close(fs->bc, f->bcf);
	fs_sources_put(fs, f->src);
	fs_node_put(fs, f->node);
	free(f->key);
	free(f);
}

void fs_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fuse_req_userdata(req);
	struct fs_node *n = NULL;
	struct fs_file *f = NULL;
	struct dm_err err = { 0 };
	char key[CAT_SCOPE_MAX + CAT_NAME_MAX + 16], adler[9];
	uint64_t size, cached;
	int err_no = EIO;

	fs_readahead_once(fs);
	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & (O_TRUNC | O_APPEND | O_CREAT))) {
		err_no = EROFS;
		goto reply_err;
	}
	n = fs_node_get(fs, ino);
	if (!n) {
		err_no = ENOENT;
		goto reply_err;
	}
	pthread_mutex_lock(&fs->ns_lock);
	if (n->kind != FS_DID || n->type != CAT_DID_FILE) {
		pthread_mutex_unlock(&fs->ns_lock);
		err_no = EISDIR;
		goto reply_err;
	}
	fs_file_key(n, key, sizeof key);
	size = n->bytes;
	memcpy(adler, n->adler32, sizeof adler);
	pthread_mutex_unlock(&fs->ns_lock);

	f = dm_xcalloc(1, sizeof *f);
	f->fs = fs;
	f->node = n;
	f->key = dm_xstrdup(key);
	f->size = size;
	f->src = fs_sources_get(fs, n, &err);
	cached = size ? fs_bc_cached_bytes(fs->bc, key) : 0;
	if (!f->src) {
		dm_log(DM_LOG_ERROR, WHO_FS, "open %s: %s", key, fs_errmsg(&err));
		if (size && !cached) {
			fs_node_set_error(fs, n, "%s: %s", err.cls, err.msg);
			goto reply_err;
		}
		f->src = dm_xcalloc(1, sizeof *f->src); /* serve what is cached */
		f->src->refs = 1;
		f->src->v = dm_xcalloc(1, sizeof *f->src->v);
	}
	if (!f->src->n && size && !cached) {
		fs_node_set_error(fs, n, "ReplicaNotFound: %s has no AVAILABLE replica on a readable "
				  "RSE with a protocol didfs can read", key);
		dm_log(DM_LOG_WARN, WHO_FS, "open %s: no replica to read from", key);
		goto reply_err;
	}
	if (size) {
		if (fs_bc_file_open(fs->bc, key, size, adler[0] ? adler : NULL, fetch_range, f,
				    &f->bcf, &err)) {
			dm_log(DM_LOG_ERROR, WHO_FS, "open %s in the cache: %s", key, fs_errmsg(&err));
			fs_node_set_error(fs, n, "%s: %s", err.cls, err.msg);
			goto reply_err;
		}
		f->whole = cached >= size;
	}
	files_link(fs, f);
	fi->fh = (uint64_t)(uintptr_t)f;
	fi->keep_cache = 1;
	fi->noflush = 1;
	if (fuse_reply_open(req, fi) != 0) {
		/* the opener is gone: no RELEASE will come */
		files_unlink(fs, f);
		file_free(fs, f);
	}
	return;
reply_err:
	fuse_reply_err(req, err_no);
	if (f) {
		f->node = NULL;
		file_free(fs, f);
	}
	fs_node_put(fs, n);
}

/* A copy failed its adler32 check: this handle reads nothing more (the
 * kernel would retry a failed page and get the bytes of a re-fetch that is
 * not verified until the file is whole again), the kernel's pages of the
 * file go, and the RSE that served last is not used for this file again
 * during the mount. */
static void file_corrupt(struct fs *fs, struct fs_file *f)
{
	struct fs_node *n = f->node;
	const char *rse = NULL;
	int cur = __atomic_load_n(&f->cur, __ATOMIC_RELAXED);
	struct fs_sources *old;

	__atomic_store_n(&f->bad, 1, __ATOMIC_RELAXED);
	if (f->src->n)
		rse = f->src->v[cur >= 0 && (size_t)cur < f->src->n ? (size_t)cur : 0].rse;
	pthread_mutex_lock(&fs->ns_lock);
	if (rse) {
		int known = 0;
		for (size_t i = 0; i < n->nbad_rses; i++)
			known |= strcmp(n->bad_rses[i], rse) == 0;
		if (!known) {
			n->bad_rses = dm_xrealloc(n->bad_rses, (n->nbad_rses + 1) * sizeof *n->bad_rses);
			n->bad_rses[n->nbad_rses++] = dm_xstrdup(rse);
		}
	}
	old = n->src;
	n->src = NULL;
	pthread_mutex_unlock(&fs->ns_lock);
	fs_sources_put(fs, old);
	fs_inval_later(fs, n->ino, 1);
	dm_log(DM_LOG_WARN, WHO_FS, "%s: the copy from %s failed its adler32 check: not read from "
	       "there again during this mount", f->key, rse ? rse : "?");
}

static void serve(struct fs *fs, fuse_req_t req, struct fs_file *f, size_t size, uint64_t off,
		  char *buf)
{
	struct dm_err err = { 0 };
	size_t got = 0;
	enum dm_status rc;

	if (__atomic_load_n(&f->bad, __ATOMIC_RELAXED)) {
		fuse_reply_err(req, EIO);
		return;
	}
	rc = fs_bc_read(fs->bc, f->bcf, buf, size, off, &got, &err);
	if (rc == DM_EIO && strcmp(err.cls, "ChecksumMismatch") == 0)
		file_corrupt(fs, f);
	if (rc) {
		__atomic_add_fetch(&fs->n_read_err, 1, __ATOMIC_RELAXED);
		dm_log(DM_LOG_ERROR, WHO_FS, "read %s, %zu bytes at %llu: %s", f->key, size,
		       (unsigned long long)off, fs_errmsg(&err));
		fs_node_set_error(fs, f->node, "%s: %s", err.cls[0] ? err.cls : "RucioException",
				  err.msg);
		fuse_reply_err(req, EIO);
		return;
	}
	fuse_reply_buf(req, buf, got);
}

static pthread_key_t buf_key;
static pthread_once_t buf_once = PTHREAD_ONCE_INIT;

static void buf_key_init(void)
{
	pthread_key_create(&buf_key, free);
}

/* A FS_MAX_READ buffer owned by this thread (freed at thread exit). */
static char *thread_buf(void)
{
	char *b;

	pthread_once(&buf_once, buf_key_init);
	b = pthread_getspecific(buf_key);
	if (!b) {
		b = dm_xmalloc(FS_MAX_READ);
		pthread_setspecific(buf_key, b);
	}
	return b;
}

void fs_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		struct fuse_file_info *fi)
{
	struct fs *fs = fuse_req_userdata(req);
	struct fs_file *f = (struct fs_file *)(uintptr_t)fi->fh;
	struct fs_job *j;

	__atomic_add_fetch(&fs->n_read, 1, __ATOMIC_RELAXED);
	if (off < 0 || (uint64_t)off >= f->size || !f->bcf)
		goto reply_eof;
	if (size > FS_MAX_READ)
		size = FS_MAX_READ;
	if ((uint64_t)off + size > f->size)
		size = (size_t)(f->size - (uint64_t)off);
	if (!__atomic_load_n(&f->whole, __ATOMIC_RELAXED) &&
	    fs_bc_cached_bytes(fs->bc, f->key) >= f->size)
		__atomic_store_n(&f->whole, 1, __ATOMIC_RELAXED);
	if (__atomic_load_n(&f->whole, __ATOMIC_RELAXED)) {
		serve(fs, req, f, size, (uint64_t)off, thread_buf());
		return;
	}
	__atomic_add_fetch(&fs->n_read_async, 1, __ATOMIC_RELAXED);
	j = dm_xcalloc(1, sizeof *j);
	j->req = req;
	j->f = f;
	j->size = size;
	j->off = (uint64_t)off;
	pthread_mutex_lock(&fs->pool_lock);
	if (fs->jobs_tail)
		fs->jobs_tail->next = j;
	else
		fs->jobs_head = j;
	fs->jobs_tail = j;
	pthread_cond_signal(&fs->pool_cond);
	pthread_mutex_unlock(&fs->pool_lock);
	return;
reply_eof:
	fuse_reply_buf(req, NULL, 0);
}

void fs_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fuse_req_userdata(req);
	struct fs_file *f = (struct fs_file *)(uintptr_t)fi->fh;

	/* reply first: closing the handle may wait for its prefetches */
	fuse_reply_err(req, 0);
	if (files_unlink(fs, f))
		file_free(fs, f);
}

/* ------------------------------------------------------------------ */
/* the I/O pool                                                        */

static void *pool_main(void *arg)
{
	struct fs *fs = arg;
	char *buf = thread_buf();

	for (;;) {
		struct fs_job *j;

		pthread_mutex_lock(&fs->pool_lock);
		while (!fs->jobs_head && !fs->pool_stop)
			pthread_cond_wait(&fs->pool_cond, &fs->pool_lock);
		j = fs->jobs_head;
		if (j) {
			fs->jobs_head = j->next;
			if (!fs->jobs_head)
				fs->jobs_tail = NULL;
		}
		pthread_mutex_unlock(&fs->pool_lock);
		if (!j)
			break;
		serve(fs, j->req, j->f, j->size, j->off, buf);
		free(j);
	}
	return NULL;
}

int fs_data_init(struct fs *fs)
{
	pthread_mutex_init(&fs->rse_lock, NULL);
	pthread_mutex_init(&fs->pool_lock, NULL);
	pthread_cond_init(&fs->pool_cond, NULL);
	fs->pool = dm_xcalloc((size_t)fs->o.io_threads, sizeof *fs->pool);
	for (int i = 0; i < fs->o.io_threads; i++) {
		if (pthread_create(&fs->pool[i], NULL, pool_main, fs))
			break;
		fs->npool++;
	}
	return fs->npool > 0 ? 0 : -1;
}

void fs_data_stop(struct fs *fs)
{
	struct fs_file *f;

	pthread_mutex_lock(&fs->pool_lock);
	fs->pool_stop = 1;
	pthread_cond_broadcast(&fs->pool_cond);
	pthread_mutex_unlock(&fs->pool_lock);
	for (int i = 0; i < fs->npool; i++)
		pthread_join(fs->pool[i], NULL);
	free(fs->pool);
	fs->pool = NULL;
	fs->npool = 0;
	/* files the kernel never released (lazy or forced unmount) */
	while ((f = fs->files) != NULL) {
		files_unlink(fs, f);
		file_free(fs, f);
	}
	pthread_mutex_lock(&fs->rse_lock);
	rses_free(fs->rses, fs->nrses);
	fs->rses = NULL;
	fs->nrses = 0;
	pthread_mutex_unlock(&fs->rse_lock);
	pthread_mutex_destroy(&fs->pool_lock);
	pthread_cond_destroy(&fs->pool_cond);
	pthread_mutex_destroy(&fs->rse_lock);
}
