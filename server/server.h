/* SPDX-License-Identifier: Apache-2.0 */
/*
 * server.h - `didfs serve`: Rucio's REST API over the catalog (prefix srv_).
 *
 * Layout (one file per responsibility):
 *   http.c     libmicrohttpd daemon: TLS, limits, request bodies, the
 *              catalog handle pool, streaming, access log, dispatch
 *   auth.c     tokens in memory with expiry, userpass, X.509 DNs (both
 *              Rucio formats, RFC 3820 proxy CNs stripped, proxy chains)
 *   errors.c   Rucio's error contract: ExceptionClass/ExceptionMessage
 *              headers + JSON body, HTTP status per class
 *   json.c     Python-spaced JSON output (", " and ": " as Rucio's
 *              json.dumps), body parsing helpers, DID path splitting,
 *              Rucio's `filters` Python literal
 *   ep_*.c     the endpoint families (auth, accounts, rses, dids, replicas,
 *              rules)
 *
 * Threads: libmicrohttpd runs one thread per connection (catalog calls
 * block).  A request takes a catalog handle from a bounded pool for its
 * handler; a streamed listing runs in a producer thread with its own handle
 * and writes rows into a pipe (the bounded buffer) that the response
 * callback drains, so no catalog call ever runs inside a row callback and
 * memory stays constant whatever the listing's size.  No free handle within
 * the wait is 503, Rucio's "too many requests".
 */
#ifndef SRV_SERVER_H
#define SRV_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "catalog.h"
#include "dm.h"

struct MHD_Connection;
struct srv;

struct srv_config {
	char catalog[4096];
	char listen[256];       /* ADDR:PORT */
	char tls_cert[4096];
	char tls_key[4096];
	char ca_path[4096];     /* a CA file, or a directory of *.pem / hashed CAs */
	char access_log[4096];  /* "" = stderr, "-" = stdout, "off" = none */
	char version[32];       /* reported by /ping */
	int max_connections;
	int pool_size;          /* catalog handles */
	int timeout;            /* idle seconds per connection */
	size_t max_body;
	size_t max_header;      /* per-connection memory for the header */
	int token_lifetime;     /* seconds */
	int legacy_dn;          /* X.509 DN as /DC=../CN=.. (1) or RFC 2253 (0) */
	char metrics_allow[1024]; /* /metrics clients: off, any, ADDR[/BITS],... */
};
void srv_config_defaults(struct srv_config *c);
/* key = value lines, '#' comments; unknown keys are an error. */
int srv_config_load(struct srv_config *c, const char *path, struct dm_err *err);

int srv_run(const struct srv_config *c, const char *config_path);

/* ---- metrics and request ids (srv_metrics.c) ---- */
#define SRV_REQUEST_ID_MAX 64
struct sockaddr;
/* allow: metrics_allow (NULL: the default); -1 and err on a bad list. */
int srv_metrics_init(const char *allow, struct dm_err *err);
int srv_metrics_off(void);
int srv_metrics_allowed(const struct sockaddr *client);
const char *srv_metrics_family(const char *path);
void srv_metrics_begin(void);
void srv_metrics_end(const char *method, const char *path, int status, uint64_t bytes,
		     double seconds);
/* The incoming X-Request-Id if sane, else a fresh one. */
void srv_request_id(const char *incoming, char out[SRV_REQUEST_ID_MAX + 1]);

/* ---- one request ---- */
struct srv_req {
	struct MHD_Connection *conn;
	struct srv *srv;
	const char *method;
	char *path;           /* raw, still percent-encoded, without the query */
	struct dm_buf body;
	int body_over;
	int status;
	uint64_t sent;
	double t0;
	char account[CAT_ACCOUNT_MAX + 1]; /* "" until authenticated */
	int client_major, client_minor;    /* from User-Agent rucio-clients/X.Y */
	struct cat_db *db;                 /* pool handle held by the handler */
	int responded;
	int expr_400;                      /* InvalidRSEExpression is 400 here (/rses) */
	int batch;                         /* db holds an open cat_batch (srv_db_tx) */
};

/* Query argument (percent-decoded, '+' as space), NULL if absent.  The
 * returned string is owned by the request (freed at its end). */
const char *srv_arg(struct srv_req *r, const char *key);
const char *srv_header(struct srv_req *r, const char *key);
/* Every query argument, decoded, in order; cb returning non-zero stops.
 * -1 if one could not be decoded. */
typedef int (*srv_arg_cb)(void *ud, const char *key, const char *value);
int srv_args_each(struct srv_req *r, srv_arg_cb cb, void *ud);
/* Pool handle with the issuer set to the request's account. */
struct cat_db *srv_db(struct srv_req *r);
/* The same handle with a catalog batch open: every change the handler makes
 * is one transaction, committed after the handler returns if its reply is a
 * success (the reply is held back until then: a failed commit becomes the
 * error reply), rolled back otherwise.  NULL after an error reply. */
struct cat_db *srv_db_tx(struct srv_req *r);
/* srv_db for GET/HEAD, srv_db_tx for the other methods (NULL after an error
 * reply). */
struct cat_db *srv_db_w(struct srv_req *r);
/* 1 if the client wants 1.31-style enum names ("DIDType.DATASET"). */
int srv_old_enums(const struct srv_req *r);
const char *srv_config_version(const struct srv_req *r);
int srv_token_lifetime(const struct srv_req *r);
int srv_legacy_dn(const struct srv_req *r);

/* ---- responses (each returns 0; exactly one per request) ---- */
int srv_reply(struct srv_req *r, int status, const char *ctype, const char *body, size_t n);
int srv_reply_json(struct srv_req *r, int status, const struct dm_buf *b);
int srv_reply_created(struct srv_req *r);
int srv_reply_ok(struct srv_req *r);
/* Extra header on the next reply (copied). */
void srv_add_header(struct srv_req *r, const char *k, const char *v);
/* Rucio's error: status from the class (errors.c). */
int srv_error(struct srv_req *r, const char *cls, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int srv_error_status(struct srv_req *r, int status, const char *cls, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* The catalog handle's error as Rucio's; on_rses: InvalidRSEExpression is
 * 400 (as on /rses) instead of 409 (as on /rules). */
int srv_cat_error(struct srv_req *r, struct cat_db *db);
int srv_err_error(struct srv_req *r, const struct dm_err *e);
int srv_class_status(const char *cls);

/* ---- streaming ----
 * fn runs in a producer thread with its own catalog handle (issuer set) and
 * emits rows with srv_stream_row (a complete line each).  An error before
 * the first row becomes a proper error response; after it the stream ends
 * with an error (the connection is closed). */
struct srv_stream;
typedef enum dm_status (*srv_stream_fn)(struct srv_stream *s, struct cat_db *db, void *ud);
int srv_stream(struct srv_req *r, const char *ctype, srv_stream_fn fn, void *ud,
	       void (*ud_free)(void *));
/* Write bytes to the client; returns non-zero when the client is gone (the
 * listing should stop). */
int srv_stream_write(struct srv_stream *s, const char *p, size_t n);
int srv_stream_buf(struct srv_stream *s, struct dm_buf *b); /* writes and resets b */
/* Set the producer's error (before the first row it becomes the response). */
void srv_stream_fail(struct srv_stream *s, const struct dm_err *e);
int srv_stream_old_enums(const struct srv_stream *s);

/* ---- auth.c ---- */
void srv_auth_init(void);
void srv_auth_shutdown(void);
/* New token for account/identity/appid, lifetime seconds; out >= 512. */
void srv_token_issue(const char *account, const char *identity, const char *appid,
		     int lifetime, char *out, size_t n, int64_t *expires);
/* 0 and fills account (and identity, expiry) if known and not expired. */
int srv_token_check(const char *token, char account[CAT_ACCOUNT_MAX + 1], char *identity,
		    size_t idn, int64_t *expires);
/* X.509: the client's DN from the TLS session (proxy CNs stripped, in the
 * configured format), its chain verified against the CA.  0 or -1 with
 * err (CannotAuthenticate). */
int srv_x509_dn(struct srv_req *r, int allow_proxy, char *dn, size_t n, struct dm_err *err);
/* Strip RFC 3820 proxy CNs from a DN in either format (exposed for tests). */
void srv_strip_proxy_cns(char *dn);
/* TLS trust store for client certificates (set by http.c). */
void srv_auth_set_trust(void *gnutls_trust_list);
int srv_auth_endpoint(struct srv_req *r, const char *sub);
/* The request's token -> r->account, else a CannotAuthenticate reply (returns -1). */
int srv_authenticate(struct srv_req *r);

/* ---- json.c: output with Python's separators ---- */
void jw_str(struct dm_buf *b, const char *s);       /* "..." or null */
void jw_key(struct dm_buf *b, const char *k);       /* [, ]"k": */
void jw_ks(struct dm_buf *b, const char *k, const char *v);
void jw_ki(struct dm_buf *b, const char *k, int64_t v);
void jw_ku(struct dm_buf *b, const char *k, uint64_t v);
void jw_kb(struct dm_buf *b, const char *k, int v);
void jw_knull(struct dm_buf *b, const char *k);
void jw_kt(struct dm_buf *b, const char *k, int64_t t); /* Rucio date or null */
void jw_kiso(struct dm_buf *b, const char *k, int64_t t);
void jw_sep(struct dm_buf *b);                       /* ", " unless just opened */
/* Percent-decode (plus_space: '+' -> ' ').  Refuses NUL and bad escapes: -1. */
int srv_pct_decode(const char *in, size_t n, int plus_space, char *out, size_t outn);
/* Valid UTF-8? */
int srv_utf8_ok(const char *s, size_t n);
/* Split "/dids/" rest: raw "scope/name[/suffix]" with known suffixes.  Fills
 * scope, name (decoded) and suffix (pointer into raw or ""). */
int srv_did_path(const char *raw, char *scope, size_t sn, char *name, size_t nn,
		 const char **suffix, struct dm_err *err);
/* Rucio's `filters`: a Python literal list of dicts (or one dict) of
 * str -> str/int/bool/None.  Calls cb per (dict index, key, value-as-text).
 * -1 with err on a malformed literal. */
typedef int (*srv_filter_cb)(void *ud, int group, const char *key, const char *op,
			     const char *value);
int srv_parse_filters(const char *s, srv_filter_cb cb, void *ud, struct dm_err *err);
/* Rucio's generic NAME schema ^[A-Za-z0-9][A-Za-z0-9\.\-\_]{1,250}$ (no
 * '/'), and its InvalidObject reply with jsonschema's text: schema is the
 * schema's name ("name", "dids", ...), schema_path/instance_path where the
 * name sits ("['items']['properties']['name']", "[1]['name']"). */
int srv_name_ok(const char *s);
int srv_invalid_name(struct srv_req *r, int status, const char *schema, const char *schema_path,
		     const char *instance_path, const char *value);
/* Fast path for the bulk registration bodies ({"dids"|"files": [files],
 * "rse": r}, list_key names the list): 0 and out filled (strings point into
 * out->copy), or 1 when the body is of any other shape, for the general
 * path to answer.  srv_fast_files_free() in both cases is safe. */
struct srv_fast_files {
	char *copy;
	const char *rse;
	struct cat_file_in *files;
	size_t n;
};
int srv_fast_files(const char *body, size_t len, const char *list_key, struct srv_fast_files *out);
void srv_fast_files_free(struct srv_fast_files *f);
/* Parse the request body as JSON (valid UTF-8 required); NULL after a
 * ValueError reply.  Caller json_decref()s. */
json_t *srv_body_json(struct srv_req *r);
/* Body members: string or NULL (wrong type: -1 after a TypeError reply). */
int srv_jstr(struct srv_req *r, json_t *o, const char *key, const char **out);

/* ---- shared endpoint helpers ---- */
void srv_rule_json(struct dm_buf *b, const struct cat_rule *x, int old_enums);
/* "DATASET", or "DIDType.DATASET" for 1.31 clients */
void jw_kenum(struct dm_buf *b, const char *k, const char *cls, const char *v, int old);
/* Files of a JSON list ({scope,name,bytes,adler32,md5,pfn,state}) for
 * cat_replicas_add; strings point into j.  -1 after an error reply. */
int srv_files_from_json(struct srv_req *r, json_t *arr, struct cat_file_in **out, size_t *n);
/* Rules of a DID or an account, streamed. */
int srv_stream_rules(struct srv_req *r, const char *scope, const char *name, const char *account);
/* Rules holding a lock on a file (GET /dids/<s>/<n>/associated_rules). */
int srv_stream_associated_rules(struct srv_req *r, const char *scope, const char *name);

/* ---- endpoint families ---- */
int ep_accounts(struct srv_req *r, const char *rest);
int ep_identities(struct srv_req *r, const char *rest);
int ep_scopes(struct srv_req *r, const char *rest);
int ep_rses(struct srv_req *r, const char *rest);
int ep_dids(struct srv_req *r, const char *rest);
int ep_replicas(struct srv_req *r, const char *rest);
int ep_rules(struct srv_req *r, const char *rest);
int ep_locks(struct srv_req *r, const char *rest);
int ep_accountlimits(struct srv_req *r, const char *rest);
int ep_subscriptions(struct srv_req *r, const char *rest);
/* POST /replicas/bad, /replicas/bad/dids (ep_badreplica.c); sub: after "bad/" */
int ep_replicas_bad(struct srv_req *r, const char *sub);

/* ---- login as a function (auth.c): what /auth/userpass and /auth/x509
 * answer, for the web UI's login too.  0 and a new token (tn >= 1024, 4096
 * for x509) for the identity's account, or -1 with Rucio's error in err. */
int srv_login_userpass(struct srv_req *r, const char *user, const char *pw, const char *want,
		       const char *appid, char *token, size_t tn, int64_t *exp,
		       char account[CAT_ACCOUNT_MAX + 1], struct dm_err *err);
int srv_login_x509(struct srv_req *r, int proxy, const char *want, const char *appid, char *token,
		   size_t tn, int64_t *exp, char account[CAT_ACCOUNT_MAX + 1], struct dm_err *err);

/* Forget a token (the web UI's logout); unknown tokens are ignored. */
void srv_token_revoke(const char *token);

/* ---- the monitoring web UI under /ui (ui.c, ui_html.c; internals in ui.h) ---- */
int srv_ui(struct srv_req *r, const char *rest);

#endif
