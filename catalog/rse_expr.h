/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rse_expr.h - Rucio's RSE expression language, evaluated over an in-memory
 * "universe" of RSEs (their columns and attributes).  Pure code: no database,
 * no allocation that outlives a call, so it can be fuzzed and unit-tested on
 * its own.  The catalog loads the universe (catalog/rse.c) and calls this.
 *
 * Grammar and semantics are Rucio's (core/rse_expression_parser.py; see
 * shared/reference/rucio.md section 3):
 *   - primitives: bare NAME (== attribute NAME=true), key=value, key<n, key>n, '*'
 *   - operators '|' union, '&' intersection, '\' difference, strictly left to
 *     right without precedence; parentheses group
 *   - key=value: if key is an RSE column (see cat_rse_info.columns) the column
 *     is compared (boolean columns accept 1/true/0/false), else the attribute
 *   - key<n / key>n: attributes whose value parses as a number
 *   - errors are InvalidRSEExpression: "Problem with parentheses.",
 *     "Expression does not comply to RSE Expression syntax",
 *     "RSE Expression resulted in an empty set."
 *     (messages start with Rucio's text and then quote the expression)
 *   - limits of ours: at most 3000 bytes (Rucio's column width) and 256
 *     levels of nested parentheses, both InvalidRSEExpression
 *   - a column value RSE.from_str() refuses ("deterministic=yes",
 *     "rse_type=tape") is InvalidObject, as in Rucio: "Invalid boolean
 *     value: yes", "Invalid rse_type: tape"
 */
#ifndef CAT_RSE_EXPR_H
#define CAT_RSE_EXPR_H

#include <stddef.h>
#include <stdint.h>

#include "dm.h"

struct cat_kv {
	const char *key;
	const char *value;
};

/* One RSE as the expression language sees it. */
struct cat_rse_info {
	const char *name;
	/* RSE table columns by Rucio's column names: "rse", "rse_type",
	 * "deterministic", "volatile", "staging_area", "availability_read",
	 * "availability_write", "availability_delete", "city", "region_code",
	 * "country_name", "continent", "time_zone", "ISP", "ASN", "qos_class"...
	 * Boolean columns hold "true"/"false".  A NULL value is a NULL column. */
	const struct cat_kv *columns;
	size_t ncolumns;
	/* Attributes, including <NAME>=true that every RSE has. */
	const struct cat_kv *attrs;
	size_t nattrs;
};

struct cat_rse_universe {
	const struct cat_rse_info *rses;
	size_t n;
};

/* Evaluate expr over u.  On success match[i] is 1 for every RSE i in the
 * result, 0 otherwise (match has u->n entries), and *count is the number of
 * matches.  An empty result is an error (InvalidRSEExpression) unless
 * allow_empty is set.  err gets class "InvalidRSEExpression" on failure. */
enum dm_status cat_rse_expr_eval(const char *expr, const struct cat_rse_universe *u,
				 uint8_t *match, size_t *count, int allow_empty,
				 struct dm_err *err);

/* Syntax check only (parentheses, tokens), no universe needed. */
enum dm_status cat_rse_expr_check(const char *expr, struct dm_err *err);

#endif
