/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rse_expr.c - Rucio's RSE expression language over an in-memory universe.
 *
 * An expression such as "tier=1&country=de\(CERN|BNL)" selects a set of RSEs.
 * Evaluation happens in three steps, the first two of which are Rucio's own
 * checks in core/rse_expression_parser.py, in Rucio's order:
 *   1. parentheses: never more ')' than '(' so far, and as many of each;
 *   2. syntax: the whole string must match
 *        ^PRIMITIVE((\|PRIMITIVE)|(&PRIMITIVE)|(\\PRIMITIVE))*
 *      with PRIMITIVE = \(*(RSE_ATTRIBUTE|DEFAULT_RSE_ATTRIBUTE|\*)\)*.
 *      Python's re takes the first match its backtracking finds; for this
 *      grammar that is always the longest run of each character class, so a
 *      hand-written greedy scanner (match_atom) accepts exactly the same set;
 *   3. evaluation, strictly left to right without operator precedence,
 *      parentheses grouping.  We walk the string once with an explicit stack
 *      of set accumulators (no recursion), bounded to CAT_RSE_EXPR_MAX_DEPTH
 *      nesting levels, and expressions are bounded to CAT_RSE_EXPR_MAX_LEN
 *      bytes (the width of Rucio's rse_expression columns).
 * Primitive semantics follow core/rse.py list_rses() and the BooleanString
 * column type; the comments at eval_equal() and eval_numeric() say how.
 * Sets are byte maps over the universe; all memory is freed before return.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strtod_l, newlocale */
#endif
#include "rse_expr.h"

#include <locale.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CAT_RSE_EXPR_MAX_LEN 3000
#define CAT_RSE_EXPR_MAX_DEPTH 256
#define CLS_INVALID_EXPR "InvalidRSEExpression"
#define CLS_INVALID_OBJECT "InvalidObject"

/* Rucio's messages (kept verbatim as the start of our messages). */
#define MSG_PARENS "Problem with parantheses." /* sic: Rucio's text */
#define MSG_SYNTAX "Expression does not comply to RSE Expression syntax"
#define MSG_EMPTY "RSE Expression resulted in an empty set."

/* ---- character classes (ASCII only, as in Rucio's regexes) ---- */

static int is_alnum(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* [A-Za-z0-9\._-]: the key of RSE_ATTRIBUTE */
static int is_key_char(char c)
{
	return is_alnum(c) || c == '.' || c == '_' || c == '-';
}

/* [A-Za-z0-9_-]: the value of RSE_ATTRIBUTE */
static int is_value_char(char c)
{
	return is_alnum(c) || c == '_' || c == '-';
}

static int is_operator(char c)
{
	return c == '|' || c == '&' || c == '\\';
}

/* ---- tokens ---- */

enum prim_kind {
	PRIM_ALL,  /* '*' */
	PRIM_NAME, /* bare NAME: NAME=True */
	PRIM_EQ,   /* key=value */
	PRIM_LT,   /* key<value */
	PRIM_GT,   /* key>value */
};

struct prim {
	enum prim_kind kind;
	const char *key; /* not NUL-terminated: key[0..klen) */
	size_t klen;
	const char *val;
	size_t vlen;
};

/*
 * Match one primitive without its parentheses at s[0..len): first
 * RSE_ATTRIBUTE, then DEFAULT_RSE_ATTRIBUTE, then '*', like the regex
 * alternation.  Returns the number of bytes consumed, 0 for no match.
 */
static size_t match_atom(const char *s, size_t len, struct prim *p)
{
	size_t k = 0, v, d;

	while (k < len && is_key_char(s[k]))
		k++;
	if (k > 0 && k < len && (s[k] == '=' || s[k] == '<' || s[k] == '>')) {
		v = k + 1;
		while (v < len && is_value_char(s[v]))
			v++;
		if (v > k + 1) {
			p->kind = s[k] == '=' ? PRIM_EQ : s[k] == '<' ? PRIM_LT : PRIM_GT;
			p->key = s;
			p->klen = k;
			p->val = s + k + 1;
			p->vlen = v - k - 1;
			return v;
		}
	}
	d = 0;
	while (d < len && is_alnum(s[d]))
		d++;
	if (d > 0) {
		/* ([_-][A-Za-z0-9]+)* */
		while (d + 1 < len && (s[d] == '_' || s[d] == '-') && is_alnum(s[d + 1])) {
			d += 2;
			while (d < len && is_alnum(s[d]))
				d++;
		}
		p->kind = PRIM_NAME;
		p->key = s;
		p->klen = d;
		p->val = NULL;
		p->vlen = 0;
		return d;
	}
	if (len > 0 && s[0] == '*') {
		p->kind = PRIM_ALL;
		p->key = p->val = NULL;
		p->klen = p->vlen = 0;
		return 1;
	}
	return 0;
}

/* ---- errors ---- */

/* The expression for a message: at most ~160 bytes, non-printable bytes as
 * \xNN, "..." when cut. */
static void quote_expr(const char *expr, size_t len, char *out, size_t outsz)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, o = 0;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)expr[i];

		if (o + 8 >= outsz || i >= 160) {
			memcpy(out + o, "...", 3);
			o += 3;
			break;
		}
		if (c >= 0x20 && c < 0x7f) {
			out[o++] = (char)c;
		} else {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	out[o] = '\0';
}

static enum dm_status expr_error(struct dm_err *err, const char *cls, const char *what,
				 const char *expr, size_t len)
{
	char q[200];

	quote_expr(expr, len, q, sizeof(q));
	return dm_seterr(err, DM_EINVAL, cls, "%s (RSE expression '%s')", what, q);
}

static enum dm_status syntax_error(struct dm_err *err, const char *expr, size_t len,
				   size_t pos)
{
	char q[200];

	quote_expr(expr, len, q, sizeof(q));
	return dm_seterr(err, DM_EINVAL, CLS_INVALID_EXPR,
			 "%s (RSE expression '%s', at character %zu)", MSG_SYNTAX, q, pos + 1);
}

/* InvalidObject for a value Rucio's RSE.from_str() refuses. */
static enum dm_status value_error(struct dm_err *err, const char *what, const struct prim *p,
				  const char *expr, size_t len)
{
	char q[200], v[120];

	quote_expr(expr, len, q, sizeof(q));
	quote_expr(p->val, p->vlen, v, sizeof(v));
	return dm_seterr(err, DM_EINVAL, CLS_INVALID_OBJECT, "%s: %s (RSE expression '%s')",
			 what, v, q);
}

/* ---- steps 1 and 2: length, parentheses, syntax, depth ---- */

struct scan {
	size_t len;
	unsigned maxdepth;
};

static enum dm_status check_syntax(const char *expr, struct scan *sc, struct dm_err *err)
{
	size_t len, i, n;
	size_t open = 0, close = 0, depth, maxdepth = 0;
	struct prim p;

	if (!expr)
		return dm_seterr(err, DM_EINVAL, CLS_INVALID_EXPR, "%s (no RSE expression given)",
				 MSG_SYNTAX);
	len = strnlen(expr, CAT_RSE_EXPR_MAX_LEN + 1);
	if (len > CAT_RSE_EXPR_MAX_LEN) {
		char q[200];

		quote_expr(expr, len, q, sizeof(q));
		return dm_seterr(err, DM_EINVAL, CLS_INVALID_EXPR,
				 "RSE Expression is too long: more than %d characters (RSE expression '%s')",
				 CAT_RSE_EXPR_MAX_LEN, q);
	}

	for (i = 0; i < len; i++) {
		if (expr[i] == '(') {
			open++;
			depth = open - close;
			if (depth > maxdepth)
				maxdepth = depth;
		} else if (expr[i] == ')') {
			close++;
		}
		if (close > open)
			return expr_error(err, CLS_INVALID_EXPR, MSG_PARENS, expr, len);
	}
	if (open != close)
		return expr_error(err, CLS_INVALID_EXPR, MSG_PARENS, expr, len);

	i = 0;
	for (;;) {
		while (i < len && expr[i] == '(')
			i++;
		n = match_atom(expr + i, len - i, &p);
		if (n == 0)
			return syntax_error(err, expr, len, i);
		i += n;
		while (i < len && expr[i] == ')')
			i++;
		if (i == len)
			break;
		if (!is_operator(expr[i]))
			return syntax_error(err, expr, len, i);
		i++;
	}

	if (maxdepth > CAT_RSE_EXPR_MAX_DEPTH) {
		char q[200];

		quote_expr(expr, len, q, sizeof(q));
		return dm_seterr(err, DM_EINVAL, CLS_INVALID_EXPR,
				 "RSE Expression nests parentheses too deeply: %zu levels, at most %d (RSE expression '%s')",
				 maxdepth, CAT_RSE_EXPR_MAX_DEPTH, q);
	}
	sc->len = len;
	sc->maxdepth = (unsigned)maxdepth;
	return DM_OK;
}

/* ---- value helpers ---- */

/* s[0..n) == z (z NUL-terminated, may be NULL) */
static int span_eq(const char *s, size_t n, const char *z)
{
	return z && strncmp(z, s, n) == 0 && z[n] == '\0';
}

/* BooleanString.process_bind_param for a string: "true"/"false" in any case
 * become lowercase, anything else is kept. */
static void bool_string(const char **s, size_t *n)
{
	if (*n == 4 && strncasecmp(*s, "true", 4) == 0)
		*s = "true";
	else if (*n == 5 && strncasecmp(*s, "false", 5) == 0)
		*s = "false";
}

/* RSE.from_str() for a boolean column: 1 / 0, -1 if refused. */
static int parse_bool_value(const char *s, size_t n)
{
	if ((n == 1 && s[0] == '1') || (n == 4 && strncasecmp(s, "true", 4) == 0))
		return 1;
	if ((n == 1 && s[0] == '0') || (n == 5 && strncasecmp(s, "false", 5) == 0))
		return 0;
	return -1;
}

static int is_py_space(char c)
{
	/* str.isspace() for ASCII: \t\n\v\f\r, \x1c-\x1f and space */
	return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f);
}

static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;

static void c_locale_init(void)
{
	c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
}

/* digitpart = digit (["_"] digit)* ; copies the digits to *o. */
static int py_digits(const char *s, size_t n, size_t *i, char *out, size_t *o)
{
	size_t start = *i;

	while (*i < n) {
		if (s[*i] >= '0' && s[*i] <= '9') {
			out[(*o)++] = s[*i];
			(*i)++;
		} else if (s[*i] == '_' && *i > start && *i + 1 < n && s[*i + 1] >= '0' &&
			   s[*i + 1] <= '9') {
			(*i)++;
		} else {
			break;
		}
	}
	return *i > start;
}

/*
 * Python's float() on s[0..n), for ASCII: surrounding whitespace, a sign,
 * "inf"/"infinity"/"nan" in any case, or a decimal with optional fraction,
 * exponent and single '_' between digits.  Returns 1 and sets *out on
 * success, 0 if Python would raise ValueError, -1 when out of memory.
 */
static int py_float(const char *s, size_t n, double *out)
{
	char small[64], *buf = small;
	size_t i = 0, o = 0;
	int neg = 0, ret = 0;
	const char *w;
	size_t wn;

	while (n > 0 && is_py_space(s[0])) {
		s++;
		n--;
	}
	while (n > 0 && is_py_space(s[n - 1]))
		n--;
	if (n > 0 && (s[0] == '+' || s[0] == '-')) {
		neg = s[0] == '-';
		s++;
		n--;
	}
	if (n == 0)
		return 0;
	w = s;
	wn = n;
	if ((wn == 3 && strncasecmp(w, "inf", 3) == 0) ||
	    (wn == 8 && strncasecmp(w, "infinity", 8) == 0)) {
		*out = neg ? -__builtin_inf() : __builtin_inf();
		return 1;
	}
	if (wn == 3 && strncasecmp(w, "nan", 3) == 0) {
		*out = neg ? -__builtin_nan("") : __builtin_nan("");
		return 1;
	}

	if (n + 2 > sizeof(small)) {
		buf = malloc(n + 2);
		if (!buf)
			return -1;
	}
	if (neg)
		buf[o++] = '-';
	{
		int have_int = py_digits(s, n, &i, buf, &o);
		int have_frac = 0;

		if (i < n && s[i] == '.') {
			buf[o++] = '.';
			i++;
			have_frac = py_digits(s, n, &i, buf, &o);
		}
		if (!have_int && !have_frac)
			goto out;
		if (i < n && (s[i] == 'e' || s[i] == 'E')) {
			buf[o++] = 'e';
			i++;
			if (i < n && (s[i] == '+' || s[i] == '-'))
				buf[o++] = s[i++];
			if (!py_digits(s, n, &i, buf, &o))
				goto out;
		}
		if (i != n)
			goto out;
	}
	buf[o] = '\0';
	pthread_once(&c_locale_once, c_locale_init);
	if (c_locale)
		*out = strtod_l(buf, NULL, c_locale);
	else
		*out = strtod(buf, NULL);
	ret = 1;
out:
	if (buf != small)
		free(buf);
	return ret;
}

/* ---- the universe ---- */

enum col_kind {
	COL_NONE,         /* not a column: look at the attributes */
	COL_PLAIN,        /* string column, compared as is */
	COL_FLOAT,        /* longitude, latitude: compared as numbers */
	COL_BOOL,         /* from_str() boolean: 1/true/0/false, else InvalidObject */
	COL_RSE_TYPE,     /* DISK or TAPE, else InvalidObject */
	COL_AVAILABILITY, /* deprecated integer: read*4 + write*2 + delete */
	COL_DELETED,      /* soft-delete flag: every RSE in the universe is live */
};

/* The columns of Rucio's rses table (models.RSE); a key naming one of these is
 * a column compare even if the universe does not fill it. */
static const struct {
	const char *name;
	enum col_kind kind;
} rse_columns[] = {
	{ "id", COL_PLAIN },
	{ "rse", COL_PLAIN },
	{ "vo", COL_PLAIN },
	{ "rse_type", COL_RSE_TYPE },
	{ "deterministic", COL_BOOL },
	{ "volatile", COL_BOOL },
	{ "staging_area", COL_BOOL },
	{ "city", COL_PLAIN },
	{ "region_code", COL_PLAIN },
	{ "country_name", COL_PLAIN },
	{ "continent", COL_PLAIN },
	{ "time_zone", COL_PLAIN },
	{ "ISP", COL_PLAIN },
	{ "ASN", COL_PLAIN },
	{ "longitude", COL_FLOAT },
	{ "latitude", COL_FLOAT },
	{ "availability", COL_AVAILABILITY },
	{ "availability_read", COL_BOOL },
	{ "availability_write", COL_BOOL },
	{ "availability_delete", COL_BOOL },
	{ "qos_class", COL_PLAIN },
	{ "deleted", COL_DELETED },
	{ "deleted_at", COL_PLAIN },
	{ "created_at", COL_PLAIN },
	{ "updated_at", COL_PLAIN },
};

static enum col_kind column_kind(const char *key, size_t klen, const struct cat_rse_universe *u)
{
	size_t i, j;

	for (i = 0; i < DM_ARRAY_SIZE(rse_columns); i++)
		if (span_eq(key, klen, rse_columns[i].name))
			return rse_columns[i].kind;
	for (i = 0; i < u->n; i++)
		for (j = 0; j < u->rses[i].ncolumns; j++)
			if (span_eq(key, klen, u->rses[i].columns[j].key))
				return COL_PLAIN;
	return COL_NONE;
}

/* Column value of one RSE, NULL when absent or NULL. */
static const char *column_value(const struct cat_rse_info *r, const char *key, size_t klen)
{
	size_t j;

	for (j = 0; j < r->ncolumns; j++)
		if (span_eq(key, klen, r->columns[j].key))
			return r->columns[j].value;
	if (span_eq(key, klen, "rse"))
		return r->name;
	if (span_eq(key, klen, "deleted"))
		return "false";
	return NULL;
}

static int column_bool(const struct cat_rse_info *r, const char *key)
{
	const char *v = column_value(r, key, strlen(key));

	return v ? parse_bool_value(v, strlen(v)) : -1;
}

/* ---- step 3: primitives ---- */

/*
 * key=value and bare NAME (which Rucio evaluates as list_rses({NAME: True})):
 *  - key a column of the rses table: compare the column.  Boolean columns
 *    coerce the value like RSE.from_str() (1/true/0/false, case-insensitive;
 *    anything else is InvalidObject "Invalid boolean value"), rse_type must
 *    be DISK or TAPE ("Invalid rse_type"); a bare column name is column ==
 *    True, which only boolean columns can satisfy (availability: True == 1,
 *    so "availability" means read=false, write=false, delete=true).
 *  - otherwise the attribute (key, value) must exist.  Values go through
 *    BooleanString on both sides, so True/TRUE/true all match a stored true;
 *    a bare NAME is NAME=true.
 */
static enum dm_status eval_equal(const struct prim *p, const struct cat_rse_universe *u,
				 uint8_t *out, const char *expr, size_t len,
				 struct dm_err *err)
{
	int bare = p->kind == PRIM_NAME;
	enum col_kind kind = column_kind(p->key, p->klen, u);
	int want = 0;
	size_t i, j;

	switch (kind) {
	case COL_BOOL:
	case COL_DELETED:
		want = bare ? 1 : parse_bool_value(p->val, p->vlen);
		if (want < 0) {
			if (kind == COL_BOOL)
				return value_error(err, "Invalid boolean value", p, expr, len);
			return DM_OK; /* no match */
		}
		for (i = 0; i < u->n; i++) {
			const char *v = column_value(&u->rses[i], p->key, p->klen);

			out[i] = v && parse_bool_value(v, strlen(v)) == want;
		}
		return DM_OK;
	case COL_RSE_TYPE:
		if (bare)
			return DM_OK;
		if (!(p->vlen == 4 && (memcmp(p->val, "DISK", 4) == 0 ||
				       memcmp(p->val, "TAPE", 4) == 0)))
			return value_error(err, "Invalid rse_type", p, expr, len);
		for (i = 0; i < u->n; i++) {
			const char *v = column_value(&u->rses[i], p->key, p->klen);

			out[i] = v && span_eq(p->val, p->vlen, v);
		}
		return DM_OK;
	case COL_AVAILABILITY: {
		int64_t a = 1;
		char num[32];

		if (!bare) {
			if (p->vlen >= sizeof(num))
				return value_error(err, "Invalid availability value", p, expr, len);
			memcpy(num, p->val, p->vlen);
			num[p->vlen] = '\0';
			if (dm_parse_i64(num, &a) != 0)
				return value_error(err, "Invalid availability value", p, expr, len);
		}
		for (i = 0; i < u->n; i++) {
			const struct cat_rse_info *r = &u->rses[i];

			out[i] = column_bool(r, "availability_read") == (int)((a >> 2) & 1) &&
				 column_bool(r, "availability_write") == (int)((a >> 1) & 1) &&
				 column_bool(r, "availability_delete") == (int)(a & 1);
		}
		return DM_OK;
	}
	case COL_FLOAT: {
		double want_f, have_f;
		int rc;

		if (bare)
			return DM_OK;
		rc = py_float(p->val, p->vlen, &want_f);
		if (rc < 0)
			return dm_seterr(err, DM_ENOMEM, NULL, "out of memory");
		if (rc == 0)
			return DM_OK;
		for (i = 0; i < u->n; i++) {
			const char *v = column_value(&u->rses[i], p->key, p->klen);

			rc = v ? py_float(v, strlen(v), &have_f) : 0;
			if (rc < 0)
				return dm_seterr(err, DM_ENOMEM, NULL, "out of memory");
			out[i] = rc == 1 && have_f == want_f;
		}
		return DM_OK;
	}
	case COL_PLAIN:
		if (bare)
			return DM_OK;
		for (i = 0; i < u->n; i++) {
			const char *v = column_value(&u->rses[i], p->key, p->klen);

			out[i] = v && span_eq(p->val, p->vlen, v);
		}
		return DM_OK;
	case COL_NONE:
		break;
	}

	{
		const char *val = bare ? "true" : p->val;
		size_t vlen = bare ? 4 : p->vlen;

		bool_string(&val, &vlen);
		for (i = 0; i < u->n; i++) {
			const struct cat_rse_info *r = &u->rses[i];

			for (j = 0; j < r->nattrs; j++) {
				const char *sv = r->attrs[j].value;
				size_t sn;

				if (!span_eq(p->key, p->klen, r->attrs[j].key) || !sv)
					continue;
				sn = strlen(sv);
				bool_string(&sv, &sn);
				if (sn == vlen && memcmp(sv, val, vlen) == 0) {
					out[i] = 1;
					break;
				}
			}
		}
	}
	return DM_OK;
}

/*
 * key<value / key>value: only attributes (get_rses_with_attribute), never
 * columns.  The stored value goes through BooleanString.process_result_value,
 * so true/false (any case) are Python's True/False = 1.0/0.0; other values
 * must parse as Python float(), else that RSE is skipped.  A threshold that
 * is not a number makes every comparison raise ValueError, which Rucio skips:
 * the result is empty.
 */
static enum dm_status eval_numeric(const struct prim *p, const struct cat_rse_universe *u,
				   uint8_t *out, struct dm_err *err)
{
	double limit, have;
	size_t i, j;
	int rc;

	rc = py_float(p->val, p->vlen, &limit);
	if (rc < 0)
		return dm_seterr(err, DM_ENOMEM, NULL, "out of memory");
	if (rc == 0)
		return DM_OK;
	for (i = 0; i < u->n; i++) {
		const struct cat_rse_info *r = &u->rses[i];

		for (j = 0; j < r->nattrs; j++) {
			const char *sv = r->attrs[j].value;
			size_t sn;

			if (!span_eq(p->key, p->klen, r->attrs[j].key))
				continue;
			if (!sv)
				break;
			sn = strlen(sv);
			if (sn == 4 && strncasecmp(sv, "true", 4) == 0) {
				have = 1.0;
			} else if (sn == 5 && strncasecmp(sv, "false", 5) == 0) {
				have = 0.0;
			} else {
				rc = py_float(sv, sn, &have);
				if (rc < 0)
					return dm_seterr(err, DM_ENOMEM, NULL, "out of memory");
				if (rc == 0)
					break;
			}
			out[i] = p->kind == PRIM_LT ? have < limit : have > limit;
			break; /* (rse, key) is the attribute table's primary key */
		}
	}
	return DM_OK;
}

static enum dm_status eval_prim(const struct prim *p, const struct cat_rse_universe *u,
				uint8_t *out, const char *expr, size_t len, struct dm_err *err)
{
	if (u->n)
		memset(out, 0, u->n);
	switch (p->kind) {
	case PRIM_ALL:
		if (u->n)
			memset(out, 1, u->n);
		return DM_OK;
	case PRIM_NAME:
	case PRIM_EQ:
		return eval_equal(p, u, out, expr, len, err);
	case PRIM_LT:
	case PRIM_GT:
		return eval_numeric(p, u, out, err);
	}
	return dm_seterr(err, DM_EINTERNAL, NULL, "rse_expr: unknown primitive");
}

/* ---- step 3: left-to-right evaluation with a stack of accumulators ---- */

struct frame {
	uint8_t *acc;
	int has_left; /* acc holds the left term */
	char op;      /* pending operator, 0 if none */
};

/* left (op) right, or left = right for the first term of a group. */
static enum dm_status combine(struct frame *f, const uint8_t *val, size_t n,
			      struct dm_err *err)
{
	size_t i;

	if (!f->has_left) {
		if (n)
			memcpy(f->acc, val, n);
		f->has_left = 1;
		return DM_OK;
	}
	switch (f->op) {
	case '|':
		for (i = 0; i < n; i++)
			f->acc[i] |= val[i];
		break;
	case '&':
		for (i = 0; i < n; i++)
			f->acc[i] &= val[i];
		break;
	case '\\':
		for (i = 0; i < n; i++)
			f->acc[i] &= (uint8_t)!val[i];
		break;
	default:
		return dm_seterr(err, DM_EINTERNAL, NULL, "rse_expr: two terms without an operator");
	}
	f->op = 0;
	return DM_OK;
}

enum dm_status cat_rse_expr_check(const char *expr, struct dm_err *err)
{
	struct scan sc;

	return check_syntax(expr, &sc, err);
}

enum dm_status cat_rse_expr_eval(const char *expr, const struct cat_rse_universe *u,
				 uint8_t *match, size_t *count, int allow_empty,
				 struct dm_err *err)
{
	static const struct cat_rse_universe empty_universe = { NULL, 0 };
	enum dm_status rc;
	struct frame frames[CAT_RSE_EXPR_MAX_DEPTH + 1];
	struct scan sc;
	struct prim p;
	uint8_t *mem = NULL, *tmp;
	size_t n, stride, nframes, i, d, k, found;

	if (count)
		*count = 0;
	if (!u)
		u = &empty_universe;
	n = u->n;
	if (n && !match) {
		rc = dm_seterr(err, DM_EINVAL, NULL, "rse_expr: no result array");
		goto out;
	}
	if (n)
		memset(match, 0, n);
	rc = check_syntax(expr, &sc, err);
	if (rc != DM_OK)
		goto out;

	nframes = (size_t)sc.maxdepth + 1;
	stride = n ? n : 1;
	if (stride > SIZE_MAX / (nframes + 1)) {
		rc = dm_seterr(err, DM_ENOMEM, NULL, "rse_expr: universe too large");
		goto out;
	}
	mem = calloc(nframes + 1, stride);
	if (!mem) {
		rc = dm_seterr(err, DM_ENOMEM, NULL, "out of memory");
		goto out;
	}
	for (k = 0; k < nframes; k++) {
		frames[k].acc = mem + k * stride;
		frames[k].has_left = 0;
		frames[k].op = 0;
	}
	tmp = mem + nframes * stride;

	/* The syntax is valid here: the walk below cannot fail to match. */
	i = 0;
	d = 0;
	for (;;) {
		while (i < sc.len && expr[i] == '(') {
			d++;
			if (d >= nframes) {
				rc = dm_seterr(err, DM_EINTERNAL, NULL, "rse_expr: depth");
				goto out;
			}
			frames[d].has_left = 0;
			frames[d].op = 0;
			i++;
		}
		k = match_atom(expr + i, sc.len - i, &p);
		if (k == 0) {
			rc = syntax_error(err, expr, sc.len, i);
			goto out;
		}
		i += k;
		rc = eval_prim(&p, u, tmp, expr, sc.len, err);
		if (rc != DM_OK)
			goto out;
		rc = combine(&frames[d], tmp, n, err);
		if (rc != DM_OK)
			goto out;
		while (i < sc.len && expr[i] == ')') {
			if (d == 0 || !frames[d].has_left) {
				rc = dm_seterr(err, DM_EINTERNAL, NULL, "rse_expr: parentheses");
				goto out;
			}
			d--;
			rc = combine(&frames[d], frames[d + 1].acc, n, err);
			if (rc != DM_OK)
				goto out;
			i++;
		}
		if (i >= sc.len)
			break;
		frames[d].op = expr[i];
		i++;
	}
	if (d != 0 || !frames[0].has_left) {
		rc = dm_seterr(err, DM_EINTERNAL, NULL, "rse_expr: unbalanced evaluation");
		goto out;
	}

	found = 0;
	for (k = 0; k < n; k++) {
		match[k] = frames[0].acc[k] ? 1 : 0;
		found += match[k];
	}
	if (found == 0 && !allow_empty) {
		rc = expr_error(err, CLS_INVALID_EXPR, MSG_EMPTY, expr, sc.len);
		goto out;
	}
	if (count)
		*count = found;
	rc = DM_OK;
out:
	free(mem);
	return rc;
}
