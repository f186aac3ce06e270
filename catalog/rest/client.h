/* SPDX-License-Identifier: Apache-2.0 */
/*
 * client.h - the HTTP side of the REST catalog (catalog/rest/): one Rucio
 * server reached with libcurl, its answers read with jansson.
 *
 * A client holds one curl handle (connections are kept and reused), the
 * configuration (config.h) and the credentials it authenticates with:
 * userpass (GET /auth/userpass), an X.509 certificate and key (GET
 * /auth/x509), an RFC 3820 proxy (GET /auth/x509_proxy) or a token file
 * whose content is sent as X-Rucio-Auth-Token.  The token is fetched when
 * first needed, kept in memory (and in a 0600 file under
 * $XDG_CACHE_HOME/didfs/tokens/ so that the next process need not log in
 * again, as Rucio's client keeps /tmp/.rucio_<user>/), and renewed once per
 * request when the server answers 401 (expired or unknown token).
 *
 * Every call has one deadline (config timeout, default 60 s): connecting,
 * and for a body read whole the whole call; a stream may run longer but
 * fails when no byte arrives for `timeout` seconds (a stalled server).
 * 502/503/504 are retried request_retries times with Rucio's back-off
 * (0.25 s, 0.5 s, 1 s) inside the same deadline.
 *
 * Errors land in a dm_err:
 *  - the server's Rucio error (ExceptionClass/ExceptionMessage, JSON body
 *    first, headers second): that class and message verbatim, the status
 *    mapped from the class (rest_status_of_class) as the local store does;
 *  - the server cannot be reached (refused, no route, name not found, a
 *    connect timeout, a stall, a connection reset before an answer): DM_EIO
 *    with class "ServerUnreachable" naming the host and what failed.  After
 *    such a failure the client fails fast (no network) for a short back-off
 *    (1 s, doubling to 30 s while it stays down) so that a mount never
 *    piles up timeouts; rest_client_reachable() tells which state it is in;
 *  - a TLS failure (the server's certificate not trusted by ca_cert, a bad
 *    client certificate): DM_EIO "RucioException" naming host and ca_cert;
 *  - an answer that is not what Rucio sends (garbage, a truncated stream, a
 *    500 without Rucio's error fields): DM_EIO "RucioException" naming host,
 *    request and what was wrong.
 */
#ifndef CAT_REST_CLIENT_H
#define CAT_REST_CLIENT_H

#include <jansson.h>

#include "config.h"
#include "lines.h"

struct rest_client;

/* The configuration is copied. */
struct rest_client *rest_client_new(const struct rest_config *cfg);
void rest_client_free(struct rest_client *c);
const struct rest_config *rest_client_config(const struct rest_client *c);
/* New credentials (NULL fields keep the old ones); the token is dropped. */
void rest_client_set_creds(struct rest_client *c, const char *account, const char *x509_proxy,
			   const char *client_cert, const char *client_key,
			   const char *token_file);
/* The account the client acts as: the configured one, else the one the
 * server gave at authentication, else NULL (ask GET /accounts/whoami). */
const char *rest_client_account(const struct rest_client *c);
void rest_client_set_account(struct rest_client *c, const char *account);

struct rest_req {
	const char *method;  /* GET POST PUT DELETE */
	const char *path;    /* "/dids/s/n?x=y", already escaped (rest_escape) */
	const char *body;    /* JSON text or NULL */
	const char *accept;  /* Accept header or NULL */
	/* how the body of a 2xx answer is taken (at most one): */
	rest_row_cb rows;    /* each line of x-json-stream, or each element of a JSON list */
	void *ud;
	json_t **json;       /* the whole body as JSON (a new reference), NULL if empty */
	/* out: */
	int status;          /* HTTP status of the last attempt */
	char location[512];  /* Location of a 3xx */
	uint64_t nrows;      /* rows handed to `rows` */
};
enum dm_status rest_call(struct rest_client *c, struct rest_req *r, struct dm_err *err);

/* Percent-encode s for a path component or a query value (everything but
 * A-Z a-z 0-9 - . _ ~), appended to b. */
void rest_escape(struct dm_buf *b, const char *s);
/* The dm_status the local store uses for a Rucio exception class. */
enum dm_status rest_status_of_class(const char *cls, int http_status);

/* What the client has seen, for cat_cache_stats: 1 reachable (or not yet
 * tried), 0 down (the last call could not reach it). */
int rest_client_reachable(const struct rest_client *c);
const struct dm_err *rest_client_last_error(const struct rest_client *c);
uint64_t rest_client_requests(const struct rest_client *c);

#endif
