/* SPDX-License-Identifier: Apache-2.0 */
/*
 * listparse.c - the `add-replicas --list` line parser.  See listparse.h.
 */
#include "listparse.h"

#include <stdlib.h>
#include <string.h>

long list_read_line(FILE *f, char **buf, size_t *cap, size_t max)
{
	size_t n = 0;
	int ch, any = 0;

	while ((ch = getc_unlocked(f)) != EOF) {
		any = 1;
		if (ch == '\n')
			break;
		if (ch == '\r') {
			int next = getc_unlocked(f);
			if (next != '\n' && next != EOF)
				ungetc(next, f);
			break;
		}
		if (n >= max)
			return -2;
		if (n + 1 >= *cap) {
			*cap = *cap ? 2 * *cap : 256;
			*buf = dm_xrealloc(*buf, *cap);
		}
		(*buf)[n++] = (char)ch;
	}
	if (!any)
		return -1;
	if (!*buf || n + 1 > *cap) {
		*cap = n + 1;
		*buf = dm_xrealloc(*buf, *cap);
	}
	(*buf)[n] = 0;
	return (long)n;
}

static int is_blank(char c)
{
	return c == ' ' || c == '\t';
}

int list_parse_line(char *line, size_t n, struct list_rec *r, struct dm_err *err)
{
	char *tok[6];
	int nt = 0;
	size_t i = 0;
	const char *md5 = NULL;
	struct dm_err e;

	for (size_t k = 0; k < n; k++) {
		unsigned char c = (unsigned char)line[k];
		if ((c < 0x20 && c != '\t') || c == 0x7f) {
			dm_seterr(err, DM_EINVAL, "InputValidationError",
				  "control character 0x%02x at column %zu", c, k + 1);
			return -1;
		}
	}
	while (i < n && is_blank(line[i]))
		i++;
	if (i == n || line[i] == '#')
		return 0;
	while (i < n) {
		if (nt == 6)
			break;
		tok[nt++] = line + i;
		while (i < n && !is_blank(line[i]))
			i++;
		if (i < n)
			line[i++] = 0;
		while (i < n && is_blank(line[i]))
			i++;
		if (i < n && line[i] == '#')
			break; /* a trailing comment */
	}
	line[n] = 0;
	if (nt < 3 || nt > 5) {
		dm_seterr(err, DM_EINVAL, "InputValidationError",
			  "expected 'scope:name bytes adler32 [md5] [pfn]', got %d field(s)", nt);
		return -1;
	}
	if (cat_parse_did(tok[0], r->scope, r->name, &e)) {
		if (err)
			*err = e;
		return -1;
	}
	if (dm_parse_u64(tok[1], &r->bytes) || r->bytes > (uint64_t)INT64_MAX) {
		dm_seterr(err, DM_EINVAL, "InputValidationError",
			  "bytes must be a number from 0 to %lld, not '%.64s'", (long long)INT64_MAX, tok[1]);
		return -1;
	}
	if (cat_validate_adler32(tok[2], &e)) {
		if (err)
			*err = e;
		return -1;
	}
	dm_strlcpy(r->adler32, tok[2], sizeof r->adler32);
	r->pfn = NULL;
	r->md5[0] = 0;
	if (nt >= 4) {
		if (strstr(tok[3], "://"))
			r->pfn = tok[3];
		else
			md5 = tok[3];
	}
	if (nt == 5) {
		if (r->pfn) {
			dm_seterr(err, DM_EINVAL, "InputValidationError",
				  "the md5 comes before the pfn, and there is one pfn");
			return -1;
		}
		r->pfn = tok[4];
		if (!strstr(r->pfn, "://")) {
			dm_seterr(err, DM_EINVAL, "InputValidationError",
				  "pfn '%.256s' is not a URL (scheme://...)", r->pfn);
			return -1;
		}
	}
	if (md5) {
		if (cat_validate_md5(md5, &e)) {
			if (err)
				*err = e;
			return -1;
		}
		dm_strlcpy(r->md5, md5, sizeof r->md5);
	}
	return 1;
}
