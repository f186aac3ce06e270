/* SPDX-License-Identifier: Apache-2.0 */
/*
 * xfer.h - the transfer layer (prefix xfer_): storage protocols behind one
 * vtable chosen by URL scheme.  Back-ends: file:// (POSIX), root:// (XrdCl
 * through the extern "C" shim xrdcl_shim.h, the only C++ in the tree),
 * https:// and davs:// (libcurl).
 *
 * A struct xfer_ctx holds configuration and the connection caches; every call
 * is thread-safe on a shared context, connections are reused, and every
 * operation ends within its timeout with DM_ETIMEDOUT (never hangs).
 * Errors fill a struct dm_err with a message naming the URL and the cause;
 * a missing remote file is DM_ENOENT (class SourceNotFound), permission
 * denied DM_EPERM, an unknown scheme DM_ENOTSUP (RSEProtocolNotSupported).
 *
 * Back-end notes:
 *  - root://: XrdCl keeps its settings in one process-wide Env, so the first
 *    context that touches root:// sets them (stream timeout = stall_timeout_s,
 *    connection window and stream error window = connect_timeout_s, one
 *    connection attempt, timeouts checked every second); XRD_* variables in
 *    the environment win over them.  Every request also carries its own
 *    timeout.  root://h:p/path (one slash) is read as the absolute
 *    root://h:p//path.  xfer_pread keeps up to 64 read handles open per
 *    context.  xfer_tpc runs XrdCl's CopyProcess (thirdParty "only", target
 *    overwritten, parents made) and then compares both servers' adler32.
 *  - https/davs: one pool of curl handles per context sharing connections,
 *    TLS sessions and DNS; a progress callback ends any request that moved
 *    nothing for stall_timeout_s.  xfer_tpc sends COPY with Source: to the
 *    destination (pull mode) and compares adler32 afterwards.
 *  - file://: the host part is ignored; xfer_tpc between two file:// URLs
 *    is a local copy.
 *  - A checksum mismatch after a copy is DM_ECONFLICT (FileConsistencyMismatch).
 *
 * This layer knows nothing of the catalog: it moves bytes.  The safe upload
 * protocol (temp name, verify, rename, then register) and download fall-over
 * live in transfer/ops.c on top of these calls.
 */
#ifndef XFER_H
#define XFER_H

#include <stddef.h>
#include <stdint.h>

#include "dm.h"

struct xfer_config {
	const char *ca_path;      /* directory of CA certificates (https, root TLS) */
	const char *ca_file;      /* or one CA bundle file */
	const char *client_cert;  /* X.509 client certificate (PEM) */
	const char *client_key;   /* its key */
	const char *bearer_token; /* "Authorization: Bearer <token>" for https */
	int insecure;             /* skip TLS peer verification (tests only) */
	int timeout_s;            /* whole-operation timeout for small ops (default 60) */
	int connect_timeout_s;    /* connect timeout (default 10) */
	int stall_timeout_s;      /* no progress for this long ends a stream (default 30) */
	int parallel;             /* default number of operations in flight (default 8) */
	/* Added with the back-ends (0 = default): */
	size_t chunk_bytes;       /* request size of streamed get/put (default 8 MiB) */
	int chunks_in_flight;     /* requests outstanding per stream (default 4) */
	int no_md5;               /* xfer_get computes adler32 only (res.md5 = "") */
	int tpc_timeout_s;        /* whole third-party copy (default 1800) */
	/* bytes moved, for progress lines (NULL: none): xfer_get reports every
	 * piece it writes, xfer_put the whole file once it is written.  Called
	 * from transfer threads. */
	void (*on_bytes)(void *arg, uint64_t n);
	void *on_bytes_arg;
};

struct xfer_ctx;
enum dm_status xfer_ctx_new(const struct xfer_config *cfg, struct xfer_ctx **out,
			    struct dm_err *err);
void xfer_ctx_free(struct xfer_ctx *ctx);

struct xfer_stat {
	uint64_t size;
	int is_dir;
};

/* Stream result: bytes moved and checksums computed on the fly. */
struct xfer_result {
	uint64_t bytes;
	char adler32[9];
	char md5[33]; /* empty string when not computed */
};

enum dm_status xfer_stat(struct xfer_ctx *ctx, const char *url, struct xfer_stat *st,
			 struct dm_err *err);
/* Read up to len bytes at off into buf; *got is what was read (short only at EOF). */
enum dm_status xfer_pread(struct xfer_ctx *ctx, const char *url, void *buf, size_t len,
			  uint64_t off, size_t *got, struct dm_err *err);
/* Stream url into local_path (created/truncated), computing adler32 and md5.
 * On failure the partial local file is removed. */
enum dm_status xfer_get(struct xfer_ctx *ctx, const char *url, const char *local_path,
			struct xfer_result *res, struct dm_err *err);
/* Write local_path to url, creating parent directories on the storage. */
enum dm_status xfer_put(struct xfer_ctx *ctx, const char *local_path, const char *url,
			struct dm_err *err);
enum dm_status xfer_delete(struct xfer_ctx *ctx, const char *url, struct dm_err *err);
/* Rename within one storage (both URLs on the same endpoint). */
enum dm_status xfer_rename(struct xfer_ctx *ctx, const char *from, const char *to,
			   struct dm_err *err);
/* Server-side checksum; type "adler32" (or "md5"). out: lowercase hex. */
enum dm_status xfer_checksum(struct xfer_ctx *ctx, const char *url, const char *type,
			     char *out, size_t outlen, struct dm_err *err);
/* Third-party copy src -> dst (XRootD TPC, HTTP COPY); DM_ENOTSUP if the pair
 * of schemes cannot do it. */
enum dm_status xfer_tpc(struct xfer_ctx *ctx, const char *src, const char *dst,
			struct dm_err *err);

/* Many operations at once: up to `parallel` in flight on shared connections
 * (parallel <= 0: the context's default).  Each job's status and error are
 * written into the job; xfer_run_jobs returns when all have ended. */
enum xfer_job_kind { XFER_JOB_GET, XFER_JOB_PUT, XFER_JOB_TPC, XFER_JOB_DELETE };
struct xfer_job {
	enum xfer_job_kind kind;
	const char *src;        /* url (GET, TPC, DELETE) or local path (PUT) */
	const char *dst;        /* local path (GET) or url (PUT, TPC) */
	struct xfer_result res; /* GET */
	enum dm_status status;
	struct dm_err err;
};
void xfer_run_jobs(struct xfer_ctx *ctx, struct xfer_job *jobs, size_t n, int parallel);

/* Scheme of a URL into out ("root", "https", ...); 0 on success. */
int xfer_url_scheme(const char *url, char *out, size_t n);
int xfer_scheme_supported(const char *scheme);

/* ---- added with the back-ends ------------------------------------------ */

/* A URL split into its parts.  scheme is lower-cased; host has no [] around
 * an IPv6 literal and is "" for file:///path; port is 0 when absent; path
 * starts at the first '/' after the authority (root://h:1094//a/b keeps
 * "//a/b"; "" when the URL has no path) and excludes the query; query
 * excludes the '?'.  Fails with DM_EINVAL (InputValidationError) naming the
 * URL when it has no "scheme://", a bad port, or a part longer than its
 * field. */
struct xfer_url {
	char scheme[16];
	char host[256];
	int port;
	char path[4096];
	char query[1024];
};
enum dm_status xfer_url_parse(const char *url, struct xfer_url *u, struct dm_err *err);

/* Back-end that serves a scheme: "file", "root" (root, xroot, roots, xroots),
 * "http" (http, https, dav, davs); NULL when unknown or not built in. */
const char *xfer_scheme_backend(const char *scheme);

/* Whether xfer_tpc can copy from a src URL scheme to a dst URL scheme
 * (root<->root, https/davs<->https/davs, file<->file). */
int xfer_tpc_possible(const char *src_scheme, const char *dst_scheme);

/* Create a directory and its missing parents on the storage (no error if it
 * exists). */
enum dm_status xfer_mkdir_p(struct xfer_ctx *ctx, const char *url, struct dm_err *err);

#endif
