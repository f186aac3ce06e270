/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_rse_expr.c - libFuzzer target for catalog/rse_expr.c.  Every input is
 * taken as a NUL-terminated expression and checked with cat_rse_expr_check,
 * then evaluated over a small fixed universe (columns, boolean, numeric and
 * non-numeric attributes, a NULL value), with and without allow_empty.  Beside
 * the sanitizers it traps when the two entry points disagree, when an error
 * has no class or message, when *count does not match the result array, or
 * when unbalanced parentheses are not refused with Rucio's exact text.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rse_expr.h"

static const struct cat_kv a_cols[] = {
	{ "rse", "SITE-A_DISK" }, { "rse_type", "DISK" }, { "deterministic", "true" },
	{ "volatile", "false" }, { "availability_read", "true" },
	{ "availability_write", "true" }, { "availability_delete", "true" },
	{ "city", "Geneva" }, { "longitude", "6.05" },
};
static const struct cat_kv a_attrs[] = {
	{ "SITE-A_DISK", "true" }, { "tier", "1" }, { "country", "ch" },
	{ "freespace", "120.5" }, { "istape", "false" }, { "site", "SITE-A" },
};
static const struct cat_kv b_cols[] = {
	{ "rse", "SITE-B_TAPE" }, { "rse_type", "TAPE" }, { "deterministic", "true" },
	{ "availability_read", "false" }, { "availability_write", "false" },
	{ "availability_delete", "true" }, { "city", NULL },
};
static const struct cat_kv b_attrs[] = {
	{ "SITE-B_TAPE", "true" }, { "tier", "0" }, { "country", "de" },
	{ "freespace", "1_0e3" }, { "istape", "true" }, { "site", "SITE-B" },
	{ "note", NULL },
};
static const struct cat_kv c_cols[] = {
	{ "rse_type", "DISK" }, { "deterministic", "false" }, { "volatile", "true" },
	{ "custom", "x" },
};
static const struct cat_kv c_attrs[] = {
	{ "SITE-C_SCRATCH", "true" }, { "tier", "2" }, { "country", "de" },
	{ "freespace", "n/a" }, { "weight", "-inf" }, { "mock", "True" },
};
static const struct cat_kv d_attrs[] = {
	{ "MOCK", "true" }, { "freespace", " 7 " }, { "weight", "nan" },
};

static const struct cat_rse_info rses[] = {
	{ "SITE-A_DISK", a_cols, sizeof(a_cols) / sizeof(a_cols[0]),
	  a_attrs, sizeof(a_attrs) / sizeof(a_attrs[0]) },
	{ "SITE-B_TAPE", b_cols, sizeof(b_cols) / sizeof(b_cols[0]),
	  b_attrs, sizeof(b_attrs) / sizeof(b_attrs[0]) },
	{ "SITE-C_SCRATCH", c_cols, sizeof(c_cols) / sizeof(c_cols[0]),
	  c_attrs, sizeof(c_attrs) / sizeof(c_attrs[0]) },
	{ "MOCK", NULL, 0, d_attrs, sizeof(d_attrs) / sizeof(d_attrs[0]) },
};
#define NRSES (sizeof(rses) / sizeof(rses[0]))
static const struct cat_rse_universe universe = { rses, NRSES };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *expr = malloc(size + 1);
	uint8_t match[NRSES];
	struct dm_err err;
	enum dm_status check, st, st2;
	size_t count, count2, i, n;

	if (!expr)
		return 0;
	memcpy(expr, data, size);
	expr[size] = '\0';

	dm_err_clear(&err);
	check = cat_rse_expr_check(expr, &err);
	if (check != DM_OK && (check != DM_EINVAL || !err.cls[0] || !err.msg[0]))
		__builtin_trap();

	/* unbalanced parentheses (within the length limit) are refused first,
	 * with Rucio's exact text */
	{
		size_t len = strlen(expr), open = 0, close = 0;
		int bad = 0;
		for (i = 0; i < len; i++) {
			open += expr[i] == '(';
			close += expr[i] == ')';
			bad |= close > open;
		}
		bad |= open != close;
		if (len <= 3000 && bad != (check == DM_EINVAL &&
					   !strncmp(err.msg, "Problem with parantheses.", 25)))
			__builtin_trap();
	}

	dm_err_clear(&err);
	st = cat_rse_expr_eval(expr, &universe, match, &count, 1, &err);
	if (check != DM_OK && st != check)
		__builtin_trap(); /* eval must refuse what check refuses */
	if (st == DM_OK) {
		for (i = 0, n = 0; i < NRSES; i++) {
			if (match[i] > 1)
				__builtin_trap();
			n += match[i];
		}
		if (n != count)
			__builtin_trap();
	} else if (!err.cls[0] || !err.msg[0]) {
		__builtin_trap();
	}

	st2 = cat_rse_expr_eval(expr, &universe, match, &count2, 0, NULL);
	if (st == DM_OK && (count ? st2 != DM_OK || count2 != count : st2 != DM_EINVAL))
		__builtin_trap();
	if (st != DM_OK && st2 != st)
		__builtin_trap();

	free(expr);
	return 0;
}
