/* SPDX-License-Identifier: Apache-2.0 */
/*
 * stomp.c - the STOMP 1.2 client of stomp.h over a plain TCP socket
 * (getaddrinfo, poll with the configured timeout on every read and write).
 * Frames: COMMAND\n, header:value\n lines, \n, body, NUL.  SEND frames carry
 * content-length, so bodies may hold anything.
 */
#include "stomp.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* frames                                                              */

/* Unescape a header in place (\n \r \c \\); -1 on an unknown escape. */
static int unescape(char *s)
{
	char *w = s;

	for (char *r = s; *r; r++) {
		if (*r != '\\') {
			*w++ = *r;
			continue;
		}
		switch (*++r) {
		case 'n': *w++ = '\n'; break;
		case 'r': *w++ = '\r'; break;
		case 'c': *w++ = ':'; break;
		case '\\': *w++ = '\\'; break;
		default: return -1; /* includes the NUL after a trailing '\' */
		}
	}
	*w = 0;
	return 0;
}

int stomp_frame_parse(char *buf, size_t len, struct stomp_frame *f, size_t *used)
{
	size_t i = 0, line, clen = 0;
	int have_clen = 0, cmd_done = 0;

	memset(f, 0, sizeof *f);
	while (i < len && (buf[i] == '\n' || buf[i] == '\r'))
		i++; /* heart-beats */
	if (i == len)
		return 0;
	for (;;) {
		char *nl = memchr(buf + i, '\n', len - i), *colon;
		size_t end;

		if (!nl)
			return len - i > 65536 ? -1 : 0;
		line = i;
		end = (size_t)(nl - buf);
		if (memchr(buf + line, 0, end - line))
			return -1;
		if (end > line && buf[end - 1] == '\r')
			buf[end - 1] = 0;
		buf[end] = 0;
		i = end + 1;
		if (!cmd_done) {
			if (!buf[line])
				return -1;
			f->command = buf + line;
			cmd_done = 1;
			continue;
		}
		if (!buf[line])
			break; /* end of headers */
		colon = strchr(buf + line, ':');
		if (!colon)
			return -1;
		*colon = 0;
		if (f->nheaders < STOMP_MAX_HEADERS) {
			f->name[f->nheaders] = buf + line;
			f->value[f->nheaders] = colon + 1;
			if (unescape(f->name[f->nheaders]) || unescape(f->value[f->nheaders]))
				return -1;
			if (!strcmp(f->name[f->nheaders], "content-length") && !have_clen) {
				char *e;
				unsigned long long v;

				errno = 0;
				v = strtoull(f->value[f->nheaders], &e, 10);
				if (errno || *e || !*f->value[f->nheaders] || v > (1u << 24))
					return -1;
				clen = (size_t)v;
				have_clen = 1;
			}
			f->nheaders++;
		}
	}
	if (have_clen) {
		if (len - i < clen + 1)
			return 0;
		if (buf[i + clen] != 0)
			return -1;
		f->body = buf + i;
		f->body_len = clen;
		*used = i + clen + 1;
		return 1;
	} else {
		char *z = memchr(buf + i, 0, len - i);

		if (!z)
			return len - i > (1u << 24) ? -1 : 0;
		f->body = buf + i;
		f->body_len = (size_t)(z - (buf + i));
		*used = (size_t)(z - buf) + 1;
		return 1;
	}
}

const char *stomp_header(const struct stomp_frame *f, const char *name)
{
	for (size_t i = 0; i < f->nheaders; i++)
		if (!strcmp(f->name[i], name))
			return f->value[i];
	return NULL;
}

void stomp_escape(struct dm_buf *out, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '\n': dm_buf_adds(out, "\\n"); break;
		case '\r': dm_buf_adds(out, "\\r"); break;
		case ':': dm_buf_adds(out, "\\c"); break;
		case '\\': dm_buf_adds(out, "\\\\"); break;
		default: dm_buf_addc(out, *s);
		}
	}
}

/* ------------------------------------------------------------------ */
/* the connection                                                      */

struct stomp_conn {
	int fd;
	int timeout_ms;
	char *in, *scratch;
	size_t in_len, in_cap;
	unsigned long seq;
	char where[300];
};

static enum dm_status io_fail(struct stomp_conn *c, struct dm_err *err, const char *what)
{
	return dm_seterr(err, DM_EIO, "MessagingError", "STOMP %s: %s: %s", c->where, what,
			 errno ? strerror(errno) : "connection closed");
}

static enum dm_status write_all(struct stomp_conn *c, const char *p, size_t n, struct dm_err *err)
{
	while (n) {
		struct pollfd pf = { .fd = c->fd, .events = POLLOUT };
		ssize_t w;

		if (poll(&pf, 1, c->timeout_ms) <= 0) {
			errno = ETIMEDOUT;
			return io_fail(c, err, "writing");
		}
		w = send(c->fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return io_fail(c, err, "writing");
		p += w;
		n -= (size_t)w;
	}
	return DM_OK;
}

/* Next frame into f (its strings live in c->scratch until the next call):
 * the parser writes into what it parses, so it works on a copy of the
 * bytes received and the frame's bytes are dropped from c->in once whole. */
static enum dm_status read_frame(struct stomp_conn *c, struct stomp_frame *f, struct dm_err *err)
{
	for (;;) {
		size_t used = 0;
		int r = 0;

		if (c->in_len) {
			/* most frames end at their first NUL: copy that much only (a
			 * batch's receipts arrive together; copying all of them per
			 * frame would be quadratic), all of it when that is not enough */
			char *z = memchr(c->in, 0, c->in_len);
			size_t n = z ? (size_t)(z - c->in) + 1 : c->in_len;

			c->scratch = dm_xrealloc(c->scratch, c->in_len);
			memcpy(c->scratch, c->in, n);
			r = stomp_frame_parse(c->scratch, n, f, &used);
			if (r == 0 && n < c->in_len) {
				memcpy(c->scratch, c->in, c->in_len);
				r = stomp_frame_parse(c->scratch, c->in_len, f, &used);
			}
		}
		if (r < 0)
			return dm_seterr(err, DM_EIO, "MessagingError", "STOMP %s: a malformed frame",
					 c->where);
		if (r == 1) {
			memmove(c->in, c->in + used, c->in_len - used);
			c->in_len -= used;
			return DM_OK;
		}
		{
			struct pollfd pf = { .fd = c->fd, .events = POLLIN };
			ssize_t n;

			if (c->in_cap - c->in_len < 65536) {
				c->in_cap = c->in_cap ? c->in_cap * 2 : 131072;
				c->in = dm_xrealloc(c->in, c->in_cap);
			}
			if (poll(&pf, 1, c->timeout_ms) <= 0) {
				errno = ETIMEDOUT;
				return io_fail(c, err, "waiting for the broker");
			}
			n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				if (n == 0)
					errno = 0;
				return io_fail(c, err, "reading");
			}
			c->in_len += (size_t)n;
		}
	}
}

static enum dm_status broker_error(struct stomp_conn *c, const struct stomp_frame *f,
				   struct dm_err *err)
{
	const char *m = stomp_header(f, "message");

	return dm_seterr(err, DM_EIO, "MessagingError", "STOMP %s: the broker says ERROR: %s%s%.*s",
			 c->where, m ? m : "", f->body_len ? ": " : "",
			 (int)(f->body_len > 200 ? 200 : f->body_len), f->body ? f->body : "");
}

enum dm_status stomp_connect(const char *host, int port, const char *vhost, const char *user,
			     const char *password, int timeout, struct stomp_conn **out,
			     struct dm_err *err)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *ai = NULL, *a;
	struct stomp_conn *c = dm_xcalloc(1, sizeof *c);
	struct stomp_frame f;
	struct dm_buf b = DM_BUF_INIT;
	char portstr[16];
	enum dm_status rc;
	int gai;

	*out = NULL;
	c->fd = -1;
	c->timeout_ms = (timeout > 0 ? timeout : 10) * 1000;
	snprintf(c->where, sizeof c->where, "%s:%d", host, port);
	snprintf(portstr, sizeof portstr, "%d", port);
	gai = getaddrinfo(host, portstr, &hints, &ai);
	if (gai) {
		rc = dm_seterr(err, DM_EIO, "MessagingError", "STOMP %s: %s", c->where, gai_strerror(gai));
		goto fail;
	}
	for (a = ai; a && c->fd < 0; a = a->ai_next) {
		int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);

		if (fd < 0)
			continue;
		if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
			c->fd = fd;
		else
			close(fd);
	}
	freeaddrinfo(ai);
	if (c->fd < 0) {
		rc = io_fail(c, err, "connecting");
		goto fail;
	}
	dm_buf_adds(&b, "CONNECT\naccept-version:1.2\nhost:");
	stomp_escape(&b, vhost && *vhost ? vhost : "/");
	dm_buf_adds(&b, "\nheart-beat:0,0\n");
	if (user && *user) {
		dm_buf_adds(&b, "login:");
		stomp_escape(&b, user);
		dm_buf_adds(&b, "\npasscode:");
		stomp_escape(&b, password ? password : "");
		dm_buf_adds(&b, "\n");
	}
	dm_buf_add(&b, "\n", 2); /* blank line and the NUL */
	rc = write_all(c, b.s, b.len, err);
	dm_buf_release(&b);
	if (rc == DM_OK)
		rc = read_frame(c, &f, err);
	if (rc)
		goto fail;
	if (strcmp(f.command, "CONNECTED")) {
		rc = !strcmp(f.command, "ERROR") ? broker_error(c, &f, err)
			: dm_seterr(err, DM_EIO, "MessagingError", "STOMP %s: %s instead of CONNECTED",
				    c->where, f.command);
		goto fail;
	}
	*out = c;
	return DM_OK;
fail:
	stomp_close(c);
	return rc;
}

enum dm_status stomp_send(struct stomp_conn *c, const char *destination,
			  const struct stomp_msg *m, size_t n, struct dm_err *err)
{
	struct dm_buf b = DM_BUF_INIT;
	unsigned long first = c->seq + 1;
	enum dm_status rc = DM_OK;
	size_t got = 0;

	for (size_t i = 0; i < n; i++) {
		dm_buf_adds(&b, "SEND\ndestination:");
		stomp_escape(&b, destination);
		dm_buf_addf(&b, "\nreceipt:r%lu\ncontent-length:%zu\n", ++c->seq, m[i].len);
		for (const char *const *h = m[i].headers; h && h[0]; h += 2) {
			stomp_escape(&b, h[0]);
			dm_buf_addc(&b, ':');
			stomp_escape(&b, h[1] ? h[1] : "");
			dm_buf_addc(&b, '\n');
		}
		dm_buf_addc(&b, '\n');
		dm_buf_add(&b, m[i].body, m[i].len);
		dm_buf_add(&b, "", 1);
		if (b.len > (1u << 20) || i + 1 == n) {
			if ((rc = write_all(c, b.s, b.len, err)))
				break;
			dm_buf_reset(&b);
		}
	}
	dm_buf_release(&b);
	while (rc == DM_OK && got < n) {
		struct stomp_frame f;
		const char *id;
		char *e;
		unsigned long v;

		if ((rc = read_frame(c, &f, err)))
			break;
		if (!strcmp(f.command, "ERROR")) {
			rc = broker_error(c, &f, err);
			break;
		}
		if (strcmp(f.command, "RECEIPT"))
			continue;
		id = stomp_header(&f, "receipt-id");
		if (!id || id[0] != 'r')
			continue;
		v = strtoul(id + 1, &e, 10);
		if (*e || v < first || v > c->seq)
			continue;
		got++; /* receipts come in order, one per frame */
	}
	return rc;
}

void stomp_close(struct stomp_conn *c)
{
	if (!c)
		return;
	if (c->fd >= 0) {
		static const char bye[] = "DISCONNECT\nreceipt:bye\n\n";
		struct dm_err e;
		struct stomp_frame f;
		int t = c->timeout_ms;

		c->timeout_ms = t < 2000 ? t : 2000;
		if (write_all(c, bye, sizeof bye, &e) == DM_OK)
			read_frame(c, &f, &e); /* the receipt, best effort */
		close(c->fd);
	}
	free(c->in);
	free(c->scratch);
	free(c);
}
