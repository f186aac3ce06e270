/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for util/dmcheck.c (checked integers, saturating time, UTF-8)
 * and util/progress.c (the progress line; silent off a terminal). */
#include "dmcheck.h"
#include "dm.h"
#include "progress.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void test_parse_int(void)
{
	int64_t v = 42;

	CHECK(dm_parse_int("0", 0, 10, &v) == DM_PARSE_OK && v == 0);
	CHECK(dm_parse_int("-1", -1, 10, &v) == DM_PARSE_OK && v == -1);
	CHECK(dm_parse_int("+7", 0, 10, &v) == DM_PARSE_OK && v == 7);
	CHECK(dm_parse_int(DM_DURATION_MAX_STR, 0, DM_DURATION_MAX, &v) == DM_PARSE_OK &&
	      v == DM_DURATION_MAX);
	v = 42;
	/* syntax: nothing, blanks, suffixes, hex, a lone sign; *out untouched */
	const char *bad[] = { "", " 1", "1 ", "1s", "0x10", "-", "+", "1e3", "١", "--1", NULL };
	for (int i = 0; bad[i]; i++)
		CHECK(dm_parse_int(bad[i], INT64_MIN, INT64_MAX, &v) == DM_PARSE_SYNTAX);
	CHECK(dm_parse_int(NULL, 0, 1, &v) == DM_PARSE_SYNTAX);
	CHECK(v == 42);
	/* range: outside [lo, hi], and outside int64 */
	CHECK(dm_parse_int("11", 0, 10, &v) == DM_PARSE_RANGE);
	CHECK(dm_parse_int("-1", 0, 10, &v) == DM_PARSE_RANGE);
	CHECK(dm_parse_int("9223372036854775807", 0, DM_DURATION_MAX, &v) == DM_PARSE_RANGE);
	CHECK(dm_parse_int("9223372036854775808", INT64_MIN, INT64_MAX, &v) == DM_PARSE_RANGE);
	CHECK(dm_parse_int("-9223372036854775809", INT64_MIN, INT64_MAX, &v) == DM_PARSE_RANGE);
	CHECK(v == 42);
	CHECK(dm_parse_int("-9223372036854775808", INT64_MIN, INT64_MAX, &v) == DM_PARSE_OK &&
	      v == INT64_MIN);
}

static void test_time_add(void)
{
	int64_t now = 1764633600; /* 2025-12-02 */

	CHECK(dm_time_add(now, 10) == now + 10);
	CHECK(dm_time_add(now, -10) == now - 10);
	CHECK(dm_time_add(now, INT64_MAX) == INT64_MAX); /* the wrap that deleted DIDs */
	CHECK(dm_time_add(INT64_MAX, 1) == INT64_MAX);
	CHECK(dm_time_add(-now, INT64_MIN) == INT64_MIN);
	CHECK(dm_time_add(now, DM_DURATION_MAX) > now);
	CHECK(dm_time_sub(now, 10) == now - 10);
	CHECK(dm_time_sub(INT64_MIN, 1) == INT64_MIN);
	CHECK(dm_time_sub(now, INT64_MIN) == INT64_MAX);
	CHECK(dm_time_sub(-2, INT64_MAX) == INT64_MIN);
}

static void test_utf8(void)
{
	const char *good[] = { "", "ascii", "caf\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
			       "\xf4\x8f\xbf\xbf", "\xed\x9f\xbf", NULL };
	const char *bad[] = {
		"\xff", "\xfe\xff", "\x80", "caf\xc3", "\xc0\xaf", "\xc1\xbf", /* overlong 2 */
		"\xe0\x80\xaf", /* overlong 3 */ "\xf0\x80\x80\xaf", /* overlong 4 */
		"\xed\xa0\x80", /* surrogate */ "\xf4\x90\x80\x80", /* > U+10FFFF */
		"\xf5\x80\x80\x80", "\xe2\x82", "\xe2\x28\xa1", NULL,
	};

	for (int i = 0; good[i]; i++)
		CHECK(dm_utf8_valid(good[i], strlen(good[i])) == 1);
	for (int i = 0; bad[i]; i++)
		CHECK(dm_utf8_valid(bad[i], strlen(bad[i])) == 0);
	CHECK(dm_utf8_valid("a\0b", 3) == 0); /* NUL refused */
	CHECK(dm_utf8_valid("\xe2\x82\xac", 2) == 0); /* cut by the length */
}

static void test_progress(void)
{
	char line[256];

	dm_progress_format(line, sizeof line, "hashing", 12, 40, 3ull << 30, 24ull << 30, 10.0);
	CHECK_STR(line, "hashing: 12/40 files, 3.0 GiB/24.0 GiB, 307.2 MiB/s, ETA 1m10s");
	dm_progress_format(line, sizeof line, "registering", 5, 10, 0, 0, 1.0);
	CHECK_STR(line, "registering: 5/10 files, 0 B, 0 B/s, ETA 1s");
	dm_progress_format(line, sizeof line, "walk", 3, 0, 512, 0, 0);
	CHECK_STR(line, "walk: 3 files, 512 B, 0 B/s");
	/* a tiny buffer is cut, never overrun */
	dm_progress_format(line, 8, "hashing", 1, 2, 3, 4, 1.0);
	CHECK(strlen(line) == 7);
	/* off a terminal: no progress object, and every call takes NULL */
	if (!isatty(STDERR_FILENO)) {
		struct dm_progress *p = dm_progress_new("x", 1, 1);
		CHECK(p == NULL);
		dm_progress_add(p, 1, 1);
		dm_progress_reset(p, "y", 0, 0);
		dm_progress_done(p);
	}
}

int main(void)
{
	test_parse_int();
	test_time_add();
	test_utf8();
	test_progress();
	return tap_done();
}
