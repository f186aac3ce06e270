/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_list_line.c - libFuzzer target for tools/listparse.c, the parser of
 * `add-replicas --list` files.  The input is read as a file (LF, CRLF and CR
 * line ends) with list_read_line and every line parsed with list_parse_line.
 * Beside the sanitizers it traps when a line is reported longer than the
 * input, when an accepted record does not validate (scope, name, adler32,
 * md5, bytes <= 2^63-1, a pfn with "://"), when a refusal has no class or
 * message, or when there are more records than line terminators + 1.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "listparse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	FILE *f;
	char *line = NULL;
	size_t cap = 0, records = 0, ends = 0;
	long n;

	if (size == 0)
		return 0;
	for (size_t i = 0; i < size; i++)
		ends += data[i] == '\n' || data[i] == '\r';
	f = fmemopen((void *)data, size, "r");
	if (!f)
		return 0;
	while ((n = list_read_line(f, &line, &cap, 4096)) != -1) {
		struct list_rec r;
		struct dm_err e = { 0 };
		int got;

		if (n == -2)
			break;
		if ((size_t)n > size)
			__builtin_trap();
		got = list_parse_line(line, (size_t)n, &r, &e);
		if (got < 0 && (!e.cls[0] || !e.msg[0]))
			__builtin_trap();
		if (got == 1) {
			struct dm_err v;
			records++;
			if (cat_validate_scope(r.scope, &v) || cat_validate_name(r.name, &v) ||
			    cat_validate_adler32(r.adler32, &v) ||
			    (r.md5[0] && cat_validate_md5(r.md5, &v)) || r.bytes > (uint64_t)INT64_MAX ||
			    (r.pfn && !strstr(r.pfn, "://")))
				__builtin_trap();
		}
	}
	if (records > ends + 1)
		__builtin_trap();
	free(line);
	fclose(f);
	return 0;
}
