/* SPDX-License-Identifier: Apache-2.0 */
/*
 * auth.c - authentication for `didfs serve`.
 *
 * Tokens: "<account>-<identity>-<appid>-<32 hex>" as Rucio's, kept only in
 * this process (a hash table under one mutex) with their expiry; an unknown
 * or expired token is 401 CannotAuthenticate, so the client fetches a new
 * one.  A restart forgets every token (clients re-authenticate once).
 *
 * /auth/userpass checks the salted hash through the catalog
 * (cat_identity_check_userpass); X-Rucio-Account, when given, must be the
 * identity's account.  /auth/x509 and /auth/x509_proxy take the client
 * certificate chain of the TLS session: the end-entity certificate is
 * verified against the CA (--ca-path); RFC 3820 proxies in front of it are
 * checked here, since GnuTLS refuses proxy chains: each one signed by the
 * next certificate, carrying the proxyCertInfo extension, its subject the
 * issuer's subject plus one CN, inside its validity period.  The DN is the
 * end-entity's, in RFC 2253 order ("CN=John Doe,OU=Users,DC=test") or, with
 * legacy_dn, mod_ssl's legacy "/DC=test/OU=Users/CN=John Doe", with proxy
 * CNs stripped as Rucio's strip_x509_proxy_attributes.  The DN maps to an
 * account through the catalog's x509 identities.
 * /auth/validate answers the token's record as Rucio's Python repr.
 */
#include "server.h"

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NBUCKET 4096

struct tok {
	struct tok *next;
	char *token;
	char account[CAT_ACCOUNT_MAX + 1];
	char *identity;
	int64_t expires;
};

static pthread_mutex_t tok_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tok *buckets[NBUCKET];
static gnutls_x509_trust_list_t trust_list;

static unsigned hash(const char *s)
{
	unsigned h = 2166136261u;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return h % NBUCKET;
}

void srv_auth_init(void) {}

void srv_auth_set_trust(void *t)
{
	trust_list = t;
}

void srv_auth_shutdown(void)
{
	pthread_mutex_lock(&tok_lock);
	for (int i = 0; i < NBUCKET; i++) {
		while (buckets[i]) {
			struct tok *t = buckets[i];

			buckets[i] = t->next;
			free(t->token);
			free(t->identity);
			free(t);
		}
	}
	pthread_mutex_unlock(&tok_lock);
}

void srv_token_issue(const char *account, const char *identity, const char *appid,
		     int lifetime, char *out, size_t n, int64_t *expires)
{
	char hex[33];
	struct tok *t = dm_xcalloc(1, sizeof(*t));
	int64_t now = dm_now();
	unsigned h;

	dm_uuid32(hex);
	snprintf(out, n, "%s-%s-%s-%s", account, identity, appid, hex);
	t->token = dm_xstrdup(out);
	snprintf(t->account, sizeof(t->account), "%s", account);
	t->identity = dm_xstrdup(identity);
	t->expires = now + lifetime;
	*expires = t->expires;
	h = hash(out);
	pthread_mutex_lock(&tok_lock);
	/* drop expired tokens of this bucket while here */
	for (struct tok **pp = &buckets[h]; *pp;) {
		if ((*pp)->expires <= now) {
			struct tok *d = *pp;

			*pp = d->next;
			free(d->token);
			free(d->identity);
			free(d);
		} else {
			pp = &(*pp)->next;
		}
	}
	t->next = buckets[h];
	buckets[h] = t;
	pthread_mutex_unlock(&tok_lock);
}

int srv_token_check(const char *token, char account[CAT_ACCOUNT_MAX + 1], char *identity,
		    size_t idn, int64_t *expires)
{
	int rc = -1;

	if (!token)
		return -1;
	pthread_mutex_lock(&tok_lock);
	for (struct tok *t = buckets[hash(token)]; t; t = t->next) {
		if (!strcmp(t->token, token)) {
			if (t->expires > dm_now()) {
				snprintf(account, CAT_ACCOUNT_MAX + 1, "%s", t->account);
				if (identity)
					snprintf(identity, idn, "%s", t->identity);
				if (expires)
					*expires = t->expires;
				rc = 0;
			}
			break;
		}
	}
	pthread_mutex_unlock(&tok_lock);
	return rc;
}

void srv_token_revoke(const char *token)
{
	if (!token)
		return;
	pthread_mutex_lock(&tok_lock);
	for (struct tok **pp = &buckets[hash(token)]; *pp; pp = &(*pp)->next) {
		if (!strcmp((*pp)->token, token)) {
			struct tok *d = *pp;

			*pp = d->next;
			free(d->token);
			free(d->identity);
			free(d);
			break;
		}
	}
	pthread_mutex_unlock(&tok_lock);
}

int srv_authenticate(struct srv_req *r)
{
	if (srv_token_check(srv_header(r, "X-Rucio-Auth-Token"), r->account, NULL, 0, NULL)) {
		r->account[0] = 0;
		srv_error(r, "CannotAuthenticate", "Cannot authenticate with given credentials");
		return -1;
	}
	return 0;
}

/* ---- X.509 ---- */

/* Rucio's strip_x509_proxy_attributes: drop trailing "CN=proxy",
 * "CN=limited proxy" and numeric CNs (RFC 3820), in either format. */
static int proxy_cn(const char *v, size_t n)
{
	if ((n == 5 && !strncmp(v, "proxy", 5)) || (n == 13 && !strncmp(v, "limited proxy", 13)))
		return 1;
	if (!n)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (v[i] < '0' || v[i] > '9')
			return 0;
	return 1;
}

void srv_strip_proxy_cns(char *dn)
{
	if (dn[0] == '/') { /* legacy: proxy CNs at the end */
		for (;;) {
			char *l = strrchr(dn, '/');

			if (!l || l == dn || strncmp(l, "/CN=", 4) || !proxy_cn(l + 4, strlen(l + 4)))
				return;
			*l = 0;
		}
	}
	/* RFC 2253: proxy CNs at the front */
	for (;;) {
		char *c;
		size_t n;

		if (strncmp(dn, "CN=", 3))
			return;
		c = strchr(dn, ',');
		if (!c)
			return;
		n = (size_t)(c - dn - 3);
		if (!proxy_cn(dn + 3, n))
			return;
		memmove(dn, c + 1, strlen(c + 1) + 1);
	}
}

/* DN of a certificate in the configured format. */
static int cert_dn(gnutls_x509_crt_t crt, int legacy, char *out, size_t n)
{
	gnutls_datum_t d = { 0 };

	if (!legacy) {
		if (gnutls_x509_crt_get_dn3(crt, &d, 0) < 0)
			return -1;
		snprintf(out, n, "%.*s", (int)d.size, (char *)d.data);
		gnutls_free(d.data);
		return 0;
	}
	{
		gnutls_x509_dn_t dn;
		int irdn = 0;
		size_t o = 0;

		if (gnutls_x509_crt_get_subject(crt, &dn) < 0)
			return -1;
		out[0] = 0;
		for (;; irdn++) {
			gnutls_x509_ava_st ava;
			const char *nm;
			int r = gnutls_x509_dn_get_rdn_ava(dn, irdn, 0, &ava);

			if (r < 0)
				break;
			nm = gnutls_x509_dn_oid_name((const char *)ava.oid.data, GNUTLS_X509_DN_OID_RETURN_OID);
			o += (size_t)snprintf(out + o, o < n ? n - o : 0, "/%s=%.*s", nm ? nm : "?",
					      (int)ava.value.size, (char *)ava.value.data);
			if (o >= n)
				return -1;
		}
		return 0;
	}
}

static int dn_parent_of(gnutls_x509_crt_t proxy, gnutls_x509_crt_t issuer)
{
	char ps[2048], is[2048];
	size_t pn = sizeof(ps), in = sizeof(is);

	if (gnutls_x509_crt_get_dn(proxy, ps, &pn) < 0 || gnutls_x509_crt_get_dn(issuer, is, &in) < 0)
		return 0;
	/* forward order: the proxy's is the issuer's plus ",CN=..." */
	return pn > in && !strncmp(ps, is, in) && !strncmp(ps + in, ",CN=", 4) &&
	       !strchr(ps + in + 4, ',');
}

int srv_x509_dn(struct srv_req *r, int allow_proxy, char *dn, size_t n, struct dm_err *err)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	gnutls_session_t sess;
	const gnutls_datum_t *certs;
	unsigned ncert = 0, ee = 0, status = 0;
	gnutls_x509_crt_t crt[16];
	int rc = -1;
	time_t now = time(NULL);

	if (!ci || !ci->tls_session || !trust_list) {
		dm_seterr(err, DM_EPERM, "CannotAuthenticate", "Cannot get DN");
		return -1;
	}
	sess = ci->tls_session;
	certs = gnutls_certificate_get_peers(sess, &ncert);
	if (!certs || !ncert) {
		dm_seterr(err, DM_EPERM, "CannotAuthenticate", "Cannot get DN");
		return -1;
	}
	if (ncert > DM_ARRAY_SIZE(crt))
		ncert = DM_ARRAY_SIZE(crt);
	for (unsigned i = 0; i < ncert; i++) {
		gnutls_x509_crt_init(&crt[i]);
		if (gnutls_x509_crt_import(crt[i], &certs[i], GNUTLS_X509_FMT_DER) < 0) {
			for (unsigned j = 0; j <= i; j++)
				gnutls_x509_crt_deinit(crt[j]);
			dm_seterr(err, DM_EPERM, "CannotAuthenticate", "Cannot get DN: unreadable certificate");
			return -1;
		}
	}
	/* proxies first, then the end-entity certificate */
	while (ee < ncert && gnutls_x509_crt_get_proxy(crt[ee], NULL, NULL, NULL, NULL, NULL) >= 0)
		ee++;
	if (ee == ncert) {
		dm_seterr(err, DM_EPERM, "CannotAuthenticate", "Cannot get DN: no end-entity certificate");
		goto out;
	}
	if (ee && !allow_proxy) {
		dm_seterr(err, DM_EPERM, "CannotAuthenticate",
			  "Cannot authenticate: a proxy certificate needs /auth/x509_proxy");
		goto out;
	}
	if (gnutls_x509_trust_list_verify_crt(trust_list, crt + ee, ncert - ee, 0, &status, NULL) < 0 ||
	    status) {
		dm_seterr(err, DM_EPERM, "CannotAuthenticate",
			  "Cannot authenticate: the certificate is not signed by a trusted CA (status 0x%x)", status);
		goto out;
	}
	for (unsigned i = ee; i-- > 0;) {
		unsigned st = 0;

		if (gnutls_x509_crt_verify(crt[i], &crt[i + 1], 1, GNUTLS_VERIFY_DISABLE_CA_SIGN, &st) < 0 ||
		    st || !dn_parent_of(crt[i], crt[i + 1]) ||
		    gnutls_x509_crt_get_activation_time(crt[i]) > now ||
		    gnutls_x509_crt_get_expiration_time(crt[i]) < now) {
			dm_seterr(err, DM_EPERM, "CannotAuthenticate",
				  "Cannot authenticate: invalid proxy certificate %u of the chain", i);
			goto out;
		}
	}
	if (cert_dn(crt[ee], srv_legacy_dn(r), dn, n)) {
		dm_seterr(err, DM_EPERM, "CannotAuthenticate", "Cannot get DN");
		goto out;
	}
	srv_strip_proxy_cns(dn);
	rc = 0;
out:
	for (unsigned i = 0; i < ncert; i++)
		gnutls_x509_crt_deinit(crt[i]);
	return rc;
}

/* ---- endpoints ---- */

static void token_headers(struct srv_req *r, const char *token, int64_t exp, const char *account)
{
	char ts[40];

	dm_fmt_time(exp, ts);
	if (account)
		srv_add_header(r, "X-Rucio-Auth-Account", account);
	srv_add_header(r, "X-Rucio-Auth-Token", token);
	srv_add_header(r, "X-Rucio-Auth-Token-Expires", ts);
	srv_add_header(r, "Access-Control-Expose-Headers",
		       "X-Rucio-Auth-Token, X-Rucio-Auth-Account, X-Rucio-Auth-Accounts");
	srv_add_header(r, "Cache-Control", "no-cache, no-store, max-age=0, must-revalidate");
}

static int appid_ok(const char *s)
{
	for (; *s; s++)
		if (*s == '\r' || *s == '\n' || (unsigned char)*s < 0x20)
			return 0;
	return 1;
}

int srv_login_userpass(struct srv_req *r, const char *user, const char *pw, const char *want,
		       const char *appid, char *token, size_t tn, int64_t *exp,
		       char account[CAT_ACCOUNT_MAX + 1], struct dm_err *err)
{
	struct cat_db *db;

	if (!user || !pw) {
		dm_seterr(err, DM_EPERM, "CannotAuthenticate",
			  "Cannot authenticate without passing all required arguments");
		return -1;
	}
	if (!appid || !*appid)
		appid = "unknown";
	if (!appid_ok(appid) || strlen(appid) > 64 || strlen(user) > 255) {
		dm_seterr(err, DM_EPERM, "CannotAuthenticate", "Cannot authenticate with given credentials");
		return -1;
	}
	db = srv_db(r);
	if (!db) {
		dm_seterr(err, DM_AGAIN, "DatabaseException", "too many requests: no catalog connection free");
		return -1;
	}
	if (cat_identity_check_userpass(db, user, pw, account)) {
		dm_seterr(err, DM_EPERM, "IdentityNotFound",
			  "Cannot authenticate. Username/Password pair does not exist.");
		return -1;
	}
	if (want && *want && strcmp(want, account)) {
		dm_seterr(err, DM_EPERM, "CannotAuthenticate",
			  "Cannot authenticate to account %s with given credentials", want);
		return -1;
	}
	srv_token_issue(account, user, appid, srv_token_lifetime(r), token, tn, exp);
	return 0;
}

static int auth_userpass(struct srv_req *r)
{
	char account[CAT_ACCOUNT_MAX + 1], token[1024];
	struct dm_err err = { 0 };
	int64_t exp;

	if (srv_login_userpass(r, srv_header(r, "X-Rucio-Username"), srv_header(r, "X-Rucio-Password"),
			       srv_header(r, "X-Rucio-Account"), srv_header(r, "X-Rucio-AppID"), token,
			       sizeof(token), &exp, account, &err))
		return srv_err_error(r, &err);
	snprintf(r->account, sizeof(r->account), "%s", account);
	token_headers(r, token, exp, account);
	return srv_reply(r, 200, "application/octet-stream", "", 0);
}

int srv_login_x509(struct srv_req *r, int proxy, const char *want, const char *appid, char *token,
		   size_t tn, int64_t *exp, char account[CAT_ACCOUNT_MAX + 1], struct dm_err *err)
{
	char dn[2048];
	struct cat_db *db;

	if (!appid || !*appid)
		appid = "unknown";
	if (!appid_ok(appid) || strlen(appid) > 64) {
		dm_seterr(err, DM_EPERM, "CannotAuthenticate", "Cannot authenticate with given credentials");
		return -1;
	}
	if (srv_x509_dn(r, proxy, dn, sizeof(dn), err))
		return -1;
	db = srv_db(r);
	if (!db) {
		dm_seterr(err, DM_AGAIN, "DatabaseException", "too many requests: no catalog connection free");
		return -1;
	}
	if (cat_identity_x509_account(db, dn, want && *want ? want : NULL, account)) {
		if (want && *want)
			dm_seterr(err, DM_EPERM, "CannotAuthenticate",
				  "Cannot authenticate to account %s with given credentials", want);
		else
			dm_seterr(err, DM_EPERM, "CannotAuthenticate",
				  "Cannot authenticate with given credentials (DN %s)", dn);
		return -1;
	}
	srv_token_issue(account, dn, appid, srv_token_lifetime(r), token, tn, exp);
	return 0;
}

static int auth_x509(struct srv_req *r, int proxy)
{
	char account[CAT_ACCOUNT_MAX + 1], token[4096];
	struct dm_err err = { 0 };
	int64_t exp;

	if (srv_login_x509(r, proxy, srv_header(r, "X-Rucio-Account"), srv_header(r, "X-Rucio-AppID"),
			   token, sizeof(token), &exp, account, &err))
		return srv_err_error(r, &err);
	snprintf(r->account, sizeof(r->account), "%s", account);
	token_headers(r, token, exp, NULL);
	return srv_reply(r, 200, "application/octet-stream", "", 0);
}

static int auth_validate(struct srv_req *r)
{
	const char *tok = srv_header(r, "X-Rucio-Auth-Token");
	char identity[2048];
	int64_t exp;
	struct tm tm;
	time_t t;
	struct dm_buf b = DM_BUF_INIT;
	int rc;

	if (srv_token_check(tok, r->account, identity, sizeof(identity), &exp)) {
		r->account[0] = 0;
		return srv_error(r, "CannotAuthenticate", "Cannot authenticate with given credentials");
	}
	t = (time_t)exp;
	gmtime_r(&t, &tm);
	dm_buf_addf(&b, "{'account': '%s', 'identity': '%s', 'lifetime': datetime.datetime(%d, %d, %d, %d, %d, %d), "
		    "'audience': None, 'authz_scope': None, 'vo': 'def'}",
		    r->account, identity, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		    tm.tm_min, tm.tm_sec);
	rc = srv_reply(r, 200, "application/octet-stream", b.s, b.len);
	dm_buf_release(&b);
	return rc;
}

int srv_auth_endpoint(struct srv_req *r, const char *sub)
{
	if (strcmp(r->method, "GET") && strcmp(r->method, "OPTIONS"))
		return srv_error(r, "MethodNotAllowed", "Method %s not allowed on /auth/%s", r->method, sub);
	if (!strcmp(sub, "userpass"))
		return auth_userpass(r);
	if (!strcmp(sub, "x509"))
		return auth_x509(r, 0);
	if (!strcmp(sub, "x509_proxy"))
		return auth_x509(r, 1);
	if (!strcmp(sub, "validate"))
		return auth_validate(r);
	return srv_error_status(r, 404, "UnsupportedOperation", "Authentication method /auth/%s is not supported", sub);
}
