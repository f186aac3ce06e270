/* SPDX-License-Identifier: Apache-2.0 */
/*
 * listparse.h - the parser of `add-replicas --list` files, one record a line:
 *
 *     scope:name bytes adler32 [md5] [pfn]     # a comment
 *
 * Fields are separated by spaces or tabs; blank lines and lines whose first
 * non-blank character is '#' are skipped.  Line ends are LF, CRLF or a lone
 * CR (old Mac files): all three end a line, so a CR-only file is as many
 * records as it has lines, never one record with the rest cut off.  Any
 * other control character, a NUL, a field that does not validate (scope,
 * name, bytes up to 2^63-1, adler32, md5, a pfn with "://") or a wrong field
 * count is an error naming the line number.  The parser takes outside input
 * and has a libFuzzer target (tests/fuzz/fuzz_list_line.c).
 */
#ifndef LISTPARSE_H
#define LISTPARSE_H

#include <stdint.h>
#include <stdio.h>

#include "catalog.h"

struct list_rec {
	char scope[CAT_SCOPE_MAX + 1];
	char name[CAT_NAME_MAX + 1];
	uint64_t bytes;
	char adler32[9];
	char md5[33];    /* "" when not given */
	const char *pfn; /* into the line; NULL when not given */
};

/* Parse one line (no terminator; n bytes, may hold NULs, which are refused).
 * line is modified.  Returns 1 (a record in *r), 0 (blank or comment) or -1
 * (err says what is wrong, without the line number). */
int list_parse_line(char *line, size_t n, struct list_rec *r, struct dm_err *err);

/* Read one line from f into *buf (growing it), ending at LF, CRLF or CR.
 * Returns its length without the terminator, or -1 at end of file. A line
 * longer than max is an error (returns -2). */
long list_read_line(FILE *f, char **buf, size_t *cap, size_t max);

#endif
