/* SPDX-License-Identifier: Apache-2.0 */
/*
 * xfer_http.c - the https:// / davs:// back-end (also http://, dav://)
 * through libcurl; davs means https with WebDAV, dav plain http.
 *
 * Connections are reused: easy handles come from a small pool in the
 * context and all of them share one CURLSH holding the connection cache,
 * TLS sessions and DNS, so many threads reuse each other's keep-alive
 * connections.  Every request has a connect timeout, small requests a
 * whole-request timeout, and streams a stall limit: a progress callback
 * ends a request that moved no byte for stall_timeout_s (curl's own
 * CURLOPT_LOW_SPEED_* averages over several seconds and reacts late; it
 * stays as a backstop), so nothing waits forever on a dead or stuck server.
 *
 * Operations: PROPFIND Depth 0 (falling back to HEAD) for stat, ranged GET,
 * streaming GET into the download sink, PUT (on 409 Conflict the parents
 * are made with MKCOL and the PUT retried), DELETE, MOVE, MKCOL, server
 * checksums with "Want-Digest: adler32" (RFC 3230 "Digest:" answer, as
 * XrdHttp gives it) and third-party copy with COPY + "Source:" (pull mode,
 * as XrdHttpTPC and dCache do), verified by comparing adler32 afterwards.
 */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>

#include "xfer_int.h"

#define HTTP_POOL 32
#define HTTP_MAXCONN 64
#define BODY_CAP (32u << 10)

struct xfer_http_state {
	CURLSH *share;
	pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
	pthread_mutex_t pool_lock;
	CURL *pool[HTTP_POOL];
	int npool;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static int curl_init_rc;

static void curl_init_once(void)
{
	curl_init_rc = (int)curl_global_init(CURL_GLOBAL_ALL);
}

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *arg)
{
	struct xfer_http_state *s = arg;

	(void)h;
	(void)access;
	if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST)
		pthread_mutex_lock(&s->share_locks[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *arg)
{
	struct xfer_http_state *s = arg;

	(void)h;
	if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST)
		pthread_mutex_unlock(&s->share_locks[data]);
}

static struct xfer_http_state *http_state(struct xfer_ctx *ctx, struct dm_err *err)
{
	struct xfer_http_state *s;

	pthread_once(&curl_once, curl_init_once);
	if (curl_init_rc != 0) {
		dm_seterr(err, DM_EINTERNAL, NULL, "libcurl initialisation failed (code %d)",
			  curl_init_rc);
		return NULL;
	}
	pthread_mutex_lock(&ctx->lock);
	s = ctx->http;
	if (!s) {
		s = dm_xcalloc(1, sizeof(*s));
		for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
			pthread_mutex_init(&s->share_locks[i], NULL);
		pthread_mutex_init(&s->pool_lock, NULL);
		s->share = curl_share_init();
		if (s->share) {
			curl_share_setopt(s->share, CURLSHOPT_LOCKFUNC, share_lock);
			curl_share_setopt(s->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
			curl_share_setopt(s->share, CURLSHOPT_USERDATA, s);
			curl_share_setopt(s->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
			curl_share_setopt(s->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
			curl_share_setopt(s->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
		}
		ctx->http = s;
	}
	pthread_mutex_unlock(&ctx->lock);
	return s;
}

static void http_ctx_free(struct xfer_ctx *ctx)
{
	struct xfer_http_state *s = ctx->http;

	if (!s)
		return;
	for (int i = 0; i < s->npool; i++)
		curl_easy_cleanup(s->pool[i]);
	if (s->share)
		curl_share_cleanup(s->share);
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&s->share_locks[i]);
	pthread_mutex_destroy(&s->pool_lock);
	free(s);
	ctx->http = NULL;
}

/* ---- one request ---------------------------------------------------- */

enum body_mode { BODY_CAPTURE, BODY_SINK, BODY_RANGE };

struct hreq {
	struct xfer_ctx *ctx;
	struct xfer_http_state *s;
	CURL *h;
	struct curl_slist *hdrs;
	char *url; /* with the scheme mapped to http/https */
	char errbuf[CURL_ERROR_SIZE];
	enum body_mode mode;
	struct dm_buf body; /* captured body (tail kept when longer than BODY_CAP) */
	char digest[256];   /* value of the last Digest: header */
	long code;
	/* BODY_SINK */
	xfer_sink_fn sink;
	void *sink_arg;
	enum dm_status sink_st;
	/* BODY_RANGE */
	char *rbuf;
	size_t rlen, rgot;
	uint64_t rskip; /* bytes to drop first when the server ignored Range */
	int range_done;
	/* upload */
	int fd;
	uint64_t fsize, fpos;
	/* stall detection */
	int stall_s;
	curl_off_t last_bytes;
	double last_move;
	int stalled;
};

/* http(s) URL for a dav(s)/http(s) one: caller frees. */
static char *map_url(const char *url)
{
	const char *rest = strstr(url, "://");
	struct dm_buf b = DM_BUF_INIT;
	char scheme[16];

	if (!rest || xfer_url_scheme(url, scheme, sizeof(scheme)) != 0)
		return dm_xstrdup(url);
	if (strcmp(scheme, "davs") == 0 || strcmp(scheme, "https") == 0)
		dm_buf_adds(&b, "https");
	else
		dm_buf_adds(&b, "http");
	dm_buf_adds(&b, rest);
	return dm_buf_detach(&b);
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
	struct hreq *r = arg;
	size_t len = size * n;

	if (len >= 5 && strncmp(p, "HTTP/", 5) == 0) {
		r->digest[0] = 0; /* a new response (after 100 or a redirect) */
	} else if (len > 7 && strncasecmp(p, "Digest:", 7) == 0) {
		size_t vl = len - 7;
		const char *v = p + 7;

		while (vl > 0 && (*v == ' ' || *v == '\t'))
			v++, vl--;
		while (vl > 0 && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
			vl--;
		if (vl >= sizeof(r->digest))
			vl = sizeof(r->digest) - 1;
		memcpy(r->digest, v, vl);
		r->digest[vl] = 0;
	}
	return len;
}

static void capture(struct hreq *r, const char *p, size_t len)
{
	if (r->body.len + len > BODY_CAP) {
		/* keep the tail: TPC answers end with their verdict */
		size_t keep = BODY_CAP / 2;

		if (len >= keep) {
			dm_buf_reset(&r->body);
			p += len - keep;
			len = keep;
		} else if (r->body.len > keep - len) {
			size_t drop = r->body.len - (keep - len);

			memmove(r->body.s, r->body.s + drop, r->body.len - drop);
			r->body.len -= drop;
			r->body.s[r->body.len] = 0;
		}
	}
	dm_buf_add(&r->body, p, len);
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	struct hreq *r = arg;
	size_t len = size * n;
	long code = 0;

	if (r->mode == BODY_CAPTURE)
		goto cap;
	curl_easy_getinfo(r->h, CURLINFO_RESPONSE_CODE, &code);
	if (code < 200 || code >= 300)
		goto cap;
	if (r->mode == BODY_SINK) {
		r->sink_st = r->sink(r->sink_arg, p, len);
		return r->sink_st == DM_OK ? len : 0;
	}
	/* BODY_RANGE */
	{
		const char *q = p;
		size_t left = len, take;

		if (code == 200 && r->rskip > 0) { /* the server ignored Range */
			size_t skip = r->rskip < left ? (size_t)r->rskip : left;

			r->rskip -= skip;
			q += skip;
			left -= skip;
		}
		take = r->rlen - r->rgot < left ? r->rlen - r->rgot : left;
		memcpy(r->rbuf + r->rgot, q, take);
		r->rgot += take;
		if (r->rgot == r->rlen && take < left) {
			r->range_done = 1; /* got what we asked; stop the extra bytes */
			return 0;
		}
		return len;
	}
cap:
	capture(r, p, len);
	return len;
}

static size_t on_read(char *p, size_t size, size_t n, void *arg)
{
	struct hreq *r = arg;
	size_t want = size * n;
	ssize_t got;

	if (r->fpos >= r->fsize)
		return 0;
	if (want > r->fsize - r->fpos)
		want = (size_t)(r->fsize - r->fpos);
	do {
		got = pread(r->fd, p, want, (off_t)r->fpos);
	} while (got < 0 && errno == EINTR);
	if (got <= 0)
		return CURL_READFUNC_ABORT;
	r->fpos += (uint64_t)got;
	return (size_t)got;
}

static int on_seek(void *arg, curl_off_t off, int origin)
{
	struct hreq *r = arg;

	if (origin != SEEK_SET || off < 0 || (uint64_t)off > r->fsize)
		return CURL_SEEKFUNC_CANTSEEK;
	r->fpos = (uint64_t)off;
	return CURL_SEEKFUNC_OK;
}

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	struct hreq *r = arg;
	curl_off_t moved = dlnow + ulnow;
	double now = dm_now_f();

	(void)dltotal;
	(void)ultotal;
	if (moved != r->last_bytes || r->last_move == 0) {
		r->last_bytes = moved;
		r->last_move = now;
		return 0;
	}
	if (now - r->last_move > (double)r->stall_s) {
		r->stalled = 1;
		return 1;
	}
	return 0;
}

static CURL *pool_take(struct xfer_http_state *s)
{
	CURL *h = NULL;

	pthread_mutex_lock(&s->pool_lock);
	if (s->npool > 0)
		h = s->pool[--s->npool];
	pthread_mutex_unlock(&s->pool_lock);
	if (h)
		curl_easy_reset(h);
	else
		h = curl_easy_init();
	return h;
}

static void pool_give(struct xfer_http_state *s, CURL *h)
{
	pthread_mutex_lock(&s->pool_lock);
	if (s->npool < HTTP_POOL) {
		s->pool[s->npool++] = h;
		h = NULL;
	}
	pthread_mutex_unlock(&s->pool_lock);
	if (h)
		curl_easy_cleanup(h);
}

/* whole: whole-request timeout (0 = only the stall limit applies). */
static enum dm_status req_begin(struct hreq *r, struct xfer_ctx *ctx, const char *url,
				const char *method, int whole, struct dm_err *err)
{
	const struct xfer_config *c = &ctx->cfg;

	memset(r, 0, sizeof(*r));
	dm_buf_init(&r->body, 0);
	r->fd = -1;
	r->ctx = ctx;
	r->s = http_state(ctx, err);
	if (!r->s)
		return DM_EINTERNAL;
	r->h = pool_take(r->s);
	if (!r->h)
		return dm_seterr(err, DM_ENOMEM, NULL, "%s: cannot create a curl handle", url);
	r->url = map_url(url);
	curl_easy_setopt(r->h, CURLOPT_URL, r->url);
	if (r->s->share)
		curl_easy_setopt(r->h, CURLOPT_SHARE, r->s->share);
	curl_easy_setopt(r->h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(r->h, CURLOPT_ERRORBUFFER, r->errbuf);
	curl_easy_setopt(r->h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(r->h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(r->h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(r->h, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(r->h, CURLOPT_MAXREDIRS, 5L);
	curl_easy_setopt(r->h, CURLOPT_TCP_KEEPALIVE, 1L);
	/* the shared cache keeps this many idle connections (curl's default
	 * of 5 would close and re-handshake as soon as 6 requests overlap) */
	curl_easy_setopt(r->h, CURLOPT_MAXCONNECTS,
			 (long)(c->parallel * 2 > HTTP_MAXCONN ? c->parallel * 2 : HTTP_MAXCONN));
	curl_easy_setopt(r->h, CURLOPT_CONNECTTIMEOUT, (long)c->connect_timeout_s);
	curl_easy_setopt(r->h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(r->h, CURLOPT_LOW_SPEED_TIME, (long)c->stall_timeout_s);
	r->stall_s = c->stall_timeout_s;
	curl_easy_setopt(r->h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(r->h, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(r->h, CURLOPT_XFERINFODATA, r);
	if (whole > 0)
		curl_easy_setopt(r->h, CURLOPT_TIMEOUT, (long)whole);
	curl_easy_setopt(r->h, CURLOPT_USERAGENT, "didfs-xfer/0.1");
	if (getenv("DIDFS_CURL_VERBOSE")) /* debugging aid: curl's trace on stderr */
		curl_easy_setopt(r->h, CURLOPT_VERBOSE, 1L);
	if (c->ca_path)
		curl_easy_setopt(r->h, CURLOPT_CAPATH, c->ca_path);
	if (c->ca_file)
		curl_easy_setopt(r->h, CURLOPT_CAINFO, c->ca_file);
	if (c->insecure) {
		curl_easy_setopt(r->h, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(r->h, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (c->client_cert)
		curl_easy_setopt(r->h, CURLOPT_SSLCERT, c->client_cert);
	if (c->client_key)
		curl_easy_setopt(r->h, CURLOPT_SSLKEY, c->client_key);
	if (c->bearer_token) {
		struct dm_buf b = DM_BUF_INIT;

		dm_buf_addf(&b, "Authorization: Bearer %s", c->bearer_token);
		r->hdrs = curl_slist_append(r->hdrs, b.s);
		dm_buf_release(&b);
	}
	if (method && strcmp(method, "GET") != 0) {
		if (strcmp(method, "HEAD") == 0)
			curl_easy_setopt(r->h, CURLOPT_NOBODY, 1L);
		else if (strcmp(method, "PUT") != 0)
			curl_easy_setopt(r->h, CURLOPT_CUSTOMREQUEST, method);
	}
	curl_easy_setopt(r->h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(r->h, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(r->h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(r->h, CURLOPT_WRITEDATA, r);
	r->mode = BODY_CAPTURE;
	return DM_OK;
}

static void req_header(struct hreq *r, const char *name, const char *v)
{
	struct dm_buf b = DM_BUF_INIT;

	dm_buf_addf(&b, "%s: %s", name, v);
	r->hdrs = curl_slist_append(r->hdrs, b.s);
	dm_buf_release(&b);
}

static void req_end(struct hreq *r)
{
	if (r->h) {
		/* no dangling pointers to this request inside a pooled handle */
		curl_easy_setopt(r->h, CURLOPT_HTTPHEADER, NULL);
		curl_easy_setopt(r->h, CURLOPT_ERRORBUFFER, NULL);
		pool_give(r->s, r->h);
	}
	curl_slist_free_all(r->hdrs);
	free(r->url);
	dm_buf_release(&r->body);
	r->h = NULL;
}

/* First line of the captured body, trimmed, for error messages. */
static void body_line(const struct hreq *r, char *out, size_t n)
{
	const char *p = r->body.s;
	size_t len;

	while (*p == '\r' || *p == '\n' || *p == ' ')
		p++;
	len = strcspn(p, "\r\n");
	if (len >= n)
		len = n - 1;
	memcpy(out, p, len);
	out[len] = 0;
}

/* Run the request; map transport errors and non-2xx codes (dest != 0: the
 * URL is a write destination).  ok_codes: extra codes counted as success
 * (0-terminated list, may be NULL). */
static enum dm_status req_perform(struct hreq *r, const char *what, const char *url, int dest,
				  const long *ok_codes, struct dm_err *err)
{
	CURLcode cc;
	const char *cls;
	enum dm_status st;
	int e;
	char line[256];

	if (r->hdrs)
		curl_easy_setopt(r->h, CURLOPT_HTTPHEADER, r->hdrs);
	cc = curl_easy_perform(r->h);
	curl_easy_getinfo(r->h, CURLINFO_RESPONSE_CODE, &r->code);
	if (cc == CURLE_WRITE_ERROR && r->mode == BODY_SINK && r->sink_st != DM_OK)
		return r->sink_st; /* the sink keeps its reason */
	if (cc == CURLE_WRITE_ERROR && r->mode == BODY_RANGE && r->range_done)
		cc = CURLE_OK;
	if (cc == CURLE_ABORTED_BY_CALLBACK && r->stalled)
		return dm_seterr(err, DM_ETIMEDOUT, "ServiceUnavailable",
				 "%s %s: timed out: no data moved for %d s", what, url, r->stall_s);
	if (cc != CURLE_OK) {
		const char *detail = r->errbuf[0] ? r->errbuf : curl_easy_strerror(cc);

		switch (cc) {
		case CURLE_OPERATION_TIMEDOUT:
			e = ETIMEDOUT;
			break;
		case CURLE_COULDNT_CONNECT:
		case CURLE_COULDNT_RESOLVE_HOST:
		case CURLE_COULDNT_RESOLVE_PROXY:
		case CURLE_GOT_NOTHING:
		case CURLE_SEND_ERROR:
		case CURLE_RECV_ERROR:
		case CURLE_PARTIAL_FILE:
			e = ECONNREFUSED;
			break;
		case CURLE_READ_ERROR:
		case CURLE_ABORTED_BY_CALLBACK:
			e = EIO;
			break;
		default:
			e = EIO;
			break;
		}
		st = xfer_errno_status(e, dest, &cls);
		if (e == ETIMEDOUT)
			return dm_seterr(err, st, cls, "%s %s: timed out: %s", what, url, detail);
		if (e == ECONNREFUSED)
			return dm_seterr(err, st, cls, "%s %s: cannot reach the server or the connection broke: %s",
					 what, url, detail);
		return dm_seterr(err, st, cls, "%s %s: %s", what, url, detail);
	}
	if (r->code >= 200 && r->code < 300)
		return DM_OK;
	for (const long *c = ok_codes; c && *c; c++) {
		if (*c == r->code)
			return DM_OK;
	}
	switch (r->code) {
	case 404:
	case 410:
		e = ENOENT;
		break;
	case 409:
		e = dest ? ENOENT : EIO;
		break;
	case 401:
	case 403:
		e = EACCES;
		break;
	case 405:
	case 501:
		e = ENOTSUP;
		break;
	case 408:
	case 504:
		e = ETIMEDOUT;
		break;
	case 507:
		e = ENOSPC;
		break;
	default:
		e = EIO;
		break;
	}
	body_line(r, line, sizeof(line));
	if (strstr(line, "read/only") || strstr(line, "read-only"))
		e = EROFS; /* XrdHttp answers 500 for a read-only export */
	st = xfer_errno_status(e, dest, &cls);
	return dm_seterr(err, st, cls, "%s %s: HTTP %ld%s%s", what, url, r->code,
			 line[0] ? ": " : "", line);
}

/* ---- operations ----------------------------------------------------- */

static const char propfind_body[] =
	"<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
	"<D:propfind xmlns:D=\"DAV:\"><D:prop><D:resourcetype/><D:getcontentlength/>"
	"</D:prop></D:propfind>\n";

/* Value of the first element whose name ends in `name` (e.g.
 * "getcontentlength") or NULL; *len gets its length. */
static const char *xml_elem(const char *xml, const char *name, size_t *len)
{
	size_t nl = strlen(name);

	for (const char *p = strchr(xml, '<'); p; p = strchr(p + 1, '<')) {
		const char *q = p + 1, *ne, *end;

		if (*q == '/' || *q == '?' || *q == '!')
			continue;
		ne = q + strcspn(q, " \t\r\n/>");
		if ((size_t)(ne - q) < nl || strncasecmp(ne - nl, name, nl) != 0)
			continue;
		if (ne - nl > q && ne[-(long)nl - 1] != ':')
			continue;
		end = strchr(ne, '>');
		if (!end)
			return NULL;
		if (end[-1] == '/') { /* <x/> */
			*len = 0;
			return end;
		}
		end++;
		{
			const char *close = strstr(end, "</");

			while (close) {
				const char *cn = close + 2, *ce = cn + strcspn(cn, ">");

				if ((size_t)(ce - cn) >= nl &&
				    strncasecmp(ce - nl, name, nl) == 0)
					break;
				close = strstr(close + 2, "</");
			}
			if (!close)
				return NULL;
			*len = (size_t)(close - end);
		}
		return end;
	}
	return NULL;
}

static enum dm_status http_head_stat(struct xfer_ctx *ctx, const char *url,
				     struct xfer_stat *st, struct dm_err *err)
{
	struct hreq r;
	curl_off_t cl = -1;
	enum dm_status rc = req_begin(&r, ctx, url, "HEAD", ctx->cfg.timeout_s, err);

	if (rc != DM_OK)
		goto out;
	rc = req_perform(&r, "stat", url, 0, NULL, err);
	if (rc != DM_OK)
		goto out;
	curl_easy_getinfo(r.h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
	st->size = cl > 0 ? (uint64_t)cl : 0;
	st->is_dir = 0;
out:
	req_end(&r);
	return rc;
}

static enum dm_status http_stat(struct xfer_ctx *ctx, const char *url, const struct xfer_url *u,
				struct xfer_stat *st, struct dm_err *err)
{
	struct hreq r;
	const char *v;
	size_t vl;
	enum dm_status rc = req_begin(&r, ctx, url, "PROPFIND", ctx->cfg.timeout_s, err);

	if (rc != DM_OK)
		goto out;
	req_header(&r, "Depth", "0");
	req_header(&r, "Content-Type", "application/xml; charset=utf-8");
	curl_easy_setopt(r.h, CURLOPT_POSTFIELDS, propfind_body);
	curl_easy_setopt(r.h, CURLOPT_POSTFIELDSIZE, (long)(sizeof(propfind_body) - 1));
	rc = req_perform(&r, "stat", url, 0, NULL, err);
	if (rc == DM_ENOTSUP || (rc != DM_OK && r.code == 400)) {
		/* not a WebDAV server: plain HEAD */
		req_end(&r);
		return http_head_stat(ctx, url, st, err);
	}
	if (rc != DM_OK)
		goto out;
	v = xml_elem(r.body.s, "resourcetype", &vl);
	st->is_dir = 0;
	if (v && vl > 0) {
		char *rt = dm_xmalloc(vl + 1);

		memcpy(rt, v, vl);
		rt[vl] = 0;
		st->is_dir = xml_elem(rt, "collection", &vl) != NULL;
		free(rt);
	}
	v = xml_elem(r.body.s, "getcontentlength", &vl);
	st->size = 0;
	if (v && vl > 0 && vl < 24) {
		char num[24];
		uint64_t n;

		memcpy(num, v, vl);
		num[vl] = 0;
		if (dm_parse_u64(num, &n) == 0)
			st->size = n;
	}
out:
	req_end(&r);
	return rc;
}

static enum dm_status range_get(struct xfer_ctx *ctx, const char *url, void *buf, size_t len,
				uint64_t off, size_t *got, long *code, struct dm_err *err)
{
	struct hreq r;
	char range[64];
	enum dm_status rc = req_begin(&r, ctx, url, "GET", 0, err);

	if (rc != DM_OK)
		goto out;
	snprintf(range, sizeof(range), "%llu-%llu", (unsigned long long)off,
		 (unsigned long long)(off + len - 1));
	curl_easy_setopt(r.h, CURLOPT_RANGE, range);
	r.mode = BODY_RANGE;
	r.rbuf = buf;
	r.rlen = len;
	r.rskip = off;
	rc = req_perform(&r, "read", url, 0, (const long[]){ 416, 0 }, err);
	*code = r.code;
	if (rc == DM_OK)
		*got = r.code == 416 ? 0 : r.rgot;
out:
	req_end(&r);
	return rc;
}

static enum dm_status http_pread(struct xfer_ctx *ctx, const char *url, const struct xfer_url *u,
				 void *buf, size_t len, uint64_t off, size_t *got,
				 struct dm_err *err)
{
	struct xfer_stat st;
	struct dm_err e1, e2;
	long code = 0;
	enum dm_status rc = range_get(ctx, url, buf, len, off, got, &code, &e1);

	if (rc == DM_OK)
		return rc;
	if (rc == DM_ENOENT || rc == DM_EPERM)
		goto fail;
	/* XrdHttp answers a range that runs past the end with a broken 206:
	 * learn the size and ask again for what exists */
	if (http_stat(ctx, url, u, &st, &e2) != DM_OK || st.is_dir)
		goto fail;
	if (off >= st.size) {
		*got = 0;
		return DM_OK;
	}
	if (off + len <= st.size)
		goto fail; /* the range was fine: the first error stands */
	return range_get(ctx, url, buf, (size_t)(st.size - off), off, got, &code, err);
fail:
	if (err)
		*err = e1;
	return rc;
}

static enum dm_status http_get(struct xfer_ctx *ctx, const char *url, const struct xfer_url *u,
			       xfer_sink_fn sink, void *arg, struct dm_err *err)
{
	struct hreq r;
	enum dm_status rc = req_begin(&r, ctx, url, "GET", 0, err);

	if (rc != DM_OK)
		goto out;
	r.mode = BODY_SINK;
	r.sink = sink;
	r.sink_arg = arg;
	curl_easy_setopt(r.h, CURLOPT_BUFFERSIZE, 512L * 1024);
	rc = req_perform(&r, "get", url, 0, NULL, err);
out:
	req_end(&r);
	return rc;
}

/* Parent collection URL of url ("" when it has none). Caller frees. */
static char *parent_url(const char *url)
{
	const char *auth = strstr(url, "://");
	const char *path, *end, *slash;
	char *p;

	if (!auth)
		return NULL;
	path = strchr(auth + 3, '/');
	if (!path)
		return NULL;
	end = path + strcspn(path, "?#");
	while (end > path + 1 && end[-1] == '/')
		end--;
	slash = end - 1;
	while (slash > path && *slash != '/')
		slash--;
	if (slash <= path)
		return NULL; /* parent is the root */
	p = dm_xmalloc((size_t)(slash - url) + 1);
	memcpy(p, url, (size_t)(slash - url));
	p[slash - url] = 0;
	return p;
}

static enum dm_status mkcol_p(struct xfer_ctx *ctx, const char *url, int depth,
			      struct dm_err *err)
{
	struct hreq r;
	enum dm_status rc = req_begin(&r, ctx, url, "MKCOL", ctx->cfg.timeout_s, err);

	if (rc != DM_OK)
		goto out;
	/* 405: it exists already */
	rc = req_perform(&r, "mkdir", url, 1, (const long[]){ 405, 0 }, err);
	if (rc != DM_OK && (r.code == 409 || r.code == 404) && depth < 64) {
		char *parent = parent_url(url);

		req_end(&r);
		if (!parent)
			return rc;
		rc = mkcol_p(ctx, parent, depth + 1, err);
		free(parent);
		if (rc != DM_OK)
			return rc;
		return mkcol_p(ctx, url, depth + 1, err);
	}
out:
	req_end(&r);
	return rc;
}

static enum dm_status http_mkdir_p(struct xfer_ctx *ctx, const char *url,
				   const struct xfer_url *u, struct dm_err *err)
{
	return mkcol_p(ctx, url, 0, err);
}

static enum dm_status mkparent(struct xfer_ctx *ctx, const char *url, struct dm_err *err)
{
	char *parent = parent_url(url);
	enum dm_status rc = DM_OK;

	if (parent)
		rc = mkcol_p(ctx, parent, 0, err);
	free(parent);
	return rc;
}

static enum dm_status put_once(struct xfer_ctx *ctx, int fd, uint64_t size, const char *url,
			       long *code, struct dm_err *err)
{
	struct hreq r;
	enum dm_status rc = req_begin(&r, ctx, url, "PUT", 0, err);

	if (rc != DM_OK)
		goto out;
	r.fd = fd;
	r.fsize = size;
	curl_easy_setopt(r.h, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(r.h, CURLOPT_READFUNCTION, on_read);
	curl_easy_setopt(r.h, CURLOPT_READDATA, &r);
	curl_easy_setopt(r.h, CURLOPT_SEEKFUNCTION, on_seek);
	curl_easy_setopt(r.h, CURLOPT_SEEKDATA, &r);
	curl_easy_setopt(r.h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)size);
	curl_easy_setopt(r.h, CURLOPT_UPLOAD_BUFFERSIZE, 512L * 1024);
	rc = req_perform(&r, "put", url, 1, NULL, err);
	*code = r.code;
out:
	req_end(&r);
	return rc;
}

static enum dm_status http_put(struct xfer_ctx *ctx, int fd, uint64_t size, const char *local_path,
			       const char *url, const struct xfer_url *u, struct dm_err *err)
{
	long code = 0;
	struct dm_err e1;
	enum dm_status rc = put_once(ctx, fd, size, url, &code, &e1);

	if (rc != DM_OK && (code == 409 || code == 404)) {
		/* WebDAV: the parent collection is missing */
		rc = mkparent(ctx, url, err);
		if (rc == DM_OK)
			rc = put_once(ctx, fd, size, url, &code, err);
		return rc;
	}
	if (rc != DM_OK && err)
		*err = e1;
	return rc;
}

static enum dm_status http_del(struct xfer_ctx *ctx, const char *url, const struct xfer_url *u,
			       struct dm_err *err)
{
	struct hreq r;
	enum dm_status rc = req_begin(&r, ctx, url, "DELETE", ctx->cfg.timeout_s, err);

	if (rc == DM_OK)
		rc = req_perform(&r, "delete", url, 0, NULL, err);
	req_end(&r);
	return rc;
}

static enum dm_status move_once(struct xfer_ctx *ctx, const char *from, const char *to,
				long *code, struct dm_err *err)
{
	struct hreq r;
	char *dst = map_url(to);
	struct dm_buf what = DM_BUF_INIT;
	enum dm_status rc = req_begin(&r, ctx, from, "MOVE", ctx->cfg.timeout_s, err);

	if (rc != DM_OK)
		goto out;
	req_header(&r, "Destination", dst);
	req_header(&r, "Overwrite", "T");
	dm_buf_addf(&what, "rename to %s:", to);
	rc = req_perform(&r, what.s, from, 0, NULL, err);
	*code = r.code;
out:
	dm_buf_release(&what);
	free(dst);
	req_end(&r);
	return rc;
}

static enum dm_status http_rename(struct xfer_ctx *ctx, const char *from,
				  const struct xfer_url *fu, const char *to,
				  const struct xfer_url *tu, struct dm_err *err)
{
	long code = 0;
	struct dm_err e1;
	enum dm_status rc = move_once(ctx, from, to, &code, &e1);

	if (rc != DM_OK && code == 409) {
		rc = mkparent(ctx, to, err);
		if (rc == DM_OK)
			rc = move_once(ctx, from, to, &code, err);
		return rc;
	}
	if (rc != DM_OK && err)
		*err = e1;
	return rc;
}

static int b64val(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+' || c == '-')
		return 62;
	if (c == '/' || c == '_')
		return 63;
	return -1;
}

/* RFC 3230 md5 digest (base64 of 16 bytes, or 32 hex digits) to hex. */
static int md5_to_hex(const char *v, size_t n, char *out, size_t outlen)
{
	unsigned char bin[16];
	size_t nb = 0;
	unsigned acc = 0;
	int bits = 0;

	if (outlen < 33)
		return -1;
	if (n == 32 && dm_is_hex(v, 32)) {
		for (size_t i = 0; i < 32; i++)
			out[i] = (char)tolower((unsigned char)v[i]);
		out[32] = 0;
		return 0;
	}
	for (size_t i = 0; i < n && v[i] != '='; i++) {
		int x = b64val((unsigned char)v[i]);

		if (x < 0)
			return -1;
		acc = (acc << 6) | (unsigned)x;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (nb >= sizeof(bin))
				return -1;
			bin[nb++] = (unsigned char)((acc >> bits) & 0xff);
		}
	}
	if (nb != 16)
		return -1;
	for (size_t i = 0; i < 16; i++)
		snprintf(out + 2 * i, 3, "%02x", bin[i]);
	return 0;
}

/* Find type=value in a Digest header; 0 on success. */
static int digest_find(const char *digest, const char *type, char *out, size_t outlen)
{
	size_t tl = strlen(type);
	const char *p = digest;

	while (*p) {
		const char *item = p + strspn(p, " \t,");
		size_t il = strcspn(item, ",");
		const char *eq = memchr(item, '=', il);

		if (!*item)
			break;
		if (eq && (size_t)(eq - item) == tl && strncasecmp(item, type, tl) == 0) {
			const char *v = eq + 1;
			size_t vl = il - (size_t)(v - item);

			while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
				vl--;
			if (strcmp(type, "md5") == 0)
				return md5_to_hex(v, vl, out, outlen);
			/* adler32: hex, zero padded to 8 */
			if (vl == 0 || vl > 8 || !dm_is_hex(v, vl) || outlen < 9)
				return -1;
			memset(out, '0', 8 - vl);
			for (size_t i = 0; i < vl; i++)
				out[8 - vl + i] = (char)tolower((unsigned char)v[i]);
			out[8] = 0;
			return 0;
		}
		p = item + il;
	}
	return -1;
}

static enum dm_status http_checksum(struct xfer_ctx *ctx, const char *url,
				    const struct xfer_url *u, const char *type, char *out,
				    size_t outlen, struct dm_err *err)
{
	struct hreq r;
	enum dm_status rc = req_begin(&r, ctx, url, "HEAD", ctx->cfg.timeout_s, err);

	if (rc != DM_OK)
		goto out;
	req_header(&r, "Want-Digest", type);
	rc = req_perform(&r, "checksum", url, 0, NULL, err);
	if (rc != DM_OK)
		goto out;
	if (!r.digest[0]) {
		rc = dm_seterr(err, DM_ENOTSUP, "RSEChecksumUnavailable",
			       "checksum %s: the server sent no Digest header for %s", url, type);
		goto out;
	}
	if (digest_find(r.digest, type, out, outlen) != 0)
		rc = dm_seterr(err, DM_ENOTSUP, "RSEChecksumUnavailable",
			       "checksum %s: no usable %s in the server's answer 'Digest: %s'", url,
			       type, r.digest);
out:
	req_end(&r);
	return rc;
}

/* Verdict of a COPY answer: the last "success:" or "failure:" line. */
static enum dm_status tpc_verdict(const struct hreq *r, const char *src, const char *dst,
				  struct dm_err *err)
{
	const char *s = r->body.s, *last = NULL;

	for (const char *p = s; p && *p; p = strchr(p, '\n')) {
		if (*p == '\n')
			p++;
		if (strncmp(p, "success", 7) == 0 || strncmp(p, "failure", 7) == 0)
			last = p;
	}
	if (last && strncmp(last, "success", 7) == 0)
		return DM_OK;
	if (last) {
		char msg[512];
		size_t n = strcspn(last, "\r\n");
		int missing = strstr(last, "404") || strstr(last, "no such file");

		if (n >= sizeof(msg))
			n = sizeof(msg) - 1;
		memcpy(msg, last, n);
		msg[n] = 0;
		return dm_seterr(err, missing ? DM_ENOENT : DM_EIO,
				 missing ? "SourceNotFound" : NULL,
				 "third-party copy %s -> %s: %s", src, dst, msg);
	}
	/* no verdict: a plain 201/204 answer (other servers) counts as done */
	return DM_OK;
}

static enum dm_status http_tpc(struct xfer_ctx *ctx, const char *src, const struct xfer_url *su,
			       const char *dst, const struct xfer_url *du, struct dm_err *err)
{
	struct hreq r;
	char *source = map_url(src);
	char a[9], b[9];
	struct dm_err e2;
	struct dm_buf what = DM_BUF_INIT;
	enum dm_status rc;

	r.h = NULL;
	rc = mkparent(ctx, dst, err);
	if (rc != DM_OK)
		goto out;
	rc = req_begin(&r, ctx, dst, "COPY", ctx->cfg.tpc_timeout_s, err);
	if (rc != DM_OK)
		goto out;
	req_header(&r, "Source", source);
	req_header(&r, "Overwrite", "T");
	if (ctx->cfg.bearer_token) {
		struct dm_buf tok = DM_BUF_INIT;

		dm_buf_addf(&tok, "Bearer %s", ctx->cfg.bearer_token);
		req_header(&r, "TransferHeaderAuthorization", tok.s);
		dm_buf_release(&tok);
	}
	/* performance markers keep the answer flowing; allow some slack */
	r.stall_s = ctx->cfg.stall_timeout_s < 60 ? 60 : ctx->cfg.stall_timeout_s;
	curl_easy_setopt(r.h, CURLOPT_LOW_SPEED_TIME, (long)r.stall_s);
	dm_buf_addf(&what, "third-party copy from %s to", src);
	rc = req_perform(&r, what.s, dst, 1, NULL, err);
	if (rc == DM_ENOTSUP) {
		rc = dm_seterr(err, DM_ENOTSUP, "RSEProtocolNotSupported",
			       "third-party copy %s -> %s: the destination does not support COPY (HTTP %ld)",
			       src, dst, r.code);
		goto out;
	}
	if (rc != DM_OK)
		goto out;
	rc = tpc_verdict(&r, src, dst, err);
	if (rc != DM_OK)
		goto out;
	/* verify end to end, as the XRootD copy does */
	if (http_checksum(ctx, src, su, "adler32", a, sizeof(a), &e2) == DM_OK &&
	    http_checksum(ctx, dst, du, "adler32", b, sizeof(b), &e2) == DM_OK &&
	    strcmp(a, b) != 0)
		rc = dm_seterr(err, DM_ECONFLICT, "FileConsistencyMismatch",
			       "third-party copy %s -> %s: adler32 differs after the copy (source %s, destination %s)",
			       src, dst, a, b);
out:
	dm_buf_release(&what);
	free(source);
	if (r.h)
		req_end(&r);
	return rc;
}

const struct xfer_backend xfer_http_backend = {
	.name = "http",
	.stat = http_stat,
	.pread = http_pread,
	.get = http_get,
	.put = http_put,
	.del = http_del,
	.rename = http_rename,
	.checksum = http_checksum,
	.tpc = http_tpc,
	.mkdir_p = http_mkdir_p,
	.ctx_free = http_ctx_free,
};
