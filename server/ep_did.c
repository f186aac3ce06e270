/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ep_did.c - /dids: add (with rules and meta), bulk add, attach/detach
 * (with `rse`: files registered as replicas too, one transaction), bulk
 * attachments, get, content, files, parents, rules, search with Rucio's
 * `filters`, metadata, status.
 *
 * Paths are split raw (json.c srv_did_path) so a name may hold an encoded
 * '/' (then refused by the catalog's name pattern as Rucio does).
 * Search: `filters` (a Python literal) groups are ORed, the conditions of
 * a group ANDed; keys are DID columns (name, bytes, length, account,
 * created_before/after, ...) or metadata keys, with Rucio's operator
 * suffixes .gt/.lt/.gte/.lte/.ne, compared as numbers, dates, booleans or
 * text, '*' as a wildcard; rows stream from one catalog call
 * (cat_did_search) that carries each DID's metadata.  Without `filters` the
 * query arguments are the filters.  DID types are DIDType.X for 1.31
 * clients, X for 35+.
 *
 * Writes: a request of several changes runs in one catalog batch
 * (srv_db_tx).  DID names are checked against Rucio's NAME schema
 * (srv_name_ok: no '/') with Rucio's InvalidObject answer.  The bulk
 * registration body (dids + rse) is read in one pass (srv_fast_files).
 */
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static int is(const struct srv_req *r, const char *m) { return !strcmp(r->method, m); }

static void did_get_json(struct dm_buf *b, const struct cat_did *d)
{
	dm_buf_adds(b, "{");
	jw_ks(b, "scope", d->scope);
	jw_ks(b, "name", d->name);
	jw_ks(b, "type", cat_did_type_name(d->type));
	jw_ks(b, "account", d->account);
	if (d->type == CAT_DID_FILE) {
		jw_ku(b, "bytes", d->bytes);
		jw_ki(b, "length", 1);
		jw_ks(b, "md5", d->md5);
		jw_ks(b, "adler32", d->adler32);
	} else {
		jw_kb(b, "open", d->is_open);
		jw_kb(b, "monotonic", d->monotonic);
		jw_kt(b, "expired_at", d->expired_at);
		jw_ku(b, "length", d->length);
		jw_ku(b, "bytes", d->bytes);
	}
	dm_buf_adds(b, "}");
}

static int did_copy_cb(void *ud, const struct cat_did *d)
{
	did_get_json(ud, d);
	return 0;
}

/* ---- streams of DIDs ---- */
enum did_list { L_ROOTS, L_CONTENT, L_FILES, L_PARENTS, L_SEARCH };
struct fcond { int group; char key[256]; char op[8]; char val[1024]; int meta; };
struct did_ctx {
	enum did_list kind;
	char scope[CAT_SCOPE_MAX + 1], name[CAT_NAME_MAX + 1];
	struct srv_stream *s;
	struct dm_buf b;
	int lng, old;
	unsigned mask;
	char pattern[CAT_NAME_MAX + 1];
	struct fcond *conds;
	int nconds, ngroups, need_meta;
	int64_t limit, sent;
	json_t *meta; /* the row's metadata (search with metadata filters) */
};

/* ---- Rucio's filter engine, on one row ----
 * Keys: DID columns (name, bytes, length, account, availability, is_open,
 * monotonic, created_at, updated_at, expired_at; created_before/after are
 * created_at < / > the date) and, for any other key, the DID's metadata.
 * Operators eq (''), ne, gt, gte, lt, lte.  Values are compared as numbers
 * when both sides are numbers, as dates for date columns, as booleans for
 * true/false, else as text; '*' makes eq/ne a wildcard match.  A key the DID
 * has no value for never matches. */
static int parse_num(const char *s, double *v)
{
	char *e;

	if (!s || !*s)
		return -1;
	*v = strtod(s, &e);
	return *e ? -1 : 0;
}

/* Rucio's date strings (RFC 1123 "... UTC", ISO with optional fraction and
 * Z, a plain date) or epoch seconds. */
static int parse_date(const char *s, int64_t *t)
{
	static const char *const fmts[] = { "%a, %d %b %Y %H:%M:%S UTC", "%Y-%m-%dT%H:%M:%S",
					    "%Y-%m-%d %H:%M:%S", "%Y-%m-%d" };
	struct tm tm;
	int64_t n;

	if (!dm_parse_i64(s, &n)) {
		*t = n;
		return 0;
	}
	for (size_t i = 0; i < DM_ARRAY_SIZE(fmts); i++) {
		const char *e;

		memset(&tm, 0, sizeof(tm));
		e = strptime(s, fmts[i], &tm);
		if (!e)
			continue;
		if (*e == '.')
			for (e++; *e >= '0' && *e <= '9'; e++)
				;
		if (*e == 'Z')
			e++;
		if (*e)
			continue;
		*t = (int64_t)timegm(&tm);
		return 0;
	}
	return -1;
}

static int cmp_result(int c, const char *op)
{
	if (!strcmp(op, "gt")) return c > 0;
	if (!strcmp(op, "lt")) return c < 0;
	if (!strcmp(op, "gte")) return c >= 0;
	if (!strcmp(op, "lte")) return c <= 0;
	if (!strcmp(op, "ne")) return c != 0;
	return c == 0;
}

static int is_bool(const char *s, int *b)
{
	if (!strcasecmp(s, "true")) { *b = 1; return 1; }
	if (!strcasecmp(s, "false")) { *b = 0; return 1; }
	return 0;
}

/* have (a text value) against the condition */
static int text_match(const char *have, const struct fcond *f)
{
	double x, y;
	int bx, by;

	if (!have)
		return 0;
	if ((!strcmp(f->op, "eq") || !strcmp(f->op, "ne")) && strchr(f->val, '*')) {
		int m = dm_wildcard_match(f->val, have);

		return strcmp(f->op, "ne") ? m : !m;
	}
	if (!parse_num(have, &x) && !parse_num(f->val, &y))
		return cmp_result(x < y ? -1 : x > y, f->op);
	if (is_bool(have, &bx) && is_bool(f->val, &by))
		return cmp_result(bx - by, f->op);
	return cmp_result(strcmp(have, f->val), f->op);
}

static int date_match(int64_t have, const struct fcond *f, const char *op)
{
	int64_t t;

	if (!have || parse_date(f->val, &t))
		return 0;
	return cmp_result(have < t ? -1 : have > t, op);
}

static int cond_match(const struct did_ctx *c, const struct fcond *f, const struct cat_did *d)
{
	char num[32];

	if (f->meta) {
		json_t *v = c->meta ? json_object_get(c->meta, f->key) : NULL;

		return json_is_string(v) ? text_match(json_string_value(v), f) : 0;
	}
	if (!strcmp(f->key, "name"))
		return text_match(d->name, f);
	if (!strcmp(f->key, "account"))
		return text_match(d->account, f);
	if (!strcmp(f->key, "availability"))
		return text_match(d->availability, f);
	if (!strcmp(f->key, "bytes") || !strcmp(f->key, "length")) {
		snprintf(num, sizeof(num), "%llu", (unsigned long long)(f->key[0] == 'b' ? d->bytes : d->length));
		return text_match(num, f);
	}
	if (!strcmp(f->key, "is_open") || !strcmp(f->key, "monotonic")) {
		int v = f->key[0] == 'i' ? d->is_open : d->monotonic;

		if (f->key[0] == 'i' && d->type == CAT_DID_FILE)
			return 0;
		return text_match(v ? "true" : "false", f);
	}
	if (!strcmp(f->key, "created_before"))
		return date_match(d->created_at, f, "lt");
	if (!strcmp(f->key, "created_after"))
		return date_match(d->created_at, f, "gt");
	if (!strcmp(f->key, "created_at"))
		return date_match(d->created_at, f, f->op);
	if (!strcmp(f->key, "updated_at"))
		return date_match(d->updated_at, f, f->op);
	if (!strcmp(f->key, "expired_at"))
		return date_match(d->expired_at, f, f->op);
	return 0;
}

static int matches(const struct did_ctx *c, const struct cat_did *d)
{
	if (!c->nconds)
		return 1;
	for (int g = 0; g < c->ngroups; g++) {
		int ok = 1, any = 0;

		for (int i = 0; i < c->nconds && ok; i++) {
			const struct fcond *f = &c->conds[i];

			if (f->group != g)
				continue;
			any = 1;
			ok = cond_match(c, f, d);
		}
		if (ok || !any)
			return 1;
	}
	return 0;
}

static int did_row_cb(void *ud, const struct cat_did *d);

static int search_row_cb(void *ud, const struct cat_did *d, const char *meta_json)
{
	struct did_ctx *c = ud;
	int rc;

	c->meta = meta_json ? json_loads(meta_json, 0, NULL) : NULL;
	rc = did_row_cb(ud, d);
	json_decref(c->meta);
	c->meta = NULL;
	return rc;
}

static int did_row_cb(void *ud, const struct cat_did *d)
{
	struct did_ctx *c = ud;
	struct dm_buf *b = &c->b;

	switch (c->kind) {
	case L_ROOTS:
		dm_buf_adds(b, "{");
		jw_ks(b, "scope", d->scope);
		jw_ks(b, "name", d->name);
		jw_ks(b, "type", cat_did_type_name(d->type));
		jw_knull(b, "parent");
		jw_ki(b, "level", 0);
		jw_ku(b, "bytes", d->bytes);
		dm_buf_adds(b, "}");
		break;
	case L_CONTENT:
		dm_buf_adds(b, "{");
		jw_ks(b, "scope", d->scope);
		jw_ks(b, "name", d->name);
		jw_ks(b, "type", cat_did_type_name(d->type));
		if (d->type == CAT_DID_FILE) {
			jw_ku(b, "bytes", d->bytes);
			jw_ks(b, "adler32", d->adler32);
			jw_ks(b, "md5", d->md5);
		} else {
			jw_knull(b, "bytes");
			jw_knull(b, "adler32");
			jw_knull(b, "md5");
		}
		dm_buf_adds(b, "}");
		break;
	case L_FILES:
		dm_buf_adds(b, "{");
		jw_ks(b, "scope", d->scope);
		jw_ks(b, "name", d->name);
		jw_ku(b, "bytes", d->bytes);
		jw_ks(b, "adler32", d->adler32);
		jw_knull(b, "guid");
		jw_knull(b, "events");
		dm_buf_adds(b, "}");
		break;
	case L_PARENTS:
		dm_buf_adds(b, "{");
		jw_ks(b, "scope", d->scope);
		jw_ks(b, "name", d->name);
		jw_ks(b, "type", cat_did_type_name(d->type));
		dm_buf_adds(b, "}");
		break;
	case L_SEARCH:
		if (!matches(c, d))
			return 0;
		if (c->limit && c->sent >= c->limit)
			return 1;
		c->sent++;
		if (!c->lng) {
			jw_str(b, d->name);
			break;
		}
		dm_buf_adds(b, "{");
		jw_ks(b, "scope", d->scope);
		jw_ks(b, "name", d->name);
		jw_kenum(b, "did_type", "DIDType", cat_did_type_name(d->type), c->old);
		if (d->type == CAT_DID_FILE) {
			jw_ku(b, "bytes", d->bytes);
			jw_knull(b, "length");
		} else {
			jw_ku(b, "bytes", d->bytes);
			jw_ku(b, "length", d->length);
		}
		dm_buf_adds(b, "}");
		break;
	}
	dm_buf_addc(b, '\n');
	return srv_stream_buf(c->s, b);
}

static enum dm_status did_stream(struct srv_stream *s, struct cat_db *db, void *ud)
{
	struct did_ctx *c = ud;

	c->s = s;
	c->old = srv_stream_old_enums(s);
	switch (c->kind) {
	case L_ROOTS: return cat_did_list_roots(db, c->scope, did_row_cb, c);
	case L_CONTENT: return cat_did_list_content(db, c->scope, c->name, did_row_cb, c);
	case L_FILES: return cat_did_list_files(db, c->scope, c->name, did_row_cb, c);
	case L_PARENTS: return cat_did_list_parents(db, c->scope, c->name, did_row_cb, c);
	case L_SEARCH: return cat_did_search(db, c->scope, c->pattern, c->mask, c->need_meta, search_row_cb, c);
	}
	return DM_EINTERNAL;
}

static void did_free(void *p)
{
	struct did_ctx *c = p;

	dm_buf_release(&c->b);
	free(c->conds);
	free(c);
}

static struct did_ctx *ctx_new(enum did_list k, const char *scope, const char *name)
{
	struct did_ctx *c = dm_xcalloc(1, sizeof(*c));

	c->kind = k;
	dm_buf_init(&c->b, 0);
	snprintf(c->scope, sizeof(c->scope), "%s", scope);
	snprintf(c->name, sizeof(c->name), "%s", name ? name : "");
	return c;
}

static int type_mask(const char *t, unsigned *mask)
{
	if (!t || !strcasecmp(t, "all"))
		*mask = 7;
	else if (!strcasecmp(t, "collection"))
		*mask = (1u << CAT_DID_DATASET) | (1u << CAT_DID_CONTAINER);
	else if (!strcasecmp(t, "dataset"))
		*mask = 1u << CAT_DID_DATASET;
	else if (!strcasecmp(t, "container"))
		*mask = 1u << CAT_DID_CONTAINER;
	else if (!strcasecmp(t, "file"))
		*mask = 1u << CAT_DID_FILE;
	else
		return -1;
	return 0;
}

struct fparse { struct did_ctx *c; struct dm_err *err; };

static int is_column(const char *k)
{
	static const char *const cols[] = { "name", "bytes", "length", "account", "availability",
					    "is_open", "monotonic", "created_before", "created_after",
					    "created_at", "updated_at", "expired_at" };

	for (size_t i = 0; i < DM_ARRAY_SIZE(cols); i++)
		if (!strcmp(k, cols[i]))
			return 1;
	return 0;
}

static int filter_cb(void *ud, int group, const char *key, const char *op, const char *value)
{
	struct fparse *fp = ud;
	struct did_ctx *c = fp->c;
	struct fcond *f;

	if (group + 1 > c->ngroups)
		c->ngroups = group + 1;
	if (!key)
		return 0;
	if (!strcmp(key, "type")) {
		if (type_mask(value, &c->mask)) {
			dm_seterr(fp->err, DM_EINVAL, "UnsupportedOperation", "Valid did_types are: all, collection, container, dataset, file; not '%s'", value);
			return -1;
		}
		return 0;
	}
	if (!*key || strlen(key) >= sizeof(c->conds[0].key) || strlen(value) >= sizeof(c->conds[0].val)) {
		dm_seterr(fp->err, DM_EINVAL, "InvalidObject", "filter key or value too long or empty");
		return -1;
	}
	if (c->nconds >= 64) {
		dm_seterr(fp->err, DM_EINVAL, "InvalidObject", "too many filters");
		return -1;
	}
	c->conds = dm_xrealloc(c->conds, sizeof(*c->conds) * (size_t)(c->nconds + 1));
	f = &c->conds[c->nconds++];
	f->group = group;
	snprintf(f->key, sizeof(f->key), "%s", key);
	snprintf(f->op, sizeof(f->op), "%s", op);
	snprintf(f->val, sizeof(f->val), "%s", value);
	f->meta = !is_column(key);
	if (f->meta)
		c->need_meta = 1;
	return 0;
}

static int truthy(const char *v)
{
	return v && (!strcasecmp(v, "true") || !strcmp(v, "1"));
}

/* Without `filters`, every other argument is a filter (Rucio's backwards
 * compatibility for name, length.gt, created_before, ... as arguments). */
static int arg_filter_cb(void *ud, const char *key, const char *value)
{
	static const char *const sfx[] = { ".gt", ".lt", ".gte", ".lte", ".ne" };
	char k[256];
	const char *op = "eq";
	char *dot;

	if (!strcmp(key, "type") || !strcmp(key, "limit") || !strcmp(key, "long") ||
	    !strcmp(key, "recursive"))
		return 0;
	if (strlen(key) >= sizeof(k))
		return filter_cb(ud, 0, key, op, value);
	dm_strlcpy(k, key, sizeof(k));
	if ((dot = strrchr(k, '.')))
		for (size_t i = 0; i < DM_ARRAY_SIZE(sfx); i++)
			if (!strcmp(dot, sfx[i])) {
				*dot = 0;
				op = sfx[i] + 1;
			}
	return filter_cb(ud, 0, k, op, value);
}

static int search(struct srv_req *r, const char *scope)
{
	struct did_ctx *c = ctx_new(L_SEARCH, scope, NULL);
	const char *filters = srv_arg(r, "filters"), *t = srv_arg(r, "type");
	const char *lim = srv_arg(r, "limit");
	struct dm_err err = { 0 };
	struct fparse fp = { c, &err };
	uint64_t l;

	c->lng = truthy(srv_arg(r, "long"));
	if (type_mask(t, &c->mask)) {
		did_free(c);
		return srv_error_status(r, 409, "UnsupportedOperation",
					"Valid did_types are: all, collection, container, dataset, file; not '%s'", t);
	}
	if (lim && (dm_parse_u64(lim, &l) || !l)) {
		did_free(c);
		return srv_error(r, "ValueError", "limit must be a positive integer, not '%s'", lim);
	}
	c->limit = lim ? (int64_t)l : 0;
	if (filters && *filters) {
		if (srv_parse_filters(filters, filter_cb, &fp, &err)) {
			did_free(c);
			return srv_err_error(r, &err);
		}
	} else if (srv_args_each(r, arg_filter_cb, &fp) || err.cls[0]) {
		did_free(c);
		return err.cls[0] ? srv_err_error(r, &err) : srv_error(r, "ValueError", "invalid query argument");
	}
	/* a single plain name pattern goes to the catalog's wildcard listing */
	snprintf(c->pattern, sizeof(c->pattern), "*");
	if (c->ngroups <= 1 && c->nconds >= 1 && !strcmp(c->conds[0].key, "name") &&
	    !strcmp(c->conds[0].op, "eq") && strlen(c->conds[0].val) < sizeof(c->pattern))
		dm_strlcpy(c->pattern, c->conds[0].val, sizeof(c->pattern));
	return srv_stream(r, "application/x-json-stream", did_stream, c, did_free);
}

/* ---- writes ---- */

static int noop_rse(void *ud, const struct cat_rse *x) { return 0; }

static int add_rules(struct srv_req *r, struct cat_db *db, const char *scope, const char *name,
		     json_t *rules, int check_only)
{
	size_t i;
	json_t *x;

	json_array_foreach(rules, i, x) {
		struct cat_rule_opts o;
		const char *expr = NULL, *grouping = NULL, *acct = NULL;
		json_t *v;
		char id[33];

		if (!json_is_object(x))
			return srv_error(r, "TypeError", "rules must be a list of objects");
		cat_rule_opts_init(&o);
		if (srv_jstr(r, x, "rse_expression", &expr) || srv_jstr(r, x, "grouping", &grouping) ||
		    srv_jstr(r, x, "account", &acct))
			return -1;
		if (!expr)
			return srv_error(r, "KeyError", "'rse_expression' not defined in a rule");
		if (acct && strcmp(acct, r->account))
			return srv_error(r, "AccessDenied", "Account %s can not add rule for account %s", r->account, acct);
		v = json_object_get(x, "copies");
		if (json_is_integer(v))
			o.copies = (int)json_integer_value(v);
		v = json_object_get(x, "lifetime");
		if (json_is_integer(v))
			o.lifetime = json_integer_value(v);
		if (grouping && cat_grouping_parse(grouping, &o.grouping))
			return srv_error(r, "InvalidObject", "unknown grouping '%s'", grouping);
		o.rse_expression = expr;
		if (check_only) {
			if (cat_rse_expr_list(db, expr, noop_rse, NULL))
				return srv_cat_error(r, db), -1;
			continue;
		}
		if (cat_rule_add(db, scope, name, &o, id))
			return srv_cat_error(r, db), -1;
	}
	return 0;
}



static int meta_value(json_t *v, char *out, size_t n)
{
	if (json_is_string(v))
		snprintf(out, n, "%s", json_string_value(v));
	else if (json_is_integer(v))
		snprintf(out, n, "%lld", (long long)json_integer_value(v));
	else if (json_is_real(v))
		snprintf(out, n, "%.17g", json_real_value(v));
	else if (json_is_boolean(v))
		snprintf(out, n, "%s", json_is_true(v) ? "true" : "false");
	else if (json_is_null(v))
		out[0] = 0;
	else
		return -1;
	return 0;
}

/* Names of a DID list against Rucio's NAME schema: -1 after the reply. */
static int names_ok(struct srv_req *r, json_t *arr, const char *schema, const char *spath,
		    const char *iprefix)
{
	size_t i;
	json_t *x;

	json_array_foreach(arr, i, x) {
		const char *n = json_string_value(json_object_get(x, "name"));
		char ip[96];

		if (!n || srv_name_ok(n))
			continue;
		snprintf(ip, sizeof(ip), "%s[%zu]['name']", iprefix, i);
		srv_invalid_name(r, 500, schema, spath, ip, n);
		return -1;
	}
	return 0;
}

static int add_did(struct srv_req *r, struct cat_db *db, const char *scope, const char *name)
{
	json_t *j, *rules, *meta, *lt;
	const char *type = NULL;
	enum cat_did_type t;
	int64_t lifetime = 0;
	int rc = 0;

	if (!srv_name_ok(name))
		return srv_invalid_name(r, 400, "name", "", "", name);
	j = srv_body_json(r);
	if (!j)
		return 0;
	if (!json_is_object(j)) {
		json_decref(j);
		return srv_error(r, "TypeError", "the body must be a JSON object");
	}
	if (srv_jstr(r, j, "type", &type))
		goto out;
	if (!type) {
		srv_error(r, "KeyError", "'type' not defined");
		goto out;
	}
	if (cat_did_type_parse(type, &t) || t == CAT_DID_FILE) {
		srv_error(r, "UnsupportedOperation", "Only collection (dataset/container) can be registered.");
		goto out;
	}
	lt = json_object_get(j, "lifetime");
	if (json_is_integer(lt))
		lifetime = json_integer_value(lt);
	else if (lt && !json_is_null(lt)) {
		srv_error(r, "TypeError", "'lifetime' must be an integer or null");
		goto out;
	}
	rules = json_object_get(j, "rules");
	if (rules && !json_is_null(rules) && !json_is_array(rules)) {
		srv_error(r, "TypeError", "'rules' must be a list");
		goto out;
	}
	meta = json_object_get(j, "meta");
	if (meta && !json_is_null(meta) && !json_is_object(meta)) {
		srv_error(r, "TypeError", "'meta' must be an object");
		goto out;
	}
	/* check the rules' expressions before anything is written */
	if (json_is_array(rules) && add_rules(r, db, scope, name, rules, 1))
		goto out;
	if (cat_did_add(db, scope, name, t, lifetime)) {
		srv_cat_error(r, db);
		goto out;
	}
	if (json_is_object(meta)) {
		const char *k;
		json_t *v;

		json_object_foreach(meta, k, v) {
			char val[1024];

			if (meta_value(v, val, sizeof(val)))
				continue;
			if (cat_did_meta_set(db, scope, name, k, val)) {
				srv_cat_error(r, db);
				goto out;
			}
		}
	}
	if (json_is_array(rules) && add_rules(r, db, scope, name, rules, 0))
		goto out;
	srv_reply_created(r);
out:
	json_decref(j);

	return rc;
}

static int refs_from_json(struct srv_req *r, json_t *arr, struct cat_did_ref **out, size_t *n)
{
	size_t i;
	json_t *x;

	if (!json_is_array(arr)) {
		srv_error(r, "TypeError", "'dids' must be a list");
		return -1;
	}
	*n = json_array_size(arr);
	*out = dm_xcalloc(*n ? *n : 1, sizeof(**out));
	json_array_foreach(arr, i, x) {
		if (srv_jstr(r, x, "scope", &(*out)[i].scope) || srv_jstr(r, x, "name", &(*out)[i].name)) {
			free(*out);
			return -1;
		}
		if (!(*out)[i].scope || !(*out)[i].name) {
			free(*out);
			srv_error(r, "KeyError", "every DID needs 'scope' and 'name'");
			return -1;
		}
	}
	return 0;
}

static int attach(struct srv_req *r, struct cat_db *db, const char *scope, const char *name, int detach)
{
	json_t *j, *dids;
	const char *rse = NULL;
	int rc = 0;

	if (!detach) { /* Rucio's bulk registration shape: one pass, no JSON tree */
		struct srv_fast_files ff;

		if (!srv_fast_files(r->body.s, r->body.len, "dids", &ff)) {
			if (cat_replicas_add(db, ff.rse, ff.files, ff.n, scope, name, 0))
				srv_cat_error(r, db);
			else
				srv_reply_created(r);
			srv_fast_files_free(&ff);
			return 0;
		}
		srv_fast_files_free(&ff);
	}
	j = srv_body_json(r);
	if (!j)
		return 0;
	dids = json_object_get(j, "dids");
	if (!dids) {
		json_decref(j);
		return srv_error(r, "KeyError", "'dids' not defined");
	}
	if (srv_jstr(r, j, "rse", &rse))
		goto out;
	if (rse && !detach) {
		struct cat_file_in *f;
		size_t n;

		if (srv_files_from_json(r, dids, &f, &n))
			goto out;
		if (names_ok(r, dids, "attachment", "['properties']['dids']['items']['properties']['name']",
			     "['dids']")) {
			free(f);
			goto out;
		}
		if (cat_replicas_add(db, rse, f, n, scope, name, 0))
			srv_cat_error(r, db);
		else
			srv_reply_created(r);
		free(f);
	} else {
		struct cat_did_ref *refs;
		size_t n;

		if (refs_from_json(r, dids, &refs, &n))
			goto out;
		if (!detach && names_ok(r, dids, "attachment",
					"['properties']['dids']['items']['properties']['name']", "['dids']")) {
			free(refs);
			goto out;
		}
		if (detach ? cat_did_detach(db, scope, name, refs, n) : cat_did_attach(db, scope, name, refs, n, 0))
			srv_cat_error(r, db);
		else if (detach)
			srv_reply_ok(r);
		else
			srv_reply_created(r);
		free(refs);
	}
out:
	json_decref(j);
	return rc;
}

/* POST /dids/attachments {"attachments": [{scope,name,dids,rse?}], "ignore_duplicate"} */
static int attachments(struct srv_req *r, struct cat_db *db)
{
	json_t *j = srv_body_json(r), *att, *x, *ign;
	size_t i;

	if (!j)
		return 0;
	att = json_object_get(j, "attachments");
	ign = json_object_get(j, "ignore_duplicate");
	if (!json_is_array(att)) {
		json_decref(j);
		return srv_error(r, "KeyError", "'attachments' must be a list");
	}
	json_array_foreach(att, i, x) {
		const char *s = NULL, *n = NULL, *rse = NULL;
		struct cat_did_ref *refs;
		char pre[32];
		size_t nr;
		enum dm_status st;

		if (srv_jstr(r, x, "scope", &s) || srv_jstr(r, x, "name", &n) || srv_jstr(r, x, "rse", &rse))
			goto out;
		if (!s || !n) {
			srv_error(r, "KeyError", "every attachment needs 'scope' and 'name'");
			goto out;
		}
		snprintf(pre, sizeof(pre), "[%zu]['dids']", i);
		if (rse) {
			struct cat_file_in *f;

			if (srv_files_from_json(r, json_object_get(x, "dids"), &f, &nr))
				goto out;
			if (names_ok(r, json_object_get(x, "dids"), "attachments",
				     "['items']['properties']['dids']['items']['properties']['name']", pre)) {
				free(f);
				goto out;
			}
			st = cat_replicas_add(db, rse, f, nr, s, n, 0);
			free(f);
		} else {
			if (refs_from_json(r, json_object_get(x, "dids"), &refs, &nr))
				goto out;
			if (names_ok(r, json_object_get(x, "dids"), "attachments",
				     "['items']['properties']['dids']['items']['properties']['name']", pre)) {
				free(refs);
				goto out;
			}
			st = cat_did_attach(db, s, n, refs, nr, json_is_true(ign) ? CAT_IGNORE_DUPLICATE : 0);
			free(refs);
		}
		if (st) {
			srv_cat_error(r, db);
			goto out;
		}
	}
	srv_reply_created(r);
out:
	json_decref(j);
	return 0;
}

/* POST /dids [{scope,name,type,lifetime}] */
static int bulk_add(struct srv_req *r, struct cat_db *db)
{
	json_t *j = srv_body_json(r), *x;
	size_t i;

	if (!j)
		return 0;
	if (!json_is_array(j)) {
		json_decref(j);
		return srv_error(r, "TypeError", "the body must be a list of DIDs");
	}
	json_array_foreach(j, i, x) {
		const char *s = NULL, *n = NULL, *t = NULL;
		enum cat_did_type type;
		json_t *lt = json_object_get(x, "lifetime");

		if (srv_jstr(r, x, "scope", &s) || srv_jstr(r, x, "name", &n) || srv_jstr(r, x, "type", &t))
			goto out;
		if (!s || !n || !t) {
			srv_error(r, "KeyError", "every DID needs 'scope', 'name' and 'type'");
			goto out;
		}
		if (!srv_name_ok(n)) {
			char ip[48];

			snprintf(ip, sizeof(ip), "[%zu]['name']", i);
			srv_invalid_name(r, 500, "dids", "['items']['properties']['name']", ip, n);
			goto out;
		}
		if (cat_did_type_parse(t, &type) || type == CAT_DID_FILE) {
			srv_error(r, "UnsupportedOperation", "Only collection (dataset/container) can be registered.");
			goto out;
		}
		if (cat_did_add(db, s, n, type, json_is_integer(lt) ? json_integer_value(lt) : 0)) {
			srv_cat_error(r, db);
			goto out;
		}
	}
	srv_reply_created(r);
out:
	json_decref(j);
	return 0;
}

/* ---- metadata ---- */
struct meta_ctx { struct dm_buf *b; };

static void meta_did(struct dm_buf *b, const struct cat_did *d)
{
	dm_buf_adds(b, "{");
	jw_ks(b, "scope", d->scope);
	jw_ks(b, "name", d->name);
	jw_ks(b, "account", d->account);
	jw_ks(b, "did_type", cat_did_type_name(d->type));
	if (d->type == CAT_DID_FILE)
		jw_knull(b, "is_open");
	else
		jw_kb(b, "is_open", d->is_open);
	jw_kb(b, "monotonic", d->monotonic);
	jw_kb(b, "hidden", 0);
	jw_kb(b, "obsolete", 0);
	jw_knull(b, "complete");
	jw_kb(b, "is_new", 1);
	jw_ks(b, "availability", d->availability ? d->availability : "AVAILABLE");
	jw_kb(b, "suppressed", 0);
	jw_ku(b, "bytes", d->bytes);
	if (d->type == CAT_DID_FILE)
		jw_knull(b, "length");
	else
		jw_ku(b, "length", d->length);
	jw_ks(b, "md5", d->md5);
	jw_ks(b, "adler32", d->adler32);
	jw_kt(b, "expired_at", d->expired_at);
	jw_kb(b, "purge_replicas", 1);
	jw_knull(b, "deleted_at");
	jw_kt(b, "closed_at", d->closed_at);
	jw_kt(b, "created_at", d->created_at);
	jw_kt(b, "updated_at", d->updated_at);
}

static int meta_did_cb(void *ud, const struct cat_did *d)
{
	meta_did(ud, d);
	return 0;
}

static int meta_kv_cb(void *ud, const char *k, const char *v)
{
	jw_ks(ud, k, v);
	return 0;
}

static int meta(struct srv_req *r, struct cat_db *db, const char *scope, const char *name,
		const char *suffix)
{
	struct dm_buf b = DM_BUF_INIT;
	char k0[256];
	int rc;

	if (!strncmp(suffix, "/meta/", 6) &&
	    (srv_pct_decode(suffix + 6, strlen(suffix + 6), 0, k0, sizeof(k0)) || !*k0))
		return srv_error(r, "InvalidPath", "invalid metadata key in the path");
	if (is(r, "GET")) {
		if (cat_did_get(db, scope, name, meta_did_cb, &b) ||
		    cat_did_meta_list(db, scope, name, meta_kv_cb, &b)) {
			dm_buf_release(&b);
			return srv_cat_error(r, db);
		}
		dm_buf_adds(&b, "}");
		rc = srv_reply_json(r, 200, &b);
		dm_buf_release(&b);
		return rc;
	}
	if (is(r, "POST")) {
		json_t *j = srv_body_json(r);
		char key[256], val[1024];

		if (!j)
			return 0;
		if (!strncmp(suffix, "/meta/", 6)) {
			if (srv_pct_decode(suffix + 6, strlen(suffix + 6), 0, key, sizeof(key)) || !*key) {
				json_decref(j);
				return srv_error(r, "InvalidPath", "invalid metadata key in the path");
			}
			if (!json_object_get(j, "value") || meta_value(json_object_get(j, "value"), val, sizeof(val))) {
				json_decref(j);
				return srv_error(r, "KeyError", "'value' not defined");
			}
			rc = cat_did_meta_set(db, scope, name, key, val) ? srv_cat_error(r, db) : srv_reply_created(r);
		} else {
			json_t *m = json_object_get(j, "meta"), *v;
			const char *k;

			if (!json_is_object(m)) {
				json_decref(j);
				return srv_error(r, "KeyError", "'meta' not defined");
			}
			rc = 0;
			json_object_foreach(m, k, v) {
				if (meta_value(v, val, sizeof(val)))
					continue;
				if (cat_did_meta_set(db, scope, name, k, val)) {
					rc = srv_cat_error(r, db);
					break;
				}
			}
			if (!r->responded)
				srv_reply_created(r);
		}
		json_decref(j);
		return rc;
	}
	if (is(r, "DELETE")) {
		const char *key = srv_arg(r, "key");

		if (!key)
			return srv_error(r, "KeyError", "'key' not defined");
		return cat_did_meta_del(db, scope, name, key) ? srv_cat_error(r, db) : srv_reply_ok(r);
	}
	return srv_error(r, "MethodNotAllowed", "Method %s not allowed", r->method);
}

int ep_dids(struct srv_req *r, const char *rest)
{
	char scope[CAT_SCOPE_MAX * 4 + 1], name[CAT_NAME_MAX * 4 + 1];
	const char *suffix, *slash = strchr(rest, '/');
	struct dm_err err = { 0 };
	struct cat_db *db;
	struct dm_buf b = DM_BUF_INIT;
	int rc;

	if (!*rest && is(r, "POST")) {
		if (!(db = srv_db_tx(r)))
			return 0;
		return bulk_add(r, db);
	}
	if (!strcmp(rest, "attachments") || !strcmp(rest, "attachments/")) {
		if (!(db = srv_db_tx(r)))
			return 0;
		return attachments(r, db);
	}
	if (slash && (!strcmp(slash, "/dids/search") || !strcmp(slash, "/dids/search/"))) {
		if (srv_pct_decode(rest, (size_t)(slash - rest), 0, scope, sizeof(scope)) || !*scope)
			return srv_error(r, "InvalidPath", "invalid scope in the path");
		return search(r, scope);
	}
	if (!slash || !slash[1]) { /* /dids/<scope>/ : the scope's top DIDs */
		if (srv_pct_decode(rest, slash ? (size_t)(slash - rest) : strlen(rest), 0, scope, sizeof(scope)) || !*scope)
			return srv_error(r, "InvalidPath", "invalid scope in the path");
		return srv_stream(r, "application/x-json-stream", did_stream, ctx_new(L_ROOTS, scope, NULL), did_free);
	}
	if (srv_did_path(rest, scope, sizeof(scope), name, sizeof(name), &suffix, &err))
		return srv_err_error(r, &err);
	if (strlen(scope) > CAT_SCOPE_MAX || strlen(name) > CAT_NAME_MAX)
		return srv_error(r, "InvalidObject", "scope or name too long");
	if (!*suffix) {
		if (is(r, "GET")) {
			if (!(db = srv_db(r)))
				return srv_error(r, "DatabaseException", "too many requests");
			if (cat_did_get(db, scope, name, did_copy_cb, &b)) {
				/* Rucio answers an unknown scope as an unknown DID (T-20) */
				if (!strcmp(cat_error(db)->cls, "ScopeNotFound"))
					rc = srv_error(r, "DataIdentifierNotFound", "Data identifier '%s:%s' not found", scope, name);
				else
					rc = srv_cat_error(r, db);
			}
			else
				rc = srv_reply_json(r, 200, &b);
			dm_buf_release(&b);
			return rc;
		}
		if (is(r, "POST")) {
			if (!(db = srv_db_tx(r)))
				return 0;
			return add_did(r, db, scope, name);
		}
		return srv_error(r, "MethodNotAllowed", "Method %s not allowed", r->method);
	}
	if (!strcmp(suffix, "/dids")) {
		if (is(r, "GET"))
			return srv_stream(r, "application/x-json-stream", did_stream, ctx_new(L_CONTENT, scope, name), did_free);
		if (!(db = srv_db(r)))
			return srv_error(r, "DatabaseException", "too many requests");
		if (is(r, "POST") || is(r, "DELETE"))
			return attach(r, db, scope, name, is(r, "DELETE"));
		return srv_error(r, "MethodNotAllowed", "Method %s not allowed", r->method);
	}
	if (!strcmp(suffix, "/files"))
		return srv_stream(r, "application/x-json-stream", did_stream, ctx_new(L_FILES, scope, name), did_free);
	if (!strcmp(suffix, "/parents"))
		return srv_stream(r, "application/x-json-stream", did_stream, ctx_new(L_PARENTS, scope, name), did_free);
	if (!strcmp(suffix, "/rules"))
		return srv_stream_rules(r, scope, name, NULL);
	if (!strcmp(suffix, "/associated_rules"))
		return srv_stream_associated_rules(r, scope, name);
	if (!strncmp(suffix, "/meta", 5)) {
		if (!(db = srv_db_w(r)))
			return 0;
		return meta(r, db, scope, name, suffix);
	}
	if (!strcmp(suffix, "/status") && is(r, "PUT")) {
		json_t *j = srv_body_json(r), *o;

		if (!j)
			return 0;
		o = json_object_get(j, "open");
		if (!json_is_boolean(o)) {
			json_decref(j);
			return srv_error(r, o ? "TypeError" : "KeyError", "'open' must be given as a boolean");
		}
		if (!(db = srv_db(r))) {
			json_decref(j);
			return srv_error(r, "DatabaseException", "too many requests");
		}
		rc = cat_did_set_open(db, scope, name, json_is_true(o)) ? srv_cat_error(r, db) : srv_reply_ok(r);
		json_decref(j);
		return rc;
	}
	return srv_error_status(r, 404, "UnsupportedOperation", "Unknown endpoint: %s %s", r->method, r->path);
}
