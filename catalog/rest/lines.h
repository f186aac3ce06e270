/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lines.h - Rucio's application/x-json-stream read line by line as it
 * arrives (catalog/rest/): bytes in any pieces go in, each complete line
 * ('\n'-terminated, a '\r' before it dropped, blank lines skipped) is parsed
 * as one JSON value and handed to a callback; memory is one line at most
 * (max_line bytes, else an error naming the line).  A last line without its
 * '\n' is a truncated stream.  No network: client.c feeds it, the fuzzer
 * too.
 */
#ifndef CAT_REST_LINES_H
#define CAT_REST_LINES_H

#include <jansson.h>

#include "dm.h"

/* Return non-zero to stop reading (not an error). */
typedef int (*rest_row_cb)(void *ud, json_t *row);

struct rest_lines {
	struct dm_buf cur;
	size_t max_line;
	uint64_t lineno;   /* lines seen */
	uint64_t rows;     /* values handed on */
	rest_row_cb cb;
	void *ud;
	int stopped;       /* the callback asked to stop */
	struct dm_err err; /* code != 0: the stream is bad, feeding stops */
};

void rest_lines_init(struct rest_lines *l, size_t max_line, rest_row_cb cb, void *ud);
void rest_lines_release(struct rest_lines *l);
/* 0: go on; 1: stopped by the callback; -1: bad input (l->err says why). */
int rest_lines_feed(struct rest_lines *l, const void *p, size_t n);
/* json_loadb that also takes Python's Infinity/-Infinity/NaN (as strings). */
json_t *rest_json_loadb(const char *s, size_t n, json_error_t *je);
/* The end of the body: 0, or -1 for a truncated last line. */
int rest_lines_finish(struct rest_lines *l);

#endif
