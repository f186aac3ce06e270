/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_uidmap.c - libFuzzer target for fs/uidmap.c: the --uid-map file
 * parser and the environment-block lookup.  Beside the sanitizers it traps
 * when an accepted map is not sorted by uid, holds a uid twice, an account
 * that does not validate, or more entries than lines; when a refusal has no
 * class or no "line" in its message; and when an environment value found
 * lies outside the input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "uidmap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int resolve(const char *user, uint32_t *uid, void *ud)
{
	(void)ud;
	if (strlen(user) > 8)
		return -1;
	*uid = (uint32_t)strlen(user) * 1000u;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fs_uidmap m;
	struct dm_err e = { 0 };
	const char *text = (const char *)data;
	size_t lines = 1, vlen = 0;
	const char *v;

	for (size_t i = 0; i < size; i++)
		lines += data[i] == '\n';
	if (fs_uidmap_parse(text, size, "F", resolve, NULL, &m, &e) == DM_OK) {
		if (m.n > lines)
			abort();
		for (size_t i = 0; i < m.n; i++) {
			struct dm_err ae = { 0 };
			if (cat_validate_account(m.v[i].account, &ae))
				abort();
			if (i && m.v[i - 1].uid >= m.v[i].uid)
				abort();
			if (strcmp(fs_uidmap_find(&m, m.v[i].uid), m.v[i].account))
				abort();
		}
		fs_uidmap_free(&m);
	} else {
		if (!e.cls[0] || !strstr(e.msg, "F"))
			abort();
		if (m.v || m.n)
			abort();
	}
	v = fs_environ_find(text, size, "X509_USER_PROXY", &vlen);
	if (v && (v < text || v + vlen > text + size))
		abort();
	return 0;
}
