/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dmcheck.c - checked integer parsing, saturating time arithmetic, UTF-8
 * validation.  See dmcheck.h.
 */
#include "dmcheck.h"
#include "dm.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>

int dm_parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
	const char *p = s;
	char *end;
	long long v;

	if (!s)
		return DM_PARSE_SYNTAX;
	if (*p == '-' || *p == '+')
		p++;
	if (!isdigit((unsigned char)*p))
		return DM_PARSE_SYNTAX; /* also refuses "", " 1", "-" */
	errno = 0;
	v = strtoll(s, &end, 10);
	if (*end)
		return DM_PARSE_SYNTAX;
	if (errno == ERANGE || v < lo || v > hi)
		return DM_PARSE_RANGE;
	*out = (int64_t)v;
	return DM_PARSE_OK;
}

int64_t dm_time_add(int64_t t, int64_t d)
{
	int64_t r;

	if (__builtin_add_overflow(t, d, &r))
		return d > 0 ? INT64_MAX : INT64_MIN;
	return r;
}

int64_t dm_time_sub(int64_t t, int64_t d)
{
	int64_t r;

	if (__builtin_sub_overflow(t, d, &r))
		return d < 0 ? INT64_MAX : INT64_MIN;
	return r;
}

int dm_utf8_valid(const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;

	while (i < n) {
		unsigned c = s[i];
		size_t len;
		unsigned cp, min;

		if (c == 0)
			return 0;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			len = 2; cp = c & 0x1f; min = 0x80;
		} else if (c >= 0xe0 && c <= 0xef) {
			len = 3; cp = c & 0x0f; min = 0x800;
		} else if (c >= 0xf0 && c <= 0xf4) {
			len = 4; cp = c & 0x07; min = 0x10000;
		} else {
			return 0; /* continuation byte, 0xc0/0xc1 or > 0xf4 */
		}
		if (n - i < len)
			return 0;
		for (size_t k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += len;
	}
	return 1;
}

int dm_busy_timeout_s(void)
{
	const char *s = getenv("DIDFS_BUSY_TIMEOUT");
	int64_t v;

	if (s && *s) {
		if (dm_parse_int(s, 0, 3600, &v) == 0)
			return (int)v;
		dm_log(DM_LOG_WARN, "catalog", "DIDFS_BUSY_TIMEOUT='%s' is not 0..3600 seconds; "
		       "using 30", s);
	}
	return 30;
}

uint32_t dm_fnv1a(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	uint32_t h = 2166136261u;

	for (; p && *p; p++)
		h = (h ^ *p) * 16777619u;
	return h;
}
