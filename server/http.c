/* SPDX-License-Identifier: Apache-2.0 */
/*
 * http.c - the HTTP side of `didfs serve` on libmicrohttpd (GnuTLS).
 *
 * One thread per connection (MHD_USE_THREAD_PER_CONNECTION): catalog calls
 * block, and a handler runs start to end on its connection's thread.  Limits:
 * max_connections (MHD refuses more), max_header (per-connection memory, MHD
 * answers 431/413 past it), max_body (RequestEntityTooLarge, the connection
 * is closed), an idle timeout per connection, and a pool of pool_size
 * catalog handles: a request that gets none within 5 s is 503
 * DatabaseException (Rucio's QueuePool answer; the client backs off).
 *
 * Paths are kept raw (an identity unescape callback) so /dids/ can split
 * scope and name before decoding (%2F in a name); query arguments are
 * decoded here ('+' is a space).  A request body is read whole (it is
 * JSON) and checked for UTF-8 by the handlers that parse it.
 *
 * Streams (srv_stream): a producer thread with its own pool handle runs the
 * catalog listing and writes rows into a pipe; the response callback
 * (MHD_create_response_from_callback, chunked) drains it.  The pipe is the
 * bounded buffer: a slow client blocks the producer, never grows memory.
 * The response starts only after the first row (or the end), so an error
 * found before any row is a proper Rucio error.
 *
 * Signals: SIGTERM/SIGINT stop (MHD_stop_daemon waits for the connection
 * threads), SIGHUP reloads the config file's reloadable keys (access_log,
 * token_lifetime, legacy_dn, version).  One access-log line per request:
 *   ADDR ACCOUNT "METHOD PATH" STATUS BYTES SECONDS "USER-AGENT" REQUEST-ID
 * or, with --log-format kv|json, the same as keys (component "access": addr,
 * account, method, path, status, bytes, seconds, user_agent, request_id).
 * /metrics (srv_metrics.c) is answered before authentication, to the
 * clients of metrics_allow only.
 */
#include "server.h"
#include "metrics.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define POOL_WAIT_SECONDS 5
#define MAX_EXTRA_HEADERS 8

struct srv {
	struct srv_config cfg;
	const char *config_path;
	struct MHD_Daemon *d;
	pthread_mutex_t lock;   /* pool, log, reloadable config */
	pthread_cond_t freed;
	struct cat_db **pool;
	int nfree;
	FILE *log;
};

struct hdr { char *k, *v; };
struct req_priv {
	struct srv_req r;
	struct hdr extra[MAX_EXTRA_HEADERS];
	int nextra;
	char **owned;
	int nowned;
	struct MHD_Response *pending; /* held back while a batch is open */
	int pending_status;
	char rid[SRV_REQUEST_ID_MAX + 1];
};

/* ---- config ---- */

void srv_config_defaults(struct srv_config *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->catalog, sizeof(c->catalog), "didfs.db");
	snprintf(c->listen, sizeof(c->listen), "127.0.0.1:8443");
	snprintf(c->version, sizeof(c->version), "1.31.7");
	c->max_connections = 1100;
	c->pool_size = 16;
	c->timeout = 60;
	c->max_body = 64u << 20;
	c->max_header = 64u << 10;
	c->token_lifetime = 3600;
	snprintf(c->metrics_allow, sizeof(c->metrics_allow), "127.0.0.0/8");
}

static int out_of(uint64_t n, uint64_t lo, uint64_t hi)
{
	return n < lo || n > hi;
}

int srv_config_load(struct srv_config *c, const char *path, struct dm_err *err)
{
	FILE *f = fopen(path, "r");
	char line[8192];
	int ln = 0;

	if (!f) {
		dm_seterr(err, DM_ENOENT, "ConfigNotFound", "cannot read config %s: %s", path,
			  strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		char *k = line, *v, *e;
		uint64_t n = 0;

		ln++;
		k += strspn(k, " \t");
		if (*k == '#' || *k == ';' || *k == '\n' || !*k || *k == '[')
			continue;
		v = strchr(k, '=');
		if (!v) {
			dm_seterr(err, DM_EINVAL, "ConfigurationError", "%s:%d: expected key = value", path, ln);
			fclose(f);
			return -1;
		}
		*v++ = 0;
		for (e = v - 2; e >= k && (*e == ' ' || *e == '\t'); e--)
			*e = 0;
		v += strspn(v, " \t");
		e = v + strlen(v);
		while (e > v && (e[-1] == '\n' || e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
			*--e = 0;
#define STR(name) if (!strcmp(k, #name)) { snprintf(c->name, sizeof(c->name), "%s", v); continue; }
#define NUM(name, lo, hi) if (!strcmp(k, #name)) { \
			if (dm_parse_size(v, &n) || out_of(n, (lo), (hi))) { \
				dm_seterr(err, DM_EINVAL, "ConfigurationError", "%s:%d: %s takes %llu..%llu, not '%s'", \
					  path, ln, k, (unsigned long long)(lo), (unsigned long long)(hi), v); \
				fclose(f); return -1; } \
			c->name = n; continue; }
		STR(catalog) STR(listen) STR(tls_cert) STR(tls_key) STR(ca_path) STR(access_log)
		STR(version) STR(metrics_allow)
		NUM(max_connections, 1, 100000) NUM(pool_size, 1, 1024) NUM(timeout, 1, 86400)
		NUM(max_body, 1024, 1ull << 32) NUM(max_header, 4096, 16u << 20)
		NUM(token_lifetime, 1, 30 * 86400) NUM(legacy_dn, 0, 1)
#undef STR
#undef NUM
		dm_seterr(err, DM_EINVAL, "ConfigurationError", "%s:%d: unknown key '%s'", path, ln, k);
		fclose(f);
		return -1;
	}
	fclose(f);
	return 0;
}

/* ---- catalog handle pool ---- */

static struct cat_db *pool_get(struct srv *s)
{
	struct timespec dl;
	struct cat_db *db = NULL;

	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += POOL_WAIT_SECONDS;
	pthread_mutex_lock(&s->lock);
	while (!s->nfree)
		if (pthread_cond_timedwait(&s->freed, &s->lock, &dl) == ETIMEDOUT)
			break;
	if (s->nfree)
		db = s->pool[--s->nfree];
	pthread_mutex_unlock(&s->lock);
	return db;
}

static void pool_put(struct srv *s, struct cat_db *db)
{
	if (!db)
		return;
	pthread_mutex_lock(&s->lock);
	s->pool[s->nfree++] = db;
	pthread_cond_signal(&s->freed);
	pthread_mutex_unlock(&s->lock);
}

struct cat_db *srv_db(struct srv_req *r)
{
	if (!r->db) {
		r->db = pool_get(r->srv);
		if (!r->db)
			return NULL;
	}
	cat_set_issuer(r->db, r->account[0] ? r->account : "root");
	return r->db;
}

struct cat_db *srv_db_w(struct srv_req *r)
{
	if (!strcmp(r->method, "GET") || !strcmp(r->method, "HEAD")) {
		struct cat_db *db = srv_db(r);

		if (!db)
			srv_error(r, "DatabaseException", "too many requests");
		return db;
	}
	return srv_db_tx(r);
}

struct cat_db *srv_db_tx(struct srv_req *r)
{
	struct cat_db *db = srv_db(r);

	if (!db) {
		srv_error(r, "DatabaseException", "too many requests");
		return NULL;
	}
	if (r->batch)
		return db;
	if (cat_batch_begin(db)) {
		srv_cat_error(r, db);
		return NULL;
	}
	r->batch = 1;
	return db;
}

/* End the request's batch: commit if the held-back reply is a success (a
 * failed commit replaces it with the error), else roll back; then queue the
 * reply. */
static void batch_finish(struct srv_req *r)
{
	struct req_priv *pr = (struct req_priv *)r;
	int ok = pr->pending && pr->pending_status < 400;
	enum dm_status rc;

	if (!r->batch)
		return;
	r->batch = 0;
	rc = cat_batch_end(r->db, ok ? DM_OK : DM_EINVAL);
	if (ok && rc != DM_OK) {
		MHD_destroy_response(pr->pending);
		pr->pending = NULL;
		r->responded = 0;
		srv_cat_error(r, r->db);
	}
	if (pr->pending) {
		MHD_queue_response(r->conn, (unsigned)pr->pending_status, pr->pending);
		MHD_destroy_response(pr->pending);
		pr->pending = NULL;
	}
}

int srv_old_enums(const struct srv_req *r)
{
	return r->client_major ? r->client_major < 35 : 1;
}

const char *srv_config_version(const struct srv_req *r) { return r->srv->cfg.version; }
int srv_token_lifetime(const struct srv_req *r) { return r->srv->cfg.token_lifetime; }
int srv_legacy_dn(const struct srv_req *r) { return r->srv->cfg.legacy_dn; }

/* ---- request helpers ---- */

static char *own(struct srv_req *r, char *p)
{
	struct req_priv *pr = (struct req_priv *)r;

	pr->owned = dm_xrealloc(pr->owned, sizeof(char *) * (size_t)(pr->nowned + 1));
	pr->owned[pr->nowned++] = p;
	return p;
}

const char *srv_arg(struct srv_req *r, const char *key)
{
	const char *raw = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key);
	char *out;

	if (!raw)
		return NULL;
	out = dm_xmalloc(strlen(raw) + 1);
	if (srv_pct_decode(raw, strlen(raw), 1, out, strlen(raw) + 1)) {
		free(out);
		return NULL;
	}
	return own(r, out);
}

struct args_it { struct srv_req *r; srv_arg_cb cb; void *ud; int stop; };

static enum MHD_Result args_it_cb(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	struct args_it *it = cls;
	char *k, *v;

	if (it->stop || !key)
		return MHD_NO;
	k = dm_xmalloc(strlen(key) + 1);
	v = dm_xmalloc(strlen(value ? value : "") + 1);
	if (srv_pct_decode(key, strlen(key), 1, k, strlen(key) + 1) ||
	    srv_pct_decode(value ? value : "", strlen(value ? value : ""), 1, v, strlen(value ? value : "") + 1))
		it->stop = -1;
	else if (it->cb(it->ud, k, v))
		it->stop = 1;
	free(k);
	free(v);
	return it->stop ? MHD_NO : MHD_YES;
}

int srv_args_each(struct srv_req *r, srv_arg_cb cb, void *ud)
{
	struct args_it it = { r, cb, ud, 0 };

	MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, args_it_cb, &it);
	return it.stop < 0 ? -1 : 0;
}

const char *srv_header(struct srv_req *r, const char *key)
{
	return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, key);
}

void srv_add_header(struct srv_req *r, const char *k, const char *v)
{
	struct req_priv *pr = (struct req_priv *)r;

	if (pr->nextra >= MAX_EXTRA_HEADERS)
		return;
	pr->extra[pr->nextra].k = dm_xstrdup(k);
	pr->extra[pr->nextra].v = dm_xstrdup(v);
	pr->nextra++;
}

int srv_reply(struct srv_req *r, int status, const char *ctype, const char *body, size_t n)
{
	struct req_priv *pr = (struct req_priv *)r;
	struct MHD_Response *resp;

	if (r->responded)
		return 0;
	resp = MHD_create_response_from_buffer(n, (void *)body, MHD_RESPMEM_MUST_COPY);
	if (!resp)
		return -1;
	if (ctype)
		MHD_add_response_header(resp, "Content-Type", ctype);
	for (int i = 0; i < pr->nextra; i++)
		MHD_add_response_header(resp, pr->extra[i].k, pr->extra[i].v);
	MHD_add_response_header(resp, "Cache-Control", "post-check=0, pre-check=0");
	MHD_add_response_header(resp, "Pragma", "no-cache");
	if (r->body_over)
		MHD_add_response_header(resp, "Connection", "close");
	if (r->batch) {
		pr->pending = resp;
		pr->pending_status = status;
	} else {
		MHD_queue_response(r->conn, (unsigned)status, resp);
		MHD_destroy_response(resp);
	}
	r->status = status;
	r->sent = n;
	r->responded = 1;
	return 0;
}

int srv_reply_json(struct srv_req *r, int status, const struct dm_buf *b)
{
	return srv_reply(r, status, "application/json", b->s, b->len);
}

int srv_reply_created(struct srv_req *r)
{
	return srv_reply(r, 201, "text/html; charset=utf-8", "Created", 7);
}

int srv_reply_ok(struct srv_req *r)
{
	return srv_reply(r, 200, "text/html; charset=utf-8", "", 0);
}

/* ---- streams ---- */

struct srv_stream {
	struct srv *srv;
	int rfd, wfd;
	pthread_t th;
	srv_stream_fn fn;
	void *ud;
	void (*ud_free)(void *);
	char account[CAT_ACCOUNT_MAX + 1];
	int old_enums;
	pthread_mutex_t m;
	pthread_cond_t c;
	int first, done, failed, gone;
	struct dm_err err;
	struct dm_buf out;
};

int srv_stream_old_enums(const struct srv_stream *s) { return s->old_enums; }

void srv_stream_fail(struct srv_stream *s, const struct dm_err *e)
{
	s->err = *e;
	s->failed = 1;
}

static int stream_flush(struct srv_stream *s)
{
	size_t off = 0;

	if (!s->first && s->out.len) {
		pthread_mutex_lock(&s->m);
		s->first = 1;
		pthread_cond_signal(&s->c);
		pthread_mutex_unlock(&s->m);
	}
	while (off < s->out.len && !s->gone) {
		ssize_t w = write(s->wfd, s->out.s + off, s->out.len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			s->gone = 1;
			break;
		}
		off += (size_t)w;
	}
	dm_buf_reset(&s->out);
	return s->gone;
}

int srv_stream_write(struct srv_stream *s, const char *p, size_t n)
{
	if (s->gone)
		return 1;
	dm_buf_add(&s->out, p, n);
	if (!s->first || s->out.len >= 16384)
		return stream_flush(s);
	return 0;
}

int srv_stream_buf(struct srv_stream *s, struct dm_buf *b)
{
	int rc = srv_stream_write(s, b->s, b->len);

	dm_buf_reset(b);
	return rc;
}

static void *stream_main(void *arg)
{
	struct srv_stream *s = arg;
	struct cat_db *db = pool_get(s->srv);
	enum dm_status rc;

	if (!db) {
		dm_seterr(&s->err, DM_AGAIN, "DatabaseException",
			  "too many requests: no catalog connection free (QueuePool limit reached)");
		s->failed = 1;
	} else {
		cat_set_issuer(db, s->account[0] ? s->account : "root");
		rc = s->fn(s, db, s->ud);
		if (rc && !s->failed) {
			s->err = *cat_error(db);
			s->failed = 1;
		}
		pool_put(s->srv, db);
	}
	if (!s->failed || s->first)
		stream_flush(s);
	pthread_mutex_lock(&s->m);
	s->done = 1;
	close(s->wfd);
	s->wfd = -1;
	pthread_cond_signal(&s->c);
	pthread_mutex_unlock(&s->m);
	return NULL;
}

static void stream_free(struct srv_stream *s)
{
	if (s->rfd >= 0)
		close(s->rfd);
	pthread_join(s->th, NULL);
	if (s->ud_free)
		s->ud_free(s->ud);
	dm_buf_release(&s->out);
	pthread_mutex_destroy(&s->m);
	pthread_cond_destroy(&s->c);
	free(s);
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct srv_stream *s = cls;
	ssize_t n;

	do
		n = read(s->rfd, buf, max);
	while (n < 0 && errno == EINTR);
	if (n > 0)
		return n;
	pthread_mutex_lock(&s->m);
	while (!s->done)
		pthread_cond_wait(&s->c, &s->m);
	pthread_mutex_unlock(&s->m);
	return s->failed ? MHD_CONTENT_READER_END_WITH_ERROR : MHD_CONTENT_READER_END_OF_STREAM;
}

static void stream_free_cb(void *cls)
{
	stream_free(cls);
}

int srv_stream(struct srv_req *r, const char *ctype, srv_stream_fn fn, void *ud,
	       void (*ud_free)(void *))
{
	struct req_priv *pr = (struct req_priv *)r;
	struct srv_stream *s = dm_xcalloc(1, sizeof(*s));
	struct MHD_Response *resp;
	int fds[2];

	if (r->db) { /* the producer takes its own handle */
		if (r->batch) {
			r->batch = 0;
			cat_batch_end(r->db, DM_OK);
		}
		pool_put(r->srv, r->db);
		r->db = NULL;
	}
	if (pipe2(fds, O_CLOEXEC)) {
		free(s);
		if (ud_free)
			ud_free(ud);
		return srv_error(r, "RucioException", "cannot create a stream: %s", strerror(errno));
	}
	s->srv = r->srv;
	s->rfd = fds[0];
	s->wfd = fds[1];
	s->fn = fn;
	s->ud = ud;
	s->ud_free = ud_free;
	s->old_enums = srv_old_enums(r);
	dm_buf_init(&s->out, 0);
	snprintf(s->account, sizeof(s->account), "%s", r->account);
	pthread_mutex_init(&s->m, NULL);
	pthread_cond_init(&s->c, NULL);
	if (pthread_create(&s->th, NULL, stream_main, s)) {
		close(fds[0]);
		close(fds[1]);
		pthread_mutex_destroy(&s->m);
		pthread_cond_destroy(&s->c);
		free(s);
		if (ud_free)
			ud_free(ud);
		return srv_error(r, "RucioException", "cannot start a stream");
	}
	pthread_mutex_lock(&s->m);
	while (!s->first && !s->done)
		pthread_cond_wait(&s->c, &s->m);
	pthread_mutex_unlock(&s->m);
	if (!s->first) { /* ended before any row */
		int failed = s->failed;
		struct dm_err e = s->err;

		stream_free(s);
		if (failed)
			return srv_err_error(r, &e);
		return srv_reply(r, 200, ctype, "", 0);
	}
	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 32 * 1024, stream_read, s,
						 stream_free_cb);
	if (!resp) {
		stream_free(s);
		return -1;
	}
	MHD_add_response_header(resp, "Content-Type", ctype);
	for (int i = 0; i < pr->nextra; i++)
		MHD_add_response_header(resp, pr->extra[i].k, pr->extra[i].v);
	MHD_add_response_header(resp, "Cache-Control", "post-check=0, pre-check=0");
	MHD_add_response_header(resp, "Pragma", "no-cache");
	MHD_queue_response(r->conn, 200, resp);
	MHD_destroy_response(resp);
	r->status = 200;
	r->responded = 1;
	return 0;
}

/* ---- dispatch ---- */

static int starts(const char *p, const char *prefix, const char **rest)
{
	size_t n = strlen(prefix);

	if (strncmp(p, prefix, n))
		return 0;
	if (p[n] && p[n] != '/')
		return 0;
	*rest = p[n] == '/' ? p + n + 1 : p + n;
	return 1;
}

static void parse_agent(struct srv_req *r)
{
	const char *ua = srv_header(r, "User-Agent");
	const char *v;

	if (ua && (v = strstr(ua, "rucio-clients/")))
		sscanf(v + 14, "%d.%d", &r->client_major, &r->client_minor);
}

static const struct sockaddr *client_addr(struct srv_req *r)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

	return ci ? ci->client_addr : NULL;
}

static int metrics_reply(struct srv_req *r)
{
	struct dm_buf b = DM_BUF_INIT;
	int rc;

	if (srv_metrics_off())
		return srv_error_status(r, 404, "UnsupportedOperation", "Unknown endpoint: %s %s",
					r->method, r->path);
	if (!srv_metrics_allowed(client_addr(r)))
		return srv_error_status(r, 403, "AccessDenied",
					"/metrics is not open to this address (metrics_allow)");
	if (strcmp(r->method, "GET") && strcmp(r->method, "HEAD"))
		return srv_error_status(r, 405, "MethodNotAllowed", "/metrics takes GET");
	dm_m_render(&b);
	rc = srv_reply(r, 200, DM_M_CONTENT_TYPE, b.s, b.len);
	dm_buf_release(&b);
	return rc;
}

static int dispatch(struct srv_req *r)
{
	const char *p = r->path, *rest;

	if (!strcmp(p, "/ping") || !strcmp(p, "/ping/")) {
		struct dm_buf b = DM_BUF_INIT;
		int rc;

		dm_buf_addf(&b, "{\"version\":\"%s\"}\n", r->srv->cfg.version);
		rc = srv_reply_json(r, 200, &b);
		dm_buf_release(&b);
		return rc;
	}
	if (starts(p, "/auth", &rest))
		return srv_auth_endpoint(r, rest);
	if (starts(p, "/traces", &rest)) /* answered at once; the trace is dropped */
		return srv_reply_created(r);
	if (starts(p, "/ui", &rest)) /* the web UI: its own login and cookie (ui.c) */
		return srv_ui(r, rest);
	if (!strcmp(p, "/metrics"))
		return metrics_reply(r);
	if (srv_authenticate(r))
		return 0;
	if (starts(p, "/accounts", &rest))
		return ep_accounts(r, rest);
	if (starts(p, "/identities", &rest))
		return ep_identities(r, rest);
	if (starts(p, "/scopes", &rest))
		return ep_scopes(r, rest);
	if (starts(p, "/rses", &rest))
		return ep_rses(r, rest);
	if (starts(p, "/dids", &rest))
		return ep_dids(r, rest);
	if (starts(p, "/replicas", &rest))
		return ep_replicas(r, rest);
	if (starts(p, "/rules", &rest))
		return ep_rules(r, rest);
	if (starts(p, "/locks", &rest))
		return ep_locks(r, rest);
	if (starts(p, "/accountlimits", &rest))
		return ep_accountlimits(r, rest);
	if (starts(p, "/subscriptions", &rest))
		return ep_subscriptions(r, rest);
	return srv_error_status(r, 404, "UnsupportedOperation", "Unknown endpoint: %s %s",
				r->method, r->path);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version,
				  const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	struct srv *s = cls;
	struct req_priv *pr = *con_cls;
	struct srv_req *r;

	if (!pr) {
		const char *cl;
		uint64_t n;

		pr = dm_xcalloc(1, sizeof(*pr));
		r = &pr->r;
		r->conn = conn;
		r->srv = s;
		r->method = method;
		r->path = dm_xstrdup(url);
		r->t0 = dm_now_f();
		dm_buf_init(&r->body, s->cfg.max_body);
		parse_agent(r);
		*con_cls = pr;
		srv_request_id(srv_header(r, "X-Request-Id"), pr->rid);
		srv_add_header(r, "X-Request-Id", pr->rid);
		srv_metrics_begin();
		cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
		if (cl && !dm_parse_u64(cl, &n) && n > s->cfg.max_body) {
			r->body_over = 1;
			srv_error(r, "RequestEntityTooLarge", "request body of %llu bytes is over the limit of %zu bytes",
				  (unsigned long long)n, s->cfg.max_body);
			return MHD_YES;
		}
		return MHD_YES;
	}
	r = &pr->r;
	if (*upload_data_size) {
		if (!r->body_over && dm_buf_add(&r->body, upload_data, *upload_data_size)) {
			r->body_over = 1;
			srv_error(r, "RequestEntityTooLarge", "request body is over the limit of %zu bytes",
				  s->cfg.max_body);
		}
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (r->responded)
		return MHD_YES;
	dm_log_set_request_id(pr->rid);
	dispatch(r);
	if (!r->responded)
		srv_error(r, "RucioException", "no response for %s %s", method, r->path);
	batch_finish(r);
	dm_log_set_request_id(NULL);
	if (r->db) {
		pool_put(s, r->db);
		r->db = NULL;
	}
	return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct srv *s = cls;
	struct req_priv *pr = *con_cls;
	struct srv_req *r;
	const union MHD_ConnectionInfo *ci;
	char addr[INET6_ADDRSTRLEN] = "-";
	const char *ua;

	if (!pr)
		return;
	r = &pr->r;
	ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ci && ci->client_addr) {
		if (ci->client_addr->sa_family == AF_INET)
			inet_ntop(AF_INET, &((struct sockaddr_in *)ci->client_addr)->sin_addr, addr, sizeof(addr));
		else if (ci->client_addr->sa_family == AF_INET6)
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)ci->client_addr)->sin6_addr, addr, sizeof(addr));
	}
	ua = srv_header(r, "User-Agent");
	srv_metrics_end(r->method, r->path, r->status, r->sent, dm_now_f() - r->t0);
	pthread_mutex_lock(&s->lock);
	if (s->log && dm_log_get_format() != DM_LOG_TEXT) {
		char st[16], by[32], sec[32];
		const char *kv[] = { "addr", addr, "account", r->account[0] ? r->account : "-",
				     "method", r->method, "path", r->path, "status", st, "bytes", by,
				     "seconds", sec, "user_agent", ua ? ua : "-", "request_id", pr->rid,
				     toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? NULL : "aborted", "1",
				     NULL };
		struct dm_buf line = DM_BUF_INIT;

		snprintf(st, sizeof st, "%d", r->status);
		snprintf(by, sizeof by, "%llu", (unsigned long long)r->sent);
		snprintf(sec, sizeof sec, "%.6f", dm_now_f() - r->t0);
		dm_log_render(&line, DM_LOG_INFO, "access", kv, "request");
		fwrite(line.s, 1, line.len, s->log);
		fflush(s->log);
		dm_buf_release(&line);
	} else if (s->log) {
		char ts[40];

		dm_fmt_time(dm_now(), ts);
		fprintf(s->log, "%s %s %s \"%s %s\" %d %llu %.6f \"%s\" %s%s\n", ts, addr,
			r->account[0] ? r->account : "-", r->method, r->path, r->status,
			(unsigned long long)r->sent, dm_now_f() - r->t0, ua ? ua : "-", pr->rid,
			toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " aborted");
		fflush(s->log);
	}
	pthread_mutex_unlock(&s->lock);
	if (r->db && r->batch)
		cat_batch_end(r->db, DM_EINVAL);
	if (pr->pending)
		MHD_destroy_response(pr->pending);
	if (r->db)
		pool_put(s, r->db);
	for (int i = 0; i < pr->nextra; i++) {
		free(pr->extra[i].k);
		free(pr->extra[i].v);
	}
	for (int i = 0; i < pr->nowned; i++)
		free(pr->owned[i]);
	free(pr->owned);
	dm_buf_release(&r->body);
	free(r->path);
	free(pr);
	*con_cls = NULL;
}

/* Keep paths and arguments raw: decoding happens where the structure is known. */
static size_t unescape_none(void *cls, struct MHD_Connection *c, char *s)
{
	return strlen(s);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[1024];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg[strcspn(msg, "\n")] = 0;
	dm_log(DM_LOG_WARN, "serve", "%s", msg);
}

/* ---- TLS material ---- */

static char *slurp(const char *path, struct dm_err *err)
{
	struct dm_buf b = DM_BUF_INIT;
	char buf[8192];
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f) {
		dm_seterr(err, DM_ENOENT, "ConfigurationError", "cannot read %s: %s", path, strerror(errno));
		return NULL;
	}
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		dm_buf_add(&b, buf, n);
	fclose(f);
	return dm_buf_detach(&b);
}

/* A CA file, or every *.pem / *.0 file of a directory, concatenated. */
static char *read_cas(const char *path, struct dm_err *err)
{
	struct stat st;
	struct dm_buf b = DM_BUF_INIT;
	DIR *d;
	struct dirent *e;

	if (stat(path, &st)) {
		dm_seterr(err, DM_ENOENT, "ConfigurationError", "cannot read CA path %s: %s", path, strerror(errno));
		return NULL;
	}
	if (!S_ISDIR(st.st_mode))
		return slurp(path, err);
	d = opendir(path);
	if (!d) {
		dm_seterr(err, DM_ENOENT, "ConfigurationError", "cannot list %s", path);
		return NULL;
	}
	while ((e = readdir(d))) {
		size_t n = strlen(e->d_name);
		char full[8192];
		char *t;

		if (!((n > 4 && !strcmp(e->d_name + n - 4, ".pem")) ||
		      (n > 2 && e->d_name[n - 2] == '.' && e->d_name[n - 1] >= '0' && e->d_name[n - 1] <= '9')))
			continue;
		snprintf(full, sizeof(full), "%s/%s", path, e->d_name);
		t = slurp(full, NULL);
		if (t) {
			dm_buf_adds(&b, t);
			dm_buf_addc(&b, '\n');
			free(t);
		}
	}
	closedir(d);
	return dm_buf_detach(&b);
}

static int parse_listen(const char *s, struct sockaddr_in *sa, struct dm_err *err)
{
	char host[256];
	const char *colon = strrchr(s, ':');
	uint64_t port;

	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	if (!colon || (size_t)(colon - s) >= sizeof(host) || dm_parse_u64(colon + 1, &port) ||
	    port > 65535) {
		dm_seterr(err, DM_EINVAL, "InputValidationError", "--listen takes ADDR:PORT, not '%s'", s);
		return -1;
	}
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = 0;
	if (!strcmp(host, "localhost"))
		strcpy(host, "127.0.0.1");
	if (inet_pton(AF_INET, *host ? host : "0.0.0.0", &sa->sin_addr) != 1) {
		dm_seterr(err, DM_EINVAL, "InputValidationError", "--listen: '%s' is not an IPv4 address", host);
		return -1;
	}
	sa->sin_port = htons((uint16_t)port);
	return 0;
}

static void open_log(struct srv *s)
{
	if (s->log && s->log != stderr && s->log != stdout)
		fclose(s->log);
	s->log = stderr;
	if (!strcmp(s->cfg.access_log, "off"))
		s->log = NULL;
	else if (!strcmp(s->cfg.access_log, "-"))
		s->log = stdout;
	else if (s->cfg.access_log[0]) {
		s->log = fopen(s->cfg.access_log, "a");
		if (!s->log) {
			dm_log(DM_LOG_ERROR, "serve", "cannot open access log %s: %s", s->cfg.access_log,
			       strerror(errno));
			s->log = stderr;
		}
	}
}

static void reload(struct srv *s)
{
	struct srv_config c = s->cfg;
	struct dm_err err = { 0 };

	if (!s->config_path) {
		dm_log(DM_LOG_INFO, "serve", "SIGHUP: no --config file; reopening the access log");
	} else if (srv_config_load(&c, s->config_path, &err)) {
		dm_log(DM_LOG_ERROR, "serve", "SIGHUP: %s: %s (keeping the running config)", err.cls, err.msg);
		return;
	}
	pthread_mutex_lock(&s->lock);
	snprintf(s->cfg.access_log, sizeof(s->cfg.access_log), "%s", c.access_log);
	snprintf(s->cfg.version, sizeof(s->cfg.version), "%s", c.version);
	s->cfg.token_lifetime = c.token_lifetime;
	s->cfg.legacy_dn = c.legacy_dn;
	open_log(s);
	pthread_mutex_unlock(&s->lock);
	dm_log(DM_LOG_INFO, "serve", "SIGHUP: configuration reloaded");
}

int srv_run(const struct srv_config *cfg, const char *config_path)
{
	struct srv s;
	struct dm_err err = { 0 };
	struct sockaddr_in sa;
	char *cert = NULL, *key = NULL, *ca = NULL;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
			 MHD_USE_POLL | MHD_USE_ERROR_LOG;
	struct MHD_OptionItem opts[16];
	int no = 0, rc = 1, sig;
	sigset_t set;
	gnutls_x509_trust_list_t trust = NULL;

	memset(&s, 0, sizeof(s));
	s.cfg = *cfg;
	s.config_path = config_path;
	pthread_mutex_init(&s.lock, NULL);
	pthread_cond_init(&s.freed, NULL);
	if (parse_listen(cfg->listen, &sa, &err))
		goto fail;
	if (srv_metrics_init(cfg->metrics_allow, &err))
		goto fail;
	s.pool = dm_xcalloc((size_t)cfg->pool_size, sizeof(*s.pool));
	for (int i = 0; i < cfg->pool_size; i++) {
		if (cat_open(cfg->catalog, 0, &s.pool[i], &err))
			goto fail;
		s.nfree++;
	}
	opts[no++] = (struct MHD_OptionItem){ MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_log, NULL };
	if (cfg->tls_cert[0] || cfg->tls_key[0]) {
		if (!cfg->tls_cert[0] || !cfg->tls_key[0]) {
			dm_seterr(&err, DM_EINVAL, "InputValidationError", "--tls-cert and --tls-key go together");
			goto fail;
		}
		if (!(cert = slurp(cfg->tls_cert, &err)) || !(key = slurp(cfg->tls_key, &err)))
			goto fail;
		flags |= MHD_USE_TLS;
		opts[no++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_CERT, 0, cert };
		opts[no++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_KEY, 0, key };
		if (cfg->ca_path[0]) {
			gnutls_datum_t dat;

			if (!(ca = read_cas(cfg->ca_path, &err)))
				goto fail;
			opts[no++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_TRUST, 0, ca };
			gnutls_x509_trust_list_init(&trust, 0);
			dat.data = (unsigned char *)ca;
			dat.size = (unsigned)strlen(ca);
			if (gnutls_x509_trust_list_add_trust_mem(trust, &dat, NULL, GNUTLS_X509_FMT_PEM, 0, 0) <= 0) {
				dm_seterr(&err, DM_EINVAL, "ConfigurationError", "no CA certificate in %s", cfg->ca_path);
				goto fail;
			}
			srv_auth_set_trust(trust);
		}
	} else if (cfg->ca_path[0]) {
		dm_seterr(&err, DM_EINVAL, "InputValidationError", "--ca-path needs --tls-cert and --tls-key");
		goto fail;
	}
	opts[no++] = (struct MHD_OptionItem){ MHD_OPTION_SOCK_ADDR, 0, &sa };
	opts[no++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_LIMIT, cfg->max_connections, NULL };
	opts[no++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_TIMEOUT, cfg->timeout, NULL };
	opts[no++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t)cfg->max_header, NULL };
	opts[no++] = (struct MHD_OptionItem){ MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, &s };
	opts[no++] = (struct MHD_OptionItem){ MHD_OPTION_UNESCAPE_CALLBACK, (intptr_t)unescape_none, NULL };
	opts[no++] = (struct MHD_OptionItem){ MHD_OPTION_THREAD_STACK_SIZE, 1 << 20, NULL };
	opts[no++] = (struct MHD_OptionItem){ MHD_OPTION_END, 0, NULL };

	srv_auth_init();
	open_log(&s);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL); /* every thread inherits the mask */
	s.d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, &s, MHD_OPTION_ARRAY, opts,
			       MHD_OPTION_END);
	if (!s.d) {
		dm_seterr(&err, DM_EIO, "ConfigurationError", "cannot listen on %s (in use, or bad TLS material)",
			  cfg->listen);
		goto fail;
	}
	char shown[1024];
	cat_uri_shown(cfg->catalog, shown, sizeof shown);
	dm_log(DM_LOG_INFO, "serve", "listening on %s://%s (catalog %s)", cert ? "https" : "http",
	       cfg->listen, shown);
	fprintf(stderr, "didfs serve: ready on %s://%s\n", cert ? "https" : "http", cfg->listen);
	for (;;) {
		if (sigwait(&set, &sig))
			continue;
		if (sig == SIGHUP) {
			reload(&s);
			continue;
		}
		break;
	}
	dm_log(DM_LOG_INFO, "serve", "stopping (signal %d)", sig);
	MHD_stop_daemon(s.d);
	rc = 0;
	goto out;
fail:
	fprintf(stderr, "didfs: %s: %s\n", err.cls[0] ? err.cls : dm_status_class(err.code), err.msg);
out:
	srv_auth_shutdown();
	if (s.pool)
		for (int i = 0; i < cfg->pool_size; i++)
			cat_close(s.pool[i]);
	free(s.pool);
	if (trust)
		gnutls_x509_trust_list_deinit(trust, 1);
	free(cert);
	free(key);
	free(ca);
	if (s.log && s.log != stderr && s.log != stdout)
		fclose(s.log);
	pthread_mutex_destroy(&s.lock);
	pthread_cond_destroy(&s.freed);
	return rc;
}
