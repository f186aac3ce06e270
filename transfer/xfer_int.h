/* SPDX-License-Identifier: Apache-2.0 */
/*
 * xfer_int.h - internals shared by the transfer back-ends (not installed,
 * not for other folders): the context layout, the back-end vtable that
 * xfer.c dispatches to by URL scheme, and the byte sink that streamed
 * downloads feed.  Each back-end keeps its own lazily created state in the
 * context (connection pools, open-handle caches), created under ctx->lock
 * on first use so that a context used for file:// only never starts XrdCl
 * or libcurl.
 */
#ifndef XFER_INT_H
#define XFER_INT_H

#include <pthread.h>

#include "xfer.h"

/* Receives the bytes of a streamed download in order.  Returns DM_OK to go
 * on; anything else aborts the stream (the sink keeps its own reason). */
typedef enum dm_status (*xfer_sink_fn)(void *arg, const void *buf, size_t n);

struct xfer_backend {
	const char *name;
	enum dm_status (*stat)(struct xfer_ctx *ctx, const char *url, const struct xfer_url *u,
			       struct xfer_stat *st, struct dm_err *err);
	enum dm_status (*pread)(struct xfer_ctx *ctx, const char *url, const struct xfer_url *u,
				void *buf, size_t len, uint64_t off, size_t *got,
				struct dm_err *err);
	/* Stream the whole object into sink; a sink failure is returned as is
	 * without touching err (the caller reads the sink's reason). */
	enum dm_status (*get)(struct xfer_ctx *ctx, const char *url, const struct xfer_url *u,
			      xfer_sink_fn sink, void *arg, struct dm_err *err);
	/* fd is open for reading at offset 0 and holds size bytes. */
	enum dm_status (*put)(struct xfer_ctx *ctx, int fd, uint64_t size, const char *local_path,
			      const char *url, const struct xfer_url *u, struct dm_err *err);
	enum dm_status (*del)(struct xfer_ctx *ctx, const char *url, const struct xfer_url *u,
			      struct dm_err *err);
	enum dm_status (*rename)(struct xfer_ctx *ctx, const char *from, const struct xfer_url *fu,
				 const char *to, const struct xfer_url *tu, struct dm_err *err);
	enum dm_status (*checksum)(struct xfer_ctx *ctx, const char *url, const struct xfer_url *u,
				   const char *type, char *out, size_t outlen, struct dm_err *err);
	enum dm_status (*tpc)(struct xfer_ctx *ctx, const char *src, const struct xfer_url *su,
			      const char *dst, const struct xfer_url *du, struct dm_err *err);
	enum dm_status (*mkdir_p)(struct xfer_ctx *ctx, const char *url, const struct xfer_url *u,
				  struct dm_err *err);
	/* Free this back-end's state in ctx (may be NULL). */
	void (*ctx_free)(struct xfer_ctx *ctx);
};

extern const struct xfer_backend xfer_file_backend;
extern const struct xfer_backend xfer_http_backend;
#ifndef XFER_NO_XROOTD
extern const struct xfer_backend xfer_xrootd_backend;
#endif

struct xfer_http_state;
struct xfer_xrd_state;

struct xfer_ctx {
	struct xfer_config cfg; /* defaults applied; strings point at the copies below */
	char *ca_path, *ca_file, *client_cert, *client_key, *bearer_token;
	pthread_mutex_t lock;   /* guards the lazy creation of back-end state */
	struct xfer_http_state *http;
	struct xfer_xrd_state *xrd;
};

/* Status and Rucio class for an errno met on storage.  dest != 0 when the
 * URL was the destination of a write (ENOENT is then
 * DestinationNotAccessible rather than SourceNotFound). */
enum dm_status xfer_errno_status(int e, int dest, const char **cls);

/* Default buffer and request sizes. */
#define XFER_DEFAULT_CHUNK (8u << 20)
#define XFER_DEFAULT_INFLIGHT 4

#endif
