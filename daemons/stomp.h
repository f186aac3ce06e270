/* SPDX-License-Identifier: Apache-2.0 */
/*
 * stomp.h - a small STOMP 1.2 client (prefix stomp_) for the hermes daemon:
 * CONNECT (host = the virtual host, login, passcode, no heart-beats), SEND
 * with a receipt per frame (pipelined: a batch is written, then every
 * receipt is awaited, so a batch costs one round trip), DISCONNECT.  Only
 * what hermes needs; no SUBSCRIBE.
 *
 * stomp_frame_parse() reads one server frame (CONNECTED, RECEIPT, ERROR,
 * MESSAGE) out of a buffer, with STOMP 1.2's header escapes; it takes
 * outside input and is fuzzed by tests/fuzz/fuzz_stomp.c.
 */
#ifndef DMN_STOMP_H
#define DMN_STOMP_H

#include <stddef.h>

#include "dm.h"

#define STOMP_MAX_HEADERS 32

struct stomp_frame {
	char *command;
	size_t nheaders;
	char *name[STOMP_MAX_HEADERS], *value[STOMP_MAX_HEADERS];
	char *body;
	size_t body_len;
};

/* Parse one frame from buf[0..len).  Returns 1 and fills f (strings point
 * into buf, which is modified: NULs, unescaped headers) with *used the bytes
 * consumed; 0 when more bytes are needed; -1 when the frame is malformed.
 * Heart-beat newlines before a frame are skipped. */
int stomp_frame_parse(char *buf, size_t len, struct stomp_frame *f, size_t *used);
/* The first value of header name, or NULL. */
const char *stomp_header(const struct stomp_frame *f, const char *name);
/* Append s to out with STOMP 1.2's header escapes. */
void stomp_escape(struct dm_buf *out, const char *s);

struct stomp_conn;
struct stomp_msg {
	const char *body;
	size_t len;
	const char *const *headers; /* name, value, ..., NULL */
};
enum dm_status stomp_connect(const char *host, int port, const char *vhost, const char *user,
			     const char *password, int timeout, struct stomp_conn **out,
			     struct dm_err *err);
/* Send n messages to destination, each with a receipt; DM_OK once every
 * receipt came back (the broker has them). */
enum dm_status stomp_send(struct stomp_conn *c, const char *destination,
			  const struct stomp_msg *m, size_t n, struct dm_err *err);
/* DISCONNECT (with a receipt, best effort) and close. */
void stomp_close(struct stomp_conn *c);

#endif
