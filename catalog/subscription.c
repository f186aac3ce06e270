/* SPDX-License-Identifier: Apache-2.0 */
/*
 * subscription.c - Rucio's subscriptions and the transmogrifier's catalog
 * side: standing orders "every new DID that matches this filter gets these
 * rules", applied once per DID.
 *
 * Storage (migration 6 in store_sqlite.c and sql/schema_pg.c): table subscriptions (Rucio's columns:
 * id, name, account, filter JSON, replication_rules JSON list, policyid,
 * state A/I/N/U/B, last_processed, lifetime (an expiry time), retroactive,
 * comments, expired_at; unique (name, account)); dids.is_new (1 for every
 * DID inserted after the migration, whatever door inserted it: upload,
 * add-replicas, add-dataset, the REST API, ingest; a partial index keeps the
 * new ones cheap to find); rules.subscription_id (the subscription a rule
 * was made for, Rucio's column).
 *
 * Filters (a JSON object, Rucio's keys): pattern / excluded_pattern (a
 * regular expression matched at the start of the name, as Python's
 * re.match), scope (a list of expressions matched at the start of the
 * scope), account (the DID's owner, one or a list), did_type (FILE,
 * DATASET, CONTAINER, one or a list), min_avg_file_size / max_avg_file_size
 * (bytes, ignored while the collection is empty), split_rule (accepted,
 * must be false: not implemented), and any other key a metadata key whose
 * value must match one of the given expressions.  Expressions are POSIX
 * extended regular expressions (Python's \d etc. are not known).  As in
 * Rucio, files never match unless the filter's did_type names FILE (Rucio's
 * transmogrifier only takes datasets and containers; their rules cover the
 * files), and DIDs with metadata hidden=true never match.
 *
 * Rules (a JSON list, Rucio's items): copies (an integer or "*": as many as
 * the expression has RSEs), rse_expression, and optionally lifetime
 * (seconds), activity, grouping, weight, source_replica_expression,
 * purge_replicas, locked, ignore_availability, asynchronous, comment (or
 * comments), priority, notify, and release_after: N (didfs's; Rucio's
 * child_rule_id of a rule move): this rule holds its replicas until rule N
 * of the same subscription is OK, then it expires and the judge-cleaner
 * removes it (the CTAO chain: the on-site copy goes once both off-site
 * copies are verified).  The CLI's short form "COPIES EXPRESSION
 * [key=value...]" is turned into the same JSON (cat_subscription_rule_text).
 * Everything is validated when a subscription is added or updated, by
 * whichever door: a filter or rule that does not parse is refused with
 * InvalidObject naming the key, and nothing is stored.
 *
 * The transmogrifier (cat_transmogrify, engine.h): one transaction per
 * chunk of new DIDs; for each DID and each ACTIVE/UPDATED subscription that
 * matches, each rule is created (under a savepoint: a rule refused by the
 * engine - DuplicateRule, InsufficientTargetRSEs ... - is logged and
 * skipped, as Rucio does) with the subscription's account as its owner and
 * the subscription's id; then the DID's is_new is cleared in the same
 * transaction, so a kill at any point neither loses a DID nor makes its
 * rules twice.  Subscriptions whose lifetime has passed become INACTIVE.
 */
#include "catalog_i.h"
#include "dmcheck.h"
#include "engine.h"
#include "rse_expr.h"

#include <jansson.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SUB_NAME_MAX 64
#define SUB_JSON_MAX 4000
#define SUB_MAX_RULES 16

/* ------------------------------------------------------------------ */
/* states                                                              */

static const struct {
	char code;
	const char *name;
} sub_states[] = {
	{ 'A', "ACTIVE" }, { 'I', "INACTIVE" }, { 'N', "NEW" }, { 'U', "UPDATED" }, { 'B', "BROKEN" },
};

const char *cat_subscription_state_name(const char *code)
{
	for (size_t i = 0; code && i < DM_ARRAY_SIZE(sub_states); i++)
		if (code[0] == sub_states[i].code && !code[1])
			return sub_states[i].name;
	return "UNKNOWN";
}

/* "ACTIVE" or "A" (any case) -> 'A'; 0 if unknown. */
static char state_code(const char *s)
{
	for (size_t i = 0; s && i < DM_ARRAY_SIZE(sub_states); i++)
		if (!strcasecmp(s, sub_states[i].name) ||
		    ((s[0] == sub_states[i].code || s[0] == sub_states[i].code + 32) && !s[1]))
			return sub_states[i].code;
	return 0;
}

/* ------------------------------------------------------------------ */
/* compiled filters and rules                                          */

struct sub_re {
	regex_t re;
	int ok;
};

struct sub_meta {
	char *key;
	struct sub_re *vals;
	size_t n;
};

struct sub_filter {
	struct sub_re pattern, excluded;
	struct sub_re *scopes;
	size_t nscopes;
	char **accounts;
	size_t naccounts;
	unsigned types; /* 1 << CAT_DID_*; 0 = DATASET | CONTAINER */
	int has_min, has_max;
	double min_avg, max_avg;
	struct sub_meta *meta;
	size_t nmeta;
};

struct sub_rule {
	int copies; /* 0: "*" */
	char *rse_expression, *activity, *weight, *source, *comment, *notify;
	enum cat_grouping grouping;
	int64_t lifetime;
	int purge, locked, ignore_availability, asynchronous, priority;
	int release_after; /* 0, or the 1-based index of an earlier rule */
};

static void re_free(struct sub_re *r)
{
	if (r->ok)
		regfree(&r->re);
	r->ok = 0;
}

static void filter_free(struct sub_filter *f)
{
	re_free(&f->pattern);
	re_free(&f->excluded);
	for (size_t i = 0; i < f->nscopes; i++)
		re_free(&f->scopes[i]);
	free(f->scopes);
	for (size_t i = 0; i < f->naccounts; i++)
		free(f->accounts[i]);
	free(f->accounts);
	for (size_t i = 0; i < f->nmeta; i++) {
		for (size_t j = 0; j < f->meta[i].n; j++)
			re_free(&f->meta[i].vals[j]);
		free(f->meta[i].vals);
		free(f->meta[i].key);
	}
	free(f->meta);
	memset(f, 0, sizeof *f);
}

static void rules_free(struct sub_rule *r, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(r[i].rse_expression);
		free(r[i].activity);
		free(r[i].weight);
		free(r[i].source);
		free(r[i].comment);
		free(r[i].notify);
	}
}

static enum dm_status bad(struct dm_err *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static enum dm_status bad(struct dm_err *err, const char *fmt, ...)
{
	va_list ap;

	err->code = DM_EINVAL;
	dm_strlcpy(err->cls, "InvalidObject", sizeof err->cls);
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof err->msg, fmt, ap);
	va_end(ap);
	return DM_EINVAL;
}

/* Why glibc's regcomp would not compile expr in bounded memory, or NULL:
 * a quantifier on a quantifier ("a++": Python's "multiple repeat", which
 * Rucio refuses; one '?' after a quantifier is Python's lazy form and
 * allowed), counted repetitions ({m,n}) above 255 or nested so that they
 * multiply past 1000, more than 32 nested groups or 1024 characters.
 * (fuzz_subscription: "t" and 20 '+' cost 350 MB, three nested {1,100}
 * 1.1 GB.) */
static const char *re_untamed(const char *expr, char *why, size_t n)
{
	double outer[32], cur = 1, atom = 1; /* repetition product: of the group, the last atom */
	int depth = 0, quant = 0;            /* quant: 1 after a quantifier, 2 after a lazy '?' */

	if (strlen(expr) > 1024) {
		snprintf(why, n, "longer than 1024 characters");
		return why;
	}
	for (const char *p = expr; *p; p++) {
		long lo, hi;
		char *end;

		switch (*p) {
		case '\\':
			if (p[1])
				p++;
			atom = 1, quant = 0;
			break;
		case '[': /* a bracket expression: ']' first (after '^') is literal */
			p += p[1] == '^' ? 2 : 1;
			if (*p == ']')
				p++;
			while (*p && *p != ']')
				p++;
			if (!*p) {
				snprintf(why, n, "unterminated [");
				return why;
			}
			atom = 1, quant = 0;
			break;
		case '(':
			if (depth == 32) {
				snprintf(why, n, "groups nested more than 32 deep");
				return why;
			}
			outer[depth++] = cur;
			cur = 1, quant = 0;
			break;
		case ')':
			atom = cur;
			cur = depth ? outer[--depth] : 1;
			if (atom > cur)
				cur = atom;
			quant = 0;
			break;
		case '{':
			if (quant) {
				snprintf(why, n, "multiple repeat at position %d", (int)(p - expr));
				return why;
			}
			lo = strtol(p + 1, &end, 10);
			hi = *end == ',' ? (end[1] == '}' ? 255 : strtol(end + 1, &end, 10)) : lo;
			if (*end == ',')
				end++;
			if (*end != '}' || lo < 0 || hi < lo || hi > 255) {
				snprintf(why, n, "a count {m,n} of at most 255 at position %d",
					 (int)(p - expr));
				return why;
			}
			if (atom * (double)(hi ? hi : 1) > 1000) {
				snprintf(why, n, "repetitions multiplying to more than 1000 at position %d",
					 (int)(p - expr));
				return why;
			}
			if (atom * (double)(hi ? hi : 1) > cur)
				cur = atom * (double)(hi ? hi : 1);
			p = end;
			quant = 1;
			break;
		case '+':
		case '*':
			if (quant) {
				snprintf(why, n, "multiple repeat at position %d", (int)(p - expr));
				return why;
			}
			quant = 1;
			break;
		case '?':
			if (quant == 2) {
				snprintf(why, n, "multiple repeat at position %d", (int)(p - expr));
				return why;
			}
			quant = quant ? 2 : 1;
			break;
		default:
			atom = 1, quant = 0;
		}
	}
	return NULL;
}

/* Compile "^(expr)" (Python's re.match anchors at the start only). */
static enum dm_status re_compile(struct sub_re *r, const char *key, const char *expr,
				 struct dm_err *err)
{
	struct dm_buf b = DM_BUF_INIT;
	char why[96];
	int rc;

	if (re_untamed(expr, why, sizeof why))
		return bad(err, "filter key '%s': '%s' is not a regular expression (%s)", key, expr, why);
	dm_buf_addf(&b, "^(%s)", expr);
	rc = regcomp(&r->re, b.s, REG_EXTENDED | REG_NOSUB);
	dm_buf_release(&b);
	if (rc) {
		char msg[128];

		regerror(rc, &r->re, msg, sizeof msg);
		return bad(err, "filter key '%s': '%s' is not a regular expression (%s)", key, expr, msg);
	}
	r->ok = 1;
	return DM_OK;
}

/* A value given as one string or a list of strings (numbers and booleans
 * too for metadata keys): calls fn per text. */
typedef enum dm_status (*each_fn)(void *ud, const char *key, const char *text, struct dm_err *err);

static enum dm_status each_value(json_t *v, const char *key, int scalars, each_fn fn, void *ud,
				 struct dm_err *err)
{
	size_t i, n = json_is_array(v) ? json_array_size(v) : 1;

	if (json_is_array(v) && n == 0)
		return bad(err, "filter key '%s': an empty list matches nothing", key);
	for (i = 0; i < n; i++) {
		json_t *x = json_is_array(v) ? json_array_get(v, i) : v;
		char num[64];
		const char *t;
		enum dm_status rc;

		if (json_is_string(x))
			t = json_string_value(x);
		else if (scalars && json_is_integer(x))
			snprintf(num, sizeof num, "%lld", (long long)json_integer_value(x)), t = num;
		else if (scalars && json_is_real(x))
			snprintf(num, sizeof num, "%.17g", json_real_value(x)), t = num;
		else if (scalars && json_is_boolean(x))
			t = json_is_true(x) ? "True" : "False";
		else
			return bad(err, "filter key '%s' takes a string or a list of strings", key);
		if ((rc = fn(ud, key, t, err)))
			return rc;
	}
	return DM_OK;
}

static enum dm_status add_scope(void *ud, const char *key, const char *t, struct dm_err *err)
{
	struct sub_filter *f = ud;

	f->scopes = dm_xrealloc(f->scopes, (f->nscopes + 1) * sizeof *f->scopes);
	memset(&f->scopes[f->nscopes], 0, sizeof *f->scopes);
	if (re_compile(&f->scopes[f->nscopes], key, t, err))
		return DM_EINVAL;
	f->nscopes++;
	return DM_OK;
}

static enum dm_status add_account(void *ud, const char *key, const char *t, struct dm_err *err)
{
	struct sub_filter *f = ud;

	(void)key;
	if (cat_validate_account(t, err))
		return bad(err, "filter key 'account': '%s' is not an account name", t);
	f->accounts = dm_xrealloc(f->accounts, (f->naccounts + 1) * sizeof *f->accounts);
	f->accounts[f->naccounts++] = dm_xstrdup(t);
	return DM_OK;
}

static enum dm_status add_type(void *ud, const char *key, const char *t, struct dm_err *err)
{
	struct sub_filter *f = ud;

	(void)key;
	if (!strcasecmp(t, "FILE"))
		f->types |= 1u << CAT_DID_FILE;
	else if (!strcasecmp(t, "DATASET"))
		f->types |= 1u << CAT_DID_DATASET;
	else if (!strcasecmp(t, "CONTAINER"))
		f->types |= 1u << CAT_DID_CONTAINER;
	else
		return bad(err, "filter key 'did_type': '%s' is not FILE, DATASET or CONTAINER", t);
	return DM_OK;
}

static enum dm_status add_meta(void *ud, const char *key, const char *t, struct dm_err *err)
{
	struct sub_meta *m = ud;

	m->vals = dm_xrealloc(m->vals, (m->n + 1) * sizeof *m->vals);
	memset(&m->vals[m->n], 0, sizeof *m->vals);
	if (re_compile(&m->vals[m->n], key, t, err))
		return DM_EINVAL;
	m->n++;
	return DM_OK;
}

static enum dm_status filter_from_json(json_t *j, struct sub_filter *f, struct dm_err *err)
{
	const char *key;
	json_t *v;

	memset(f, 0, sizeof *f);
	if (!json_is_object(j))
		return bad(err, "the filter must be a JSON object, e.g. {\"scope\": [\"ctao\"], \"pattern\": \"raw_.*\"}");
	json_object_foreach(j, key, v) {
		enum dm_status rc = DM_OK;

		if (!*key || strlen(key) > 128)
			rc = bad(err, "filter keys are 1 to 128 characters");
		else if (!strcmp(key, "pattern") || !strcmp(key, "excluded_pattern")) {
			if (!json_is_string(v))
				rc = bad(err, "filter key '%s' takes a string (a regular expression)", key);
			else
				rc = re_compile(!strcmp(key, "pattern") ? &f->pattern : &f->excluded, key,
						json_string_value(v), err);
		} else if (!strcmp(key, "scope")) {
			rc = each_value(v, key, 0, add_scope, f, err);
		} else if (!strcmp(key, "account")) {
			rc = each_value(v, key, 0, add_account, f, err);
		} else if (!strcmp(key, "did_type")) {
			rc = each_value(v, key, 0, add_type, f, err);
		} else if (!strcmp(key, "min_avg_file_size") || !strcmp(key, "max_avg_file_size")) {
			if (!json_is_number(v) || json_number_value(v) < 0)
				rc = bad(err, "filter key '%s' takes a number of bytes", key);
			else if (key[1] == 'i')
				f->has_min = 1, f->min_avg = json_number_value(v);
			else
				f->has_max = 1, f->max_avg = json_number_value(v);
		} else if (!strcmp(key, "split_rule")) {
			if (!json_is_boolean(v))
				rc = bad(err, "filter key 'split_rule' takes true or false");
			else if (json_is_true(v))
				rc = bad(err, "filter key 'split_rule': split rules are not supported by didfs");
		} else if (!strcmp(key, "grouping")) {
			enum cat_grouping g;

			if (!json_is_string(v) || cat_grouping_parse(json_string_value(v), &g))
				rc = bad(err, "filter key 'grouping' takes ALL, DATASET or NONE");
		} else {
			struct sub_meta *m;

			f->meta = dm_xrealloc(f->meta, (f->nmeta + 1) * sizeof *f->meta);
			m = &f->meta[f->nmeta++];
			memset(m, 0, sizeof *m);
			m->key = dm_xstrdup(key);
			rc = each_value(v, key, 1, add_meta, m, err);
		}
		if (rc) {
			filter_free(f);
			return rc;
		}
	}
	return DM_OK;
}

static enum dm_status rule_str(json_t *o, const char *k, size_t max, char **out, int idx,
			       struct dm_err *err)
{
	json_t *v = json_object_get(o, k);

	if (!v || json_is_null(v))
		return DM_OK;
	if (!json_is_string(v))
		return bad(err, "replication rule %d: '%s' takes a string", idx, k);
	if (strlen(json_string_value(v)) > max)
		return bad(err, "replication rule %d: '%s' longer than %zu characters", idx, k, max);
	*out = dm_xstrdup(json_string_value(v));
	return DM_OK;
}

/* true, false, "True", "False" (Rucio's transmogrifier takes the strings). */
static enum dm_status rule_bool(json_t *o, const char *k, int *out, int idx, struct dm_err *err)
{
	json_t *v = json_object_get(o, k);

	if (!v || json_is_null(v))
		return DM_OK;
	if (json_is_boolean(v))
		*out = json_is_true(v);
	else if (json_is_string(v) && (!strcasecmp(json_string_value(v), "true") ||
				       !strcasecmp(json_string_value(v), "false")))
		*out = !strcasecmp(json_string_value(v), "true");
	else
		return bad(err, "replication rule %d: '%s' takes true or false", idx, k);
	return DM_OK;
}

static enum dm_status rule_int(json_t *o, const char *k, int64_t lo, int64_t hi, int64_t *out,
			       int idx, struct dm_err *err)
{
	json_t *v = json_object_get(o, k);
	int64_t x;

	if (!v || json_is_null(v))
		return DM_OK;
	if (json_is_integer(v))
		x = json_integer_value(v);
	else if (!json_is_string(v) || dm_parse_int(json_string_value(v), lo, hi, &x))
		return bad(err, "replication rule %d: '%s' takes an integer from %lld to %lld", idx, k,
			   (long long)lo, (long long)hi);
	if (x < lo || x > hi)
		return bad(err, "replication rule %d: '%s' takes an integer from %lld to %lld, not %lld",
			   idx, k, (long long)lo, (long long)hi, (long long)x);
	*out = x;
	return DM_OK;
}

static const char *const rule_keys[] = {
	"copies", "rse_expression", "lifetime", "activity", "grouping", "weight",
	"source_replica_expression", "purge_replicas", "locked", "ignore_availability",
	"asynchronous", "comment", "comments", "priority", "notify", "release_after", NULL,
};

static enum dm_status rule_from_json(json_t *o, int idx, struct sub_rule *r, struct dm_err *err)
{
	json_t *c = json_object_get(o, "copies");
	const char *key;
	json_t *v;
	char *grouping = NULL;
	int64_t x;
	enum dm_status rc;
	struct dm_err e;

	memset(r, 0, sizeof *r);
	r->grouping = CAT_GROUPING_DATASET;
	r->priority = 3;
	if (!json_is_object(o))
		return bad(err, "replication rule %d must be a JSON object {\"copies\": N, \"rse_expression\": E, ...}", idx);
	json_object_foreach(o, key, v) {
		int known = 0;

		for (int i = 0; rule_keys[i]; i++)
			known |= !strcmp(key, rule_keys[i]);
		if (!known)
			return bad(err, "replication rule %d: unknown key '%s' (known: copies, rse_expression,"
				   " lifetime, activity, grouping, weight, source_replica_expression,"
				   " purge_replicas, locked, ignore_availability, asynchronous, comment,"
				   " priority, notify, release_after)", idx, key);
	}
	if (!c)
		return bad(err, "replication rule %d has no 'copies'", idx);
	if (json_is_string(c) && !strcmp(json_string_value(c), "*"))
		r->copies = 0;
	else {
		x = 0;
		if ((rc = rule_int(o, "copies", 1, 16, &x, idx, err)))
			return rc;
		r->copies = (int)x;
	}
	if ((rc = rule_str(o, "rse_expression", 3000, &r->rse_expression, idx, err)))
		goto fail;
	if (!r->rse_expression || !*r->rse_expression) {
		rc = bad(err, "replication rule %d has no 'rse_expression'", idx);
		goto fail;
	}
	if (cat_rse_expr_check(r->rse_expression, &e)) {
		rc = bad(err, "replication rule %d: %s", idx, e.msg);
		dm_strlcpy(err->cls, "InvalidRSEExpression", sizeof err->cls);
		goto fail;
	}
	x = 0;
	if ((rc = rule_int(o, "lifetime", 1, DM_DURATION_MAX, &x, idx, err)))
		goto fail;
	r->lifetime = x;
	x = 3;
	if ((rc = rule_int(o, "priority", 0, 5, &x, idx, err)))
		goto fail;
	r->priority = (int)x;
	x = 0;
	if ((rc = rule_int(o, "release_after", 1, SUB_MAX_RULES, &x, idx, err)))
		goto fail;
	r->release_after = (int)x; /* an earlier rule: checked on the whole list */
	if ((rc = rule_str(o, "activity", 50, &r->activity, idx, err)) ||
	    (rc = rule_str(o, "weight", 255, &r->weight, idx, err)) ||
	    (rc = rule_str(o, "source_replica_expression", 3000, &r->source, idx, err)) ||
	    (rc = rule_str(o, "comment", 250, &r->comment, idx, err)) ||
	    (!r->comment && (rc = rule_str(o, "comments", 250, &r->comment, idx, err))) ||
	    (rc = rule_str(o, "notify", 16, &r->notify, idx, err)) ||
	    (rc = rule_str(o, "grouping", 16, &grouping, idx, err)) ||
	    (rc = rule_bool(o, "purge_replicas", &r->purge, idx, err)) ||
	    (rc = rule_bool(o, "locked", &r->locked, idx, err)) ||
	    (rc = rule_bool(o, "ignore_availability", &r->ignore_availability, idx, err)) ||
	    (rc = rule_bool(o, "asynchronous", &r->asynchronous, idx, err)))
		goto fail;
	if (grouping && cat_grouping_parse(grouping, &r->grouping)) {
		rc = bad(err, "replication rule %d: grouping must be ALL, DATASET or NONE, not '%s'", idx, grouping);
		goto fail;
	}
	if (r->source && *r->source && cat_rse_expr_check(r->source, &e)) {
		rc = bad(err, "replication rule %d: source_replica_expression: %s", idx, e.msg);
		goto fail;
	}
	free(grouping);
	return DM_OK;
fail:
	free(grouping);
	rules_free(r, 1);
	memset(r, 0, sizeof *r);
	return rc;
}

static enum dm_status rules_from_json(json_t *j, struct sub_rule *out, size_t *n,
				      struct dm_err *err)
{
	size_t i;

	*n = 0;
	if (!json_is_array(j))
		return bad(err, "replication_rules must be a JSON list of rules, e.g. [{\"copies\": 2, \"rse_expression\": \"type=DC\"}]");
	if (json_array_size(j) == 0)
		return bad(err, "You must specify a rule");
	if (json_array_size(j) > SUB_MAX_RULES)
		return bad(err, "at most %d replication rules per subscription", SUB_MAX_RULES);
	for (i = 0; i < json_array_size(j); i++) {
		if (rule_from_json(json_array_get(j, i), (int)i + 1, &out[i], err)) {
			rules_free(out, i);
			return DM_EINVAL;
		}
		if (out[i].release_after > (int)i) {
			bad(err, "replication rule %zu: release_after names an earlier rule (1 to %zu), not %d",
			    i + 1, i, out[i].release_after);
			rules_free(out, i + 1);
			return DM_EINVAL;
		}
	}
	*n = i;
	return DM_OK;
}

static json_t *parse_json(const char *text, const char *what, struct dm_err *err)
{
	json_error_t je;
	json_t *j;

	if (!text)
		return bad(err, "no %s given", what), NULL;
	if (strlen(text) > SUB_JSON_MAX)
		return bad(err, "the %s is longer than %d characters", what, SUB_JSON_MAX), NULL;
	j = json_loads(text, JSON_REJECT_DUPLICATES, &je);
	if (!j)
		bad(err, "the %s is not valid JSON: %s (column %d)", what, je.text, je.column);
	return j;
}

enum dm_status cat_subscription_check(const char *filter, const char *rules, struct dm_buf *nfilter,
				      struct dm_buf *nrules, struct dm_err *err)
{
	json_t *jf = NULL, *jr = NULL;
	struct sub_filter f;
	struct sub_rule r[SUB_MAX_RULES];
	size_t nr = 0;
	enum dm_status rc = DM_OK;

	if (filter) {
		if (!(jf = parse_json(filter, "filter", err)))
			return DM_EINVAL;
		rc = filter_from_json(jf, &f, err);
		if (rc == DM_OK)
			filter_free(&f);
		if (rc == DM_OK && nfilter) {
			char *s = json_dumps(jf, JSON_COMPACT | JSON_SORT_KEYS);

			dm_buf_reset(nfilter);
			dm_buf_adds(nfilter, s);
			free(s);
		}
	}
	if (rc == DM_OK && rules) {
		if (!(jr = parse_json(rules, "replication_rules", err)))
			rc = DM_EINVAL;
		else if ((rc = rules_from_json(jr, r, &nr, err)) == DM_OK) {
			rules_free(r, nr);
			if (nrules) {
				char *s = json_dumps(jr, JSON_COMPACT | JSON_SORT_KEYS);

				dm_buf_reset(nrules);
				dm_buf_adds(nrules, s);
				free(s);
			}
		}
	}
	json_decref(jf);
	json_decref(jr);
	return rc;
}

/* ---- the CLI's short rule form: "COPIES EXPRESSION [key=value ...]" ---- */

static int is_bool_key(const char *k)
{
	return !strcmp(k, "purge_replicas") || !strcmp(k, "locked") ||
	       !strcmp(k, "ignore_availability") || !strcmp(k, "asynchronous");
}

enum dm_status cat_subscription_rule_text(const char *text, struct dm_buf *out, struct dm_err *err)
{
	char *copy, *save = NULL, *tok;
	json_t *o = NULL, *arr;
	int ntok = 0;
	enum dm_status rc = DM_OK;
	const char *p = text;

	while (p && (*p == ' ' || *p == '\t'))
		p++;
	if (!p || !*p)
		return bad(err, "an empty replication rule");
	if (*p == '[' || *p == '{') {
		json_t *j = parse_json(p, "replication rule", err);

		if (!j)
			return DM_EINVAL;
		if (json_is_object(j)) {
			arr = json_array();
			json_array_append_new(arr, j);
			j = arr;
		}
		if (!json_is_array(j) || json_array_size(j) == 0 || json_array_size(j) > SUB_MAX_RULES) {
			json_decref(j);
			return bad(err, "a rule is a JSON object or a list of 1 to %d of them", SUB_MAX_RULES);
		}
		for (size_t i = 0; i < json_array_size(j); i++) {
			struct sub_rule r;
			char *s;

			if (rule_from_json(json_array_get(j, i), (int)i + 1, &r, err)) {
				json_decref(j);
				return DM_EINVAL;
			}
			rules_free(&r, 1);
			s = json_dumps(json_array_get(j, i), JSON_COMPACT | JSON_SORT_KEYS);
			dm_buf_adds(out, out->len ? "," : "");
			dm_buf_adds(out, s);
			free(s);
		}
		json_decref(j);
		return DM_OK;
	}
	copy = dm_xstrdup(p);
	o = json_object();
	for (tok = strtok_r(copy, " \t", &save); tok && rc == DM_OK; tok = strtok_r(NULL, " \t", &save)) {
		if (ntok == 0) {
			int64_t c;

			if (!strcmp(tok, "*"))
				json_object_set_new(o, "copies", json_string("*"));
			else if (dm_parse_int(tok, 1, 16, &c))
				rc = bad(err, "a rule starts with its copies (1 to 16, or *), not '%s'"
					 " (form: \"COPIES RSE_EXPRESSION [key=value ...]\")", tok);
			else
				json_object_set_new(o, "copies", json_integer(c));
		} else if (ntok == 1) {
			json_object_set_new(o, "rse_expression", json_string(tok));
		} else {
			char *eq = strchr(tok, '=');
			int64_t x;

			if (!eq || eq == tok) {
				rc = bad(err, "rule option '%s' is not key=value", tok);
				break;
			}
			*eq++ = 0;
			if (!strcmp(tok, "lifetime") || !strcmp(tok, "priority") || !strcmp(tok, "copies")) {
				if (dm_parse_int(eq, 0, DM_DURATION_MAX, &x))
					rc = bad(err, "rule option %s takes an integer, not '%s'", tok, eq);
				else
					json_object_set_new(o, tok, json_integer(x));
			} else if (is_bool_key(tok)) {
				if (strcasecmp(eq, "true") && strcasecmp(eq, "false"))
					rc = bad(err, "rule option %s takes true or false, not '%s'", tok, eq);
				else
					json_object_set_new(o, tok, json_boolean(!strcasecmp(eq, "true")));
			} else
				json_object_set_new(o, tok, json_string(eq));
		}
		ntok++;
	}
	if (rc == DM_OK && ntok < 2)
		rc = bad(err, "a rule is \"COPIES RSE_EXPRESSION [key=value ...]\", not '%s'", text);
	if (rc == DM_OK) {
		struct sub_rule r;

		rc = rule_from_json(o, 1, &r, err);
		if (rc == DM_OK) {
			char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);

			rules_free(&r, 1);
			dm_buf_adds(out, out->len ? "," : "");
			dm_buf_adds(out, s);
			free(s);
		}
	}
	json_decref(o);
	free(copy);
	return rc;
}

/* ------------------------------------------------------------------ */
/* add, update, list                                                   */

static enum dm_status check_name(struct cat_db *db, const char *name)
{
	if (!name || !*name || strlen(name) > SUB_NAME_MAX || strchr(name, '/'))
		return cat_fail(db, DM_EINVAL, "InvalidObject",
				"a subscription name is 1 to %d characters without '/', not '%s'",
				SUB_NAME_MAX, name ? name : "");
	if (!dm_utf8_valid(name, strlen(name)))
		return cat_fail(db, DM_EINVAL, "InvalidObject", "a subscription name must be UTF-8");
	return DM_OK;
}

static enum dm_status step_done(struct cat_db *db, struct sqldrv_stmt *st, const char *what)
{
	int r = sqldrv_step(st);

	sqldrv_reset(st);
	if (r != SQLDRV_DONE && r != SQLDRV_ROW)
		return cat_dberr(db, what);
	return DM_OK;
}

enum dm_status cat_subscription_add(struct cat_db *db, const char *name, const char *account,
				    const char *filter, const char *rules, const char *comments,
				    int64_t lifetime_days, int priority, char *id_out)
{
	struct dm_buf nf = DM_BUF_INIT, nr = DM_BUF_INIT;
	struct dm_err e;
	enum dm_status rc;
	struct sqldrv_stmt *st;
	char id[33];
	int64_t now = dm_now();

	if ((rc = check_name(db, name)))
		return rc;
	if (cat_validate_account(account, &e)) {
		db->err = e;
		return e.code;
	}
	if (lifetime_days < 0 || lifetime_days > 36500)
		return cat_fail(db, DM_EINVAL, "InvalidObject",
				"lifetime takes days from 1 to 36500, not %lld", (long long)lifetime_days);
	if (priority < 0 || priority > 5)
		return cat_fail(db, DM_EINVAL, "InvalidObject", "priority takes 0 to 5, not %d", priority);
	if (comments && strlen(comments) > 4000)
		return cat_fail(db, DM_EINVAL, "InvalidObject", "comments longer than 4000 characters");
	if (!rules)
		return cat_fail(db, DM_EINVAL, "InvalidObject", "You must specify a rule");
	if (cat_subscription_check(filter ? filter : "{}", rules, &nf, &nr, &e)) {
		db->err = e;
		rc = e.code;
		goto out;
	}
	if ((rc = cat_tx_begin(db)))
		goto out;
	if ((rc = cat_require_admin(db, "add a subscription")) ||
	    (rc = cat_account_check(db, account)))
		goto end;
	st = cat_stmt(db, "INSERT INTO subscriptions(id, name, account, filter, replication_rules,"
			  " policyid, state, lifetime, retroactive, comments, created_at, updated_at)"
			  " VALUES (?,?,?,?,?,?,'A',?,0,?,?,?) ON CONFLICT DO NOTHING");
	if (!st) {
		rc = db->err.code;
		goto end;
	}
	dm_uuid32(id);
	sqldrv_bind_text(st, 1, id, -1);
	sqldrv_bind_text(st, 2, name, -1);
	sqldrv_bind_text(st, 3, account, -1);
	sqldrv_bind_text(st, 4, nf.s, -1);
	sqldrv_bind_text(st, 5, nr.s, -1);
	sqldrv_bind_int64(st, 6, priority ? priority : 3);
	if (lifetime_days > 0)
		sqldrv_bind_int64(st, 7, dm_time_add(now, lifetime_days * 86400));
	sqldrv_bind_text(st, 8, comments, -1);
	sqldrv_bind_int64(st, 9, now);
	sqldrv_bind_int64(st, 10, now);
	if ((rc = step_done(db, st, "adding a subscription")))
		goto end;
	if (sqldrv_changes(db->sql) == 0) {
		rc = cat_fail(db, DM_EEXIST, "SubscriptionDuplicate",
			      "Subscription '%s' owned by '%s' already exists!", name, account);
		goto end;
	}
	if (id_out)
		memcpy(id_out, id, 33);
end:
	rc = cat_tx_end(db, rc);
out:
	dm_buf_release(&nf);
	dm_buf_release(&nr);
	return rc;
}

static enum dm_status not_found(struct cat_db *db, const char *name, const char *account)
{
	return cat_fail(db, DM_ENOENT, "SubscriptionNotFound",
			"Subscription for account '%s' named '%s' not found",
			account ? account : "None", name ? name : "None");
}

enum dm_status cat_subscription_update(struct cat_db *db, const char *name, const char *account,
				       const struct cat_subscription_update *u)
{
	struct dm_buf nf = DM_BUF_INIT, nr = DM_BUF_INIT;
	struct dm_err e;
	enum dm_status rc;
	struct sqldrv_stmt *st;
	char state = 'U';
	int64_t now = dm_now();

	if ((rc = check_name(db, name)))
		return rc;
	if (u->state && !(state = state_code(u->state)))
		return cat_fail(db, DM_EINVAL, "InvalidObject", "Invalid subscription state: %s", u->state);
	if (u->state && state != 'I' && state != 'A' && state != 'U')
		return cat_fail(db, DM_EINVAL, "InvalidObject",
				"a subscription's state can be set to ACTIVE, UPDATED or INACTIVE, not %s", u->state);
	if (u->lifetime_days < -1 || u->lifetime_days > 36500)
		return cat_fail(db, DM_EINVAL, "InvalidObject",
				"lifetime takes days from 1 to 36500, not %lld", (long long)u->lifetime_days);
	if (u->priority < -1 || u->priority > 5)
		return cat_fail(db, DM_EINVAL, "InvalidObject", "priority takes 0 to 5, not %d", u->priority);
	if (u->comments && strlen(u->comments) > 4000)
		return cat_fail(db, DM_EINVAL, "InvalidObject", "comments longer than 4000 characters");
	if ((u->filter || u->rules) &&
	    cat_subscription_check(u->filter, u->rules, &nf, &nr, &e)) {
		db->err = e;
		rc = e.code;
		goto out;
	}
	if ((rc = cat_tx_begin(db)))
		goto out;
	if ((rc = cat_require_admin(db, "update a subscription")))
		goto end;
	st = cat_stmt(db, "UPDATE subscriptions SET state=?1,"
			  " filter=coalesce(?2, filter), replication_rules=coalesce(?3, replication_rules),"
			  " comments=coalesce(?4, comments), lifetime=coalesce(?5, lifetime),"
			  " policyid=coalesce(?6, policyid),"
			  " expired_at=CASE WHEN ?1='I' THEN ?7 ELSE NULL END, updated_at=?7"
			  " WHERE name=?8 AND account=?9");
	if (!st) {
		rc = db->err.code;
		goto end;
	}
	sqldrv_bind_text(st, 1, (char[]){ state, 0 }, 1);
	if (u->filter)
		sqldrv_bind_text(st, 2, nf.s, -1);
	if (u->rules)
		sqldrv_bind_text(st, 3, nr.s, -1);
	sqldrv_bind_text(st, 4, u->comments, -1);
	if (u->lifetime_days > 0)
		sqldrv_bind_int64(st, 5, dm_time_add(now, u->lifetime_days * 86400));
	if (u->priority >= 0)
		sqldrv_bind_int64(st, 6, u->priority);
	sqldrv_bind_int64(st, 7, now);
	sqldrv_bind_text(st, 8, name, -1);
	sqldrv_bind_text(st, 9, account, -1);
	if ((rc = step_done(db, st, "updating a subscription")))
		goto end;
	if (sqldrv_changes(db->sql) == 0)
		rc = not_found(db, name, account);
end:
	rc = cat_tx_end(db, rc);
out:
	dm_buf_release(&nf);
	dm_buf_release(&nr);
	return rc;
}

void cat_subscription_update_init(struct cat_subscription_update *u)
{
	memset(u, 0, sizeof *u);
	u->lifetime_days = -1;
	u->priority = -1;
}

#define SUB_COLS "s.id, s.name, s.account, s.filter, s.replication_rules, s.policyid, s.state," \
		 " s.last_processed, s.lifetime, s.retroactive, s.comments, s.expired_at," \
		 " s.created_at, s.updated_at"

static void sub_from_row(struct sqldrv_stmt *st, struct cat_subscription *s)
{
	memset(s, 0, sizeof *s);
	s->id = cat_col_text(st, 0);
	s->name = cat_col_text(st, 1);
	s->account = cat_col_text(st, 2);
	s->filter = cat_col_text(st, 3);
	s->replication_rules = cat_col_text(st, 4);
	s->policyid = (int)sqldrv_col_int64(st, 5);
	s->state = cat_subscription_state_name(cat_col_text(st, 6));
	s->last_processed = sqldrv_col_int64(st, 7);
	s->lifetime = sqldrv_col_int64(st, 8);
	s->retroactive = (int)sqldrv_col_int64(st, 9);
	s->comments = cat_col_text(st, 10);
	s->expired_at = sqldrv_col_int64(st, 11);
	s->created_at = sqldrv_col_int64(st, 12);
	s->updated_at = sqldrv_col_int64(st, 13);
}

static enum dm_status list_rows(struct cat_db *db, struct sqldrv_stmt *st, cat_subscription_cb cb,
				void *ud, int *found)
{
	int r;

	while ((r = sqldrv_step(st)) == SQLDRV_ROW) {
		struct cat_subscription s;

		sub_from_row(st, &s);
		(*found)++;
		if (cb(ud, &s))
			break;
	}
	if (r != SQLDRV_ROW && r != SQLDRV_DONE) {
		sqldrv_reset(st);
		return cat_dberr(db, "listing subscriptions");
	}
	sqldrv_reset(st);
	return DM_OK;
}

enum dm_status cat_subscription_list(struct cat_db *db, const char *name, const char *account,
				     cat_subscription_cb cb, void *ud)
{
	struct sqldrv_stmt *st;
	enum dm_status rc;
	int found = 0;
	struct dm_buf glob = DM_BUF_INIT;

	st = cat_stmt(db, "SELECT " SUB_COLS " FROM subscriptions s"
			  " WHERE (?1 IS NULL OR s.name=?1) AND (?2 IS NULL OR glob(?2, s.account))"
			  " ORDER BY s.account, s.name");
	if (!st)
		return db->err.code;
	if (name && *name)
		sqldrv_bind_text(st, 1, name, -1);
	if (account && *account) {
		/* Rucio's '*' wildcard; other GLOB characters are taken literally */
		for (const char *p = account; *p; p++) {
			if (*p == '[' || *p == '?')
				dm_buf_addf(&glob, "[%c]", *p);
			else
				dm_buf_addc(&glob, *p);
		}
		sqldrv_bind_text(st, 2, glob.s, -1);
	}
	rc = list_rows(db, st, cb, ud, &found);
	dm_buf_release(&glob);
	if (rc == DM_OK && !found)
		rc = not_found(db, name && *name ? name : NULL, account && *account ? account : NULL);
	return rc;
}

enum dm_status cat_subscription_get_id(struct cat_db *db, const char *id, cat_subscription_cb cb,
				       void *ud)
{
	struct sqldrv_stmt *st = cat_stmt(db, "SELECT " SUB_COLS " FROM subscriptions s WHERE s.id=?");
	enum dm_status rc;
	int found = 0;

	if (!st)
		return db->err.code;
	sqldrv_bind_text(st, 1, id, -1);
	rc = list_rows(db, st, cb, ud, &found);
	if (rc == DM_OK && !found)
		rc = cat_fail(db, DM_ENOENT, "SubscriptionNotFound", "No subscription with the id %s found", id);
	return rc;
}

enum dm_status cat_subscription_rule_ids(struct cat_db *db, const char *name, const char *account,
					 cat_rule_id_cb cb, void *ud)
{
	struct sqldrv_stmt *st = cat_stmt(db, "SELECT s.id FROM subscriptions s WHERE s.name=? AND s.account=?");
	char id[33] = "";
	int r;

	if (!st)
		return db->err.code;
	sqldrv_bind_text(st, 1, name, -1);
	sqldrv_bind_text(st, 2, account, -1);
	r = sqldrv_step(st);
	if (r == SQLDRV_ROW)
		dm_strlcpy(id, cat_col_text(st, 0), sizeof id);
	sqldrv_reset(st);
	if (r != SQLDRV_ROW && r != SQLDRV_DONE)
		return cat_dberr(db, "finding a subscription");
	if (!*id)
		return not_found(db, name, account);
	st = cat_stmt(db, "SELECT id FROM rules WHERE subscription_id=? ORDER BY created_at, id");
	if (!st)
		return db->err.code;
	sqldrv_bind_text(st, 1, id, -1);
	while ((r = sqldrv_step(st)) == SQLDRV_ROW)
		if (cb(ud, cat_col_text(st, 0)))
			break;
	sqldrv_reset(st);
	if (r != SQLDRV_ROW && r != SQLDRV_DONE)
		return cat_dberr(db, "listing a subscription's rules");
	return DM_OK;
}

/* ------------------------------------------------------------------ */
/* the transmogrifier                                                  */

struct live_sub {
	char id[33];
	char name[SUB_NAME_MAX + 1];
	char account[CAT_ACCOUNT_MAX + 1];
	struct sub_filter f;
	struct sub_rule rules[SUB_MAX_RULES];
	size_t nrules;
	int matched;
};

struct new_did {
	int64_t id, bytes, length;
	char scope[CAT_SCOPE_MAX + 1];
	char *name;
	char account[CAT_ACCOUNT_MAX + 1];
	enum cat_did_type type;
};

static enum dm_status load_subs(struct cat_db *db, int64_t now, struct live_sub **out, size_t *n)
{
	struct sqldrv_stmt *st;
	struct live_sub *subs = NULL;
	size_t cnt = 0;
	int r;

	*out = NULL;
	*n = 0;
	st = cat_stmt(db, "UPDATE subscriptions SET state='I', expired_at=?1, updated_at=?1"
			  " WHERE state<>'I' AND lifetime IS NOT NULL AND lifetime<?1");
	if (!st)
		return db->err.code;
	sqldrv_bind_int64(st, 1, now);
	if (step_done(db, st, "expiring subscriptions"))
		return db->err.code;
	st = cat_stmt(db, "SELECT id, name, account, filter, replication_rules FROM subscriptions"
			  " WHERE state IN ('A','U') ORDER BY policyid, created_at, id");
	if (!st)
		return db->err.code;
	while ((r = sqldrv_step(st)) == SQLDRV_ROW) {
		struct live_sub *s;
		json_t *jf = json_loads(cat_col_text(st, 3), 0, NULL);
		json_t *jr = json_loads(cat_col_text(st, 4), 0, NULL);
		struct dm_err e;

		subs = dm_xrealloc(subs, (cnt + 1) * sizeof *subs);
		s = &subs[cnt];
		memset(s, 0, sizeof *s);
		dm_strlcpy(s->id, cat_col_text(st, 0), sizeof s->id);
		dm_strlcpy(s->name, cat_col_text(st, 1), sizeof s->name);
		dm_strlcpy(s->account, cat_col_text(st, 2), sizeof s->account);
		if (filter_from_json(jf, &s->f, &e) == DM_OK) {
			if (rules_from_json(jr, s->rules, &s->nrules, &e) == DM_OK)
				cnt++;
			else
				filter_free(&s->f);
		}
		if (cnt == 0 || &subs[cnt - 1] != s)
			dm_log(DM_LOG_ERROR, "transmogrifier", "subscription %s of %s skipped: %s",
			       cat_col_text(st, 1), cat_col_text(st, 2), e.msg);
		json_decref(jf);
		json_decref(jr);
	}
	sqldrv_reset(st);
	*out = subs;
	*n = cnt;
	if (r != SQLDRV_DONE)
		return cat_dberr(db, "loading subscriptions");
	return DM_OK;
}

static void subs_free(struct live_sub *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		filter_free(&s[i].f);
		rules_free(s[i].rules, s[i].nrules);
	}
	free(s);
}

static int re_ok(const struct sub_re *r, const char *s)
{
	return regexec(&r->re, s ? s : "", 0, NULL, 0) == 0;
}

struct meta_kv {
	char *key, *value;
};

static int matches(const struct sub_filter *f, const struct new_did *d, const struct meta_kv *meta,
		   size_t nmeta)
{
	unsigned types = f->types ? f->types : (1u << CAT_DID_DATASET) | (1u << CAT_DID_CONTAINER);

	if (!(types & (1u << d->type)))
		return 0;
	for (size_t i = 0; i < nmeta; i++)
		if (!strcmp(meta[i].key, "hidden") && meta[i].value &&
		    (!strcasecmp(meta[i].value, "true") || !strcmp(meta[i].value, "1")))
			return 0;
	if (f->pattern.ok && !re_ok(&f->pattern, d->name))
		return 0;
	if (f->excluded.ok && re_ok(&f->excluded, d->name))
		return 0;
	if (f->nscopes) {
		size_t i;

		for (i = 0; i < f->nscopes && !re_ok(&f->scopes[i], d->scope); i++)
			;
		if (i == f->nscopes)
			return 0;
	}
	if (f->naccounts) {
		size_t i;

		for (i = 0; i < f->naccounts && strcmp(f->accounts[i], d->account); i++)
			;
		if (i == f->naccounts)
			return 0;
	}
	if ((f->has_min || f->has_max) && d->length > 0 && d->bytes > 0) {
		double avg = (double)d->bytes / (double)d->length;

		if ((f->has_min && avg < f->min_avg) || (f->has_max && avg > f->max_avg))
			return 0;
	}
	for (size_t i = 0; i < f->nmeta; i++) {
		const struct sub_meta *m = &f->meta[i];
		const char *v = NULL;
		int any = 0;

		for (size_t k = 0; k < nmeta; k++)
			if (!strcmp(meta[k].key, m->key))
				v = meta[k].value ? meta[k].value : "None";
		if (!v)
			return 0;
		for (size_t j = 0; j < m->n && !any; j++)
			any = re_ok(&m->vals[j], v);
		if (!any)
			return 0;
	}
	return 1;
}

static enum dm_status load_meta(struct cat_db *db, int64_t did, struct meta_kv **out, size_t *n)
{
	struct sqldrv_stmt *st = cat_stmt(db, "SELECT key, value FROM did_meta WHERE did_id=?");
	int r;

	*n = 0;
	*out = NULL;
	if (!st)
		return db->err.code;
	sqldrv_bind_int64(st, 1, did);
	while ((r = sqldrv_step(st)) == SQLDRV_ROW) {
		const char *v = cat_col_text(st, 1);

		*out = dm_xrealloc(*out, (*n + 1) * sizeof **out);
		(*out)[*n].key = dm_xstrdup(cat_col_text(st, 0));
		(*out)[*n].value = v ? dm_xstrdup(v) : NULL;
		(*n)++;
	}
	sqldrv_reset(st);
	if (r != SQLDRV_DONE)
		return cat_dberr(db, "reading metadata");
	return DM_OK;
}

static void meta_free(struct meta_kv *m, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(m[i].key);
		free(m[i].value);
	}
	free(m);
}

/* The rule errors Rucio's transmogrifier logs and goes on after; anything
 * else (the database) ends the cycle, rolled back. */
static int rule_refusal(const struct dm_err *e)
{
	return e->code == DM_EINVAL || e->code == DM_EEXIST || e->code == DM_ENOENT ||
	       e->code == DM_EPERM || e->code == DM_EQUOTA || e->code == DM_ECONFLICT ||
	       e->code == DM_ENOTSUP ||
	       !strcmp(e->cls, "InsufficientTargetRSEs") || !strcmp(e->cls, "InsufficientAccountLimit") ||
	       !strcmp(e->cls, "RSEWriteBlocked") || !strcmp(e->cls, "InvalidRuleWeight") ||
	       !strcmp(e->cls, "DuplicateRule");
}

static int count_rses(struct cat_db *db, const char *expr)
{
	int64_t *nums = NULL;
	uint8_t *match = NULL;
	size_t n = 0, count = 0;

	if (cat_rse_expr_match(db, expr, 1, &nums, &match, &n, &count))
		count = 0;
	free(nums);
	free(match);
	return count > 16 ? 16 : (int)count;
}

/* A rule with release_after = k is Rucio's parent of a move: expired at
 * once, with child_rule_id = rule k, so the judge-cleaner removes it (and
 * the reaper its replicas) only when rule k is OK (rule.c releases it);
 * at once when rule k is OK already. */
static enum dm_status set_parent(struct cat_db *db, const char *parent, const char *child)
{
	struct sqldrv_stmt *st = cat_stmt(db, "UPDATE rules SET expires_at=?1, child_rule_id=CASE WHEN"
				       " (SELECT state FROM rules WHERE id=?2)='O' THEN NULL ELSE ?2 END"
				       " WHERE id=?3");

	if (!st)
		return db->err.code;
	sqldrv_bind_int64(st, 1, dm_now());
	sqldrv_bind_text(st, 2, child, -1);
	sqldrv_bind_text(st, 3, parent, -1);
	return step_done(db, st, "chaining a rule to the rule it waits for");
}

static enum dm_status apply_sub(struct cat_db *db, struct live_sub *s, const struct new_did *d,
				int *created)
{
	enum dm_status rc = DM_OK;
	char made[SUB_MAX_RULES][33];

	memset(made, 0, sizeof made);

	for (size_t i = 0; i < s->nrules && rc == DM_OK; i++) {
		const struct sub_rule *r = &s->rules[i];
		struct cat_rule_opts o;
		char rid[33];
		struct sqldrv_stmt *st;

		cat_rule_opts_init(&o);
		o.copies = r->copies ? r->copies : count_rses(db, r->rse_expression);
		o.rse_expression = r->rse_expression;
		o.grouping = r->grouping;
		o.weight = r->weight;
		o.lifetime = r->lifetime;
		o.locked = r->locked;
		o.source_replica_expression = r->source;
		o.activity = r->activity;
		o.purge_replicas = r->purge;
		o.ignore_availability = r->ignore_availability;
		o.comment = r->comment ? r->comment : s->name;
		o.notification = r->notify;
		o.asynchronous = r->asynchronous;
		o.priority = r->priority;
		if ((rc = cat_exec(db, "SAVEPOINT transmogrifier_rule")))
			break;
		rc = cat_set_issuer(db, s->account);
		if (rc == DM_OK && o.copies <= 0)
			rc = cat_fail(db, DM_EINVAL, "InsufficientTargetRSEs",
				      "'%s' matches no RSE (copies \"*\")", r->rse_expression);
		if (rc == DM_OK)
			rc = cat_rule_add(db, d->scope, d->name, &o, rid);
		if (rc == DM_OK) {
			st = cat_stmt(db, "UPDATE rules SET subscription_id=? WHERE id=?");
			if (!st)
				rc = db->err.code;
			else {
				sqldrv_bind_text(st, 1, s->id, -1);
				sqldrv_bind_text(st, 2, rid, -1);
				rc = step_done(db, st, "recording a rule's subscription");
			}
		}
		if (rc == DM_OK && r->release_after) {
			if (made[r->release_after - 1][0])
				rc = set_parent(db, rid, made[r->release_after - 1]);
			else
				dm_log(DM_LOG_WARN, "transmogrifier", "%s:%s, subscription %s: rule %zu is kept:"
				       " rule %d it waits for was not made", d->scope, d->name, s->name, i + 1,
				       r->release_after);
		}
		if (rc == DM_OK)
			memcpy(made[i], rid, 33);
		if (rc == DM_OK) {
			(*created)++;
			dm_log(DM_LOG_INFO, "transmogrifier", "%s:%s matches subscription %s: rule %s (%d x '%s')",
			       d->scope, d->name, s->name, rid, o.copies, o.rse_expression);
			rc = cat_exec(db, "RELEASE transmogrifier_rule");
		} else if (rule_refusal(&db->err)) {
			struct dm_err keep = db->err;

			dm_log(DM_LOG_WARN, "transmogrifier", "%s:%s, subscription %s, rule %zu: %s: %s",
			       d->scope, d->name, s->name, i + 1, keep.cls, keep.msg);
			rc = cat_exec(db, "ROLLBACK TO transmogrifier_rule");
			if (rc == DM_OK)
				rc = cat_exec(db, "RELEASE transmogrifier_rule");
		}
	}
	return rc;
}

enum dm_status cat_transmogrify(struct cat_db *db, int limit, int index, int total, int *done,
				int *rules_created)
{
	struct live_sub *subs = NULL;
	struct new_did *dids = NULL;
	size_t nsubs = 0, ndids = 0;
	char issuer[CAT_ACCOUNT_MAX + 1];
	enum dm_status rc;
	struct sqldrv_stmt *st;
	int64_t now = dm_now();
	int r;

	*done = 0;
	if (rules_created)
		*rules_created = 0;
	if (limit <= 0)
		limit = 100;
	if (total < 1)
		total = 1;
	dm_strlcpy(issuer, cat_issuer(db), sizeof issuer);
	if ((rc = cat_tx_begin(db)))
		return rc;
	if ((rc = load_subs(db, now, &subs, &nsubs)))
		goto out;
	st = cat_stmt(db, "SELECT id, scope, name, did_type, account, coalesce(bytes, 0),"
			  " coalesce(length, 0) FROM dids WHERE is_new=1"
			  " AND (?2 <= 1 OR didfs_hash(name) % ?2 = ?3) ORDER BY id LIMIT ?1");
	if (!st) {
		rc = db->err.code;
		goto out;
	}
	sqldrv_bind_int64(st, 1, limit);
	sqldrv_bind_int64(st, 2, total);
	sqldrv_bind_int64(st, 3, index);
	while ((r = sqldrv_step(st)) == SQLDRV_ROW) {
		struct new_did *d;

		dids = dm_xrealloc(dids, (ndids + 1) * sizeof *dids);
		d = &dids[ndids++];
		memset(d, 0, sizeof *d);
		d->id = sqldrv_col_int64(st, 0);
		dm_strlcpy(d->scope, cat_col_text(st, 1), sizeof d->scope);
		d->name = dm_xstrdup(cat_col_text(st, 2));
		cat_did_type_from_code(cat_col_text(st, 3), &d->type);
		dm_strlcpy(d->account, cat_col_text(st, 4), sizeof d->account);
		d->bytes = sqldrv_col_int64(st, 5);
		d->length = sqldrv_col_int64(st, 6);
	}
	sqldrv_reset(st);
	if (r != SQLDRV_DONE) {
		rc = cat_dberr(db, "listing new DIDs");
		goto out;
	}
	for (size_t i = 0; i < ndids && rc == DM_OK; i++) {
		struct meta_kv *meta = NULL;
		size_t nmeta = 0;
		int created = 0;

		if (nsubs && (rc = load_meta(db, dids[i].id, &meta, &nmeta)))
			break;
		for (size_t k = 0; k < nsubs && rc == DM_OK; k++)
			if (matches(&subs[k].f, &dids[i], meta, nmeta)) {
				subs[k].matched = 1;
				rc = apply_sub(db, &subs[k], &dids[i], &created);
			}
		meta_free(meta, nmeta);
		if (rules_created)
			*rules_created += created;
		if (rc)
			break;
		st = cat_stmt(db, "UPDATE dids SET is_new=0 WHERE id=?");
		if (!st) {
			rc = db->err.code;
			break;
		}
		sqldrv_bind_int64(st, 1, dids[i].id);
		rc = step_done(db, st, "clearing a DID's new flag");
	}
	if (rc == DM_OK && ndids && nsubs) {
		st = cat_stmt(db, "UPDATE subscriptions SET last_processed=? WHERE state IN ('A','U')");
		if (!st)
			rc = db->err.code;
		else {
			sqldrv_bind_int64(st, 1, now);
			rc = step_done(db, st, "marking subscriptions processed");
		}
	}
	if (rc == DM_OK)
		*done = (int)ndids;
out:
	rc = cat_tx_end(db, rc);
	{
		struct dm_err keep = db->err;

		if (*issuer && strcmp(issuer, cat_issuer(db)))
			cat_set_issuer(db, issuer);
		db->err = keep;
	}
	for (size_t i = 0; i < ndids; i++)
		free(dids[i].name);
	free(dids);
	subs_free(subs, nsubs);
	return rc;
}
