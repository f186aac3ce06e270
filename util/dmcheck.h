/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dmcheck.h - checked input: the one integer parser every number from
 * outside goes through, saturating time arithmetic, UTF-8 validation.
 *
 * Every duration or count a user can give (lifetimes, delays, copies,
 * priorities, timeouts) is parsed with dm_parse_int() against an explicit
 * range, and every "now + duration" sum is dm_time_add(), which saturates
 * instead of wrapping: a lifetime near INT64_MAX once wrapped to an expiry in
 * the past and the undertaker deleted the DID at once.
 */
#ifndef DMCHECK_H
#define DMCHECK_H

#include <stddef.h>
#include <stdint.h>

/* The longest duration accepted from outside: 100 years of 365.25 days. */
#define DM_DURATION_MAX INT64_C(3155760000)
#define DM_DURATION_MAX_STR "3155760000"

enum dm_parse_rc { DM_PARSE_OK = 0, DM_PARSE_SYNTAX = -1, DM_PARSE_RANGE = -2 };

/* Parse a whole decimal integer (optional sign, no spaces, no suffix) into
 * [lo, hi].  Returns DM_PARSE_OK, DM_PARSE_SYNTAX (not an integer, or out of
 * int64 range) or DM_PARSE_RANGE (an integer outside [lo, hi]); *out is set
 * only on success. */
int dm_parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out);

/* t + d and t - d, saturating at INT64_MIN / INT64_MAX instead of wrapping. */
int64_t dm_time_add(int64_t t, int64_t d);
int64_t dm_time_sub(int64_t t, int64_t d);

/* 1 if s[0..n) is well-formed UTF-8 (RFC 3629: no overlongs, no surrogates,
 * nothing above U+10FFFF), 0 otherwise.  NUL bytes are refused too (1 stays
 * true only for text a C string and JSON can both carry). */
int dm_utf8_valid(const char *s, size_t n);

/* $DIDFS_BUSY_TIMEOUT (set by `didfs --busy-timeout`): seconds a writer waits
 * for a busy catalog, 0..3600, default 30; a bad value is logged and 30 used.
 * Every store reads it here. */
int dm_busy_timeout_s(void);

/* FNV-1a of a C string (NULL: the empty string): the catalog's didfs_hash(),
 * which splits work between daemon instances.  PostgreSQL's plpgsql version
 * (catalog/sql/schema_pg.c) gives the same values. */
uint32_t dm_fnv1a(const char *s);

#endif
