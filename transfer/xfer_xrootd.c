/* SPDX-License-Identifier: Apache-2.0 */
/*
 * xfer_xrootd.c - the root:// back-end (also xroot://, roots://, xroots://)
 * on top of the XrdCl shim.  It maps the shim's errno values to dm_status
 * and Rucio exception classes, and keeps a small cache of open read handles
 * so that the block reads of a mount (many xfer_pread calls on one file)
 * cost one request each instead of open + read + close.  root://h:p/path
 * (one slash, a relative path to XRootD) is taken to mean the absolute
 * root://h:p//path, as Rucio's PFNs intend.  A cached handle
 * that fails is dropped and the read retried once on a fresh open, so a
 * restarted server is picked up again.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "xfer_int.h"
#include "xrdcl_shim.h"

#define XRD_HANDLES 64

struct xrd_handle {
	char *url;
	struct xrdcl_file *f;
	int refs;
	int stale;
	uint64_t last_use;
};

struct xfer_xrd_state {
	pthread_mutex_t lock;
	struct xrd_handle h[XRD_HANDLES];
	uint64_t tick;
};

static struct xfer_xrd_state *xrd_state(struct xfer_ctx *ctx)
{
	struct xfer_xrd_state *s;

	pthread_mutex_lock(&ctx->lock);
	s = ctx->xrd;
	if (!s) {
		struct xrdcl_setup su = {
			.request_timeout_s = ctx->cfg.timeout_s,
			.stream_timeout_s = ctx->cfg.stall_timeout_s,
			.connect_timeout_s = ctx->cfg.connect_timeout_s,
			/* a refused connection fails at once; callers fall over or retry */
			.connect_retry = 1,
			.ca_dir = ctx->cfg.ca_path,
		};

		xrdcl_setup(&su);
		s = dm_xcalloc(1, sizeof(*s));
		pthread_mutex_init(&s->lock, NULL);
		ctx->xrd = s;
	}
	pthread_mutex_unlock(&ctx->lock);
	return s;
}

static void xrd_ctx_free(struct xfer_ctx *ctx)
{
	struct xfer_xrd_state *s = ctx->xrd;

	if (!s)
		return;
	for (int i = 0; i < XRD_HANDLES; i++) {
		if (s->h[i].f)
			xrdcl_close(s->h[i].f, ctx->cfg.connect_timeout_s, NULL);
		free(s->h[i].url);
	}
	pthread_mutex_destroy(&s->lock);
	free(s);
	ctx->xrd = NULL;
}

/* XRootD reads root://host:port/rel as a relative path, which servers
 * refuse; Rucio's PFNs mean an absolute one (root://host:port//abs).  Add
 * the missing slash.  Returns a new string. */
static char *canon(const char *url)
{
	const char *auth = strstr(url, "://");
	const char *path;
	struct dm_buf b = DM_BUF_INIT;

	if (!auth)
		return dm_xstrdup(url);
	path = auth + 3 + strcspn(auth + 3, "/?#");
	if (*path != '/' || path[1] == '/')
		return dm_xstrdup(url);
	dm_buf_add(&b, url, (size_t)(path - url));
	dm_buf_addc(&b, '/');
	dm_buf_adds(&b, path);
	return dm_buf_detach(&b);
}

static enum dm_status xerr(const char *url, const struct xrdcl_err *e, int dest,
			   struct dm_err *err)
{
	const char *cls;
	enum dm_status st = xfer_errno_status(e->err, dest, &cls);

	if (e->err == ECONNREFUSED)
		return dm_seterr(err, st, cls, "%s: cannot reach the server: %s", url, e->msg);
	if (e->err == ETIMEDOUT)
		return dm_seterr(err, st, cls, "%s: timed out: %s", url, e->msg);
	return dm_seterr(err, st, cls, "%s: %s", url, e->msg);
}

static enum dm_status xrd_stat(struct xfer_ctx *ctx, const char *url, const struct xfer_url *u,
			       struct xfer_stat *st, struct dm_err *err)
{
	struct xrdcl_err e = { 0 };
	struct xrdcl_stat xs = { 0 };
	char *cu = canon(url);
	enum dm_status rc = DM_OK;

	xrd_state(ctx);
	if (xrdcl_stat(cu, ctx->cfg.timeout_s, &xs, &e) != 0) {
		rc = xerr(url, &e, 0, err);
		goto out;
	}
	st->size = xs.size;
	st->is_dir = xs.is_dir;
out:
	free(cu);
	return rc;
}

/* Take a cached handle for url (refs++), or NULL. */
static struct xrd_handle *handle_get(struct xfer_xrd_state *s, const char *url)
{
	struct xrd_handle *found = NULL;

	pthread_mutex_lock(&s->lock);
	for (int i = 0; i < XRD_HANDLES; i++) {
		if (s->h[i].f && !s->h[i].stale && strcmp(s->h[i].url, url) == 0) {
			found = &s->h[i];
			found->refs++;
			found->last_use = ++s->tick;
			break;
		}
	}
	pthread_mutex_unlock(&s->lock);
	return found;
}

/* Put a fresh handle in the cache (refs = 1) or return NULL when every slot
 * is busy; an evicted idle handle is returned in *evicted for closing. */
static struct xrd_handle *handle_add(struct xfer_xrd_state *s, const char *url,
				     struct xrdcl_file *f, struct xrdcl_file **evicted)
{
	struct xrd_handle *slot = NULL;

	*evicted = NULL;
	pthread_mutex_lock(&s->lock);
	for (int i = 0; i < XRD_HANDLES; i++) {
		struct xrd_handle *h = &s->h[i];

		if (!h->f) {
			slot = h;
			break;
		}
		if (h->refs == 0 && !h->stale && (!slot || h->last_use < slot->last_use))
			slot = h;
	}
	if (slot) {
		if (slot->f) {
			*evicted = slot->f;
			free(slot->url);
		}
		slot->url = dm_xstrdup(url);
		slot->f = f;
		slot->refs = 1;
		slot->last_use = ++s->tick;
	}
	pthread_mutex_unlock(&s->lock);
	return slot;
}

/* Release a handle; drop != 0 marks it stale (no new reader picks it up).
 * Returns the file to close once a stale handle has no reader left. */
static struct xrdcl_file *handle_put(struct xfer_xrd_state *s, struct xrd_handle *h, int drop)
{
	struct xrdcl_file *close_me = NULL;

	pthread_mutex_lock(&s->lock);
	h->refs--;
	if (drop)
		h->stale = 1;
	if (h->stale && h->refs == 0) {
		close_me = h->f;
		h->f = NULL;
		h->stale = 0;
		free(h->url);
		h->url = NULL;
	}
	pthread_mutex_unlock(&s->lock);
	return close_me;
}

static enum dm_status xrd_pread(struct xfer_ctx *ctx, const char *url, const struct xfer_url *u,
				void *buf, size_t len, uint64_t off, size_t *got,
				struct dm_err *err)
{
	struct xfer_xrd_state *s = xrd_state(ctx);
	struct xrdcl_err e = { 0 };
	struct xrd_handle *h;
	struct xrdcl_file *f, *evicted, *to_close;
	char *cu = canon(url);
	enum dm_status rc = DM_OK;
	int r;

	h = handle_get(s, cu);
	if (h) {
		r = xrdcl_pread(h->f, buf, len, off, ctx->cfg.stall_timeout_s, got, &e);
		to_close = handle_put(s, h, r != 0);
		if (to_close)
			xrdcl_close(to_close, 1, NULL);
		if (r == 0)
			goto out;
		/* a stale handle (server restarted, connection lost): retry */
		memset(&e, 0, sizeof(e));
	}
	r = xrdcl_open_read(cu, ctx->cfg.timeout_s, &f, NULL, &e);
	if (r != 0) {
		rc = xerr(url, &e, 0, err);
		goto out;
	}
	r = xrdcl_pread(f, buf, len, off, ctx->cfg.stall_timeout_s, got, &e);
	if (r != 0) {
		xrdcl_close(f, 1, NULL);
		rc = xerr(url, &e, 0, err);
		goto out;
	}
	h = handle_add(s, cu, f, &evicted);
	if (evicted)
		xrdcl_close(evicted, ctx->cfg.connect_timeout_s, NULL);
	if (!h) {
		xrdcl_close(f, ctx->cfg.connect_timeout_s, NULL);
	} else {
		to_close = handle_put(s, h, 0);
		if (to_close)
			xrdcl_close(to_close, ctx->cfg.connect_timeout_s, NULL);
	}
out:
	free(cu);
	return rc;
}

struct sink_wrap {
	xfer_sink_fn fn;
	void *arg;
	enum dm_status st;
};

static int sink_tramp(void *arg, const void *buf, size_t n)
{
	struct sink_wrap *w = arg;

	w->st = w->fn(w->arg, buf, n);
	return w->st == DM_OK ? 0 : -1;
}

static enum dm_status xrd_get(struct xfer_ctx *ctx, const char *url, const struct xfer_url *u,
			      xfer_sink_fn sink, void *arg, struct dm_err *err)
{
	struct xrdcl_err e = { 0 };
	struct sink_wrap w = { sink, arg, DM_OK };
	char *cu = canon(url);
	enum dm_status rc = DM_OK;
	int r;

	xrd_state(ctx);
	r = xrdcl_get(cu, ctx->cfg.timeout_s, ctx->cfg.stall_timeout_s, ctx->cfg.chunk_bytes,
		      ctx->cfg.chunks_in_flight, sink_tramp, &w, NULL, &e);
	if (r == -1 && w.st != DM_OK)
		rc = w.st; /* the sink keeps its reason */
	else if (r != 0)
		rc = xerr(url, &e, 0, err);
	free(cu);
	return rc;
}

static enum dm_status xrd_put(struct xfer_ctx *ctx, int fd, uint64_t size, const char *local_path,
			      const char *url, const struct xfer_url *u, struct dm_err *err)
{
	struct xrdcl_err e = { 0 };
	char *cu = canon(url);
	enum dm_status rc = DM_OK;

	xrd_state(ctx);
	if (xrdcl_put(cu, fd, size, ctx->cfg.timeout_s, ctx->cfg.stall_timeout_s,
		      ctx->cfg.chunk_bytes, ctx->cfg.chunks_in_flight, &e) != 0)
		rc = xerr(url, &e, 1, err);
	free(cu);
	return rc;
}

static enum dm_status xrd_del(struct xfer_ctx *ctx, const char *url, const struct xfer_url *u,
			      struct dm_err *err)
{
	struct xrdcl_err e = { 0 };
	char *cu = canon(url);
	enum dm_status rc = DM_OK;

	xrd_state(ctx);
	if (xrdcl_rm(cu, ctx->cfg.timeout_s, &e) != 0)
		rc = xerr(url, &e, 0, err);
	free(cu);
	return rc;
}

static enum dm_status xrd_rename(struct xfer_ctx *ctx, const char *from,
				 const struct xfer_url *fu, const char *to,
				 const struct xfer_url *tu, struct dm_err *err)
{
	struct xrdcl_err e = { 0 };
	const char *cls;
	char *cf = canon(from), *ct = canon(to);
	enum dm_status rc = DM_OK;

	xrd_state(ctx);
	if (xrdcl_mv(cf, ct, ctx->cfg.timeout_s, &e) != 0) {
		rc = xfer_errno_status(e.err, 0, &cls);
		dm_seterr(err, rc, cls, "rename %s -> %s: %s", from, to, e.msg);
	}
	free(cf);
	free(ct);
	return rc;
}

static enum dm_status xrd_checksum(struct xfer_ctx *ctx, const char *url,
				   const struct xfer_url *u, const char *type, char *out,
				   size_t outlen, struct dm_err *err)
{
	struct xrdcl_err e = { 0 };
	char *cu = canon(url);
	enum dm_status rc = DM_OK;

	xrd_state(ctx);
	if (xrdcl_checksum(cu, type, out, outlen, ctx->cfg.timeout_s, &e) != 0) {
		if (e.err == ENOTSUP)
			rc = dm_seterr(err, DM_ENOTSUP, "RSEChecksumUnavailable", "%s: %s", url,
				       e.msg);
		else
			rc = xerr(url, &e, 0, err);
	}
	free(cu);
	return rc;
}

struct cks_job {
	const char *url;
	int timeout_s;
	char out[16];
	int rc;
	struct xrdcl_err e;
};

static void *cks_thread(void *arg)
{
	struct cks_job *j = arg;

	j->rc = xrdcl_checksum(j->url, "adler32", j->out, sizeof(j->out), j->timeout_s, &j->e);
	return NULL;
}

/* XrdCl's own end-to-end check costs more than asking both servers
 * ourselves: the source's checksum is asked for while the copy runs (and is
 * usually cached by the server), the destination's once it is complete (and
 * is then cached for any later verification).  A mismatching copy is
 * removed. */
static enum dm_status xrd_tpc(struct xfer_ctx *ctx, const char *src, const struct xfer_url *su,
			      const char *dst, const struct xfer_url *du, struct dm_err *err)
{
	struct xrdcl_err e = { 0 };
	const char *cls;
	char *cs = canon(src), *cd = canon(dst);
	char b[16];
	struct cks_job sj = { .url = cs, .timeout_s = ctx->cfg.timeout_s };
	pthread_t tid;
	int threaded;
	enum dm_status rc = DM_OK;

	xrd_state(ctx);
	threaded = pthread_create(&tid, NULL, cks_thread, &sj) == 0;
	if (xrdcl_tpc(cs, cd, ctx->cfg.timeout_s, ctx->cfg.tpc_timeout_s, 0, &e) != 0) {
		rc = xfer_errno_status(e.err, 0, &cls);
		dm_seterr(err, rc, cls, "third-party copy %s -> %s: %s", src, dst, e.msg);
		goto out;
	}
	if (!threaded)
		cks_thread(&sj);
	else
		pthread_join(tid, NULL);
	threaded = 0;
	if (sj.rc != 0) {
		rc = xfer_errno_status(sj.e.err, 0, &cls);
		dm_seterr(err, rc, cls, "third-party copy %s -> %s: source checksum: %s", src, dst,
			  sj.e.msg);
		goto out;
	}
	if (xrdcl_checksum(cd, "adler32", b, sizeof(b), ctx->cfg.timeout_s, &e) != 0) {
		rc = xfer_errno_status(e.err, 1, &cls);
		dm_seterr(err, rc, cls, "third-party copy %s -> %s: destination checksum: %s", src,
			  dst, e.msg);
		goto out;
	}
	if (strcmp(sj.out, b) != 0) {
		rc = dm_seterr(err, DM_ECONFLICT, "FileConsistencyMismatch",
			       "third-party copy %s -> %s: adler32 differs after the copy (source %s, destination %s); the copy was removed",
			       src, dst, sj.out, b);
		xrdcl_rm(cd, ctx->cfg.timeout_s, &e);
	}
out:
	if (threaded)
		pthread_join(tid, NULL);
	free(cs);
	free(cd);
	return rc;
}

static enum dm_status xrd_mkdir_p(struct xfer_ctx *ctx, const char *url, const struct xfer_url *u,
				  struct dm_err *err)
{
	struct xrdcl_err e = { 0 };
	char *cu = canon(url);
	enum dm_status rc = DM_OK;

	xrd_state(ctx);
	if (xrdcl_mkdir_p(cu, ctx->cfg.timeout_s, &e) != 0)
		rc = xerr(url, &e, 1, err);
	free(cu);
	return rc;
}

const struct xfer_backend xfer_xrootd_backend = {
	.name = "root",
	.stat = xrd_stat,
	.pread = xrd_pread,
	.get = xrd_get,
	.put = xrd_put,
	.del = xrd_del,
	.rename = xrd_rename,
	.checksum = xrd_checksum,
	.tpc = xrd_tpc,
	.mkdir_p = xrd_mkdir_p,
	.ctx_free = xrd_ctx_free,
};
