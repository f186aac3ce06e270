/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dm.h - the shared utility layer of didfs (prefix dm_).
 *
 * Everything every other folder may use: one status type with a detail record
 * beside it (struct dm_err: status, Rucio exception class name, message), a
 * growable string buffer with a size cap, logging, small parsers and the
 * checksum helpers (adler32, md5).  Nothing here includes anything from
 * catalog/, transfer/, daemons/, fs/ or tools/.
 *
 * Error convention: a fallible function returns enum dm_status (DM_OK == 0)
 * and, on failure, fills the struct dm_err * it was given (if not NULL).  On
 * success the dm_err is left untouched.  The class name is Rucio's exception
 * name where Rucio has one ("DataIdentifierNotFound", "InvalidRSEExpression"),
 * so the CLI and the REST server can print and send it as Rucio does.
 */
#ifndef DM_H
#define DM_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum dm_status {
	DM_OK = 0,
	DM_EINVAL,    /* bad input: names, expressions, values */
	DM_ENOENT,    /* something named does not exist */
	DM_EEXIST,    /* duplicate */
	DM_EPERM,     /* not allowed for this account */
	DM_ECONFLICT, /* state forbids it: closed dataset, checksum mismatch */
	DM_EQUOTA,    /* account limit / space */
	DM_EIO,       /* storage or database I/O */
	DM_ETIMEDOUT, /* an operation ran past its timeout */
	DM_ENOMEM,
	DM_ENOTSUP,   /* unknown scheme, unsupported operation */
	DM_AGAIN,     /* not yet: try again later */
	DM_EINTERNAL, /* a bug or an unexpected database error */
};

struct dm_err {
	enum dm_status code;
	char cls[48];   /* Rucio exception class name, e.g. "ScopeNotFound" */
	char msg[1024]; /* human readable, names what was wrong */
};

const char *dm_strerror(enum dm_status st);
/* Fill err (if not NULL) and return st. cls may be NULL (a default per st). */
enum dm_status dm_seterr(struct dm_err *err, enum dm_status st, const char *cls,
			 const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void dm_err_clear(struct dm_err *err);
/* Default Rucio class for a status when a caller gave none. */
const char *dm_status_class(enum dm_status st);
/* errno for a status (used by fs/ only). */
int dm_status_to_errno(enum dm_status st);

/* ---- string buffer -------------------------------------------------
 * Invariants: after DM_BUF_INIT or dm_buf_init(), b->s is never NULL and
 * always NUL-terminated; b->len is the length without the NUL.  Growth past
 * b->cap_max (0 = unlimited) fails with DM_ENOMEM and leaves b unchanged.
 * dm_buf_detach() is the only way to take ownership of the storage. */
struct dm_buf {
	char *s;
	size_t len;
	size_t alloc;
	size_t cap_max;
};
extern char dm_buf_empty[];
#define DM_BUF_INIT { dm_buf_empty, 0, 0, 0 }
void dm_buf_init(struct dm_buf *b, size_t cap_max);
void dm_buf_release(struct dm_buf *b);
void dm_buf_reset(struct dm_buf *b);
int dm_buf_add(struct dm_buf *b, const void *p, size_t n);
int dm_buf_adds(struct dm_buf *b, const char *s);
int dm_buf_addc(struct dm_buf *b, char c);
int dm_buf_addf(struct dm_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int dm_buf_vaddf(struct dm_buf *b, const char *fmt, va_list ap);
char *dm_buf_detach(struct dm_buf *b);

/* ---- small helpers ------------------------------------------------- */
size_t dm_strlcpy(char *dst, const char *src, size_t size);
/* Parse an unsigned decimal (whole string); returns 0 on success. */
int dm_parse_u64(const char *s, uint64_t *out);
int dm_parse_i64(const char *s, int64_t *out);
/* Parse a size with an optional K/M/G/T suffix (powers of 1024). */
int dm_parse_size(const char *s, uint64_t *out);
void *dm_xmalloc(size_t n);
void *dm_xcalloc(size_t n, size_t m);
void *dm_xrealloc(void *p, size_t n);
char *dm_xstrdup(const char *s);
/* 32 lowercase hex chars of a fresh random UUID4 (Rucio's id format). */
void dm_uuid32(char out[33]);
/* Seconds since the epoch, and with sub-second precision. */
int64_t dm_now(void);
double dm_now_f(void);
/* RFC1123 as Rucio prints datetimes: "Thu, 01 Jan 2026 00:00:00 UTC". */
void dm_fmt_time(int64_t t, char out[40]);
/* Wildcard match with '*' (any run) and '?' (one char). */
int dm_wildcard_match(const char *pattern, const char *s);
/* "1.5 GiB": b in the largest binary unit (B .. EiB) with `decimals`
 * digits after the point (bytes whole: "512 B").  Returns out. */
const char *dm_human_bytes(uint64_t b, int decimals, char out[32]);
/* Where grid tools find credentials in the environment: X509_CERT_DIR,
 * X509_USER_CERT, X509_USER_KEY, X509_USER_PROXY, BEARER_TOKEN (NULL when
 * unset or empty; the strings are the environment's). */
struct dm_cred_env {
	const char *ca_dir, *user_cert, *user_key, *user_proxy, *bearer_token;
};
void dm_cred_env(struct dm_cred_env *out);
/* mkdir -p: path and its missing parents with mode.  0, or an errno value
 * (also in errno): ENOTDIR when a part exists and is not a directory. */
int dm_mkdir_p(const char *path, unsigned mode);
/* The same for the directory a file path is in (nothing for "name"). */
int dm_mkdir_parent(const char *path, unsigned mode);

/* ---- checksums -----------------------------------------------------
 * adler32 as Rucio stores it: 8 lowercase hex digits, zero padded. */
uint32_t dm_adler32_update(uint32_t a, const void *p, size_t n);
#define DM_ADLER32_INIT 1u
void dm_adler32_hex(uint32_t a, char out[9]);
int dm_is_hex(const char *s, size_t n);
struct dm_md5;
struct dm_md5 *dm_md5_new(void);
void dm_md5_update(struct dm_md5 *m, const void *p, size_t n);
void dm_md5_final_hex(struct dm_md5 *m, char out[33]); /* frees m */
void dm_md5_hex(const void *p, size_t n, char out[33]);
/* sha256(salt || data) as lowercase hex, for userpass identities. */
void dm_sha256_hex2(const void *a, size_t an, const void *b, size_t bn, char out[65]);
/* Fill with cryptographically random bytes; 0 on success. */
int dm_random_bytes(void *p, size_t n);
/* adler32 + md5 + size of a local file. */
enum dm_status dm_file_checksums(const char *path, uint64_t *bytes, char adler[9],
				 char md5[33], struct dm_err *err);

/* ---- logging -------------------------------------------------------
 * Lines look like "2026-11-23 17:20:09 INFO  conveyor: message". */
enum dm_log_level { DM_LOG_ERROR, DM_LOG_WARN, DM_LOG_INFO, DM_LOG_DEBUG };
void dm_log_set_level(enum dm_log_level l);
void dm_log_set_file(FILE *f);
void dm_log(enum dm_log_level l, const char *who, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Line formats (--log-format, $DIDFS_LOG_FORMAT):
 *   text  the line above, event keys appended as " key=value"
 *   kv    ts=2026-11-23T17:20:09.123Z level=info component=conveyor msg="..." key=value
 *   json  {"ts":"...","level":"info","component":"conveyor","msg":"...","key":"value"}
 * ts is UTC in kv and json; the keys ts, level, component, msg come first and
 * are always there; a request id set on the thread (dm_log_set_request_id)
 * is added to every line as request_id.  JSON strings are escaped (quotes,
 * backslashes, control characters; bytes that are not UTF-8 become U+FFFD). */
enum dm_log_format { DM_LOG_TEXT, DM_LOG_KV, DM_LOG_JSON };
void dm_log_set_format(enum dm_log_format f);
enum dm_log_format dm_log_get_format(void);
/* "text", "kv", "json": 0 and *f set, else -1. */
int dm_log_format_parse(const char *s, enum dm_log_format *f);
/* The request id logged with this thread's lines (copied; NULL or "" clears). */
void dm_log_set_request_id(const char *id);
const char *dm_log_request_id(void);
/* An event: kv is NULL or a NULL-terminated list of key, value, key, value. */
void dm_log_ev(enum dm_log_level l, const char *who, const char *const *kv, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* One line (with its '\n') in the current format, for logs with their own
 * file (the server's access log). */
void dm_log_render(struct dm_buf *out, enum dm_log_level l, const char *who,
		   const char *const *kv, const char *msg);
/* A JSON string literal of s (quotes included). */
void dm_json_quote(struct dm_buf *out, const char *s);

#define DM_BUG(...) dm_bug(__FILE__, __LINE__, __VA_ARGS__)
void dm_bug(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4), noreturn));

#define DM_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif
