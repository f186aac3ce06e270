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
 * priority (the LAN priority for local RSEs, WAN otherwise: the catalog's one
 * protocol choice, cat_policy_proto_prio), then RSE name.
 * The list is cached on the node for SOURCES_TTL seconds and shared by the
 * open handles (refcounted under ns_lock).  The catalog is only used here,
 * never during a fetch.
 *
 * Fetches.  The block cache calls fetch_range() for each block it needs
 * (readers and its prefetch threads, concurrently).  The range is widened to
 * whole 1 MiB manifest pieces (the mount's blocks already are).  It starts
 * with the source that served the handle last and falls over to the next on
 * any error; no new source is tried once the request's deadline has passed.
 *
 * Integrity.  At open the file's per-block checksum manifest is loaded
 * (catalog/manifest.c; recorded by upload and by whole-file reads here).
 * With one, every fetched piece is checked before a byte of it is handed
 * out: a mismatch drops that source for the file during the mount, declares
 * the replica suspicious in the catalog (BAD: later readers and mounts skip
 * it, the repairer re-copies it) and the same range is read from the next
 * source.  Without one, the block cache verifies the whole-file adler32 once
 * every block was stored; on a mismatch it drops the blocks, the RSEs the
 * handle fetched from are dropped (and declared suspicious when it was only
 * one), the kernel's pages of the file go, and the read is re-served from
 * the remaining sources.  Meanwhile the handle notes the adler32 of every
 * piece it fetches; when it has seen them all and they combine to the
 * file's adler32, it records the manifest.  DIDFS_NO_VERIFY=1 in the
 * mount's environment turns the per-piece checks off (benchmarks only).
 *
 * Deadlines.  A read that waits on storage carries one deadline, --timeout
 * after the request arrived, across every retry and fall-over.  The
 * watchdog thread answers EIO to any request past it, whatever storage
 * does; the I/O thread's late reply is dropped (reply_once).  After a failed
 * read, the handle's next reads fail at once for FAIL_FAST_MS, so the
 * kernel's page-by-page retry of a failed readahead does not multiply what
 * an application waits.
 *
 * Reads.  A read of a file whose bytes are all in the cache is served in
 * the FUSE worker (a local pread).  Any other read is queued to the I/O
 * pool (--io-threads threads that may wait on storage), which replies when
 * the block cache returns, so the few FUSE workers (sized for the CPUs)
 * keep answering lookups and listings while storage is slow.  Files are
 * opened with keep_cache: Rucio file content never changes, so the kernel
 * page cache stays valid across opens.
 *
 * Lifetimes: an fs_file holds a ref on its node and on its sources; it is
 * refcounted (the kernel's handle plus one per read job), because the
 * watchdog may answer a READ, and the kernel then RELEASE the handle, while
 * an I/O thread still works on it.  Files still open at unmount (a lazy or
 * forced unmount) are closed by fs_data_stop(), which gives I/O threads
 * stuck on storage 2 s and then leaves them (fs->pool_stuck).
 */
#include "fs_i.h"
#include "policy.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SOURCES_TTL 30.0
#define RSES_TTL 30.0
#define FAIL_PENALTY 60.0
#define FAIL_FAST_MS 2000 /* after a failed read of a handle, its next reads fail at once */

struct fs_job {
	struct fs_job *next;
	struct fs_job *lnext, *lprev; /* fs->live, under pool_lock */
	fuse_req_t req;
	struct fs_file *f;
	size_t size;
	uint64_t off;
	double deadline;  /* the request's: --timeout after it arrived */
	double t0;        /* its arrival for the latency metric (0: metrics off) */
	int replied;      /* atomic: the reply went (by the worker or the watchdog) */
};

/* The deadline of the FUSE request this thread serves (0: none, a prefetch). */
static __thread double req_deadline;

/* Take the right to answer a request: only one of the I/O thread and the
 * watchdog does. */
static int reply_once(int *replied)
{
	return !replied || !__atomic_exchange_n(replied, 1, __ATOMIC_ACQ_REL);
}

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
	enum cat_domain dom;  /* LAN for an RSE of the mount's --site, else WAN */
	char *scheme[16];
	int prio[16];         /* the read priority from dom (policy.h) */
	size_t n;
};

static int keep_proto(void *ud, const struct cat_protocol *p)
{
	struct proto_rows *pr = ud;

	if (pr->n >= DM_ARRAY_SIZE(pr->scheme))
		return 1;
	pr->scheme[pr->n] = dm_xstrdup(p->scheme);
	pr->prio[pr->n] = cat_policy_proto_prio(p, CAT_OP_READ, pr->dom);
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
		pr.dom = local ? CAT_LAN : CAT_WAN;
		if (!readable || cat_protocol_list(db, rr.rse[i], keep_proto, &pr))
			goto next;
		for (size_t k = 0; k < pr.n; k++) {
			struct dm_buf pfn = DM_BUF_INIT;
			int prio = pr.prio[k], dup = 0;

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

/* The handle's sources, with a ref (they are swapped after a mismatch). */
static struct fs_sources *file_src(struct fs *fs, struct fs_file *f)
{
	struct fs_sources *s;

	pthread_mutex_lock(&fs->ns_lock);
	s = f->src;
	s->refs++;
	pthread_mutex_unlock(&fs->ns_lock);
	return s;
}

static int rse_is_bad(struct fs *fs, struct fs_node *n, const char *rse)
{
	int bad = 0;

	pthread_mutex_lock(&fs->ns_lock);
	for (size_t i = 0; i < n->nbad_rses && !bad; i++)
		bad = strcmp(n->bad_rses[i], rse) == 0;
	pthread_mutex_unlock(&fs->ns_lock);
	return bad;
}

/* rse served bytes of the file that are not the file's: not read from again
 * during this mount, and (when declare) declared suspicious in the catalog,
 * which marks it BAD, so later readers and fresh mounts skip it too and the
 * repairer re-copies it. */
static void rse_corrupt(struct fs *fs, struct fs_file *f, const char *rse, int declare,
			const char *why)
{
	struct fs_node *n = f->node;
	struct fs_sources *old;
	struct cat_db *db;
	struct dm_err e = { 0 };
	int known = 0;

	pthread_mutex_lock(&fs->ns_lock);
	for (size_t i = 0; i < n->nbad_rses; i++)
		known |= strcmp(n->bad_rses[i], rse) == 0;
	if (!known) {
		n->bad_rses = dm_xrealloc(n->bad_rses, (n->nbad_rses + 1) * sizeof *n->bad_rses);
		n->bad_rses[n->nbad_rses++] = dm_xstrdup(rse);
	}
	old = n->src;
	n->src = NULL;
	pthread_mutex_unlock(&fs->ns_lock);
	fs_sources_put(fs, old);
	if (known)
		return;
	dm_log(DM_LOG_WARN, WHO_FS, "%s: the copy from %s failed its adler32 check (%s): not "
	       "read from there again", f->key, rse, why);
	if (!declare)
		return;
	db = fs_db(fs, &e);
	if (db && cat_replica_declare_suspicious(db, rse, n->scope, n->name, why) == DM_OK)
		dm_log(DM_LOG_WARN, WHO_FS, "%s:%s on %s declared suspicious (now BAD)", n->scope,
		       n->name, rse);
	else
		dm_log(DM_LOG_ERROR, WHO_FS, "declaring %s:%s on %s suspicious failed: %s", n->scope,
		       n->name, rse, fs_errmsg(db ? cat_error(db) : &e));
}

/* No manifest yet: remember the adler32 of the whole pieces just fetched;
 * once every piece was seen and they combine to the file's adler32, record
 * the manifest in the catalog and verify with it from then on. */
static void pieces_note(struct fs *fs, struct fs_file *f, uint64_t off, const char *buf,
			size_t len, uint32_t *whole, int *have_whole)
{
	struct cat_manifest *m = NULL;
	char want[9], got[9];
	uint32_t acc = DM_ADLER32_INIT;

	*have_whole = 0;
	if (off % CAT_MANIFEST_CHUNK)
		return;
	pthread_mutex_lock(&f->mlock);
	if (!f->piece_seen) {
		pthread_mutex_unlock(&f->mlock);
		return;
	}
	pthread_mutex_unlock(&f->mlock);
	for (size_t done = 0; done < len; done += CAT_MANIFEST_CHUNK) {
		size_t i = (size_t)((off + done) / CAT_MANIFEST_CHUNK);
		size_t n = len - done < CAT_MANIFEST_CHUNK ? len - done : CAT_MANIFEST_CHUNK;
		uint32_t a;

		if (n < CAT_MANIFEST_CHUNK && off + done + n != f->size)
			return;
		a = dm_adler32_update(DM_ADLER32_INIT, buf + done, n);
		acc = cat_adler32_concat(acc, a, n);
		if (done + n == len) {
			*whole = acc;
			*have_whole = 1;
		}
		pthread_mutex_lock(&f->mlock);
		if (f->piece_seen && !f->piece_seen[i]) {
			f->piece_seen[i] = 1;
			f->piece_sums[i] = a;
			f->pieces_seen++;
		}
		pthread_mutex_unlock(&f->mlock);
	}
	pthread_mutex_lock(&f->mlock);
	if (f->piece_seen && f->pieces_seen == f->npieces) {
		m = dm_xcalloc(1, sizeof *m);
		m->bytes = f->size;
		m->chunk = CAT_MANIFEST_CHUNK;
		m->n = f->npieces;
		m->sums = f->piece_sums;
		f->piece_sums = NULL;
		free(f->piece_seen);
		f->piece_seen = NULL;
	}
	pthread_mutex_unlock(&f->mlock);
	if (!m)
		return;
	pthread_mutex_lock(&fs->ns_lock);
	memcpy(want, f->node->adler32, sizeof want);
	pthread_mutex_unlock(&fs->ns_lock);
	dm_adler32_hex(cat_manifest_adler32(m), got);
	if (want[0] && strcmp(want, got) == 0) {
		struct dm_err e = { 0 };
		struct cat_db *db = fs_db(fs, &e);

		if (fs->remote) /* Rucio's API has no call for it: kept for this open only */
			dm_log(DM_LOG_DEBUG, WHO_FS, "%s: manifest of %zu pieces (not recorded over"
			       " REST)", f->key, m->n);
		else if (db && cat_manifest_set(db, f->node->scope, f->node->name, m) == DM_OK)
			dm_log(DM_LOG_INFO, WHO_FS, "%s: recorded its manifest (%zu pieces)", f->key,
			       m->n);
		else
			dm_log(DM_LOG_WARN, WHO_FS, "%s: recording its manifest failed: %s", f->key,
			       fs_errmsg(db ? cat_error(db) : &e));
		__atomic_store_n(&f->man, m, __ATOMIC_RELEASE);
		return;
	}
	/* the whole-file check (block cache) reports the mismatch */
	cat_manifest_free(m);
	free(m);
}

/* adler32 of [off, off+len), whole pieces of m, from the manifest alone. */
static int range_adler(const struct cat_manifest *m, uint64_t off, size_t len, uint32_t *out)
{
	uint32_t a = DM_ADLER32_INIT;

	if (!cat_manifest_covers(m, off, len))
		return 0;
	for (uint64_t p = off; p < off + len; p += m->chunk) {
		uint64_t n = off + len - p < m->chunk ? off + len - p : m->chunk;

		a = cat_adler32_concat(a, m->sums[p / m->chunk], n);
	}
	*out = a;
	return 1;
}

/*
 * The block cache's fetch callback.  The range is widened to whole manifest
 * pieces (the mount's blocks already are), read from the handle's source
 * that served last, falling over to the next on any error; with a manifest
 * every piece is verified before a byte is handed back, and a source whose
 * bytes fail is declared suspicious and the next one tried.  No new source
 * is tried after the request's deadline (a prefetch: --timeout after the
 * first attempt).
 */
static enum dm_status fetch_range(void *ud, uint64_t off, void *buf, size_t len, size_t *got,
				  struct dm_err *err)
{
	struct fs_file *f = ud;
	struct fs *fs = f->fs;
	struct fs_sources *s = file_src(fs, f);
	struct dm_err e = { 0 };
	enum dm_status rc = DM_EIO;
	double dl = req_deadline > 0 ? req_deadline : dm_now_f() + fs->o.timeout_s;
	size_t start = (size_t)__atomic_load_n(&f->cur, __ATOMIC_RELAXED), tried = 0;
	uint64_t aoff = off - off % CAT_MANIFEST_CHUNK, aend = off + len;
	char *dst = buf, *tmp = NULL;
	size_t alen;

	if (!s->n) {
		fs_sources_put(fs, s);
		return dm_seterr(err, DM_EIO, "ReplicaNotFound",
				 "%s: no AVAILABLE replica on a readable RSE", f->key);
	}
	if (aend % CAT_MANIFEST_CHUNK)
		aend += CAT_MANIFEST_CHUNK - aend % CAT_MANIFEST_CHUNK;
	if (aend > f->size)
		aend = f->size > off + len ? f->size : off + len;
	alen = (size_t)(aend - aoff);
	if (aoff != off || alen != len)
		dst = tmp = dm_xmalloc(alen);
	if (start >= s->n)
		start = 0;
	for (size_t k = 0; k < s->n; k++) {
		size_t i = k == 0 ? start : (k - 1 < start ? k - 1 : k);
		struct cat_manifest *m = __atomic_load_n(&f->man, __ATOMIC_ACQUIRE);
		size_t g = 0;
		uint64_t bad_off = 0;
		uint32_t whole = 0;
		int have_whole = 0;

		if (k && dm_now_f() >= dl)
			break;
		if (rse_is_bad(fs, f->node, s->v[i].rse))
			continue;
		if (tried++)
			fs_metrics_fallover();
		rc = xfer_pread(fs->xfer, s->v[i].pfn, dst, alen, aoff, &g, &e);
		if (rc == DM_OK && g < alen)
			rc = dm_seterr(&e, DM_EIO, "FileConsistencyMismatch",
				       "%s: %zu bytes at offset %llu of a %llu-byte file", s->v[i].pfn,
				       g, (unsigned long long)aoff, (unsigned long long)f->size);
		if (rc == DM_OK && m && !fs->no_verify &&
		    cat_manifest_verify(m, aoff, dst, alen, &bad_off) == 1) {
			char why[160];

			snprintf(why, sizeof why, "adler32 of the 1 MiB piece at offset %llu does "
				 "not match the file's manifest", (unsigned long long)bad_off);
			rc = dm_seterr(&e, DM_EIO, "ChecksumMismatch", "%s: %s", s->v[i].pfn, why);
			fs_bc_note_checksum_failure(fs->bc);
			rse_corrupt(fs, f, s->v[i].rse, 1, why);
		}
		if (rc == DM_OK) {
			if (i != start)
				__atomic_store_n(&f->cur, (int)i, __ATOMIC_RELAXED);
			if (i < 64)
				__atomic_or_fetch(&f->used_mask, 1ull << i, __ATOMIC_RELAXED);
			if (!m && !fs->no_verify)
				pieces_note(fs, f, aoff, dst, alen, &whole, &have_whole);
			else if (m && !fs->no_verify)
				have_whole = range_adler(m, aoff, alen, &whole);
			/* the cache need not hash again what was just checked */
			if (have_whole && !tmp)
				fs_bc_fetch_adler(whole);
			if (tmp)
				memcpy(buf, tmp + (off - aoff), len);
			free(tmp);
			fs_sources_put(fs, s);
			*got = len;
			return DM_OK;
		}
		if (strcmp(e.cls, "ChecksumMismatch"))
			rse_failed(fs, s->v[i].rse);
		dm_log(DM_LOG_WARN, WHO_FS, "reading %s at %llu from %s failed: %s%s", f->key,
		       (unsigned long long)aoff, s->v[i].rse, fs_errmsg(&e),
		       k + 1 < s->n ? "; trying the next replica" : "");
	}
	free(tmp);
	rc = dm_seterr(err, rc == DM_ETIMEDOUT ? DM_ETIMEDOUT : DM_EIO,
		       e.cls[0] ? e.cls : "SourceNotFound",
		       "%s: %zu of %zu replica source(s) tried%s; last: %s", f->key, tried, s->n,
		       tried < s->n ? " (the others are corrupted or the deadline passed)" : "",
		       e.code ? e.msg : "none readable");
	fs_sources_put(fs, s);
	return rc;
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
	if (f->man) {
		cat_manifest_free(f->man);
		free(f->man);
	}
	free(f->piece_sums);
	free(f->piece_seen);
	pthread_mutex_destroy(&f->mlock);
	free(f->key);
	free(f);
}

/* Drop a reference: the kernel's handle (RELEASE) or a read job's. */
static void file_put(struct fs *fs, struct fs_file *f)
{
	if (__atomic_sub_fetch(&f->refs, 1, __ATOMIC_ACQ_REL) == 0)
		file_free(fs, f);
}

/* The file's manifest, or the means to record one from what is fetched. */
static void file_manifest_load(struct fs *fs, struct fs_file *f)
{
	struct cat_manifest m;
	struct dm_err e = { 0 };
	struct cat_db *db = fs_db(fs, &e);
	int found = 0;

	if (!f->size || fs->no_verify)
		return;
	if (db && cat_manifest_get(db, f->node->scope, f->node->name, &m, &found) == DM_OK && found &&
	    m.bytes == f->size) {
		f->man = dm_xmalloc(sizeof *f->man);
		*f->man = m;
		return;
	}
	if (found)
		cat_manifest_free(&m);
	f->npieces = cat_manifest_count(f->size);
	f->piece_sums = dm_xcalloc(f->npieces, sizeof *f->piece_sums);
	f->piece_seen = dm_xcalloc(f->npieces, 1);
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
	f->refs = 1;
	pthread_mutex_init(&f->mlock, NULL);
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
	file_manifest_load(fs, f);
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

/*
 * The whole file failed its adler32 check (a file without a manifest, or
 * bytes cached before one was known): the block cache dropped its blocks.
 * The RSEs this handle fetched from are not used for the file again during
 * the mount (when there was exactly one, it is proved corrupted and
 * declared suspicious), the kernel's pages of the file go, the pieces seen
 * so far are forgotten, and the handle gets fresh sources.  0: there is
 * another source to re-serve from; -1: none.
 */
static int file_corrupt(struct fs *fs, struct fs_file *f)
{
	struct fs_node *n = f->node;
	struct fs_sources *s = file_src(fs, f), *fresh, *old;
	uint64_t used = __atomic_exchange_n(&f->used_mask, 0, __ATOMIC_RELAXED);
	struct dm_err err = { 0 };
	size_t nused = 0;

	for (size_t i = 0; i < s->n && i < 64; i++)
		nused += (used >> i) & 1;
	for (size_t i = 0; i < s->n && i < 64; i++)
		if ((used >> i) & 1)
			rse_corrupt(fs, f, s->v[i].rse, nused == 1,
				    "the file's adler32 did not match its bytes");
	fs_sources_put(fs, s);
	pthread_mutex_lock(&f->mlock);
	if (f->piece_seen) {
		memset(f->piece_seen, 0, f->npieces);
		f->pieces_seen = 0;
	}
	pthread_mutex_unlock(&f->mlock);
	fs_inval_later(fs, n->ino, 1);
	fresh = fs_sources_get(fs, n, &err);
	if (!fresh)
		return -1;
	pthread_mutex_lock(&fs->ns_lock);
	old = f->src;
	f->src = fresh;
	pthread_mutex_unlock(&fs->ns_lock);
	fs_sources_put(fs, old);
	__atomic_store_n(&f->cur, 0, __ATOMIC_RELAXED);
	/* nused 0: another read of the handle saw the mismatch first */
	return fresh->n ? 0 : -1;
}

static void serve(struct fs *fs, fuse_req_t req, struct fs_file *f, size_t size, uint64_t off,
		  char *buf, int *replied)
{
	struct dm_err err = { 0 };
	size_t got = 0;
	enum dm_status rc;

	if (__atomic_load_n(&f->bad, __ATOMIC_RELAXED)) {
		if (reply_once(replied))
			fuse_reply_err(req, EIO);
		return;
	}
	rc = fs_bc_read(fs->bc, f->bcf, buf, size, off, &got, &err);
	/* The fetch this read waited for may have been started by an earlier
	 * request (a prefetch, a reader answered by the watchdog) and failed
	 * with that request's trouble: try once more on this request's time. */
	if (rc != DM_OK && strcmp(err.cls, "ChecksumMismatch") && req_deadline > 0 &&
	    dm_now_f() < req_deadline) {
		dm_err_clear(&err);
		rc = fs_bc_read(fs->bc, f->bcf, buf, size, off, &got, &err);
	}
	/* a whole-file mismatch: re-serve from the next replica (the cache
	 * dropped the file, so this read fetches afresh) */
	for (int again = 0; rc == DM_EIO && strcmp(err.cls, "ChecksumMismatch") == 0 && again < 4;
	     again++) {
		if (file_corrupt(fs, f) != 0) {
			__atomic_store_n(&f->bad, 1, __ATOMIC_RELAXED);
			break;
		}
		dm_err_clear(&err);
		rc = fs_bc_read(fs->bc, f->bcf, buf, size, off, &got, &err);
	}
	if (rc) {
		__atomic_add_fetch(&fs->n_read_err, 1, __ATOMIC_RELAXED);
		dm_log(DM_LOG_ERROR, WHO_FS, "read %s, %zu bytes at %llu: %s", f->key, size,
		       (unsigned long long)off, fs_errmsg(&err));
		fs_node_set_error(fs, f->node, "%s: %s", err.cls[0] ? err.cls : "RucioException",
				  err.msg);
		__atomic_store_n(&f->fail_until_ms, (int64_t)(dm_now_f() * 1000) + FAIL_FAST_MS,
				 __ATOMIC_RELAXED);
		if (reply_once(replied))
			fuse_reply_err(req, EIO);
		return;
	}
	if (reply_once(replied))
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
	double t0 = fs_metrics_t0();

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
		serve(fs, req, f, size, (uint64_t)off, thread_buf(), NULL);
		fs_metrics_read(t0);
		return;
	}
	/* the kernel retries the pages of a failed readahead one by one: the
	 * application's read() must not wait a deadline for each */
	if ((int64_t)(dm_now_f() * 1000) < __atomic_load_n(&f->fail_until_ms, __ATOMIC_RELAXED)) {
		__atomic_add_fetch(&fs->n_read_err, 1, __ATOMIC_RELAXED);
		fuse_reply_err(req, EIO);
		return;
	}
	__atomic_add_fetch(&fs->n_read_async, 1, __ATOMIC_RELAXED);
	j = dm_xcalloc(1, sizeof *j);
	j->req = req;
	j->f = f;
	j->size = size;
	j->off = (uint64_t)off;
	j->deadline = dm_now_f() + fs->o.timeout_s;
	j->t0 = t0;
	__atomic_add_fetch(&f->refs, 1, __ATOMIC_RELAXED);
	pthread_mutex_lock(&fs->pool_lock);
	j->lnext = fs->live;
	if (fs->live)
		fs->live->lprev = j;
	fs->live = j;
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
		file_put(fs, f);
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
		req_deadline = j->deadline;
		if (dm_now_f() < j->deadline)
			serve(fs, j->req, j->f, j->size, j->off, buf, &j->replied);
		else if (reply_once(&j->replied))
			fuse_reply_err(j->req, EIO);
		fs_metrics_read(j->t0);
		req_deadline = 0;
		pthread_mutex_lock(&fs->pool_lock);
		if (j->lprev)
			j->lprev->lnext = j->lnext;
		else
			fs->live = j->lnext;
		if (j->lnext)
			j->lnext->lprev = j->lprev;
		pthread_mutex_unlock(&fs->pool_lock);
		file_put(fs, j->f);
		free(j);
	}
	return NULL;
}

/*
 * The deadline watchdog: a read that waits on storage gets EIO when its
 * request is --timeout old, whatever the storage does (a stopped server can
 * hold a connection longer than any of the transfer layer's timeouts, and a
 * request may have waited in the queue or on another reader's fetch).  The
 * I/O thread finishes on its own and its late reply is dropped; the job
 * holds a ref on the file, so a RELEASE meanwhile frees nothing in use.
 */
static void *watchdog_main(void *arg)
{
	struct fs *fs = arg;

	pthread_mutex_lock(&fs->pool_lock);
	while (!fs->pool_stop) {
		struct timespec ts;
		double now = dm_now_f();

		for (struct fs_job *j = fs->live; j; j = j->lnext) {
			if (now < j->deadline + 0.2 || !reply_once(&j->replied))
				continue;
			__atomic_add_fetch(&fs->n_read_err, 1, __ATOMIC_RELAXED);
			dm_log(DM_LOG_ERROR, WHO_FS, "read %s, %zu bytes at %llu: no answer from "
			       "storage within --timeout %d s: EIO", j->f->key, j->size,
			       (unsigned long long)j->off, fs->o.timeout_s);
			__atomic_store_n(&j->f->fail_until_ms, (int64_t)(now * 1000) + FAIL_FAST_MS,
					 __ATOMIC_RELAXED);
			fuse_reply_err(j->req, EIO);
		}
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 250000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&fs->wd_cond, &fs->pool_lock, &ts);
	}
	pthread_mutex_unlock(&fs->pool_lock);
	return NULL;
}

int fs_data_init(struct fs *fs)
{
	pthread_mutex_init(&fs->rse_lock, NULL);
	pthread_mutex_init(&fs->pool_lock, NULL);
	pthread_cond_init(&fs->pool_cond, NULL);
	pthread_cond_init(&fs->wd_cond, NULL);
	fs->no_verify = getenv("DIDFS_NO_VERIFY") && !strcmp(getenv("DIDFS_NO_VERIFY"), "1");
	if (fs->no_verify)
		dm_log(DM_LOG_WARN, WHO_FS, "DIDFS_NO_VERIFY=1: fetched bytes are not checked "
		       "against manifests (benchmarks only)");
	fs->pool = dm_xcalloc((size_t)fs->o.io_threads, sizeof *fs->pool);
	for (int i = 0; i < fs->o.io_threads; i++) {
		if (pthread_create(&fs->pool[i], NULL, pool_main, fs))
			break;
		fs->npool++;
	}
	if (pthread_create(&fs->wd, NULL, watchdog_main, fs) == 0)
		fs->wd_started = 1;
	return fs->npool > 0 ? 0 : -1;
}

void fs_data_stop(struct fs *fs)
{
	struct fs_file *f;

	pthread_mutex_lock(&fs->pool_lock);
	fs->pool_stop = 1;
	pthread_cond_broadcast(&fs->pool_cond);
	pthread_cond_signal(&fs->wd_cond);
	pthread_mutex_unlock(&fs->pool_lock);
	if (fs->wd_started)
		pthread_join(fs->wd, NULL);
	fs->wd_started = 0;
	/* An I/O thread stuck on storage past the grace time is left behind (the
	 * process is ending): its file, sources and the cache stay as they are. */
	for (int i = 0; i < fs->npool; i++) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 2;
		if (fs->pool_stuck || pthread_timedjoin_np(fs->pool[i], NULL, &ts) != 0) {
			if (!fs->pool_stuck)
				dm_log(DM_LOG_WARN, WHO_FS, "an I/O thread still waits on storage: "
				       "not waiting for it");
			fs->pool_stuck = 1;
		}
	}
	if (fs->pool_stuck)
		return;
	free(fs->pool);
	fs->pool = NULL;
	fs->npool = 0;
	/* files the kernel never released (lazy or forced unmount) */
	while ((f = fs->files) != NULL) {
		files_unlink(fs, f);
		file_put(fs, f);
	}
	pthread_mutex_lock(&fs->rse_lock);
	rses_free(fs->rses, fs->nrses);
	fs->rses = NULL;
	fs->nrses = 0;
	pthread_mutex_unlock(&fs->rse_lock);
	pthread_mutex_destroy(&fs->pool_lock);
	pthread_cond_destroy(&fs->pool_cond);
	pthread_cond_destroy(&fs->wd_cond);
	pthread_mutex_destroy(&fs->rse_lock);
}
