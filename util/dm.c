/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dm.c - errors, string buffer, parsers, time, logging, checksums.
 * See dm.h for the conventions.  Checksums use libdeflate (adler32: SIMD,
 * ~15x zlib's rate, and every byte the mount serves goes through it) and
 * OpenSSL (md5, sha256, random bytes).
 */
#include "dm.h"
#include "dmcheck.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <libdeflate.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

char dm_buf_empty[1];

/* ---- errors ---- */

const char *dm_strerror(enum dm_status st)
{
	switch (st) {
	case DM_OK: return "success";
	case DM_EINVAL: return "invalid input";
	case DM_ENOENT: return "not found";
	case DM_EEXIST: return "already exists";
	case DM_EPERM: return "access denied";
	case DM_ECONFLICT: return "conflict";
	case DM_EQUOTA: return "quota exceeded";
	case DM_EIO: return "input/output error";
	case DM_ETIMEDOUT: return "timed out";
	case DM_ENOMEM: return "out of memory";
	case DM_ENOTSUP: return "not supported";
	case DM_AGAIN: return "try again";
	case DM_EINTERNAL: return "internal error";
	}
	return "unknown status";
}

const char *dm_status_class(enum dm_status st)
{
	switch (st) {
	case DM_OK: return "";
	case DM_EINVAL: return "InputValidationError";
	case DM_ENOENT: return "NotFound";
	case DM_EEXIST: return "Duplicate";
	case DM_EPERM: return "AccessDenied";
	case DM_ECONFLICT: return "UnsupportedOperation";
	case DM_EQUOTA: return "InsufficientAccountLimit";
	case DM_EIO: return "RucioException";
	case DM_ETIMEDOUT: return "ServiceUnavailable";
	case DM_ENOMEM: return "RucioException";
	case DM_ENOTSUP: return "UnsupportedOperation";
	case DM_AGAIN: return "ResourceTemporaryUnavailable";
	case DM_EINTERNAL: return "DatabaseException";
	}
	return "RucioException";
}

int dm_status_to_errno(enum dm_status st)
{
	switch (st) {
	case DM_OK: return 0;
	case DM_EINVAL: return EINVAL;
	case DM_ENOENT: return ENOENT;
	case DM_EEXIST: return EEXIST;
	case DM_EPERM: return EACCES;
	case DM_ECONFLICT: return EPERM;
	case DM_EQUOTA: return EDQUOT;
	case DM_ETIMEDOUT: return ETIMEDOUT;
	case DM_ENOMEM: return ENOMEM;
	case DM_ENOTSUP: return ENOTSUP;
	case DM_AGAIN: return EAGAIN;
	default: return EIO;
	}
}

enum dm_status dm_seterr(struct dm_err *err, enum dm_status st, const char *cls,
			 const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return st;
	err->code = st;
	dm_strlcpy(err->cls, cls ? cls : dm_status_class(st), sizeof(err->cls));
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return st;
}

void dm_err_clear(struct dm_err *err)
{
	if (!err)
		return;
	err->code = DM_OK;
	err->cls[0] = 0;
	err->msg[0] = 0;
}

/* ---- allocation ---- */

static void oom(void)
{
	fputs("didfs: out of memory\n", stderr);
	abort();
}

void *dm_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		oom();
	return p;
}

void *dm_xcalloc(size_t n, size_t m)
{
	void *p = calloc(n ? n : 1, m ? m : 1);
	if (!p)
		oom();
	return p;
}

void *dm_xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		oom();
	return p;
}

char *dm_xstrdup(const char *s)
{
	char *p = strdup(s ? s : "");
	if (!p)
		oom();
	return p;
}

/* ---- buffer ---- */

void dm_buf_init(struct dm_buf *b, size_t cap_max)
{
	b->s = dm_buf_empty;
	b->len = 0;
	b->alloc = 0;
	b->cap_max = cap_max;
}

void dm_buf_release(struct dm_buf *b)
{
	if (b->alloc)
		free(b->s);
	b->s = dm_buf_empty;
	b->len = 0;
	b->alloc = 0;
}

void dm_buf_reset(struct dm_buf *b)
{
	b->len = 0;
	if (b->alloc)
		b->s[0] = 0;
}

static int grow(struct dm_buf *b, size_t extra)
{
	size_t need = b->len + extra + 1, n;

	if (b->cap_max && need > b->cap_max + 1)
		return DM_ENOMEM;
	if (need <= b->alloc)
		return 0;
	n = b->alloc ? b->alloc : 64;
	while (n < need)
		n *= 2;
	if (b->alloc) {
		b->s = dm_xrealloc(b->s, n);
	} else {
		b->s = dm_xmalloc(n);
		b->s[0] = 0;
	}
	b->alloc = n;
	return 0;
}

int dm_buf_add(struct dm_buf *b, const void *p, size_t n)
{
	if (grow(b, n))
		return DM_ENOMEM;
	memcpy(b->s + b->len, p, n);
	b->len += n;
	b->s[b->len] = 0;
	return 0;
}

int dm_buf_adds(struct dm_buf *b, const char *s)
{
	return dm_buf_add(b, s, strlen(s));
}

int dm_buf_addc(struct dm_buf *b, char c)
{
	return dm_buf_add(b, &c, 1);
}

int dm_buf_vaddf(struct dm_buf *b, const char *fmt, va_list ap)
{
	va_list cp;
	int n;

	va_copy(cp, ap);
	n = vsnprintf(NULL, 0, fmt, cp);
	va_end(cp);
	if (n < 0)
		return DM_EINVAL;
	if (grow(b, (size_t)n))
		return DM_ENOMEM;
	vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return 0;
}

int dm_buf_addf(struct dm_buf *b, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = dm_buf_vaddf(b, fmt, ap);
	va_end(ap);
	return rc;
}

char *dm_buf_detach(struct dm_buf *b)
{
	char *s = b->alloc ? b->s : dm_xstrdup("");
	b->s = dm_buf_empty;
	b->len = 0;
	b->alloc = 0;
	return s;
}

/* ---- small helpers ---- */

size_t dm_strlcpy(char *dst, const char *src, size_t size)
{
	size_t n = strlen(src);

	if (size) {
		size_t c = n < size - 1 ? n : size - 1;
		memcpy(dst, src, c);
		dst[c] = 0;
	}
	return n;
}

int dm_parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || !*s || !isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end)
		return -1;
	*out = v;
	return 0;
}

int dm_parse_i64(const char *s, int64_t *out)
{
	char *end;
	long long v;

	if (!s || !*s)
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end || end == s)
		return -1;
	*out = v;
	return 0;
}

int dm_parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	uint64_t mul = 1;

	if (!s || !isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -1;
	switch (toupper((unsigned char)*end)) {
	case 0: break;
	case 'K': mul = 1ull << 10; end++; break;
	case 'M': mul = 1ull << 20; end++; break;
	case 'G': mul = 1ull << 30; end++; break;
	case 'T': mul = 1ull << 40; end++; break;
	default: return -1;
	}
	if (*end == 'i' || *end == 'B')
		end++;
	if (*end == 'B')
		end++;
	if (*end)
		return -1;
	if (v && mul > UINT64_MAX / v)
		return -1;
	*out = v * mul;
	return 0;
}

void dm_uuid32(char out[33])
{
	unsigned char b[16];
	static const char hx[] = "0123456789abcdef";

	if (dm_random_bytes(b, sizeof b))
		DM_BUG("no random bytes");
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	for (int i = 0; i < 16; i++) {
		out[2 * i] = hx[b[i] >> 4];
		out[2 * i + 1] = hx[b[i] & 15];
	}
	out[32] = 0;
}

int64_t dm_now(void)
{
	return (int64_t)time(NULL);
}

double dm_now_f(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void dm_fmt_time(int64_t t, char out[40])
{
	struct tm tm;
	time_t tt = (time_t)t;

	gmtime_r(&tt, &tm);
	strftime(out, 40, "%a, %d %b %Y %H:%M:%S UTC", &tm);
}

int dm_wildcard_match(const char *p, const char *s)
{
	const char *star = NULL, *ss = NULL;

	while (*s) {
		if (*p == '*') {
			star = p++;
			ss = s;
		} else if (*p == '?' || *p == *s) {
			p++;
			s++;
		} else if (star) {
			p = star + 1;
			s = ++ss;
		} else {
			return 0;
		}
	}
	while (*p == '*')
		p++;
	return *p == 0;
}

/* ---- checksums ---- */

uint32_t dm_adler32_update(uint32_t a, const void *p, size_t n)
{
	return libdeflate_adler32(a, p, n);
}

void dm_adler32_hex(uint32_t a, char out[9])
{
	snprintf(out, 9, "%08x", a);
}

int dm_is_hex(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!isxdigit((unsigned char)s[i]))
			return 0;
	return s[n] == 0;
}

struct dm_md5 {
	EVP_MD_CTX *ctx;
};

struct dm_md5 *dm_md5_new(void)
{
	struct dm_md5 *m = dm_xmalloc(sizeof *m);

	m->ctx = EVP_MD_CTX_new();
	if (!m->ctx || !EVP_DigestInit_ex(m->ctx, EVP_md5(), NULL))
		DM_BUG("md5 init failed");
	return m;
}

void dm_md5_update(struct dm_md5 *m, const void *p, size_t n)
{
	EVP_DigestUpdate(m->ctx, p, n);
}

static void hexify(const unsigned char *d, unsigned n, char *out)
{
	static const char hx[] = "0123456789abcdef";

	for (unsigned i = 0; i < n; i++) {
		out[2 * i] = hx[d[i] >> 4];
		out[2 * i + 1] = hx[d[i] & 15];
	}
	out[2 * n] = 0;
}

void dm_md5_final_hex(struct dm_md5 *m, char out[33])
{
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned n = 0;

	EVP_DigestFinal_ex(m->ctx, d, &n);
	hexify(d, n, out);
	EVP_MD_CTX_free(m->ctx);
	free(m);
}

void dm_md5_hex(const void *p, size_t n, char out[33])
{
	struct dm_md5 *m = dm_md5_new();

	dm_md5_update(m, p, n);
	dm_md5_final_hex(m, out);
}

void dm_sha256_hex2(const void *a, size_t an, const void *b, size_t bn, char out[65])
{
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned n = 0;
	EVP_MD_CTX *c = EVP_MD_CTX_new();

	EVP_DigestInit_ex(c, EVP_sha256(), NULL);
	EVP_DigestUpdate(c, a, an);
	EVP_DigestUpdate(c, b, bn);
	EVP_DigestFinal_ex(c, d, &n);
	EVP_MD_CTX_free(c);
	hexify(d, n, out);
}

int dm_random_bytes(void *p, size_t n)
{
	return RAND_bytes(p, (int)n) == 1 ? 0 : -1;
}

enum dm_status dm_file_checksums(const char *path, uint64_t *bytes, char adler[9],
				 char md5[33], struct dm_err *err)
{
	enum { BUFSZ = 1 << 20 };
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	unsigned char *buf;
	uint32_t a = DM_ADLER32_INIT;
	struct dm_md5 *m = NULL;
	uint64_t total = 0;
	ssize_t r;

	if (fd < 0)
		return dm_seterr(err, errno == ENOENT ? DM_ENOENT : DM_EIO,
				 errno == ENOENT ? "SourceNotFound" : NULL,
				 "cannot open '%s': %s", path, strerror(errno));
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	buf = dm_xmalloc(BUFSZ);
	if (md5)
		m = dm_md5_new();
	while ((r = read(fd, buf, BUFSZ)) > 0) {
		a = dm_adler32_update(a, buf, (size_t)r);
		if (m)
			dm_md5_update(m, buf, (size_t)r);
		total += (uint64_t)r;
	}
	free(buf);
	close(fd);
	if (r < 0) {
		if (m) {
			char tmp[33];
			dm_md5_final_hex(m, tmp);
		}
		return dm_seterr(err, DM_EIO, NULL, "read error on '%s'", path);
	}
	if (bytes)
		*bytes = total;
	if (adler)
		dm_adler32_hex(a, adler);
	if (m)
		dm_md5_final_hex(m, md5);
	return DM_OK;
}

/* ---- logging ---- */

static enum dm_log_level log_level = DM_LOG_INFO;
static enum dm_log_format log_format = DM_LOG_TEXT;
static FILE *log_file;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static __thread char log_rid[80];

void dm_log_set_level(enum dm_log_level l)
{
	log_level = l;
}

void dm_log_set_file(FILE *f)
{
	log_file = f;
}

void dm_log_set_format(enum dm_log_format f)
{
	log_format = f;
}

enum dm_log_format dm_log_get_format(void)
{
	return log_format;
}

int dm_log_format_parse(const char *s, enum dm_log_format *f)
{
	if (!strcmp(s, "text"))
		*f = DM_LOG_TEXT;
	else if (!strcmp(s, "kv"))
		*f = DM_LOG_KV;
	else if (!strcmp(s, "json"))
		*f = DM_LOG_JSON;
	else
		return -1;
	return 0;
}

void dm_log_set_request_id(const char *id)
{
	dm_strlcpy(log_rid, id ? id : "", sizeof log_rid);
}

const char *dm_log_request_id(void)
{
	return log_rid;
}

/* Length of the well-formed UTF-8 sequence at s (1..4), 0 if there is none. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	size_t k = s[0] < 0x80 ? 1 : s[0] >= 0xc2 && s[0] < 0xe0 ? 2 : s[0] >= 0xe0 && s[0] < 0xf0 ? 3
		 : s[0] >= 0xf0 && s[0] < 0xf5 ? 4 : 0;

	if (!k || k > n || !dm_utf8_valid((const char *)s, k))
		return 0;
	return k;
}

void dm_json_quote(struct dm_buf *out, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s);

	dm_buf_addc(out, '"');
	while (n) {
		size_t k;

		if (*p == '"' || *p == '\\') {
			dm_buf_addc(out, '\\');
			dm_buf_addc(out, (char)*p);
			k = 1;
		} else if (*p == '\n') {
			dm_buf_adds(out, "\\n");
			k = 1;
		} else if (*p == '\t') {
			dm_buf_adds(out, "\\t");
			k = 1;
		} else if (*p == '\r') {
			dm_buf_adds(out, "\\r");
			k = 1;
		} else if (*p < 0x20 || *p == 0x7f) {
			dm_buf_addf(out, "\\u%04x", *p);
			k = 1;
		} else if ((k = utf8_seq(p, n)) != 0) {
			dm_buf_add(out, p, k);
		} else {
			dm_buf_adds(out, "\\ufffd");
			k = 1;
		}
		p += k;
		n -= k;
	}
	dm_buf_addc(out, '"');
}

/* A kv value: bare when it is made of safe characters, else quoted. */
static void kv_value(struct dm_buf *out, const char *v)
{
	int bare = *v != 0;

	for (const char *p = v; *p && bare; p++)
		if ((unsigned char)*p <= ' ' || *p == '"' || *p == '=' || *p == '\\' ||
		    (unsigned char)*p >= 0x7f)
			bare = 0;
	if (bare)
		dm_buf_adds(out, v);
	else
		dm_json_quote(out, v);
}

void dm_log_render(struct dm_buf *out, enum dm_log_level l, const char *who,
		   const char *const *kv, const char *msg)
{
	static const char *names[] = { "ERROR", "WARN ", "INFO ", "DEBUG" };
	static const char *lower[] = { "error", "warning", "info", "debug" };
	char ts[48];
	struct tm tm;
	struct timespec now;
	const char *rid = log_rid[0] ? log_rid : NULL;

	clock_gettime(CLOCK_REALTIME, &now);
	if (!who)
		who = "didfs";
	if (log_format == DM_LOG_TEXT) {
		time_t t = now.tv_sec;

		localtime_r(&t, &tm);
		strftime(ts, sizeof ts, "%Y-%m-%d %H:%M:%S", &tm);
		dm_buf_addf(out, "%s %s %s: %s", ts, names[l], who, msg);
		for (int i = 0; kv && kv[i] && kv[i + 1]; i += 2) {
			dm_buf_addf(out, " %s=", kv[i]);
			kv_value(out, kv[i + 1]);
		}
		if (rid)
			dm_buf_addf(out, " request_id=%s", rid);
		dm_buf_addc(out, '\n');
		return;
	}
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + strlen(ts), sizeof ts - strlen(ts), ".%03ldZ", now.tv_nsec / 1000000);
	if (log_format == DM_LOG_KV) {
		dm_buf_addf(out, "ts=%s level=%s component=", ts, lower[l]);
		kv_value(out, who);
		dm_buf_adds(out, " msg=");
		dm_json_quote(out, msg);
		for (int i = 0; kv && kv[i] && kv[i + 1]; i += 2) {
			dm_buf_addf(out, " %s=", kv[i]);
			kv_value(out, kv[i + 1]);
		}
		if (rid) {
			dm_buf_adds(out, " request_id=");
			kv_value(out, rid);
		}
	} else {
		dm_buf_addf(out, "{\"ts\":\"%s\",\"level\":\"%s\",\"component\":", ts, lower[l]);
		dm_json_quote(out, who);
		dm_buf_adds(out, ",\"msg\":");
		dm_json_quote(out, msg);
		for (int i = 0; kv && kv[i] && kv[i + 1]; i += 2) {
			dm_buf_addc(out, ',');
			dm_json_quote(out, kv[i]);
			dm_buf_addc(out, ':');
			dm_json_quote(out, kv[i + 1]);
		}
		if (rid) {
			dm_buf_adds(out, ",\"request_id\":");
			dm_json_quote(out, rid);
		}
		dm_buf_addc(out, '}');
	}
	dm_buf_addc(out, '\n');
}

static void log_v(enum dm_log_level l, const char *who, const char *const *kv, const char *fmt,
		  va_list ap)
{
	struct dm_buf msg = DM_BUF_INIT, line = DM_BUF_INIT;
	FILE *f = log_file ? log_file : stderr;

	dm_buf_vaddf(&msg, fmt, ap);
	dm_log_render(&line, l, who, kv, msg.s);
	pthread_mutex_lock(&log_lock);
	fwrite(line.s, 1, line.len, f);
	fflush(f);
	pthread_mutex_unlock(&log_lock);
	dm_buf_release(&msg);
	dm_buf_release(&line);
}

void dm_log(enum dm_log_level l, const char *who, const char *fmt, ...)
{
	va_list ap;

	if (l > log_level)
		return;
	va_start(ap, fmt);
	log_v(l, who, NULL, fmt, ap);
	va_end(ap);
}

void dm_log_ev(enum dm_log_level l, const char *who, const char *const *kv, const char *fmt, ...)
{
	va_list ap;

	if (l > log_level)
		return;
	va_start(ap, fmt);
	log_v(l, who, kv, fmt, ap);
	va_end(ap);
}

void dm_bug(const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "BUG at %s:%d: ", file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

const char *dm_human_bytes(uint64_t b, int decimals, char out[32])
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	double v = (double)b;
	int i = 0;

	while (v >= 1024 && i < 6) {
		v /= 1024;
		i++;
	}
	if (i == 0)
		snprintf(out, 32, "%llu B", (unsigned long long)b);
	else
		snprintf(out, 32, "%.*f %s", decimals, v, unit[i]);
	return out;
}

static int mkdir_one(const char *p, unsigned mode)
{
	struct stat sb;

	if (mkdir(p, (mode_t)mode) == 0)
		return 0;
	if (errno != EEXIST)
		return errno;
	if (stat(p, &sb) != 0)
		return errno;
	return S_ISDIR(sb.st_mode) ? 0 : (errno = ENOTDIR);
}

int dm_mkdir_p(const char *path, unsigned mode)
{
	char *p;
	int e = 0;

	if (!path || !*path)
		return 0;
	p = dm_xstrdup(path);
	for (char *s = p + 1; *s && !e; s++) {
		if (*s != '/')
			continue;
		*s = 0;
		e = mkdir_one(p, mode);
		*s = '/';
	}
	if (!e)
		e = mkdir_one(p, mode);
	free(p);
	if (e)
		errno = e;
	return e;
}

int dm_mkdir_parent(const char *path, unsigned mode)
{
	const char *slash = strrchr(path, '/');
	char *dir;
	int e;

	if (!slash || slash == path)
		return 0;
	dir = dm_xstrdup(path);
	dir[slash - path] = 0;
	e = dm_mkdir_p(dir, mode);
	free(dir);
	return e;
}

static const char *env_set(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

void dm_cred_env(struct dm_cred_env *out)
{
	out->ca_dir = env_set("X509_CERT_DIR");
	out->user_cert = env_set("X509_USER_CERT");
	out->user_key = env_set("X509_USER_KEY");
	out->user_proxy = env_set("X509_USER_PROXY");
	out->bearer_token = env_set("BEARER_TOKEN");
}
