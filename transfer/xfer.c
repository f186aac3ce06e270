/* SPDX-License-Identifier: Apache-2.0 */
/*
 * xfer.c - the front of the transfer layer: the context (configuration with
 * defaults, owned copies of its strings, lazily created back-end state),
 * URL parsing and scheme helpers, dispatch of every operation to the
 * back-end that serves the URL's scheme (file://, root://, https/davs://),
 * the download sink that writes a local file while computing adler32 and
 * md5 on the fly, and xfer_run_jobs, which keeps up to `parallel`
 * operations in flight on worker threads that share the context (and so
 * its connections).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "xfer_int.h"

/* ---- context -------------------------------------------------------- */

static char *dup_opt(const char *s)
{
	return s && *s ? dm_xstrdup(s) : NULL;
}

enum dm_status xfer_ctx_new(const struct xfer_config *cfg, struct xfer_ctx **out,
			    struct dm_err *err)
{
	struct xfer_ctx *ctx;

	if (!out)
		return dm_seterr(err, DM_EINVAL, NULL, "xfer_ctx_new: no output pointer");
	*out = NULL;
	ctx = dm_xcalloc(1, sizeof(*ctx));
	if (cfg)
		ctx->cfg = *cfg;
	ctx->ca_path = dup_opt(ctx->cfg.ca_path);
	ctx->ca_file = dup_opt(ctx->cfg.ca_file);
	ctx->client_cert = dup_opt(ctx->cfg.client_cert);
	ctx->client_key = dup_opt(ctx->cfg.client_key);
	ctx->bearer_token = dup_opt(ctx->cfg.bearer_token);
	ctx->cfg.ca_path = ctx->ca_path;
	ctx->cfg.ca_file = ctx->ca_file;
	ctx->cfg.client_cert = ctx->client_cert;
	ctx->cfg.client_key = ctx->client_key;
	ctx->cfg.bearer_token = ctx->bearer_token;
	if (ctx->cfg.timeout_s <= 0)
		ctx->cfg.timeout_s = 60;
	if (ctx->cfg.connect_timeout_s <= 0)
		ctx->cfg.connect_timeout_s = 10;
	if (ctx->cfg.stall_timeout_s <= 0)
		ctx->cfg.stall_timeout_s = 30;
	if (ctx->cfg.parallel <= 0)
		ctx->cfg.parallel = 8;
	if (ctx->cfg.chunk_bytes == 0)
		ctx->cfg.chunk_bytes = XFER_DEFAULT_CHUNK;
	if (ctx->cfg.chunk_bytes < 4096)
		ctx->cfg.chunk_bytes = 4096;
	if (ctx->cfg.chunk_bytes > (256u << 20))
		ctx->cfg.chunk_bytes = 256u << 20;
	if (ctx->cfg.chunks_in_flight <= 0)
		ctx->cfg.chunks_in_flight = XFER_DEFAULT_INFLIGHT;
	if (ctx->cfg.chunks_in_flight > 64)
		ctx->cfg.chunks_in_flight = 64;
	if (ctx->cfg.tpc_timeout_s <= 0)
		ctx->cfg.tpc_timeout_s = 1800;
	pthread_mutex_init(&ctx->lock, NULL);
	*out = ctx;
	return DM_OK;
}

void xfer_ctx_free(struct xfer_ctx *ctx)
{
	if (!ctx)
		return;
	if (xfer_http_backend.ctx_free)
		xfer_http_backend.ctx_free(ctx);
#ifndef XFER_NO_XROOTD
	if (xfer_xrootd_backend.ctx_free)
		xfer_xrootd_backend.ctx_free(ctx);
#endif
	pthread_mutex_destroy(&ctx->lock);
	free(ctx->ca_path);
	free(ctx->ca_file);
	free(ctx->client_cert);
	free(ctx->client_key);
	free(ctx->bearer_token);
	free(ctx);
}

/* ---- URLs and schemes ----------------------------------------------- */

static const struct {
	const char *scheme;
	const char *backend;
} scheme_map[] = {
	{ "file", "file" },
	{ "root", "root" },  { "xroot", "root" }, { "roots", "root" }, { "xroots", "root" },
	{ "http", "http" },  { "https", "http" }, { "dav", "http" },   { "davs", "http" },
};

static const struct xfer_backend *backend_by_name(const char *name)
{
	if (!name)
		return NULL;
	if (strcmp(name, "file") == 0)
		return &xfer_file_backend;
	if (strcmp(name, "http") == 0)
		return &xfer_http_backend;
#ifndef XFER_NO_XROOTD
	if (strcmp(name, "root") == 0)
		return &xfer_xrootd_backend;
#endif
	return NULL;
}

const char *xfer_scheme_backend(const char *scheme)
{
	if (!scheme)
		return NULL;
	for (size_t i = 0; i < DM_ARRAY_SIZE(scheme_map); i++) {
		if (strcasecmp(scheme, scheme_map[i].scheme) == 0)
			return backend_by_name(scheme_map[i].backend) ? scheme_map[i].backend
								      : NULL;
	}
	return NULL;
}

int xfer_scheme_supported(const char *scheme)
{
	return xfer_scheme_backend(scheme) != NULL;
}

int xfer_tpc_possible(const char *src_scheme, const char *dst_scheme)
{
	const char *a = xfer_scheme_backend(src_scheme);
	const char *b = xfer_scheme_backend(dst_scheme);

	return a && b && strcmp(a, b) == 0;
}

int xfer_url_scheme(const char *url, char *out, size_t n)
{
	const char *p;
	size_t len;

	if (!url || !out || n == 0)
		return -1;
	p = strstr(url, "://");
	if (!p || p == url)
		return -1;
	len = (size_t)(p - url);
	if (len >= n)
		return -1;
	for (size_t i = 0; i < len; i++) {
		char c = url[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (i > 0 && ((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.'))))
			return -1;
		out[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
	}
	out[len] = 0;
	return 0;
}

static enum dm_status copy_part(char *dst, size_t dstlen, const char *src, size_t n,
				const char *url, const char *what, struct dm_err *err)
{
	if (n >= dstlen)
		return dm_seterr(err, DM_EINVAL, NULL, "URL %s too long (%zu bytes, limit %zu): %.300s%s",
				 what, n, dstlen - 1, url, strlen(url) > 300 ? "..." : "");
	memcpy(dst, src, n);
	dst[n] = 0;
	return DM_OK;
}

enum dm_status xfer_url_parse(const char *url, struct xfer_url *u, struct dm_err *err)
{
	enum dm_status rc;
	const char *auth, *auth_end, *hp, *host_end, *path, *q;

	memset(u, 0, sizeof(*u));
	if (!url || !*url)
		return dm_seterr(err, DM_EINVAL, NULL, "empty URL");
	if (xfer_url_scheme(url, u->scheme, sizeof(u->scheme)) != 0)
		return dm_seterr(err, DM_EINVAL, NULL, "%s: not a URL (expected scheme://host/path)",
				 url);
	auth = strstr(url, "://") + 3;
	auth_end = auth + strcspn(auth, "/?#");
	/* userinfo is not kept: credentials never travel in URLs here */
	hp = memchr(auth, '@', (size_t)(auth_end - auth));
	hp = hp ? hp + 1 : auth;
	if (*hp == '[') {
		host_end = memchr(hp, ']', (size_t)(auth_end - hp));
		if (!host_end)
			return dm_seterr(err, DM_EINVAL, NULL, "%s: unterminated IPv6 address", url);
		rc = copy_part(u->host, sizeof(u->host), hp + 1, (size_t)(host_end - hp - 1), url,
			       "host", err);
		if (rc != DM_OK)
			return rc;
		host_end++;
	} else {
		host_end = memchr(hp, ':', (size_t)(auth_end - hp));
		if (!host_end)
			host_end = auth_end;
		rc = copy_part(u->host, sizeof(u->host), hp, (size_t)(host_end - hp), url, "host",
			       err);
		if (rc != DM_OK)
			return rc;
	}
	if (host_end < auth_end) {
		char port[8];
		uint64_t v;

		if (*host_end != ':')
			return dm_seterr(err, DM_EINVAL, NULL, "%s: junk after the host name", url);
		host_end++;
		if (host_end == auth_end) {
			u->port = 0;
		} else {
			if ((size_t)(auth_end - host_end) >= sizeof(port))
				return dm_seterr(err, DM_EINVAL, NULL, "%s: bad port", url);
			memcpy(port, host_end, (size_t)(auth_end - host_end));
			port[auth_end - host_end] = 0;
			if (dm_parse_u64(port, &v) != 0 || v == 0 || v > 65535)
				return dm_seterr(err, DM_EINVAL, NULL, "%s: bad port '%s'", url, port);
			u->port = (int)v;
		}
	}
	path = auth_end;
	q = path + strcspn(path, "?#");
	rc = copy_part(u->path, sizeof(u->path), path, (size_t)(q - path), url, "path", err);
	if (rc != DM_OK)
		return rc;
	if (*q == '?') {
		const char *qe = q + 1 + strcspn(q + 1, "#");

		rc = copy_part(u->query, sizeof(u->query), q + 1, (size_t)(qe - q - 1), url,
			       "query", err);
		if (rc != DM_OK)
			return rc;
	}
	return DM_OK;
}

/* Parse url and find its back-end; an unknown scheme is ENOTSUP with
 * Rucio's RSEProtocolNotSupported. */
static enum dm_status resolve(const char *url, struct xfer_url *u,
			      const struct xfer_backend **be, struct dm_err *err)
{
	enum dm_status rc = xfer_url_parse(url, u, err);

	if (rc != DM_OK)
		return rc;
	*be = backend_by_name(xfer_scheme_backend(u->scheme));
	if (!*be)
		return dm_seterr(err, DM_ENOTSUP, "RSEProtocolNotSupported",
				 "%s: unsupported scheme '%s' (this build knows file, %sdav, davs, "
				 "http, https)",
				 url, u->scheme,
				 backend_by_name("root") ? "root, xroot, roots, xroots, " : "");
	return DM_OK;
}

enum dm_status xfer_errno_status(int e, int dest, const char **cls)
{
	const char *c = NULL;
	enum dm_status st;

	switch (e) {
	case 0:
		st = DM_OK;
		break;
	case ENOENT:
	case ENOTDIR:
		st = DM_ENOENT;
		c = dest ? "DestinationNotAccessible" : "SourceNotFound";
		break;
	case EACCES:
	case EPERM:
	case EROFS:
		st = DM_EPERM;
		c = "RSEAccessDenied";
		break;
	case EEXIST:
		st = DM_EEXIST;
		c = "FileReplicaAlreadyExists";
		break;
	case ETIMEDOUT:
		st = DM_ETIMEDOUT;
		c = "ServiceUnavailable";
		break;
	case ECONNREFUSED:
	case ECONNRESET:
	case EHOSTUNREACH:
	case ENETUNREACH:
	case EHOSTDOWN:
	case EPIPE:
		st = DM_EIO;
		c = "ServiceUnavailable";
		break;
	case ENOTSUP:
	case ENOSYS:
		st = DM_ENOTSUP;
		c = "RSEOperationNotSupported";
		break;
	case EINVAL:
	case EISDIR:
	case ENAMETOOLONG:
		st = DM_EINVAL;
		break;
	case ENOMEM:
		st = DM_ENOMEM;
		break;
	case EBADMSG:
		st = DM_ECONFLICT;
		c = "FileConsistencyMismatch";
		break;
	case ENOSPC:
	case EDQUOT:
		st = DM_EQUOTA;
		c = "InsufficientTargetRSEQuota";
		break;
	default:
		st = DM_EIO;
		c = dest ? "DestinationNotAccessible" : NULL;
		break;
	}
	if (cls)
		*cls = c;
	return st;
}

/* ---- operations ----------------------------------------------------- */

static enum dm_status not_supported(const struct xfer_backend *be, const char *url,
				    const char *op, struct dm_err *err)
{
	return dm_seterr(err, DM_ENOTSUP, "RSEOperationNotSupported",
			 "%s: %s is not supported by the %s back-end", url, op, be->name);
}

enum dm_status xfer_stat(struct xfer_ctx *ctx, const char *url, struct xfer_stat *st,
			 struct dm_err *err)
{
	struct xfer_url u;
	const struct xfer_backend *be;
	enum dm_status rc = resolve(url, &u, &be, err);

	if (rc != DM_OK)
		return rc;
	memset(st, 0, sizeof(*st));
	return be->stat(ctx, url, &u, st, err);
}

enum dm_status xfer_pread(struct xfer_ctx *ctx, const char *url, void *buf, size_t len,
			  uint64_t off, size_t *got, struct dm_err *err)
{
	struct xfer_url u;
	const struct xfer_backend *be;
	enum dm_status rc = resolve(url, &u, &be, err);

	*got = 0;
	if (rc != DM_OK)
		return rc;
	if (len == 0)
		return DM_OK;
	return be->pread(ctx, url, &u, buf, len, off, got, err);
}

/* The download sink: write to a local fd, adler32 and md5 on the fly. */
struct get_sink {
	int fd;
	uint32_t adler;
	struct dm_md5 *md5;
	uint64_t bytes;
	int werr; /* errno of a failed write */
	void (*on_bytes)(void *arg, uint64_t n);
	void *on_bytes_arg;
};

static enum dm_status get_sink_write(void *arg, const void *buf, size_t n)
{
	struct get_sink *s = arg;
	const char *p = buf;
	size_t left = n;

	while (left > 0) {
		ssize_t w = write(s->fd, p, left);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			s->werr = errno;
			return DM_EIO;
		}
		p += w;
		left -= (size_t)w;
	}
	s->adler = dm_adler32_update(s->adler, buf, n);
	if (s->md5)
		dm_md5_update(s->md5, buf, n);
	s->bytes += n;
	if (s->on_bytes)
		s->on_bytes(s->on_bytes_arg, n);
	return DM_OK;
}

static int same_file(const char *a, const char *b)
{
	struct stat sa, sb;

	return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
	       sa.st_ino == sb.st_ino;
}

enum dm_status xfer_get(struct xfer_ctx *ctx, const char *url, const char *local_path,
			struct xfer_result *res, struct dm_err *err)
{
	struct xfer_url u;
	const struct xfer_backend *be;
	struct get_sink s = { .fd = -1, .adler = DM_ADLER32_INIT, .on_bytes = ctx->cfg.on_bytes,
			      .on_bytes_arg = ctx->cfg.on_bytes_arg };
	struct stat sb;
	int regular;
	enum dm_status rc = resolve(url, &u, &be, err);

	if (res)
		memset(res, 0, sizeof(*res));
	if (rc != DM_OK)
		return rc;
	if (be == &xfer_file_backend && same_file(u.path, local_path))
		return dm_seterr(err, DM_EINVAL, NULL, "%s: source and destination %s are the same file",
				 url, local_path);
	s.fd = open(local_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (s.fd < 0) {
		const char *cls;
		int e = errno;

		rc = xfer_errno_status(e, 1, &cls);
		return dm_seterr(err, rc, cls, "%s: cannot create local file %s: %s", url,
				 local_path, strerror(e));
	}
	/* only a regular file is removed on failure (never /dev/null) */
	regular = fstat(s.fd, &sb) == 0 && S_ISREG(sb.st_mode);
	if (!ctx->cfg.no_md5)
		s.md5 = dm_md5_new();
	rc = be->get(ctx, url, &u, get_sink_write, &s, err);
	if (rc != DM_OK && s.werr)
		rc = dm_seterr(err, DM_EIO, "DestinationNotAccessible",
			       "%s: writing local file %s failed: %s", url, local_path,
			       strerror(s.werr));
	if (close(s.fd) != 0 && rc == DM_OK)
		rc = dm_seterr(err, DM_EIO, "DestinationNotAccessible",
			       "%s: closing local file %s failed: %s", url, local_path,
			       strerror(errno));
	if (rc != DM_OK) {
		if (regular)
			unlink(local_path);
		if (s.md5) {
			char tmp[33];

			dm_md5_final_hex(s.md5, tmp);
		}
		return rc;
	}
	if (res) {
		res->bytes = s.bytes;
		dm_adler32_hex(s.adler, res->adler32);
		if (s.md5)
			dm_md5_final_hex(s.md5, res->md5);
	} else if (s.md5) {
		char tmp[33];

		dm_md5_final_hex(s.md5, tmp);
	}
	return DM_OK;
}

enum dm_status xfer_put(struct xfer_ctx *ctx, const char *local_path, const char *url,
			struct dm_err *err)
{
	struct xfer_url u;
	const struct xfer_backend *be;
	struct stat sb;
	int fd;
	enum dm_status rc = resolve(url, &u, &be, err);

	if (rc != DM_OK)
		return rc;
	fd = open(local_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		const char *cls;
		int e = errno;

		rc = xfer_errno_status(e, 0, &cls);
		return dm_seterr(err, rc, cls, "%s: cannot open local file %s: %s", url,
				 local_path, strerror(e));
	}
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		close(fd);
		return dm_seterr(err, DM_EINVAL, NULL, "%s: local source %s is not a regular file",
				 url, local_path);
	}
	if (be == &xfer_file_backend && same_file(u.path, local_path)) {
		close(fd);
		return dm_seterr(err, DM_EINVAL, NULL, "%s: source %s is the same file", url,
				 local_path);
	}
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	rc = be->put(ctx, fd, (uint64_t)sb.st_size, local_path, url, &u, err);
	close(fd);
	if (rc == DM_OK && ctx->cfg.on_bytes)
		ctx->cfg.on_bytes(ctx->cfg.on_bytes_arg, (uint64_t)sb.st_size);
	return rc;
}

enum dm_status xfer_delete(struct xfer_ctx *ctx, const char *url, struct dm_err *err)
{
	struct xfer_url u;
	const struct xfer_backend *be;
	enum dm_status rc = resolve(url, &u, &be, err);

	if (rc != DM_OK)
		return rc;
	return be->del(ctx, url, &u, err);
}

enum dm_status xfer_rename(struct xfer_ctx *ctx, const char *from, const char *to,
			   struct dm_err *err)
{
	struct xfer_url fu, tu;
	const struct xfer_backend *fb, *tb;
	enum dm_status rc = resolve(from, &fu, &fb, err);

	if (rc != DM_OK)
		return rc;
	rc = resolve(to, &tu, &tb, err);
	if (rc != DM_OK)
		return rc;
	if (fb != tb || strcasecmp(fu.host, tu.host) != 0 || fu.port != tu.port)
		return dm_seterr(err, DM_EINVAL, NULL,
				 "rename %s -> %s: both URLs must be on the same storage endpoint",
				 from, to);
	return fb->rename(ctx, from, &fu, to, &tu, err);
}

enum dm_status xfer_checksum(struct xfer_ctx *ctx, const char *url, const char *type,
			     char *out, size_t outlen, struct dm_err *err)
{
	struct xfer_url u;
	const struct xfer_backend *be;
	enum dm_status rc = resolve(url, &u, &be, err);

	if (rc != DM_OK)
		return rc;
	if (!type || !*type)
		type = "adler32";
	if (strcasecmp(type, "adler32") != 0 && strcasecmp(type, "md5") != 0)
		return dm_seterr(err, DM_ENOTSUP, "RSEChecksumUnavailable",
				 "%s: checksum type '%s' is not supported (adler32, md5)", url, type);
	if (outlen < (strcasecmp(type, "md5") == 0 ? 33u : 9u))
		return dm_seterr(err, DM_EINVAL, NULL, "%s: checksum output buffer too small", url);
	return be->checksum(ctx, url, &u, strcasecmp(type, "md5") == 0 ? "md5" : "adler32", out,
			    outlen, err);
}

enum dm_status xfer_tpc(struct xfer_ctx *ctx, const char *src, const char *dst,
			struct dm_err *err)
{
	struct xfer_url su, du;
	const struct xfer_backend *sb, *db;
	enum dm_status rc = resolve(src, &su, &sb, err);

	if (rc != DM_OK)
		return rc;
	rc = resolve(dst, &du, &db, err);
	if (rc != DM_OK)
		return rc;
	if (sb != db || !sb->tpc)
		return dm_seterr(err, DM_ENOTSUP, "RSEProtocolNotSupported",
				 "third-party copy %s -> %s: no third-party copy from %s to %s", src,
				 dst, su.scheme, du.scheme);
	return sb->tpc(ctx, src, &su, dst, &du, err);
}

enum dm_status xfer_mkdir_p(struct xfer_ctx *ctx, const char *url, struct dm_err *err)
{
	struct xfer_url u;
	const struct xfer_backend *be;
	enum dm_status rc = resolve(url, &u, &be, err);

	if (rc != DM_OK)
		return rc;
	if (!be->mkdir_p)
		return not_supported(be, url, "mkdir", err);
	return be->mkdir_p(ctx, url, &u, err);
}

/* ---- many jobs ------------------------------------------------------ */

struct job_run {
	struct xfer_ctx *ctx;
	struct xfer_job *jobs;
	size_t n;
	atomic_size_t next;
};

static void run_one(struct xfer_ctx *ctx, struct xfer_job *j)
{
	dm_err_clear(&j->err);
	switch (j->kind) {
	case XFER_JOB_GET:
		j->status = xfer_get(ctx, j->src, j->dst, &j->res, &j->err);
		break;
	case XFER_JOB_PUT:
		j->status = xfer_put(ctx, j->src, j->dst, &j->err);
		break;
	case XFER_JOB_TPC:
		j->status = xfer_tpc(ctx, j->src, j->dst, &j->err);
		break;
	case XFER_JOB_DELETE:
		j->status = xfer_delete(ctx, j->src, &j->err);
		break;
	default:
		j->status = dm_seterr(&j->err, DM_EINVAL, NULL, "job with unknown kind %d",
				      (int)j->kind);
		break;
	}
	if (j->status == DM_OK)
		j->err.code = DM_OK;
}

static void *job_worker(void *arg)
{
	struct job_run *r = arg;

	for (;;) {
		size_t i = atomic_fetch_add(&r->next, 1);

		if (i >= r->n)
			break;
		run_one(r->ctx, &r->jobs[i]);
	}
	return NULL;
}

void xfer_run_jobs(struct xfer_ctx *ctx, struct xfer_job *jobs, size_t n, int parallel)
{
	struct job_run r = { .ctx = ctx, .jobs = jobs, .n = n };
	pthread_t *tids;
	size_t nthreads, started = 0;

	if (n == 0)
		return;
	if (parallel <= 0)
		parallel = ctx->cfg.parallel;
	nthreads = (size_t)parallel < n ? (size_t)parallel : n;
	atomic_init(&r.next, 0);
	if (nthreads <= 1) {
		job_worker(&r);
		return;
	}
	tids = dm_xcalloc(nthreads, sizeof(*tids));
	for (size_t i = 0; i < nthreads; i++) {
		if (pthread_create(&tids[i], NULL, job_worker, &r) != 0)
			break;
		started++;
	}
	if (started == 0)
		job_worker(&r); /* no thread could start: do the work here */
	for (size_t i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
	free(tids);
}
