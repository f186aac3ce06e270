/* SPDX-License-Identifier: Apache-2.0 */
/*
 * xrdcl_shim.h - a thin extern "C" face over XrdCl (prefix xrdcl_), the
 * only C++ in the tree.  It speaks root:// URLs only and knows nothing of
 * didfs: every call returns 0 or an errno value (ENOENT, EACCES, ETIMEDOUT,
 * ECONNREFUSED, EIO, ...) and on failure fills struct xrdcl_err with
 * XrdCl's own description of the cause.  Timeouts are in seconds and are
 * passed to every XrdCl request, so no call outlives its timeout.
 *
 * XrdCl multiplexes all requests to one host:port over one connection per
 * process, so calls from many threads share connections; streamed get/put
 * keep several asynchronous requests in flight.
 */
#ifndef XRDCL_SHIM_H
#define XRDCL_SHIM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

struct xrdcl_err {
	int err;        /* errno-style value, 0 = none */
	char msg[640];  /* XrdCl's description */
};

/* Process-wide XrdCl settings (XrdCl keeps them in one global Env).  The
 * first call wins; values set in the shell environment (XRD_REQUESTTIMEOUT,
 * XRD_STREAMTIMEOUT, ...) take precedence, as XrdCl documents. */
struct xrdcl_setup {
	int request_timeout_s;   /* default request timeout */
	int stream_timeout_s;    /* a stream with requests outstanding and no traffic */
	int connect_timeout_s;   /* ConnectionWindow */
	int connect_retry;       /* ConnectionRetry */
	const char *ca_dir;      /* X509_CERT_DIR for roots:// (set only if unset) */
};
void xrdcl_setup(const struct xrdcl_setup *s);

struct xrdcl_stat {
	uint64_t size;
	int is_dir;
};
int xrdcl_stat(const char *url, int timeout_s, struct xrdcl_stat *st, struct xrdcl_err *e);

/* Open for reading; *size is the file's size from the open response. */
struct xrdcl_file;
int xrdcl_open_read(const char *url, int timeout_s, struct xrdcl_file **f, uint64_t *size,
		    struct xrdcl_err *e);
/* Read up to len at off; *got is short only at end of file. */
int xrdcl_pread(struct xrdcl_file *f, void *buf, size_t len, uint64_t off, int timeout_s,
		size_t *got, struct xrdcl_err *e);
/* Close (if still open) and free. */
int xrdcl_close(struct xrdcl_file *f, int timeout_s, struct xrdcl_err *e);

/* Stream the whole file: `inflight` reads of `chunk` bytes outstanding,
 * delivered to sink in order from the calling thread.  sink returns 0 to go
 * on; a non-zero value aborts and is returned as is (e untouched).  Each
 * read must complete within stall_s. */
typedef int (*xrdcl_sink_fn)(void *arg, const void *buf, size_t n);
int xrdcl_get(const char *url, int open_timeout_s, int stall_s, size_t chunk, int inflight,
	      xrdcl_sink_fn sink, void *arg, uint64_t *bytes, struct xrdcl_err *e);

/* Create or overwrite url (parents made) from fd (size bytes, read with
 * pread), with `inflight` writes of `chunk` bytes outstanding. */
int xrdcl_put(const char *url, int fd, uint64_t size, int open_timeout_s, int stall_s,
	      size_t chunk, int inflight, struct xrdcl_err *e);

int xrdcl_rm(const char *url, int timeout_s, struct xrdcl_err *e);
/* Rename on the server of `from` (to is a URL on the same server). */
int xrdcl_mv(const char *from, const char *to, int timeout_s, struct xrdcl_err *e);
int xrdcl_mkdir_p(const char *url, int timeout_s, struct xrdcl_err *e);
/* Server checksum ("adler32", "md5"): out gets the lowercase hex value. */
int xrdcl_checksum(const char *url, const char *type, char *out, size_t outlen, int timeout_s,
		   struct xrdcl_err *e);
/* Third-party copy (thirdParty "only"), target overwritten and its parents
 * made, adler32 compared end to end when verify != 0. */
int xrdcl_tpc(const char *src, const char *dst, int init_timeout_s, int tpc_timeout_s,
	      int verify, struct xrdcl_err *e);

#ifdef __cplusplus
}
#endif
#endif
