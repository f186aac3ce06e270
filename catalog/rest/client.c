/* SPDX-License-Identifier: Apache-2.0 */
/*
 * client.c - libcurl + jansson client of Rucio's REST API (client.h says
 * what it promises: auth, token renewal, deadlines, errors, streams).
 */
#include "client.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define REST_BODY_MAX (64u << 20) /* a whole (non-stream) body */
#define REST_ERRBODY_MAX (64u << 10)
#define REST_LINE_MAX (16u << 20)
#define REST_NEST_MAX 4

struct rest_client {
	struct rest_config cfg;
	/* one curl handle per nesting level: a listing's callback may make
	 * another call on the same client while the stream is open */
	CURL *h[REST_NEST_MAX];
	int depth;
	char *token;
	char *auth_account;  /* X-Rucio-Auth-Account, or set by whoami */
	struct rest_health *health; /* shared by the process's clients of this host */
	uint64_t requests;
	struct dm_err last;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

static double now_mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Whether a server is reachable is one fact per process, not per handle:
 * the mount's threads and per-user handles each hold a client, and once one
 * of them found the server down the others fail fast too (and report it in
 * cat_cache_stats), until one succeeds after the back-off. */
#define REST_HOSTS_MAX 16
struct rest_health {
	char host[512];
	double down_until; /* fail fast until then */
	double backoff;    /* current back-off, seconds */
	int down;
};
static struct rest_health health_table[REST_HOSTS_MAX + 1]; /* the last: overflow, shared */
static pthread_mutex_t health_lock = PTHREAD_MUTEX_INITIALIZER;

static struct rest_health *health_of(const char *host)
{
	struct rest_health *h = &health_table[REST_HOSTS_MAX];

	pthread_mutex_lock(&health_lock);
	for (int i = 0; i < REST_HOSTS_MAX; i++) {
		if (!health_table[i].host[0]) {
			dm_strlcpy(health_table[i].host, host, sizeof health_table[i].host);
			h = &health_table[i];
			break;
		}
		if (!strcmp(health_table[i].host, host)) {
			h = &health_table[i];
			break;
		}
	}
	pthread_mutex_unlock(&health_lock);
	return h;
}

struct rest_client *rest_client_new(const struct rest_config *cfg)
{
	struct rest_client *c = dm_xcalloc(1, sizeof *c);

	pthread_once(&curl_once, curl_init_once);
	rest_config_init(&c->cfg);
	c->cfg.request_retries = cfg->request_retries;
	c->cfg.timeout = cfg->timeout;
	dm_strlcpy(c->cfg.origin, cfg->origin, sizeof c->cfg.origin);
#define CP(f) rest_config_set(&c->cfg.f, cfg->f)
	CP(rucio_host); CP(auth_host); CP(auth_type); CP(username); CP(password); CP(account);
	CP(ca_cert); CP(client_cert); CP(client_key); CP(client_x509_proxy); CP(auth_token_file);
	CP(vo);
#undef CP
	if (!c->cfg.auth_host)
		rest_config_set(&c->cfg.auth_host, c->cfg.rucio_host);
	return c;
}

void rest_client_free(struct rest_client *c)
{
	if (!c)
		return;
	for (int i = 0; i < REST_NEST_MAX; i++)
		if (c->h[i])
			curl_easy_cleanup(c->h[i]);
	rest_config_free(&c->cfg);
	free(c->token);
	free(c->auth_account);
	free(c);
}

const struct rest_config *rest_client_config(const struct rest_client *c)
{
	return &c->cfg;
}

void rest_client_set_creds(struct rest_client *c, const char *account, const char *x509_proxy,
			   const char *client_cert, const char *client_key, const char *token_file)
{
	if (account || x509_proxy || client_cert || token_file) {
		/* another identity without an account acts as that identity's
		 * default account (the server picks it), not as rucio.cfg's */
		rest_config_set(&c->cfg.account, account);
		rest_config_set(&c->auth_account, NULL);
	}
	if (x509_proxy) {
		rest_config_set(&c->cfg.client_x509_proxy, x509_proxy);
		rest_config_set(&c->cfg.auth_type, "x509_proxy");
	}
	if (client_cert) {
		rest_config_set(&c->cfg.client_cert, client_cert);
		rest_config_set(&c->cfg.client_key, client_key ? client_key : client_cert);
		if (!x509_proxy)
			rest_config_set(&c->cfg.auth_type, "x509");
	}
	if (token_file) {
		rest_config_set(&c->cfg.auth_token_file, token_file);
		rest_config_set(&c->cfg.auth_type, "token");
	}
	rest_config_set(&c->token, NULL);
}

const char *rest_client_account(const struct rest_client *c)
{
	return c->cfg.account ? c->cfg.account : c->auth_account;
}

void rest_client_set_account(struct rest_client *c, const char *account)
{
	rest_config_set(&c->auth_account, account);
}

int rest_client_reachable(const struct rest_client *c)
{
	struct rest_health *h = c->health ? c->health
				  : health_of(c->cfg.rucio_host ? c->cfg.rucio_host : "");
	int down;

	pthread_mutex_lock(&health_lock);
	down = h->down;
	pthread_mutex_unlock(&health_lock);
	return !down;
}

const struct dm_err *rest_client_last_error(const struct rest_client *c)
{
	return &c->last;
}

uint64_t rest_client_requests(const struct rest_client *c)
{
	return c->requests;
}

void rest_escape(struct dm_buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
		    ch == '-' || ch == '.' || ch == '_' || ch == '~') {
			dm_buf_addc(b, (char)ch);
		} else {
			dm_buf_addc(b, '%');
			dm_buf_addc(b, hex[ch >> 4]);
			dm_buf_addc(b, hex[ch & 15]);
		}
	}
}

enum dm_status rest_status_of_class(const char *cls, int http)
{
	static const struct { const char *cls; enum dm_status st; } map[] = {
		{ "AccessDenied", DM_EPERM }, { "CannotAuthenticate", DM_EPERM },
		{ "IdentityNotFound", DM_EPERM }, { "ScopeAccessDenied", DM_EPERM },
		{ "RSEWriteBlocked", DM_EPERM }, { "UnsupportedKeyType", DM_EPERM },
		{ "Duplicate", DM_EEXIST }, { "DuplicateRule", DM_EEXIST },
		{ "DataIdentifierAlreadyExists", DM_EEXIST }, { "FileAlreadyExists", DM_EEXIST },
		{ "DuplicateContent", DM_EEXIST }, { "RSEAlreadyExists", DM_EEXIST },
		{ "FileConsistencyMismatch", DM_ECONFLICT }, { "ReplicaIsLocked", DM_ECONFLICT },
		{ "UnsupportedOperation", DM_ENOTSUP }, { "RSEProtocolNotSupported", DM_ENOTSUP },
		{ "InsufficientAccountLimit", DM_EQUOTA }, { "RSEOverQuota", DM_EQUOTA },
		{ "ResourceTemporaryUnavailable", DM_AGAIN }, { "ServerOverloaded", DM_AGAIN },
		{ "DatabaseException", DM_EIO }, { "RucioException", DM_EINTERNAL },
	};
	size_t n = strlen(cls);

	for (size_t i = 0; i < DM_ARRAY_SIZE(map); i++)
		if (!strcmp(map[i].cls, cls))
			return map[i].st;
	if (n > 8 && !strcmp(cls + n - 8, "NotFound"))
		return DM_ENOENT;
	if (!strncmp(cls, "Invalid", 7) || !strncmp(cls, "Insufficient", 12) ||
	    !strcmp(cls, "InputValidationError") || !strcmp(cls, "KeyError") ||
	    !strcmp(cls, "ValueError") || !strcmp(cls, "TypeError") ||
	    !strcmp(cls, "StagingAreaRuleRequiresLifetime"))
		return DM_EINVAL;
	switch (http) {
	case 400: return DM_EINVAL;
	case 401: case 403: return DM_EPERM;
	case 404: return DM_ENOENT;
	case 409: return DM_ECONFLICT;
	case 503: return DM_AGAIN;
	default: return DM_EIO;
	}
}

/* ---- one HTTP exchange ---- */
struct xfer {
	struct rest_client *c;
	CURL *h;
	struct rest_req *r;
	int is_auth;
	long status;
	int decided;       /* the answer's status/type seen */
	int mode;          /* 0 discard, 1 stream lines, 2 accumulate */
	struct dm_buf body;
	size_t body_max;
	struct rest_lines lines;
	char ctype[128];
	char exc_class[64];
	char exc_msg[1024];
	char tok[512];
	char tok_account[64];
	uint64_t got;      /* body bytes */
};

static void hdr_value(const char *line, size_t n, char *out, size_t outn)
{
	const char *colon = memchr(line, ':', n), *end = line + n;
	size_t len;

	if (!colon)
		return;
	colon++;
	while (colon < end && (*colon == ' ' || *colon == '\t'))
		colon++;
	while (end > colon && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
		end--;
	len = (size_t)(end - colon);
	if (len >= outn)
		len = outn - 1;
	memcpy(out, colon, len);
	out[len] = 0;
}

static int hdr_is(const char *line, size_t n, const char *name)
{
	size_t k = strlen(name);
	return n > k && line[k] == ':' && !strncasecmp(line, name, k);
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *ud)
{
	struct xfer *x = ud;
	size_t n = size * nmemb;

	if (n >= 5 && !memcmp(p, "HTTP/", 5)) { /* a new answer (after 100 Continue) */
		x->ctype[0] = x->exc_class[0] = x->exc_msg[0] = x->tok[0] = x->tok_account[0] = 0;
		x->r->location[0] = 0;
	} else if (hdr_is(p, n, "Content-Type")) {
		hdr_value(p, n, x->ctype, sizeof x->ctype);
	} else if (hdr_is(p, n, "ExceptionClass")) {
		hdr_value(p, n, x->exc_class, sizeof x->exc_class);
	} else if (hdr_is(p, n, "ExceptionMessage")) {
		hdr_value(p, n, x->exc_msg, sizeof x->exc_msg);
	} else if (hdr_is(p, n, "X-Rucio-Auth-Token")) {
		hdr_value(p, n, x->tok, sizeof x->tok);
	} else if (hdr_is(p, n, "X-Rucio-Auth-Account")) {
		hdr_value(p, n, x->tok_account, sizeof x->tok_account);
	} else if (hdr_is(p, n, "Location")) {
		hdr_value(p, n, x->r->location, sizeof x->r->location);
	}
	return n;
}

static void decide(struct xfer *x)
{
	if (x->decided)
		return;
	x->decided = 1;
	curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &x->status);
	if (x->status < 200 || x->status >= 300 || x->is_auth) {
		x->mode = 2;
		x->body_max = REST_ERRBODY_MAX;
	} else if (x->r->rows && !strcmp(x->ctype, "application/x-json-stream")) {
		x->mode = 1;
	} else if (x->r->rows || x->r->json) {
		x->mode = 2;
		x->body_max = REST_BODY_MAX;
	} else {
		x->mode = 0;
	}
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
	struct xfer *x = ud;
	size_t n = size * nmemb;

	decide(x);
	x->got += n;
	if (x->mode == 1) {
		int r = rest_lines_feed(&x->lines, p, n);
		return r == 0 ? n : 0; /* 0 aborts the transfer */
	}
	if (x->mode == 2) {
		if (x->body.len + n > x->body_max) {
			if (x->body_max == REST_ERRBODY_MAX)
				return n; /* an error body: keep its start */
			return 0;
		}
		dm_buf_add(&x->body, p, n);
	}
	return n;
}

static struct rest_health *health(struct rest_client *c)
{
	if (!c->health)
		c->health = health_of(c->cfg.rucio_host ? c->cfg.rucio_host : "");
	return c->health;
}

/* Seconds left of the back-off, or 0 when a call may try the server. */
static double dead(struct rest_client *c)
{
	struct rest_health *h = health(c);
	double left;

	pthread_mutex_lock(&health_lock);
	left = h->down ? h->down_until - now_mono() : 0;
	pthread_mutex_unlock(&health_lock);
	return left > 0 ? left : 0;
}

static void mark_down(struct rest_client *c)
{
	struct rest_health *h = health(c);
	double now = now_mono();

	pthread_mutex_lock(&health_lock);
	/* calls that started before another one marked the server down do not
	 * double the back-off again */
	if (!h->down || now >= h->down_until) {
		h->backoff = h->down ? fmin(h->backoff * 2, 30) : 1;
		h->down = 1;
		h->down_until = now + h->backoff;
	}
	pthread_mutex_unlock(&health_lock);
}

static void mark_up(struct rest_client *c)
{
	struct rest_health *h = health(c);

	pthread_mutex_lock(&health_lock);
	h->down = 0;
	h->backoff = 0;
	pthread_mutex_unlock(&health_lock);
}

static enum dm_status record(struct rest_client *c, struct dm_err *err, enum dm_status st)
{
	if (st && err)
		c->last = *err;
	return st;
}

/* Read the token file (first line, trimmed). */
static enum dm_status read_token_file(struct rest_client *c, struct dm_err *err)
{
	char buf[8192];
	FILE *f = fopen(c->cfg.auth_token_file, "r");
	size_t n;

	if (!f)
		return dm_seterr(err, DM_EPERM, "CannotAuthenticate", "cannot read the token file %s: %s",
				 c->cfg.auth_token_file, strerror(errno));
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	buf[strcspn(buf, "\r\n")] = 0;
	{
		char *s = buf;
		while (*s == ' ' || *s == '\t')
			s++;
		if (!*s)
			return dm_seterr(err, DM_EPERM, "CannotAuthenticate", "the token file %s is empty",
					 c->cfg.auth_token_file);
		rest_config_set(&c->token, s);
	}
	return DM_OK;
}

static const char *auth_type(const struct rest_client *c)
{
	if (c->cfg.auth_type)
		return c->cfg.auth_type;
	if (c->cfg.auth_token_file)
		return "token";
	if (c->cfg.client_x509_proxy)
		return "x509_proxy";
	if (c->cfg.client_cert)
		return "x509";
	return "userpass";
}

/* Append the credential itself to key: the password, or the certificate's
 * or proxy's bytes (not their path: a proxy renewed in place for another
 * identity, or a changed password, must never find the old token).
 * -1 when it cannot be read (then nothing is cached). */
static int credential_key(const struct rest_client *c, const char *t, struct dm_buf *key)
{
	const char *file;
	char buf[8192];
	size_t got;
	FILE *f;

	if (!strcmp(t, "userpass")) {
		dm_buf_addf(key, "|%s|%s", c->cfg.username ? c->cfg.username : "",
			    c->cfg.password ? c->cfg.password : "");
		return 0;
	}
	file = !strcmp(t, "x509") ? c->cfg.client_cert : c->cfg.client_x509_proxy;
	if (!file || !(f = fopen(file, "r")))
		return -1;
	dm_buf_addf(key, "|%s|", file);
	while ((got = fread(buf, 1, sizeof buf, f)) > 0)
		dm_buf_add(key, buf, got);
	fclose(f);
	return 0;
}

/* The on-disk token cache: one 0600 file per host, credential and account
 * (named by a hash of them). */
static int token_cache_path(const struct rest_client *c, char *out, size_t n)
{
	const char *base = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	char dir[3072], hash[65];
	struct dm_buf key = DM_BUF_INIT;
	const char *t = auth_type(c);

	if (!strcmp(t, "token"))
		return -1;
	if (base && *base)
		snprintf(dir, sizeof dir, "%s/didfs", base);
	else if (home && *home)
		snprintf(dir, sizeof dir, "%s/.cache/didfs", home);
	else
		return -1;
	dm_buf_addf(&key, "%s|%s|%s|%s", c->cfg.auth_host, t, c->cfg.account ? c->cfg.account : "",
		    c->cfg.vo ? c->cfg.vo : "");
	if (credential_key(c, t, &key)) {
		dm_buf_release(&key);
		return -1;
	}
	dm_sha256_hex2("didfs-token-cache", 17, key.s, key.len, hash);
	hash[32] = 0;
	dm_buf_release(&key);
	mkdir(dir, 0700);
	snprintf(out, n, "%s/tokens", dir);
	mkdir(out, 0700);
	snprintf(out, n, "%s/tokens/%s", dir, hash);
	return 0;
}

static void token_cache_load(struct rest_client *c)
{
	char path[4096], buf[1024];
	struct stat sb;
	int fd;
	ssize_t n;

	if (token_cache_path(c, path, sizeof path))
		return;
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return;
	if (fstat(fd, &sb) || sb.st_uid != geteuid() || (sb.st_mode & 077)) {
		close(fd);
		return;
	}
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = 0;
	buf[strcspn(buf, "\r\n")] = 0;
	if (buf[0])
		rest_config_set(&c->token, buf);
}

static void token_cache_store(struct rest_client *c)
{
	char path[4096], tmp[4200];
	int fd;

	if (!c->token || token_cache_path(c, path, sizeof path))
		return;
	snprintf(tmp, sizeof tmp, "%s.%d", path, (int)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	if (write(fd, c->token, strlen(c->token)) == (ssize_t)strlen(c->token) && !close(fd)) {
		if (rename(tmp, path))
			unlink(tmp);
		return;
	}
	close(fd);
	unlink(tmp);
}

static void token_cache_drop(struct rest_client *c)
{
	char path[4096];

	if (!token_cache_path(c, path, sizeof path))
		unlink(path);
}

static enum dm_status exchange(struct rest_client *c, struct rest_req *r, int is_auth,
			       double deadline, struct dm_err *err);

static enum dm_status authenticate(struct rest_client *c, double deadline, struct dm_err *err)
{
	const char *t = auth_type(c);
	struct rest_req a = { .method = "GET" };
	enum dm_status rc;

	if (!strcmp(t, "token"))
		return read_token_file(c, err);
	if (!strcmp(t, "userpass")) {
		if (!c->cfg.username || !c->cfg.password)
			return dm_seterr(err, DM_EPERM, "CannotAuthenticate",
					 "auth_type userpass needs username and password (rucio.cfg [client]%s%s)",
					 c->cfg.origin[0] ? ", " : "", c->cfg.origin);
		a.path = "/auth/userpass";
	} else if (!strcmp(t, "x509")) {
		if (!c->cfg.client_cert)
			return dm_seterr(err, DM_EPERM, "CannotAuthenticate",
					 "auth_type x509 needs client_cert and client_key (rucio.cfg [client])");
		a.path = "/auth/x509";
	} else {
		if (!c->cfg.client_x509_proxy)
			return dm_seterr(err, DM_EPERM, "CannotAuthenticate",
					 "auth_type x509_proxy needs client_x509_proxy or $X509_USER_PROXY");
		a.path = "/auth/x509_proxy";
	}
	rc = exchange(c, &a, 1, deadline, err);
	if (rc == DM_OK)
		token_cache_store(c);
	return rc;
}

static const char *curl_what(CURLcode cc)
{
	switch (cc) {
	case CURLE_COULDNT_CONNECT: return "connection refused or no route";
	case CURLE_COULDNT_RESOLVE_HOST: return "host name not found";
	case CURLE_OPERATION_TIMEDOUT: return "timed out";
	case CURLE_GOT_NOTHING: return "the server closed the connection without an answer";
	case CURLE_SEND_ERROR: return "sending failed";
	case CURLE_RECV_ERROR: return "receiving failed";
	case CURLE_PARTIAL_FILE: return "the answer was cut off";
	default: return curl_easy_strerror(cc);
	}
}

static enum dm_status exchange(struct rest_client *c, struct rest_req *r, int is_auth,
			       double deadline, struct dm_err *err)
{
	const char *host = is_auth ? c->cfg.auth_host : c->cfg.rucio_host;
	struct curl_slist *hdrs = NULL;
	struct dm_buf url = DM_BUF_INIT, h = DM_BUF_INIT;
	char errbuf[CURL_ERROR_SIZE] = "";
	struct xfer x;
	const char *t = auth_type(c);
	double left = deadline - now_mono();
	long left_ms = left > 0.001 ? (long)(left * 1000) : 1;
	CURLcode cc;
	enum dm_status rc = DM_OK;
	CURL *eh;

	if (c->depth >= REST_NEST_MAX)
		return dm_seterr(err, DM_EINTERNAL, "RucioException",
				 "%s %s: REST calls nested %d deep inside listing callbacks", r->method,
				 r->path, c->depth);
	if (!c->h[c->depth] && !(c->h[c->depth] = curl_easy_init()))
		return dm_seterr(err, DM_ENOMEM, NULL, "curl_easy_init failed");
	eh = c->h[c->depth];
	memset(&x, 0, sizeof x);
	x.h = eh;
	x.c = c;
	x.r = r;
	x.is_auth = is_auth;
	dm_buf_init(&x.body, 0);
	rest_lines_init(&x.lines, REST_LINE_MAX, r->rows, r->ud);
	r->location[0] = 0;
	dm_buf_addf(&url, "%s%s", host, r->path);

	curl_easy_reset(eh);
	curl_easy_setopt(eh, CURLOPT_URL, url.s);
	curl_easy_setopt(eh, CURLOPT_NOSIGNAL, 1L);
	if (getenv("DIDFS_CURL_VERBOSE")) /* debugging aid: curl's trace on stderr */
		curl_easy_setopt(eh, CURLOPT_VERBOSE, 1L);
	curl_easy_setopt(eh, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(eh, CURLOPT_CONNECTTIMEOUT_MS, left_ms);
	if (!r->rows || is_auth)
		curl_easy_setopt(eh, CURLOPT_TIMEOUT_MS, left_ms);
	curl_easy_setopt(eh, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(eh, CURLOPT_LOW_SPEED_TIME, (long)fmax(1, ceil(c->cfg.timeout)));
	curl_easy_setopt(eh, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(eh, CURLOPT_PROTOCOLS_STR, "https,http");
	curl_easy_setopt(eh, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(eh, CURLOPT_USERAGENT, "didfs/" "0.1 (rucio-compatible)");
	curl_easy_setopt(eh, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(eh, CURLOPT_HEADERDATA, &x);
	curl_easy_setopt(eh, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(eh, CURLOPT_WRITEDATA, &x);
	if (c->cfg.ca_cert) {
		struct stat sb;
		if (!stat(c->cfg.ca_cert, &sb) && S_ISDIR(sb.st_mode))
			curl_easy_setopt(eh, CURLOPT_CAPATH, c->cfg.ca_cert);
		else
			curl_easy_setopt(eh, CURLOPT_CAINFO, c->cfg.ca_cert);
	} else {
		struct dm_cred_env ce;

		dm_cred_env(&ce);
		if (ce.ca_dir)
			curl_easy_setopt(eh, CURLOPT_CAPATH, ce.ca_dir);
	}
	if (!strcmp(t, "x509_proxy") && c->cfg.client_x509_proxy) {
		curl_easy_setopt(eh, CURLOPT_SSLCERT, c->cfg.client_x509_proxy);
		curl_easy_setopt(eh, CURLOPT_SSLKEY, c->cfg.client_x509_proxy);
	} else if (!strcmp(t, "x509") && c->cfg.client_cert) {
		curl_easy_setopt(eh, CURLOPT_SSLCERT, c->cfg.client_cert);
		curl_easy_setopt(eh, CURLOPT_SSLKEY, c->cfg.client_key ? c->cfg.client_key
									: c->cfg.client_cert);
	}
	hdrs = curl_slist_append(hdrs, "Expect:");
#define HDR(...) do { dm_buf_reset(&h); dm_buf_addf(&h, __VA_ARGS__); \
	hdrs = curl_slist_append(hdrs, h.s); } while (0)
	if (r->accept)
		HDR("Accept: %s", r->accept);
	if (c->cfg.vo)
		HDR("X-Rucio-VO: %s", c->cfg.vo);
	if (is_auth) {
		HDR("X-Rucio-AppID: didfs");
		if (c->cfg.account)
			HDR("X-Rucio-Account: %s", c->cfg.account);
		if (!strcmp(t, "userpass")) {
			HDR("X-Rucio-Username: %s", c->cfg.username);
			HDR("X-Rucio-Password: %s", c->cfg.password);
		}
	} else {
		if (c->cfg.account)
			HDR("X-Rucio-Account: %s", c->cfg.account);
		if (c->token)
			HDR("X-Rucio-Auth-Token: %s", c->token);
	}
#undef HDR
	curl_easy_setopt(eh, CURLOPT_HTTPHEADER, hdrs);
	if (!strcmp(r->method, "GET")) {
		curl_easy_setopt(eh, CURLOPT_HTTPGET, 1L);
	} else {
		curl_easy_setopt(eh, CURLOPT_CUSTOMREQUEST, r->method);
		curl_easy_setopt(eh, CURLOPT_POSTFIELDS, r->body ? r->body : "");
		curl_easy_setopt(eh, CURLOPT_POSTFIELDSIZE, (long)(r->body ? strlen(r->body) : 0));
	}
	if (getenv("DIDFS_CURL_VERBOSE") && r->body)
		fprintf(stderr, "* body: %s\n", r->body);
	c->requests++;
	c->depth++;
	cc = curl_easy_perform(eh);
	c->depth--;
	decide(&x);
	r->status = (int)x.status;
	r->nrows = x.lines.rows;

	if (cc == CURLE_WRITE_ERROR && x.lines.stopped) {
		cc = CURLE_OK; /* the caller had enough */
	}
	if (cc != CURLE_OK) {
		if (x.lines.err.code) {
			rc = dm_seterr(err, x.lines.err.code, x.lines.err.cls, "%s %s%s: %s", r->method,
				       host, r->path, x.lines.err.msg);
		} else if (cc == CURLE_WRITE_ERROR) {
			rc = dm_seterr(err, DM_EIO, "RucioException",
				       "%s %s%s: the answer is larger than %u MiB", r->method, host,
				       r->path, REST_BODY_MAX >> 20);
		} else if (cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_SSL_CACERT_BADFILE ||
			   cc == CURLE_SSL_CERTPROBLEM || cc == CURLE_SSL_CIPHER ||
			   cc == CURLE_SSL_ISSUER_ERROR ||
			   (cc == CURLE_SSL_CONNECT_ERROR && !strstr(errbuf, "reset") &&
			    !strstr(errbuf, "Connection") && !strstr(errbuf, "SSL_ERROR_SYSCALL"))) {
			rc = dm_seterr(err, DM_EIO, "RucioException",
				       "TLS with %s failed (ca_cert %s%s%s): %s", host,
				       c->cfg.ca_cert ? c->cfg.ca_cert : "(system default)",
				       strcmp(t, "userpass") && strcmp(t, "token") ? ", client certificate " : "",
				       !strcmp(t, "x509_proxy") ? c->cfg.client_x509_proxy
				       : !strcmp(t, "x509") ? c->cfg.client_cert : "",
				       errbuf[0] ? errbuf : curl_easy_strerror(cc));
		} else if (x.status >= 200 && x.got > 0) {
			/* the answer started and did not finish: cut off or stalled */
			rc = dm_seterr(err, DM_EIO, cc == CURLE_OPERATION_TIMEDOUT ? "ServerUnreachable"
				       : "RucioException",
				       "%s %s%s: the answer %s after %llu bytes (%llu rows): %s", r->method,
				       host, r->path, cc == CURLE_OPERATION_TIMEDOUT ? "stalled" :
				       "was cut off", (unsigned long long)x.got,
				       (unsigned long long)x.lines.rows, errbuf[0] ? errbuf : curl_what(cc));
			if (cc == CURLE_OPERATION_TIMEDOUT)
				mark_down(c);
		} else {
			rc = dm_seterr(err, DM_EIO, "ServerUnreachable", "cannot reach %s (%s %s): %s",
				       host, r->method, r->path, errbuf[0] ? errbuf : curl_what(cc));
			mark_down(c);
		}
		goto out;
	}
	mark_up(c);
	if (x.status >= 200 && x.status < 300) {
		if (is_auth) {
			if (!x.tok[0]) {
				rc = dm_seterr(err, DM_EPERM, "CannotAuthenticate",
					       "%s%s answered %ld without X-Rucio-Auth-Token", host, r->path,
					       x.status);
				goto out;
			}
			rest_config_set(&c->token, x.tok);
			if (x.tok_account[0])
				rest_config_set(&c->auth_account, x.tok_account);
		} else if (x.mode == 1) {
			if (rest_lines_finish(&x.lines))
				rc = dm_seterr(err, x.lines.err.code, x.lines.err.cls, "%s %s%s: %s",
					       r->method, host, r->path, x.lines.err.msg);
		} else if (x.mode == 2 && x.body.len) {
			json_error_t je;
			json_t *v = rest_json_loadb(x.body.s, x.body.len, &je);
			if (!v) {
				rc = dm_seterr(err, DM_EIO, "RucioException",
					       "%s %s%s: the answer (%s, %zu bytes) is not JSON: %s at"
					       " line %d", r->method, host, r->path,
					       x.ctype[0] ? x.ctype : "no Content-Type", x.body.len,
					       je.text, je.line);
			} else if (r->rows) {
				if (json_is_array(v)) {
					size_t i;
					json_t *e;
					json_array_foreach(v, i, e) {
						r->nrows++;
						if (r->rows(r->ud, e))
							break;
					}
				} else {
					r->nrows++;
					r->rows(r->ud, v);
				}
				json_decref(v);
			} else {
				*r->json = v;
			}
		} else if (r->json) {
			*r->json = NULL;
		}
	} else if (x.status >= 300 && x.status < 400) {
		/* the caller reads r->location (whoami) */
	} else {
		/* Rucio's error: the JSON body first, the headers second */
		char cls[64] = "", msg[1024] = "";
		json_t *v = x.body.len ? json_loadb(x.body.s, x.body.len, 0, NULL) : NULL;
		if (v && json_is_object(v)) {
			const char *k = json_string_value(json_object_get(v, "ExceptionClass"));
			const char *m = json_string_value(json_object_get(v, "ExceptionMessage"));
			if (k)
				dm_strlcpy(cls, k, sizeof cls);
			if (m)
				dm_strlcpy(msg, m, sizeof msg);
		}
		json_decref(v);
		if (!cls[0] && x.exc_class[0]) {
			dm_strlcpy(cls, x.exc_class, sizeof cls);
			dm_strlcpy(msg, x.exc_msg, sizeof msg);
		}
		if (cls[0]) {
			rc = dm_seterr(err, rest_status_of_class(cls, (int)x.status), cls, "%s", msg);
		} else {
			size_t show = x.body.len < 200 ? x.body.len : 200;
			for (size_t i = 0; i < show; i++)
				if ((unsigned char)x.body.s[i] < 32)
					x.body.s[i] = ' ';
			rc = dm_seterr(err, rest_status_of_class("", (int)x.status),
				       x.status == 401 ? "CannotAuthenticate" : x.status == 404 ? "NotFound"
				       : "RucioException",
				       "%s %s%s: HTTP %ld without Rucio's error fields%s%.*s", r->method, host,
				       r->path, x.status, show ? ": " : "", (int)show, x.body.s);
		}
	}
out:
	curl_slist_free_all(hdrs);
	dm_buf_release(&url);
	dm_buf_release(&h);
	dm_buf_release(&x.body);
	rest_lines_release(&x.lines);
	return rc;
}

enum dm_status rest_call(struct rest_client *c, struct rest_req *r, struct dm_err *err)
{
	double deadline = now_mono() + c->cfg.timeout;
	int renewed = 0, tries = 0;
	enum dm_status rc;
	double left;
	struct dm_err tmp;

	if (!err)
		err = &tmp;
	if (!c->cfg.rucio_host)
		return record(c, err, dm_seterr(err, DM_EINVAL, "InputValidationError",
						"no Rucio server: rucio_host in rucio.cfg or --catalog https://..."));
	if ((left = dead(c)) > 0)
		return record(c, err, dm_seterr(err, DM_EIO, "ServerUnreachable",
						"%s is unreachable (%s); not trying again for %.0f s",
						c->cfg.rucio_host,
						c->last.msg[0] ? c->last.msg : "seen by another call",
						left + 0.5));
	if (!c->token && strcmp(auth_type(c), "token"))
		token_cache_load(c);
	for (;;) {
		if (!c->token && (rc = authenticate(c, deadline, err)))
			return record(c, err, rc);
		rc = exchange(c, r, 0, deadline, err);
		if (rc && r->status == 401 && !renewed && r->nrows == 0) {
			/* expired or unknown token: authenticate once more */
			renewed = 1;
			rest_config_set(&c->token, NULL);
			token_cache_drop(c);
			continue;
		}
		if (rc && (r->status == 502 || r->status == 503 || r->status == 504) &&
		    tries < c->cfg.request_retries && r->nrows == 0) {
			double wait = 0.25 * (1 << tries);
			if (now_mono() + wait < deadline) {
				struct timespec ts = { (time_t)wait, (long)((wait - (time_t)wait) * 1e9) };
				tries++;
				nanosleep(&ts, NULL);
				continue;
			}
		}
		return record(c, err, rc);
	}
}
