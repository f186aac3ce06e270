/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tap.h - a tiny test harness for C unit tests: CHECK(cond) records a
 * failure with file:line and carries on; tap_done() prints
 * "N passed, N failed" and returns the exit status for main().
 */
#ifndef DIDFS_TAP_H
#define DIDFS_TAP_H
#include <stdio.h>
#include <string.h>

static int tap_pass, tap_fail;

#define CHECK(cond) do { \
	if (cond) { tap_pass++; } else { tap_fail++; \
		fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); } \
} while (0)
#define CHECK_STR(a, b) do { const char *a_ = (a), *b_ = (b); \
	if (a_ && b_ && strcmp(a_, b_) == 0) { tap_pass++; } else { tap_fail++; \
		fprintf(stderr, "FAIL %s:%d: \"%s\" != \"%s\"\n", __FILE__, __LINE__, \
			a_ ? a_ : "(null)", b_ ? b_ : "(null)"); } \
} while (0)

static inline int tap_done(void)
{
	printf("%d passed, %d failed\n", tap_pass, tap_fail);
	return tap_fail ? 1 : 0;
}
#endif
