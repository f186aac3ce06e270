/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_rest.c - libFuzzer target over the request parsers of `didfs serve`
 * (server/json.c): percent-decoding, UTF-8 validation, the DID path split,
 * Rucio's `filters` Python literal, and JSON bodies through srv_body_json /
 * srv_jstr as the handlers use them, and the one-pass bulk-file parser
 * (srv_fast_files), checked against jansson: whatever it accepts must be
 * the same files as the general path reads.  The first input byte picks
 * the parser.
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

int srv_error_status(struct srv_req *r, int status, const char *cls, const char *fmt, ...)
{
	return 0;
}

static int same(const char *a, json_t *v)
{
	if (!a)
		return v == NULL;
	return json_is_string(v) && !strcmp(a, json_string_value(v));
}

static void check_fast(const char *s, size_t size)
{
	struct srv_fast_files ff;
	json_error_t je;
	json_t *j, *arr;

	if (srv_fast_files(s, size, "dids", &ff)) {
		srv_fast_files_free(&ff);
		return;
	}
	j = json_loadb(s, size, 0, &je);
	if (!j)
		abort(); /* accepted what JSON refuses */
	arr = json_object_get(j, "dids");
	if (!json_is_array(arr) || json_array_size(arr) != ff.n || !same(ff.rse, json_object_get(j, "rse")))
		abort();
	for (size_t i = 0; i < ff.n; i++) {
		json_t *x = json_array_get(arr, i);
		const struct cat_file_in *f = &ff.files[i];

		if (!same(f->scope, json_object_get(x, "scope")) || !same(f->name, json_object_get(x, "name")) ||
		    !same(f->adler32, json_object_get(x, "adler32")) || !same(f->md5, json_object_get(x, "md5")) ||
		    !same(f->pfn, json_object_get(x, "pfn")) ||
		    (json_integer_value(json_object_get(x, "bytes")) != (json_int_t)f->bytes) ||
		    !srv_name_ok(f->name))
			abort();
	}
	json_decref(j);
	srv_fast_files_free(&ff);
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
	sel = data[0] % 6;
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
	case 5:
		check_fast(s, size);
		break;
	}
	free(s);
	return 0;
}
