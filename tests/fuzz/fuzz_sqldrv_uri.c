/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_sqldrv_uri.c - libFuzzer target for the parts of catalog/sql/sqldrv.c
 * that read text from outside: sqldrv_redact_uri (the catalog URI a user
 * gives, shown in every error) and sqldrv_pg_placeholders (the `?N` -> `$N`
 * rewrite).  Beside the sanitizers it traps when redaction is not
 * idempotent, when a query parameter password=... survives, when the output
 * overflows, or when text without '?' is changed by the rewrite.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sqldrv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *in, out[512], again[512], *sql;
	const char *q;
	int np = -1;

	if (size > 4096)
		return 0;
	in = malloc(size + 1);
	memcpy(in, data, size);
	in[size] = 0;
	sqldrv_redact_uri(in, out, sizeof out);
	if (strlen(out) >= sizeof out)
		__builtin_trap();
	if (strlen(out) < sizeof out - 1) {
		/* not truncated: redacting again changes nothing */
		sqldrv_redact_uri(out, again, sizeof again);
		if (strcmp(out, again) != 0)
			__builtin_trap();
		/* every password=... query parameter is hidden */
		if (strstr(out, "://") && (q = strchr(strstr(out, "://") + 3, '?'))) {
			for (const char *p = q; p && *p; p = strchr(p + 1, '&'))
				if (strncmp(p + 1, "password=", 9) == 0 &&
				    strncmp(p + 10, "***", 3) != 0)
					__builtin_trap();
		}
	}
	sql = sqldrv_pg_placeholders(in, &np);
	if (!sql || np < 0)
		__builtin_trap();
	if (!strchr(in, '?') && (strcmp(sql, in) != 0 || np != 0))
		__builtin_trap();
	free(sql);
	free(in);
	return 0;
}
