/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_rest.c - libFuzzer target over the request parsers of `didfs serve`
 * (server/json.c): percent-decoding, UTF-8 validation, the DID path split,
 * Rucio's `filters` Python literal, and JSON bodies through srv_body_json /
 * srv_jstr as the handlers use them.  The first input byte picks the parser.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

/* json.c's error replies go nowhere here */
int srv_error(struct srv_req *r, const char *cls, const char *fmt, ...)
{
	return 0;
}

static int filter_cb(void *ud, int group, const char *key, const char *op, const char *value)
{
	size_t *n = ud;

	if (key)
		*n += strlen(key) + strlen(op) + strlen(value);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s, out[1024], scope[128], name[1024];
	const char *suffix;
	struct dm_err err;
	struct srv_req r;
	size_t n = 0;
	unsigned sel;

	if (!size)
		return 0;
	sel = data[0] % 5;
	data++;
	size--;
	s = malloc(size + 1);
	memcpy(s, data, size);
	s[size] = 0;
	switch (sel) {
	case 0:
		if (!srv_pct_decode(s, size, 1, out, sizeof(out)) && strlen(out) >= sizeof(out))
			abort();
		break;
	case 1:
		(void)srv_utf8_ok(s, size);
		break;
	case 2:
		if (!srv_did_path(s, scope, sizeof(scope), name, sizeof(name), &suffix, &err) &&
		    (!*scope || !*name || (*suffix && (suffix < s || suffix > s + strlen(s)))))
			abort();
		break;
	case 3:
		(void)srv_parse_filters(s, filter_cb, &n, &err);
		break;
	case 4: {
		json_t *j;
		const char *v;

		memset(&r, 0, sizeof(r));
		r.body.s = s;
		r.body.len = size;
		j = srv_body_json(&r);
		if (j) {
			(void)srv_jstr(&r, j, "type", &v);
			(void)srv_jstr(&r, j, "name", &v);
			json_decref(j);
		}
		break;
	}
	}
	free(s);
	return 0;
}
