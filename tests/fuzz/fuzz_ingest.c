/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_ingest.c - libFuzzer target for daemons/ingest_parse.c, the parsers
 * of watch-folder ingest's outside input: the input is parsed as a trigger
 * file, as an extractor's output and as a dataset name pattern.  Beside the
 * sanitizers it traps when an accepted trigger holds a checksum that is
 * not Rucio's form (adler32: 8 lowercase hex, md5: 32 lowercase hex), a
 * size above 2^63-1 or a metadata key Rucio refuses, or when a refusal has
 * no class or message.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ingest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int lower_hex(const char *s, size_t n)
{
	if (strlen(s) != n)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i]))
			return 0;
	return 1;
}

static void check_meta(const struct ing_meta *m)
{
	for (size_t i = 0; i < m->n; i++) {
		const char *k = m->key[i];
		if (!*k || strlen(k) > ING_KEY_MAX || strlen(m->value[i]) > ING_VALUE_MAX)
			abort();
		for (; *k; k++)
			if (!(isalnum((unsigned char)*k) || *k == '_' || *k == '-' || *k == '.'))
				abort();
	}
}

static const char *lookup(void *ud, const char *key)
{
	(void)ud;
	return key[0] == 'x' ? NULL : "v";
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ing_trigger t;
	struct ing_meta m = { 0 };
	struct dm_err e = { 0 };
	struct dm_buf b = DM_BUF_INIT;
	char *s;

	if (ing_trigger_parse((const char *)data, size, &t, &e) == DM_OK) {
		if ((t.adler32[0] && !lower_hex(t.adler32, 8)) || (t.md5[0] && !lower_hex(t.md5, 32)) ||
		    t.bytes > (uint64_t)INT64_MAX)
			abort();
		check_meta(&t.meta);
		ing_trigger_free(&t);
	} else if (!e.cls[0] || !e.msg[0]) {
		abort();
	}
	memset(&e, 0, sizeof e);
	if (ing_kv_parse((const char *)data, size, "fuzz", &m, &e) == DM_OK)
		check_meta(&m);
	else if (!e.cls[0] || !e.msg[0])
		abort();
	ing_meta_free(&m);
	s = malloc(size + 1);
	memcpy(s, data, size);
	s[size] = 0;
	memset(&e, 0, sizeof e);
	if (ing_pattern_expand(s, lookup, NULL, &b, &e) != DM_OK && (!e.cls[0] || !e.msg[0]))
		abort();
	dm_buf_release(&b);
	free(s);
	return 0;
}
