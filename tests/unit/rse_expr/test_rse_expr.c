/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_rse_expr.c - unit tests of catalog/rse_expr.c, Rucio's RSE expression
 * language, over a fixed universe of eight fake RSEs.  Expected sets are
 * worked out by hand from Rucio's documented semantics (rucio.md section 3,
 * core/rse_expression_parser.py, core/rse.py list_rses): each primitive type,
 * the three operators evaluated strictly left to right, parentheses, column
 * versus attribute lookups, boolean coercion, numeric comparisons, '*', and
 * every error with its Rucio class and message.
 */
#include <stdlib.h>
#include <string.h>

#include "rse_expr.h"
#include "tap.h"

enum {
	CERN_DISK,   /* CERN-PROD_DATADISK */
	CERN_TAPE,   /* CERN-PROD_TAPE */
	BNL_DISK,    /* BNL-OSG2_DATADISK */
	BNL_SCRATCH, /* BNL-OSG2_SCRATCHDISK */
	DESY,        /* DESY-ZN_DATADISK */
	LRZ,         /* LRZ-LMU_DATADISK */
	IN2P3,       /* IN2P3-CC_DATATAPE */
	MOCK,        /* MOCK_SCRATCH-1 */
	NRSE
};

#define B(x) (1u << (x))
#define ALL_RSES (B(NRSE) - 1)
#define EV_ERROR 0x80000000u
#define EV_BADCOUNT 0x40000000u

/* ---- the universe ---- */

#define COLS(type, det, vol, r, w, d, city) \
	{ "rse_type", type }, { "deterministic", det }, { "volatile", vol }, \
	{ "availability_read", r }, { "availability_write", w }, \
	{ "availability_delete", d }, { "city", city }

static const struct cat_kv cern_disk_cols[] = {
	COLS("DISK", "true", "false", "true", "true", "true", "Geneva"),
	{ "rse", "CERN-PROD_DATADISK" }, { "qos_class", "FAST" },
};
static const struct cat_kv cern_disk_attrs[] = {
	{ "CERN-PROD_DATADISK", "true" }, { "tier", "0" }, { "site", "CERN-PROD" },
	{ "country", "ch" }, { "freespace", "120" }, { "type", "DATADISK" },
	{ "cloud", "CERN" }, { "istape", "false" },
	/* an attribute shadowed by the column of the same name */
	{ "city", "Lyon" },
};

static const struct cat_kv cern_tape_cols[] = {
	COLS("TAPE", "true", "false", "true", "false", "true", "Geneva"),
	{ "rse", "CERN-PROD_TAPE" }, { "qos_class", "SLOW" },
};
static const struct cat_kv cern_tape_attrs[] = {
	{ "CERN-PROD_TAPE", "true" }, { "tier", "0" }, { "site", "CERN-PROD" },
	{ "country", "ch" }, { "freespace", "5000" }, { "type", "DATATAPE" },
	{ "cloud", "CERN" }, { "istape", "true" },
};

static const struct cat_kv bnl_disk_cols[] = {
	COLS("DISK", "true", "false", "true", "true", "true", "Upton"),
	{ "rse", "BNL-OSG2_DATADISK" }, { "custom_col", "x" },
};
static const struct cat_kv bnl_disk_attrs[] = {
	{ "BNL-OSG2_DATADISK", "true" }, { "tier", "1" }, { "site", "BNL-OSG2" },
	{ "country", "us" }, { "freespace", "80.5" }, { "type", "DATADISK" },
	{ "cloud", "US" }, { "istape", "false" },
};

static const struct cat_kv bnl_scratch_cols[] = {
	COLS("DISK", "false", "true", "true", "false", "false", "Upton"),
	{ "rse", "BNL-OSG2_SCRATCHDISK" },
};
static const struct cat_kv bnl_scratch_attrs[] = {
	{ "BNL-OSG2_SCRATCHDISK", "true" }, { "tier", "1" }, { "site", "BNL-OSG2" },
	{ "country", "us" }, { "freespace", "unknown" }, { "type", "SCRATCHDISK" },
	{ "cloud", "US" },
	/* attribute named like a universe-only column: the column wins */
	{ "custom_col", "x" },
};

static const struct cat_kv desy_cols[] = {
	COLS("DISK", "true", "false", "true", "true", "true", "Zeuthen"),
	{ "rse", "DESY-ZN_DATADISK" }, { "longitude", "13.63" },
};
static const struct cat_kv desy_attrs[] = {
	{ "DESY-ZN_DATADISK", "true" }, { "tier", "2" }, { "site", "DESY-ZN" },
	{ "country", "de" }, { "freespace", "1e2" }, { "type", "DATADISK" },
	{ "cloud", "DE" }, { "decommission", "True" },
};

static const struct cat_kv lrz_cols[] = {
	COLS("DISK", "true", "false", "true", "true", "true", "Munich"),
	{ "rse", "LRZ-LMU_DATADISK" }, { "longitude", "11" },
};
static const struct cat_kv lrz_attrs[] = {
	{ "LRZ-LMU_DATADISK", "true" }, { "tier", "2" }, { "site", "LRZ-LMU" },
	{ "country", "de" }, { "freespace", " 42 " }, { "type", "DATADISK" },
	{ "cloud", "DE" }, { "decommission", "false" },
};

static const struct cat_kv in2p3_cols[] = {
	COLS("TAPE", "true", "false", "false", "true", "true", "Lyon"),
	{ "rse", "IN2P3-CC_DATATAPE" },
};
static const struct cat_kv in2p3_attrs[] = {
	{ "IN2P3-CC_DATATAPE", "true" }, { "tier", "1" }, { "site", "IN2P3-CC" },
	{ "country", "fr" }, { "freespace", "1_000" }, { "type", "DATATAPE" },
	{ "cloud", "FR" }, { "istape", "true" }, { "weight", "-3" },
};

/* columns left out on purpose: no rse column (falls back to the name), city
 * NULL, and no availability_delete */
static const struct cat_kv mock_cols[] = {
	{ "rse_type", "DISK" }, { "deterministic", "true" }, { "volatile", "false" },
	{ "availability_read", "true" }, { "availability_write", "true" },
	{ "city", NULL },
};
static const struct cat_kv mock_attrs[] = {
	{ "MOCK_SCRATCH-1", "true" }, { "tier", "3" }, { "country", "fr" },
	{ "type", "SCRATCHDISK" }, { "mock", "true" }, { "cloud", "FR" },
	{ "weight", "nan" }, { "empty", NULL },
};

#define RSE(n, c, a) { n, c, DM_ARRAY_SIZE(c), a, DM_ARRAY_SIZE(a) }
static const struct cat_rse_info rses[NRSE] = {
	RSE("CERN-PROD_DATADISK", cern_disk_cols, cern_disk_attrs),
	RSE("CERN-PROD_TAPE", cern_tape_cols, cern_tape_attrs),
	RSE("BNL-OSG2_DATADISK", bnl_disk_cols, bnl_disk_attrs),
	RSE("BNL-OSG2_SCRATCHDISK", bnl_scratch_cols, bnl_scratch_attrs),
	RSE("DESY-ZN_DATADISK", desy_cols, desy_attrs),
	RSE("LRZ-LMU_DATADISK", lrz_cols, lrz_attrs),
	RSE("IN2P3-CC_DATATAPE", in2p3_cols, in2p3_attrs),
	RSE("MOCK_SCRATCH-1", mock_cols, mock_attrs),
};
static const struct cat_rse_universe universe = { rses, NRSE };

/* ---- helpers ---- */

/* Evaluate with allow_empty; the result as a bit mask, EV_ERROR on failure,
 * EV_BADCOUNT if *count disagrees with the match array. */
static unsigned ev(const char *expr)
{
	uint8_t match[NRSE];
	size_t count = 12345, i, n = 0;
	unsigned mask = 0;
	struct dm_err err;

	dm_err_clear(&err);
	if (cat_rse_expr_eval(expr, &universe, match, &count, 1, &err) != DM_OK) {
		fprintf(stderr, "# %s: %s: %s\n", expr, err.cls, err.msg);
		return EV_ERROR;
	}
	for (i = 0; i < NRSE; i++) {
		if (match[i] > 1)
			return EV_BADCOUNT;
		if (match[i]) {
			mask |= B(i);
			n++;
		}
	}
	return n == count ? mask : EV_BADCOUNT;
}

/* Evaluate without allow_empty and return the status, err filled. */
static enum dm_status ev_err(const char *expr, struct dm_err *err)
{
	uint8_t match[NRSE];
	size_t count = 12345;

	dm_err_clear(err);
	return cat_rse_expr_eval(expr, &universe, match, &count, 0, err);
}

static int starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* The error is InvalidRSEExpression, DM_EINVAL, its message starts with
 * Rucio's text and names the expression; cat_rse_expr_check agrees when the
 * error is a syntax-level one. */
static int is_expr_error(const char *expr, const char *rucio_msg, int syntax_level)
{
	struct dm_err err, err2;
	enum dm_status st = ev_err(expr, &err);
	char quoted[256];
	int ok;

	const char *c;
	int printable = 1;

	for (c = expr; *c; c++)
		printable = printable && *c >= 0x20 && *c < 0x7f;
	snprintf(quoted, sizeof(quoted), "'%s'", expr);
	ok = st == DM_EINVAL && err.code == DM_EINVAL &&
	     strcmp(err.cls, "InvalidRSEExpression") == 0 &&
	     starts_with(err.msg, rucio_msg) &&
	     (!printable || strstr(err.msg, quoted) != NULL);
	if (!ok)
		fprintf(stderr, "# %s: st=%d cls=%s msg=%s\n", expr, (int)st, err.cls, err.msg);
	dm_err_clear(&err2);
	if (syntax_level)
		ok = ok && cat_rse_expr_check(expr, &err2) == DM_EINVAL &&
		     strcmp(err2.msg, err.msg) == 0;
	else
		ok = ok && cat_rse_expr_check(expr, &err2) == DM_OK;
	return ok;
}

static int is_object_error(const char *expr, const char *rucio_msg)
{
	struct dm_err err;
	enum dm_status st = ev_err(expr, &err);

	return st == DM_EINVAL && strcmp(err.cls, "InvalidObject") == 0 &&
	       starts_with(err.msg, rucio_msg) && cat_rse_expr_check(expr, NULL) == DM_OK;
}

/* ---- tests ---- */

static void test_primitives(void)
{
	/* bare RSE name: its own NAME=true attribute */
	CHECK(ev("CERN-PROD_DATADISK") == B(CERN_DISK));
	CHECK(ev("MOCK_SCRATCH-1") == B(MOCK));
	CHECK(ev("IN2P3-CC_DATATAPE") == B(IN2P3));
	/* bare tag */
	CHECK(ev("mock") == B(MOCK));
	CHECK(ev("istape") == (B(CERN_TAPE) | B(IN2P3)));
	/* key=value on attributes */
	CHECK(ev("tier=1") == (B(BNL_DISK) | B(BNL_SCRATCH) | B(IN2P3)));
	CHECK(ev("country=de") == (B(DESY) | B(LRZ)));
	CHECK(ev("site=CERN-PROD") == (B(CERN_DISK) | B(CERN_TAPE)));
	CHECK(ev("type=SCRATCHDISK") == (B(BNL_SCRATCH) | B(MOCK)));
	CHECK(ev("country=DE") == 0);                 /* values are case-sensitive */
	CHECK(ev("Country=de") == 0);                 /* keys too */
	CHECK(ev("cern-prod_datadisk") == 0);
	CHECK(ev("site=CERN") == 0);                  /* whole value, no prefix */
	CHECK(ev("weight=-3") == B(IN2P3));           /* '-' is a value character */
	CHECK(ev("a.b.c=x") == 0);                    /* dots are allowed in keys */
	CHECK(ev(".=x") == 0);
	CHECK(ev("-=-") == 0);
	/* '*' */
	CHECK(ev("*") == ALL_RSES);
	CHECK(ev("(*)") == ALL_RSES);
	CHECK(ev("((*))&country=fr") == (B(IN2P3) | B(MOCK)));
	CHECK(ev("*\\*") == 0);
	CHECK(ev("*\\tier=0") == (ALL_RSES & ~(B(CERN_DISK) | B(CERN_TAPE))));
}

static void test_booleans(void)
{
	/* attribute booleans: BooleanString lowercases True/TRUE on both sides */
	CHECK(ev("istape=true") == (B(CERN_TAPE) | B(IN2P3)));
	CHECK(ev("istape=True") == (B(CERN_TAPE) | B(IN2P3)));
	CHECK(ev("istape=TRUE") == (B(CERN_TAPE) | B(IN2P3)));
	CHECK(ev("istape=false") == (B(CERN_DISK) | B(BNL_DISK)));
	CHECK(ev("istape=False") == (B(CERN_DISK) | B(BNL_DISK)));
	/* attributes do not coerce 1/0 */
	CHECK(ev("istape=1") == 0);
	CHECK(ev("istape=0") == 0);
	/* a stored "True" (not possible through Rucio) still reads as true */
	CHECK(ev("decommission") == B(DESY));
	CHECK(ev("decommission=true") == B(DESY));
	CHECK(ev("decommission=False") == B(LRZ));
	/* the name attribute compared explicitly */
	CHECK(ev("DESY-ZN_DATADISK=True") == B(DESY));
	CHECK(ev("DESY-ZN_DATADISK=false") == 0);
	/* NULL attribute values never match */
	CHECK(ev("empty") == 0);
	CHECK(ev("empty=true") == 0);
}

static void test_columns(void)
{
	const unsigned tape = B(CERN_TAPE) | B(IN2P3);
	const unsigned nowrite = B(CERN_TAPE) | B(BNL_SCRATCH);

	CHECK(ev("rse_type=TAPE") == tape);
	CHECK(ev("rse_type=DISK") == (ALL_RSES & ~tape));
	/* boolean columns accept 1/true/True/0/false/False like RSE.from_str */
	CHECK(ev("availability_write=false") == nowrite);
	CHECK(ev("availability_write=False") == nowrite);
	CHECK(ev("availability_write=FALSE") == nowrite);
	CHECK(ev("availability_write=0") == nowrite);
	CHECK(ev("availability_write=1") == (ALL_RSES & ~nowrite));
	CHECK(ev("availability_write=true") == (ALL_RSES & ~nowrite));
	CHECK(ev("availability_write=True") == (ALL_RSES & ~nowrite));
	CHECK(ev("deterministic=0") == B(BNL_SCRATCH));
	CHECK(ev("deterministic=1") == (ALL_RSES & ~B(BNL_SCRATCH)));
	CHECK(ev("volatile=true") == B(BNL_SCRATCH));
	CHECK(ev("availability_read=false") == B(IN2P3));
	/* a bare boolean column name is column == True */
	CHECK(ev("volatile") == B(BNL_SCRATCH));
	CHECK(ev("availability_write") == (ALL_RSES & ~nowrite));
	CHECK(ev("deterministic\\availability_read") == B(IN2P3));
	CHECK(ev("deterministic&availability_read=0") == B(IN2P3));
	/* a column missing from an RSE is NULL: matches neither value */
	CHECK(ev("availability_delete=true") == (ALL_RSES & ~(B(BNL_SCRATCH) | B(MOCK))));
	CHECK(ev("availability_delete=false") == B(BNL_SCRATCH));
	/* the deprecated integer: read*4 + write*2 + delete */
	CHECK(ev("availability=7") == (B(CERN_DISK) | B(BNL_DISK) | B(DESY) | B(LRZ)));
	CHECK(ev("availability=5") == B(CERN_TAPE));
	CHECK(ev("availability=4") == B(BNL_SCRATCH));
	CHECK(ev("availability=3") == B(IN2P3));
	CHECK(ev("availability=0") == 0);
	/* string columns */
	CHECK(ev("city=Geneva") == (B(CERN_DISK) | B(CERN_TAPE)));
	CHECK(ev("city=Upton") == (B(BNL_DISK) | B(BNL_SCRATCH)));
	CHECK(ev("qos_class=SLOW") == B(CERN_TAPE));
	CHECK(ev("rse=DESY-ZN_DATADISK") == B(DESY));
	CHECK(ev("rse=MOCK_SCRATCH-1") == B(MOCK)); /* no rse column: the name */
	/* the column wins over an attribute of the same name */
	CHECK(ev("city=Lyon") == B(IN2P3));
	/* a bare string column name never matches (column == True) */
	CHECK(ev("city") == 0);
	/* a column only this universe has is still a column */
	CHECK(ev("custom_col=x") == B(BNL_DISK));
	/* numeric columns compare as numbers */
	CHECK(ev("longitude=11") == B(LRZ));
	CHECK(ev("longitude=011") == B(LRZ));
	CHECK(ev("longitude=13") == 0);
	/* columns are not attributes: no numeric comparison on them */
	CHECK(ev("longitude>1") == 0);
}

static void test_numeric(void)
{
	/* freespace: 120, 5000, 80.5, unknown, 1e2, " 42 ", 1_000, (none) */
	CHECK(ev("freespace<100") == (B(BNL_DISK) | B(LRZ)));
	CHECK(ev("freespace>100") == (B(CERN_DISK) | B(CERN_TAPE) | B(IN2P3)));
	CHECK(ev("freespace>99") == (B(CERN_DISK) | B(CERN_TAPE) | B(DESY) | B(IN2P3)));
	CHECK(ev("freespace<1e3") == (B(CERN_DISK) | B(BNL_DISK) | B(DESY) | B(LRZ)));
	CHECK(ev("freespace>1_000") == B(CERN_TAPE));
	CHECK(ev("freespace>999") == (B(CERN_TAPE) | B(IN2P3)));
	CHECK(ev("freespace<80") == B(LRZ));
	CHECK(ev("freespace<81") == (B(BNL_DISK) | B(LRZ)));
	CHECK(ev("freespace>-1") == (ALL_RSES & ~(B(BNL_SCRATCH) | B(MOCK))));
	CHECK(ev("freespace<inf") == (ALL_RSES & ~(B(BNL_SCRATCH) | B(MOCK))));
	CHECK(ev("freespace<Infinity") == (ALL_RSES & ~(B(BNL_SCRATCH) | B(MOCK))));
	CHECK(ev("freespace>inf") == 0);
	CHECK(ev("freespace>-inf") == (ALL_RSES & ~(B(BNL_SCRATCH) | B(MOCK))));
	/* a threshold that is not a number: every RSE is skipped */
	CHECK(ev("freespace<abc") == 0);
	CHECK(ev("freespace>1__0") == 0);
	CHECK(ev("freespace>_1") == 0);
	CHECK(ev("freespace<nan") == 0);
	CHECK(ev("freespace>1e") == 0);
	/* strict comparisons */
	CHECK(ev("freespace<120") == (B(BNL_DISK) | B(DESY) | B(LRZ)));
	CHECK(ev("freespace>5000") == 0);
	CHECK(ev("tier<1") == (B(CERN_DISK) | B(CERN_TAPE)));
	CHECK(ev("tier>1") == (B(DESY) | B(LRZ) | B(MOCK)));
	CHECK(ev("tier>-1\\tier>0") == (B(CERN_DISK) | B(CERN_TAPE)));
	/* negative and NaN stored values */
	CHECK(ev("weight<0") == B(IN2P3));
	CHECK(ev("weight>-4") == B(IN2P3));
	CHECK(ev("weight>-1E1") == B(IN2P3));
	/* stored booleans are Python's True/False: 1.0 and 0.0 */
	CHECK(ev("istape>0") == (B(CERN_TAPE) | B(IN2P3)));
	CHECK(ev("istape<1") == (B(CERN_DISK) | B(BNL_DISK)));
	CHECK(ev("mock>0") == B(MOCK));
	/* an absent key matches nothing */
	CHECK(ev("nosuchkey<10") == 0);
	CHECK(ev("nosuchkey>-10") == 0);
}

static void test_operators(void)
{
	const unsigned de = B(DESY) | B(LRZ);
	const unsigned fr = B(IN2P3) | B(MOCK);

	CHECK(ev("country=de|country=fr") == (de | fr));
	CHECK(ev("tier=1&country=us") == (B(BNL_DISK) | B(BNL_SCRATCH)));
	CHECK(ev("tier=1\\country=us") == B(IN2P3));
	CHECK(ev("tier=1&tier=2") == 0);
	CHECK(ev("country=de|country=de") == de);
	CHECK(ev("type=DATADISK\\availability_write=false") ==
	      (B(CERN_DISK) | B(BNL_DISK) | B(DESY) | B(LRZ)));
	/* strictly left to right: A\B|C == (A\B)|C */
	CHECK(ev("tier=1\\site=BNL-OSG2|country=de") == (B(IN2P3) | de));
	CHECK(ev("(tier=1\\site=BNL-OSG2)|country=de") == (B(IN2P3) | de));
	CHECK(ev("tier=1\\(site=BNL-OSG2|country=de)") == B(IN2P3));
	/* where '&' binding tighter would give de|(fr&DATATAPE) */
	CHECK(ev("country=de|country=fr&type=DATATAPE") == B(IN2P3));
	CHECK(ev("country=de|(country=fr&type=DATATAPE)") == (de | B(IN2P3)));
	/* where '|' binding looser would give tier=0&(...) */
	CHECK(ev("tier=0&istape|mock") == (B(CERN_TAPE) | B(MOCK)));
	CHECK(ev("tier=0&(istape|mock)") == B(CERN_TAPE));
	/* a chain of all three */
	CHECK(ev("*\\country=ch&tier=1|CERN-PROD_TAPE") ==
	      (B(BNL_DISK) | B(BNL_SCRATCH) | B(IN2P3) | B(CERN_TAPE)));
	CHECK(ev("CERN-PROD_TAPE|*\\country=ch&tier=1") ==
	      (B(BNL_DISK) | B(BNL_SCRATCH) | B(IN2P3)));
}

static void test_parentheses(void)
{
	const unsigned de = B(DESY) | B(LRZ);

	CHECK(ev("(country=de)") == de);
	CHECK(ev("((((country=de))))") == de);
	CHECK(ev("(((((cloud=CERN))))|country=us)&type=DATADISK|(country=de\\decommission)") ==
	      (B(CERN_DISK) | B(BNL_DISK) | B(LRZ)));
	CHECK(ev("(cloud=CERN|cloud=US)\\availability_write=false|mock&tier=3") == B(MOCK));
	CHECK(ev("(cloud=CERN|cloud=US)\\(availability_write=false|mock&tier=3)") ==
	      (B(CERN_DISK) | B(CERN_TAPE) | B(BNL_DISK) | B(BNL_SCRATCH)));
	CHECK(ev("(cloud=CERN|cloud=US)\\(availability_write=false|mock)") ==
	      (B(CERN_DISK) | B(BNL_DISK)));
	CHECK(ev("((tier=0|tier=1)&(istape|volatile))\\rse_type=TAPE") == B(BNL_SCRATCH));
	CHECK(ev("country=us&(tier=1&(site=BNL-OSG2&(volatile)))") == B(BNL_SCRATCH));
	CHECK(ev("(country=fr)|(country=de)") == (B(IN2P3) | B(MOCK) | de));

	/* deep nesting: 256 levels are fine, 257 are refused, no recursion */
	{
		char buf[4000];
		size_t i, d;
		struct dm_err err;

		for (d = 255; d <= 258; d++) {
			size_t o = 0;

			for (i = 0; i < d; i++)
				buf[o++] = '(';
			memcpy(buf + o, "mock", 4);
			o += 4;
			for (i = 0; i < d; i++)
				buf[o++] = ')';
			buf[o] = '\0';
			if (d <= 256) {
				CHECK(ev(buf) == B(MOCK));
				CHECK(cat_rse_expr_check(buf, NULL) == DM_OK);
			} else {
				CHECK(ev_err(buf, &err) == DM_EINVAL);
				CHECK_STR(err.cls, "InvalidRSEExpression");
				CHECK(strstr(err.msg, "too deeply") != NULL);
				CHECK(cat_rse_expr_check(buf, NULL) == DM_EINVAL);
			}
		}
		/* 1400 levels, within the length limit */
		{
			size_t o = 0;

			for (i = 0; i < 1400; i++)
				buf[o++] = '(';
			buf[o++] = 'A';
			for (i = 0; i < 1400; i++)
				buf[o++] = ')';
			buf[o] = '\0';
			CHECK(ev_err(buf, &err) == DM_EINVAL);
			CHECK(strstr(err.msg, "too deeply") != NULL);
		}
		/* many groups side by side are not deep */
		{
			size_t o = 0;

			for (i = 0; i < 300; i++) {
				memcpy(buf + o, "(mock)|", 7);
				o += 7;
			}
			memcpy(buf + o, "(tier=2)", 8);
			o += 8;
			buf[o] = '\0';
			CHECK(ev(buf) == (B(MOCK) | de));
		}
	}
}

static void test_errors(void)
{
	static const char *parens[] = {
		"(country=de", "country=de)", ")country=de(", "(country=de))&(tier=1",
		"((mock)", "(mock))", "mock(", ")", "(", "mock|(tier=1",
	};
	static const char *syntax[] = {
		"", "mock|", "mock&", "mock\\", "|mock", "&mock", "mock||tier=1",
		"mock tier", " mock", "mock ", "mock$", "mock;tier=1", "mock,tier=1",
		"tier=", "=1", "tier==1", "tier=1=2", "tier<=1", "tier=1.5",
		"mock_", "mock-", "_mock", "mock__x", "mock_-x", "a.b",
		"mock(tier=1)", "(mock)(tier=1)", "mock|()", "(mock)tier", "**",
		"*mock", "tier=*", "()", "(())", "t\xc3\xa9r=1", "mock\t", "CERN/PROD",
	};
	size_t i;
	struct dm_err err;
	uint8_t match[NRSE];
	size_t count;

	for (i = 0; i < DM_ARRAY_SIZE(parens); i++) {
		CHECK(is_expr_error(parens[i], "Problem with parantheses.", 1));
	}
	for (i = 0; i < DM_ARRAY_SIZE(syntax); i++)
		CHECK(is_expr_error(syntax[i], "Expression does not comply to RSE Expression syntax",
				    1));
	/* the parentheses check comes before the syntax check */
	CHECK(is_expr_error("mock|)(", "Problem with parantheses.", 1));
	CHECK(is_expr_error("$$(", "Problem with parantheses.", 1));
	/* syntax messages say where */
	CHECK(ev_err("mock|tier=1|", &err) == DM_EINVAL);
	CHECK(strstr(err.msg, "at character 13") != NULL);
	CHECK(ev_err("mock tier", &err) == DM_EINVAL);
	CHECK(strstr(err.msg, "at character 5") != NULL);

	/* empty results */
	CHECK(is_expr_error("NO_SUCH_RSE", "RSE Expression resulted in an empty set.", 0));
	CHECK(is_expr_error("tier=1&tier=2", "RSE Expression resulted in an empty set.", 0));
	CHECK(is_expr_error("freespace>inf", "RSE Expression resulted in an empty set.", 0));
	CHECK(is_expr_error("*\\*", "RSE Expression resulted in an empty set.", 0));
	/* allow_empty turns it into success with no match */
	memset(match, 7, sizeof(match));
	count = 99;
	CHECK(cat_rse_expr_eval("NO_SUCH_RSE", &universe, match, &count, 1, &err) == DM_OK);
	CHECK(count == 0);
	CHECK(memchr(match, 1, NRSE) == NULL && memchr(match, 7, NRSE) == NULL);
	/* a success leaves the error record alone */
	dm_err_clear(&err);
	CHECK(cat_rse_expr_eval("mock", &universe, match, &count, 0, &err) == DM_OK);
	CHECK(count == 1 && match[MOCK] == 1 && err.code == DM_OK && err.msg[0] == '\0');

	/* values RSE.from_str refuses are InvalidObject, as in Rucio */
	CHECK(is_object_error("deterministic=yes", "Invalid boolean value: yes"));
	CHECK(is_object_error("availability_write=2", "Invalid boolean value: 2"));
	CHECK(is_object_error("rse_type=tape", "Invalid rse_type: tape"));
	CHECK(is_object_error("mock|rse_type=DISC", "Invalid rse_type: DISC"));
	CHECK(is_object_error("availability=rw", "Invalid availability value: rw"));

	/* length: 3000 characters are fine, 3001 are not */
	{
		char *buf = malloc(3002);

		if (buf) {
			memset(buf, 'a', 3000);
			memcpy(buf, "mock|", 5);
			buf[3000] = '\0';
			CHECK(ev(buf) == B(MOCK));
			buf[3000] = 'a';
			buf[3001] = '\0';
			CHECK(ev_err(buf, &err) == DM_EINVAL);
			CHECK_STR(err.cls, "InvalidRSEExpression");
			CHECK(strstr(err.msg, "too long") != NULL);
			CHECK(strlen(err.msg) < 400);
			CHECK(cat_rse_expr_check(buf, NULL) == DM_EINVAL);
			free(buf);
		} else {
			CHECK(!"malloc");
		}
	}
	/* a NULL expression */
	CHECK(ev_err(NULL, &err) == DM_EINVAL);
	CHECK_STR(err.cls, "InvalidRSEExpression");
	CHECK(cat_rse_expr_check(NULL, &err) == DM_EINVAL);
	/* non-printable bytes are escaped in messages */
	CHECK(ev_err("mock\x01", &err) == DM_EINVAL);
	CHECK(strstr(err.msg, "mock\\x01") != NULL);
	/* NULL err is allowed */
	CHECK(cat_rse_expr_eval("(", &universe, match, &count, 0, NULL) == DM_EINVAL);
	/* an empty universe: '*' is empty */
	{
		struct cat_rse_universe none = { NULL, 0 };

		CHECK(cat_rse_expr_eval("*", &none, NULL, &count, 0, &err) == DM_EINVAL);
		CHECK(strstr(err.msg, "empty set") != NULL);
		CHECK(cat_rse_expr_eval("*", &none, NULL, &count, 1, &err) == DM_OK);
		CHECK(count == 0);
		CHECK(cat_rse_expr_eval("*", NULL, NULL, NULL, 1, &err) == DM_OK);
	}
}

static void test_check(void)
{
	static const char *good[] = {
		"A", "A-B_C", "a1-2_3", "x.y.z=v-1_2", "k<5", "k>-5", "*", "(*)",
		"A|B&C\\D", "((A)|(B))&(C)", "NOT_AN_RSE", "deterministic=maybe",
		"A1b2C3", "9", "1=2", "_=_", "..=-",
	};
	size_t i;

	for (i = 0; i < DM_ARRAY_SIZE(good); i++)
		CHECK(cat_rse_expr_check(good[i], NULL) == DM_OK);
}

int main(void)
{
	test_primitives();
	test_booleans();
	test_columns();
	test_numeric();
	test_operators();
	test_parentheses();
	test_errors();
	test_check();
	return tap_done();
}
