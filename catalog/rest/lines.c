/* SPDX-License-Identifier: Apache-2.0 */
/* lines.c - the x-json-stream line reader (lines.h). */
#include "lines.h"

#include <string.h>

void rest_lines_init(struct rest_lines *l, size_t max_line, rest_row_cb cb, void *ud)
{
	memset(l, 0, sizeof *l);
	dm_buf_init(&l->cur, 0);
	l->max_line = max_line ? max_line : (16u << 20);
	l->cb = cb;
	l->ud = ud;
}

void rest_lines_release(struct rest_lines *l)
{
	dm_buf_release(&l->cur);
}

/* Duplicate keys are taken as Python does (the last wins).
 * Python's json.dumps writes Infinity, -Infinity and NaN (Rucio's unlimited
 * bytes_limit); JSON has no such tokens.  Outside strings they become the
 * strings "Infinity", "-Infinity", "NaN". */
json_t *rest_json_loadb(const char *s, size_t n, json_error_t *je)
{
	json_t *v = json_loadb(s, n, JSON_DECODE_ANY, je);
	struct dm_buf b = DM_BUF_INIT;
	int in_str = 0;

	if (v || (!memmem(s, n, "Infinity", 8) && !memmem(s, n, "NaN", 3)))
		return v;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (in_str) {
			dm_buf_addc(&b, ch);
			if (ch == '\\' && i + 1 < n)
				dm_buf_addc(&b, s[++i]);
			else if (ch == '"')
				in_str = 0;
			continue;
		}
		if (ch == '"') {
			in_str = 1;
		} else if (n - i >= 9 && !memcmp(s + i, "-Infinity", 9)) {
			dm_buf_adds(&b, "\"-Infinity\"");
			i += 8;
			continue;
		} else if (n - i >= 8 && !memcmp(s + i, "Infinity", 8)) {
			dm_buf_adds(&b, "\"Infinity\"");
			i += 7;
			continue;
		} else if (n - i >= 3 && !memcmp(s + i, "NaN", 3)) {
			dm_buf_adds(&b, "\"NaN\"");
			i += 2;
			continue;
		}
		dm_buf_addc(&b, ch);
	}
	v = json_loadb(b.s, b.len, JSON_DECODE_ANY, je);
	dm_buf_release(&b);
	return v;
}

static int one_line(struct rest_lines *l, const char *s, size_t n)
{
	json_error_t je;
	json_t *v;
	int stop;

	l->lineno++;
	if (n > 0 && s[n - 1] == '\r')
		n--;
	while (n > 0 && (*s == ' ' || *s == '\t'))
		s++, n--;
	if (n == 0)
		return 0;
	v = rest_json_loadb(s, n, &je);
	if (!v) {
		dm_seterr(&l->err, DM_EIO, "RucioException",
			  "line %llu of the stream is not JSON (%s at column %d)",
			  (unsigned long long)l->lineno, je.text, je.column);
		return -1;
	}
	l->rows++;
	stop = l->cb ? l->cb(l->ud, v) : 0;
	json_decref(v);
	if (stop) {
		l->stopped = 1;
		return 1;
	}
	return 0;
}

int rest_lines_feed(struct rest_lines *l, const void *data, size_t n)
{
	const char *p = data, *end = p + n;

	if (l->err.code)
		return -1;
	if (l->stopped)
		return 1;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t take = nl ? (size_t)(nl - p) : (size_t)(end - p);
		int r;

		if (l->cur.len + take > l->max_line) {
			dm_seterr(&l->err, DM_EIO, "RucioException",
				  "line %llu of the stream is longer than %zu bytes",
				  (unsigned long long)l->lineno + 1, l->max_line);
			return -1;
		}
		if (!nl) {
			if (dm_buf_add(&l->cur, p, take)) {
				dm_seterr(&l->err, DM_ENOMEM, NULL, "out of memory reading a stream");
				return -1;
			}
			return 0;
		}
		if (l->cur.len) {
			if (dm_buf_add(&l->cur, p, take)) {
				dm_seterr(&l->err, DM_ENOMEM, NULL, "out of memory reading a stream");
				return -1;
			}
			r = one_line(l, l->cur.s, l->cur.len);
			dm_buf_reset(&l->cur);
		} else {
			r = one_line(l, p, take);
		}
		if (r)
			return r;
		p = nl + 1;
	}
	return 0;
}

int rest_lines_finish(struct rest_lines *l)
{
	size_t i;

	if (l->err.code)
		return -1;
	if (l->stopped)
		return 0;
	for (i = 0; i < l->cur.len; i++)
		if (l->cur.s[i] != ' ' && l->cur.s[i] != '\t' && l->cur.s[i] != '\r')
			break;
	if (i < l->cur.len) {
		dm_seterr(&l->err, DM_EIO, "RucioException",
			  "the stream ends in the middle of line %llu (%zu bytes without their newline:"
			  " truncated)", (unsigned long long)l->lineno + 1, l->cur.len);
		return -1;
	}
	return 0;
}
