/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rse.c - storage elements: settings, attributes, protocols, RSE expressions
 * over the catalog, and LFN -> PFN translation.
 *
 * Every RSE carries the attribute <NAME>=true (what makes a bare name work in
 * an expression) and attributes for its non-empty location settings, as
 * Rucio's add_rse does.  Protocol priorities follow Rucio: -1 (null) disables
 * an operation, lower is preferred, 0 is valid.  The deterministic path of a
 * file is Rucio's: "hash" = <scope'>/<md5[0:2]>/<md5[2:4]>/<name> with
 * md5 over "scope:name", "identity" = <scope'>/<name>, where scope' turns
 * '.' into '/' for scopes starting with "user" or "group".  Which protocol
 * serves an operation is decided once, in policy.h (cat_policy_proto_*):
 * cat_lfn2pfn and cat_rse_protocol_for both ask it.
 */
#include "catalog_i.h"
#include "policy.h"
#include "rse_expr.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

static int parse_bool(const char *s, int *out)
{
	if (!s)
		return -1;
	if (!strcasecmp(s, "true") || !strcmp(s, "1") || !strcasecmp(s, "yes")) {
		*out = 1;
		return 0;
	}
	if (!strcasecmp(s, "false") || !strcmp(s, "0") || !strcasecmp(s, "no")) {
		*out = 0;
		return 0;
	}
	return -1;
}

enum dm_status cat_rse_num(struct cat_db *db, const char *rse, int64_t *num)
{
	struct sqldrv_stmt *st = cat_stmt(db, "SELECT num FROM rses WHERE rse=? AND deleted=0");
	int r;

	if (!st)
		return db->err.code;
	sqldrv_bind_text(st, 1, rse, -1);
	r = sqldrv_step(st);
	if (r == SQLDRV_ROW && num)
		*num = sqldrv_col_int64(st, 0);
	sqldrv_reset(st);
	if (r == SQLDRV_ROW)
		return DM_OK;
	if (r != SQLDRV_DONE)
		return cat_dberr(db, "looking up an RSE");
	return cat_fail(db, DM_ENOENT, "RSENotFound", "RSE '%s' cannot be found", rse);
}

static enum dm_status set_attr(struct cat_db *db, int64_t num, const char *key, const char *value)
{
	struct sqldrv_stmt *st = cat_stmt(db, "INSERT INTO rse_attr_map(rse_num, key, value) VALUES (?,?,?)"
				       " ON CONFLICT(rse_num, key) DO UPDATE SET value=excluded.value");
	if (!st)
		return db->err.code;
	sqldrv_bind_int64(st, 1, num);
	sqldrv_bind_text(st, 2, key, -1);
	sqldrv_bind_text(st, 3, value, -1);
	if (sqldrv_step(st) != SQLDRV_DONE)
		return cat_dberr(db, "setting an RSE attribute");
	return DM_OK;
}

enum dm_status cat_rse_add(struct cat_db *db, const char *rse, const struct cat_rse_opts *o)
{
	static const struct cat_rse_opts none;
	struct dm_err e;
	enum dm_status rc = cat_validate_rse(rse, &e);
	struct sqldrv_stmt *st;
	char id[33];
	int64_t now = dm_now(), num;
	const char *type;

	if (rc) {
		db->err = e;
		return rc;
	}
	if (!o)
		o = &none;
	type = o->rse_type ? o->rse_type : "DISK";
	if (strcmp(type, "DISK") && strcmp(type, "TAPE"))
		return cat_fail(db, DM_EINVAL, "InvalidObject", "rse_type must be DISK or TAPE, not '%s'", type);
	rc = cat_tx_begin(db);
	if (rc)
		return rc;
	rc = cat_require_admin(db, "add RSEs");
	if (rc)
		goto out;
	dm_uuid32(id);
	st = cat_stmt(db, "INSERT INTO rses(id, rse, rse_type, deterministic, volatile, staging_area,"
			  " city, country_name, continent, region_code, time_zone, ISP, ASN,"
			  " created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
			  " ON CONFLICT DO NOTHING");
	if (!st) {
		rc = db->err.code;
		goto out;
	}
	sqldrv_bind_text(st, 1, id, -1);
	sqldrv_bind_text(st, 2, rse, -1);
	sqldrv_bind_text(st, 3, type, -1);
	sqldrv_bind_int64(st, 4, !o->non_deterministic);
	sqldrv_bind_int64(st, 5, !!o->volatile_);
	sqldrv_bind_int64(st, 6, !!o->staging_area);
	sqldrv_bind_text(st, 7, o->city, -1);
	sqldrv_bind_text(st, 8, o->country_name, -1);
	sqldrv_bind_text(st, 9, o->continent, -1);
	sqldrv_bind_text(st, 10, o->region_code, -1);
	sqldrv_bind_text(st, 11, o->time_zone, -1);
	sqldrv_bind_text(st, 12, o->isp, -1);
	sqldrv_bind_text(st, 13, o->asn, -1);
	sqldrv_bind_int64(st, 14, now);
	sqldrv_bind_int64(st, 15, now);
	if (sqldrv_step(st) != SQLDRV_DONE) {
		rc = cat_dberr(db, "adding an RSE");
		goto out;
	}
	if (sqldrv_changes(db->sql) == 0) {
		rc = cat_fail(db, DM_EEXIST, "Duplicate", "RSE '%s' already exists", rse);
		goto out;
	}
	if (sqldrv_last_id(db->sql, &num) != DM_OK) {
		rc = cat_dberr(db, "adding an RSE");
		goto out;
	}
	rc = set_attr(db, num, rse, "true");
	{
		const char *keys[] = { "continent", "city", "region_code", "country_name",
				       "time_zone", "ISP", "ASN" };
		const char *vals[] = { o->continent, o->city, o->region_code, o->country_name,
				       o->time_zone, o->isp, o->asn };
		for (unsigned i = 0; rc == DM_OK && i < DM_ARRAY_SIZE(keys); i++)
			if (vals[i] && *vals[i])
				rc = set_attr(db, num, keys[i], vals[i]);
	}
	if (rc)
		goto out;
	st = cat_stmt(db, "INSERT INTO rse_usage(rse_num, source, used, files, updated_at)"
			  " VALUES (?, 'rucio', 0, 0, ?)");
	if (!st) {
		rc = db->err.code;
		goto out;
	}
	sqldrv_bind_int64(st, 1, num);
	sqldrv_bind_int64(st, 2, now);
	if (sqldrv_step(st) != SQLDRV_DONE)
		rc = cat_dberr(db, "adding RSE usage");
out:
	return cat_tx_end(db, rc);
}

#define RSE_COLS "id, rse, rse_type, deterministic, volatile, staging_area, availability_read," \
		 " availability_write, availability_delete, city, country_name, continent," \
		 " region_code, time_zone, ISP, ASN, latitude, longitude, qos_class"

static void rse_from_row(struct sqldrv_stmt *st, struct cat_rse *r)
{
	r->id = cat_col_text(st, 0);
	r->rse = cat_col_text(st, 1);
	r->rse_type = cat_col_text(st, 2);
	r->deterministic = (int)sqldrv_col_int64(st, 3);
	r->volatile_ = (int)sqldrv_col_int64(st, 4);
	r->staging_area = (int)sqldrv_col_int64(st, 5);
	r->availability_read = (int)sqldrv_col_int64(st, 6);
	r->availability_write = (int)sqldrv_col_int64(st, 7);
	r->availability_delete = (int)sqldrv_col_int64(st, 8);
	r->city = cat_col_text(st, 9);
	r->country_name = cat_col_text(st, 10);
	r->continent = cat_col_text(st, 11);
	r->region_code = cat_col_text(st, 12);
	r->time_zone = cat_col_text(st, 13);
	r->isp = cat_col_text(st, 14);
	r->asn = cat_col_text(st, 15);
	r->latitude = sqldrv_col_double(st, 16);
	r->longitude = sqldrv_col_double(st, 17);
	r->qos_class = cat_col_text(st, 18);
}

enum dm_status cat_rse_get(struct cat_db *db, const char *rse, cat_rse_cb cb, void *ud)
{
	CAT_REMOTE(db, rse_get, rse, cb, ud);
	struct sqldrv_stmt *st = cat_stmt(db, "SELECT " RSE_COLS " FROM rses WHERE rse=? AND deleted=0");
	struct cat_rse r;
	int s;

	if (!st)
		return db->err.code;
	sqldrv_bind_text(st, 1, rse, -1);
	s = sqldrv_step(st);
	if (s == SQLDRV_ROW) {
		rse_from_row(st, &r);
		cb(ud, &r);
	}
	sqldrv_reset(st);
	if (s == SQLDRV_ROW)
		return DM_OK;
	if (s != SQLDRV_DONE)
		return cat_dberr(db, "reading an RSE");
	return cat_fail(db, DM_ENOENT, "RSENotFound", "RSE '%s' cannot be found", rse);
}

enum dm_status cat_rse_list(struct cat_db *db, cat_rse_cb cb, void *ud)
{
	CAT_REMOTE(db, rse_list, cb, ud);
	struct sqldrv_stmt *st = cat_stmt(db, "SELECT " RSE_COLS " FROM rses WHERE deleted=0 ORDER BY rse");
	struct cat_rse r;
	int s;

	if (!st)
		return db->err.code;
	while ((s = sqldrv_step(st)) == SQLDRV_ROW) {
		rse_from_row(st, &r);
		if (cb(ud, &r))
			break;
	}
	sqldrv_reset(st);
	if (s != SQLDRV_ROW && s != SQLDRV_DONE)
		return cat_dberr(db, "listing RSEs");
	return DM_OK;
}

enum dm_status cat_rse_update(struct cat_db *db, const char *rse, const char *key,
			      const char *value)
{
	static const char *const bools[] = { "availability_read", "availability_write",
					     "availability_delete", "deterministic", "volatile",
					     "staging_area" };
	static const char *const texts[] = { "city", "country_name", "continent", "region_code",
					     "time_zone", "ISP", "ASN", "qos_class", "rse_type" };
	static const char *const reals[] = { "latitude", "longitude" };
	enum dm_status rc;
	int64_t num;
	char sql[128];
	struct sqldrv_stmt *st = NULL;
	int b = 0, kind = -1;
	double d = 0;

	for (unsigned i = 0; i < DM_ARRAY_SIZE(bools); i++)
		if (key && !strcmp(key, bools[i]))
			kind = 0;
	for (unsigned i = 0; i < DM_ARRAY_SIZE(texts); i++)
		if (key && !strcmp(key, texts[i]))
			kind = 1;
	for (unsigned i = 0; i < DM_ARRAY_SIZE(reals); i++)
		if (key && !strcmp(key, reals[i]))
			kind = 2;
	if (kind < 0)
		return cat_fail(db, DM_EINVAL, "InputValidationError",
				"'%s' is not an RSE setting (availability_read/write/delete, deterministic, volatile, staging_area, rse_type, city, country_name, continent, region_code, time_zone, ISP, ASN, qos_class, latitude, longitude)",
				key ? key : "");
	if (kind == 0 && parse_bool(value, &b))
		return cat_fail(db, DM_EINVAL, "InputValidationError",
				"setting '%s' takes true or false, not '%s'", key, value ? value : "");
	if (kind == 1 && !strcmp(key, "rse_type") && (!value || (strcmp(value, "DISK") && strcmp(value, "TAPE"))))
		return cat_fail(db, DM_EINVAL, "InputValidationError", "rse_type must be DISK or TAPE, not '%s'",
				value ? value : "");
	if (kind == 2) {
		char *end;
		d = value ? strtod(value, &end) : 0;
		if (!value || *end || end == value)
			return cat_fail(db, DM_EINVAL, "InputValidationError",
					"setting '%s' takes a number, not '%s'", key, value ? value : "");
	}
	rc = cat_tx_begin(db);
	if (rc)
		return rc;
	rc = cat_require_admin(db, "update RSEs");
	if (rc == DM_OK)
		rc = cat_rse_num(db, rse, &num);
	if (rc)
		goto out;
	/* key is one of the fixed names above, so formatting it in is safe. */
	snprintf(sql, sizeof sql, "UPDATE rses SET %s=?, updated_at=? WHERE num=?", key);
	if (!(st = sqldrv_prepare(db->sql, sql))) {
		rc = cat_dberr(db, "updating an RSE");
		goto out;
	}
	if (kind == 0)
		sqldrv_bind_int64(st, 1, b);
	else if (kind == 1)
		sqldrv_bind_text(st, 1, value, -1);
	else
		sqldrv_bind_double(st, 1, d);
	sqldrv_bind_int64(st, 2, dm_now());
	sqldrv_bind_int64(st, 3, num);
	if (sqldrv_step(st) != SQLDRV_DONE)
		rc = cat_dberr(db, "updating an RSE");
	sqldrv_reset(st);
	/* location settings are mirrored as attributes, as add_rse does */
	if (rc == DM_OK && kind == 1 && strcmp(key, "rse_type") && strcmp(key, "qos_class") && value && *value)
		rc = set_attr(db, num, key, value);
out:
	return cat_tx_end(db, rc);
}

static enum dm_status check_attr_key(struct cat_db *db, const char *key)
{
	size_t n = key ? strlen(key) : 0;

	if (n == 0 || n > 255)
		return cat_fail(db, DM_EINVAL, "InvalidObject", "RSE attribute key must be 1 to 255 characters");
	for (const char *p = key; *p; p++)
		if (!(isalnum((unsigned char)*p) || *p == '_' || *p == '-' || *p == '.'))
			return cat_fail(db, DM_EINVAL, "InvalidObject",
					"invalid RSE attribute key '%s': use letters, digits, '.', '_', '-'", key);
	return DM_OK;
}

enum dm_status cat_rse_attr_set(struct cat_db *db, const char *rse, const char *key,
				const char *value)
{
	enum dm_status rc = check_attr_key(db, key);
	int64_t num;
	int b;
	const char *v = value ? value : "";

	if (rc)
		return rc;
	if (strlen(v) > 255)
		return cat_fail(db, DM_EINVAL, "InvalidObject", "RSE attribute value for '%s' is longer than 255", key);
	/* booleans are stored as Rucio's BooleanString does: 'true' / 'false' */
	if ((!strcasecmp(v, "true") || !strcasecmp(v, "false")) && parse_bool(v, &b) == 0)
		v = b ? "true" : "false";
	rc = cat_tx_begin(db);
	if (rc)
		return rc;
	rc = cat_require_admin(db, "set RSE attributes");
	if (rc == DM_OK)
		rc = cat_rse_num(db, rse, &num);
	if (rc == DM_OK)
		rc = set_attr(db, num, key, v);
	return cat_tx_end(db, rc);
}

enum dm_status cat_rse_attr_del(struct cat_db *db, const char *rse, const char *key)
{
	enum dm_status rc = cat_tx_begin(db);
	struct sqldrv_stmt *st;
	int64_t num;

	if (rc)
		return rc;
	rc = cat_require_admin(db, "delete RSE attributes");
	if (rc == DM_OK)
		rc = cat_rse_num(db, rse, &num);
	if (rc)
		goto out;
	st = cat_stmt(db, "DELETE FROM rse_attr_map WHERE rse_num=? AND key=?");
	if (!st) {
		rc = db->err.code;
		goto out;
	}
	sqldrv_bind_int64(st, 1, num);
	sqldrv_bind_text(st, 2, key, -1);
	if (sqldrv_step(st) != SQLDRV_DONE)
		rc = cat_dberr(db, "deleting an RSE attribute");
	else if (sqldrv_changes(db->sql) == 0)
		rc = cat_fail(db, DM_ENOENT, "RSEAttributeNotFound",
			      "RSE '%s' has no attribute '%s'", rse, key);
out:
	return cat_tx_end(db, rc);
}

enum dm_status cat_rse_attr_list(struct cat_db *db, const char *rse, cat_kv_cb cb, void *ud)
{
	CAT_REMOTE(db, rse_attr_list, rse, cb, ud);
	int64_t num;
	enum dm_status rc = cat_rse_num(db, rse, &num);
	struct sqldrv_stmt *st;

	if (rc)
		return rc;
	st = cat_stmt(db, "SELECT key, value FROM rse_attr_map WHERE rse_num=? ORDER BY key");
	if (!st)
		return db->err.code;
	sqldrv_bind_int64(st, 1, num);
	return cat_kv_rows(db, st, cb, ud, "listing RSE attributes");
}

enum dm_status cat_rse_attr_get(struct cat_db *db, const char *rse, const char *key, char *out,
				size_t n)
{
	CAT_REMOTE(db, rse_attr_get, rse, key, out, n);
	int64_t num;
	enum dm_status rc = cat_rse_num(db, rse, &num);
	struct sqldrv_stmt *st;
	int r;

	if (rc)
		return rc;
	st = cat_stmt(db, "SELECT value FROM rse_attr_map WHERE rse_num=? AND key=?");
	if (!st)
		return db->err.code;
	sqldrv_bind_int64(st, 1, num);
	sqldrv_bind_text(st, 2, key, -1);
	r = sqldrv_step(st);
	if (r == SQLDRV_ROW)
		dm_strlcpy(out, cat_col_text(st, 0) ? cat_col_text(st, 0) : "", n);
	sqldrv_reset(st);
	if (r == SQLDRV_ROW)
		return DM_OK;
	if (r != SQLDRV_DONE)
		return cat_dberr(db, "reading an RSE attribute");
	return cat_fail(db, DM_ENOENT, "RSEAttributeNotFound", "RSE '%s' has no attribute '%s'", rse, key);
}

/* ---- RSE expressions over the catalog ---- */

/* The universe is loaded into one arena per evaluation: RSEs are few
 * (hundreds), so this is cheap and keeps rse_expr.c free of SQL. */
struct universe {
	struct cat_rse_info *rses;
	struct cat_kv *kvs; /* columns then attributes, per RSE */
	char **strings;
	size_t n, nkv, nstr, cap_kv, cap_str;
};

static const char *keep(struct universe *u, const char *s)
{
	if (!s)
		return NULL;
	if (u->nstr == u->cap_str) {
		u->cap_str = u->cap_str ? 2 * u->cap_str : 256;
		u->strings = dm_xrealloc(u->strings, u->cap_str * sizeof *u->strings);
	}
	return u->strings[u->nstr++] = dm_xstrdup(s);
}

static void add_kv(struct universe *u, const char *k, const char *v)
{
	if (u->nkv == u->cap_kv) {
		u->cap_kv = u->cap_kv ? 2 * u->cap_kv : 256;
		u->kvs = dm_xrealloc(u->kvs, u->cap_kv * sizeof *u->kvs);
	}
	u->kvs[u->nkv].key = keep(u, k);
	u->kvs[u->nkv].value = keep(u, v);
	u->nkv++;
}

static void universe_free(struct universe *u)
{
	for (size_t i = 0; i < u->nstr; i++)
		free(u->strings[i]);
	free(u->strings);
	free(u->kvs);
	free(u->rses);
}

static const char *const col_names[] = {
	"id", "rse", "rse_type", "deterministic", "volatile", "staging_area", "availability_read",
	"availability_write", "availability_delete", "city", "country_name", "continent",
	"region_code", "time_zone", "ISP", "ASN", "latitude", "longitude", "qos_class",
};
static const int col_is_bool[] = { 0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 };

static enum dm_status universe_load(struct cat_db *db, struct universe *u, int64_t **nums)
{
	struct sqldrv_stmt *st = cat_stmt(db, "SELECT num, " RSE_COLS " FROM rses WHERE deleted=0 ORDER BY rse");
	size_t cap = 0, *kv_start = NULL;
	int r;

	memset(u, 0, sizeof *u);
	*nums = NULL;
	if (!st)
		return db->err.code;
	while ((r = sqldrv_step(st)) == SQLDRV_ROW) {
		if (u->n == cap) {
			cap = cap ? 2 * cap : 16;
			u->rses = dm_xrealloc(u->rses, cap * sizeof *u->rses);
			*nums = dm_xrealloc(*nums, cap * sizeof **nums);
			kv_start = dm_xrealloc(kv_start, cap * sizeof *kv_start);
		}
		(*nums)[u->n] = sqldrv_col_int64(st, 0);
		kv_start[u->n] = u->nkv;
		memset(&u->rses[u->n], 0, sizeof u->rses[u->n]);
		u->rses[u->n].name = keep(u, cat_col_text(st, 2));
		for (unsigned c = 0; c < DM_ARRAY_SIZE(col_names); c++) {
			const char *v = cat_col_text(st, (int)c + 1);
			if (col_is_bool[c])
				v = (int)sqldrv_col_int64(st, (int)c + 1) ? "true" : "false";
			add_kv(u, col_names[c], v);
		}
		u->rses[u->n].ncolumns = DM_ARRAY_SIZE(col_names);
		u->n++;
	}
	sqldrv_reset(st);
	if (r != SQLDRV_DONE) {
		free(kv_start);
		return cat_dberr(db, "loading RSEs");
	}
	for (size_t i = 0; i < u->n; i++) {
		size_t before = u->nkv;
		st = cat_stmt(db, "SELECT key, value FROM rse_attr_map WHERE rse_num=? ORDER BY key");
		if (!st) {
			free(kv_start);
			return db->err.code;
		}
		sqldrv_bind_int64(st, 1, (*nums)[i]);
		while (sqldrv_step(st) == SQLDRV_ROW)
			add_kv(u, cat_col_text(st, 0), cat_col_text(st, 1));
		sqldrv_reset(st);
		u->rses[i].nattrs = u->nkv - before;
		/* attribute block starts right after... fixed up below */
		kv_start = dm_xrealloc(kv_start, (u->n + i + 1) * sizeof *kv_start);
		kv_start[u->n + i] = before;
	}
	/* kvs may have moved while growing: set pointers only now. */
	for (size_t i = 0; i < u->n; i++) {
		u->rses[i].columns = u->kvs + kv_start[i];
		u->rses[i].attrs = u->kvs + kv_start[u->n + i];
	}
	free(kv_start);
	return DM_OK;
}

/* Evaluate an expression; match[] has one byte per RSE in *nums order. */
enum dm_status cat_rse_expr_match(struct cat_db *db, const char *expression, int allow_empty,
				  int64_t **nums, uint8_t **match, size_t *n, size_t *count)
{
	struct universe u;
	struct cat_rse_universe cu;
	enum dm_status rc = universe_load(db, &u, nums);
	struct dm_err e;

	*match = NULL;
	if (rc)
		goto out;
	cu.rses = u.rses;
	cu.n = u.n;
	*match = dm_xcalloc(u.n ? u.n : 1, 1);
	*n = u.n;
	rc = cat_rse_expr_eval(expression, &cu, *match, count, allow_empty, &e);
	if (rc)
		db->err = e;
out:
	universe_free(&u);
	if (rc) {
		free(*match);
		free(*nums);
		*match = NULL;
		*nums = NULL;
	}
	return rc;
}

enum dm_status cat_rse_expr_list(struct cat_db *db, const char *expression, cat_rse_cb cb, void *ud)
{
	CAT_REMOTE(db, rse_expr_list, expression, cb, ud);
	int64_t *nums;
	uint8_t *match;
	size_t n = 0, count = 0;
	enum dm_status rc = cat_rse_expr_match(db, expression, 0, &nums, &match, &n, &count);

	if (rc)
		return rc;
	for (size_t i = 0; i < n && rc == DM_OK; i++) {
		struct sqldrv_stmt *st;
		struct cat_rse r;
		int stop = 0;

		if (!match[i])
			continue;
		st = cat_stmt(db, "SELECT " RSE_COLS " FROM rses WHERE num=?");
		if (!st) {
			rc = db->err.code;
			break;
		}
		sqldrv_bind_int64(st, 1, nums[i]);
		if (sqldrv_step(st) == SQLDRV_ROW) {
			rse_from_row(st, &r);
			stop = cb(ud, &r);
		}
		sqldrv_reset(st);
		if (stop)
			break;
	}
	free(nums);
	free(match);
	return rc;
}

/* ---- protocols ---- */

static const char *const op_cols[CAT_DOMAIN_COUNT][CAT_OP_COUNT] = {
	{ "read_lan", "write_lan", "delete_lan", NULL, NULL },
	{ "read_wan", "write_wan", "delete_wan", "third_party_copy_read", "third_party_copy_write" },
};

void cat_protocol_defaults(struct cat_protocol *p)
{
	for (int d = 0; d < CAT_DOMAIN_COUNT; d++)
		for (int o = 0; o < CAT_OP_COUNT; o++)
			p->prio[d][o] = op_cols[d][o] ? 1 : -1;
}

static const char *default_impl(const char *scheme)
{
	if (!strcmp(scheme, "root"))
		return "rucio.rse.protocols.xrootd.Default";
	if (!strcmp(scheme, "file"))
		return "rucio.rse.protocols.posix.Default";
	if (!strcmp(scheme, "https") || !strcmp(scheme, "davs") || !strcmp(scheme, "http"))
		return "rucio.rse.protocols.webdav.Default";
	return "rucio.rse.protocols.gfal.Default";
}

enum dm_status cat_protocol_add(struct cat_db *db, const char *rse, const struct cat_protocol *p)
{
	enum dm_status rc;
	struct sqldrv_stmt *st;
	int64_t num;
	struct dm_buf prefix = DM_BUF_INIT;

	if (!p->scheme || !*p->scheme || strlen(p->scheme) > 255)
		return cat_fail(db, DM_EINVAL, "InvalidObject", "a protocol needs a scheme");
	for (const char *c = p->scheme; *c; c++)
		if (!(islower((unsigned char)*c) || isdigit((unsigned char)*c) || *c == '+' || *c == '-' || *c == '.'))
			return cat_fail(db, DM_EINVAL, "InvalidObject", "invalid scheme '%s'", p->scheme);
	if (p->port < 0 || p->port > 65535)
		return cat_fail(db, DM_EINVAL, "InvalidObject", "invalid port %d", p->port);
	for (int d = 0; d < CAT_DOMAIN_COUNT; d++)
		for (int o = 0; o < CAT_OP_COUNT; o++)
			if (p->prio[d][o] < -1)
				return cat_fail(db, DM_EINVAL, "RSEProtocolPriorityError",
						"priority of %s must be an integer >= 0 or disabled (-1), not %d",
						op_cols[d][o] ? op_cols[d][o] : "lan tpc", p->prio[d][o]);
	rc = cat_tx_begin(db);
	if (rc)
		return rc;
	rc = cat_require_admin(db, "add protocols");
	if (rc == DM_OK)
		rc = cat_rse_num(db, rse, &num);
	if (rc)
		goto out;
	/* Normalise the prefix to start and end with '/', as Rucio's lfns2pfns. */
	if (p->prefix && *p->prefix) {
		if (p->prefix[0] != '/')
			dm_buf_addc(&prefix, '/');
		dm_buf_adds(&prefix, p->prefix);
		if (prefix.s[prefix.len - 1] != '/')
			dm_buf_addc(&prefix, '/');
	} else {
		dm_buf_addc(&prefix, '/');
	}
	st = cat_stmt(db, "INSERT INTO rse_protocols(rse_num, scheme, hostname, port, prefix, impl,"
			  " read_lan, write_lan, delete_lan, read_wan, write_wan, delete_wan,"
			  " third_party_copy_read, third_party_copy_write, extended_attributes)"
			  " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING");
	if (!st) {
		rc = db->err.code;
		goto out;
	}
	sqldrv_bind_int64(st, 1, num);
	sqldrv_bind_text(st, 2, p->scheme, -1);
	sqldrv_bind_text(st, 3, p->hostname && *p->hostname ? p->hostname : "localhost", -1);
	sqldrv_bind_int64(st, 4, p->port);
	sqldrv_bind_text(st, 5, prefix.s, -1);
	sqldrv_bind_text(st, 6, p->impl && *p->impl ? p->impl : default_impl(p->scheme), -1);
	{
		int col = 7;
		const int map[][2] = { { CAT_LAN, CAT_OP_READ }, { CAT_LAN, CAT_OP_WRITE },
				       { CAT_LAN, CAT_OP_DELETE }, { CAT_WAN, CAT_OP_READ },
				       { CAT_WAN, CAT_OP_WRITE }, { CAT_WAN, CAT_OP_DELETE },
				       { CAT_WAN, CAT_OP_TPC_READ }, { CAT_WAN, CAT_OP_TPC_WRITE } };
		for (unsigned i = 0; i < DM_ARRAY_SIZE(map); i++, col++) {
			int v = p->prio[map[i][0]][map[i][1]];
			if (v >= 0)
				sqldrv_bind_int64(st, col, v);
		}
	}
	sqldrv_bind_text(st, 15, p->extended_attributes, -1);
	if (sqldrv_step(st) != SQLDRV_DONE)
		rc = cat_dberr(db, "adding a protocol");
	else if (sqldrv_changes(db->sql) == 0)
		rc = cat_fail(db, DM_EEXIST, "Duplicate",
			      "RSE '%s' already has a %s protocol on %s:%d", rse, p->scheme,
			      p->hostname && *p->hostname ? p->hostname : "localhost", p->port);
out:
	dm_buf_release(&prefix);
	return cat_tx_end(db, rc);
}

enum dm_status cat_protocol_del(struct cat_db *db, const char *rse, const char *scheme,
				const char *hostname, int port)
{
	enum dm_status rc = cat_tx_begin(db);
	struct sqldrv_stmt *st;
	int64_t num;

	if (rc)
		return rc;
	rc = cat_require_admin(db, "delete protocols");
	if (rc == DM_OK)
		rc = cat_rse_num(db, rse, &num);
	if (rc)
		goto out;
	st = cat_stmt(db, "DELETE FROM rse_protocols WHERE rse_num=?1 AND scheme=?2"
			  " AND (?3 IS NULL OR hostname=?3) AND (?4 < 0 OR port=?4)");
	if (!st) {
		rc = db->err.code;
		goto out;
	}
	sqldrv_bind_int64(st, 1, num);
	sqldrv_bind_text(st, 2, scheme, -1);
	sqldrv_bind_text(st, 3, hostname, -1);
	sqldrv_bind_int64(st, 4, port);
	if (sqldrv_step(st) != SQLDRV_DONE)
		rc = cat_dberr(db, "deleting a protocol");
	else if (sqldrv_changes(db->sql) == 0)
		rc = cat_fail(db, DM_ENOENT, "RSEProtocolNotSupported",
			      "RSE '%s' has no %s protocol to delete", rse, scheme);
out:
	return cat_tx_end(db, rc);
}

static void proto_from_row(struct sqldrv_stmt *st, struct cat_protocol *p)
{
	int col = 5;
	const int map[][2] = { { CAT_LAN, CAT_OP_READ }, { CAT_LAN, CAT_OP_WRITE },
			       { CAT_LAN, CAT_OP_DELETE }, { CAT_WAN, CAT_OP_READ },
			       { CAT_WAN, CAT_OP_WRITE }, { CAT_WAN, CAT_OP_DELETE },
			       { CAT_WAN, CAT_OP_TPC_READ }, { CAT_WAN, CAT_OP_TPC_WRITE } };

	memset(p, 0, sizeof *p);
	for (int d = 0; d < CAT_DOMAIN_COUNT; d++)
		for (int o = 0; o < CAT_OP_COUNT; o++)
			p->prio[d][o] = -1;
	p->scheme = cat_col_text(st, 0);
	p->hostname = cat_col_text(st, 1);
	p->port = (int)sqldrv_col_int64(st, 2);
	p->prefix = cat_col_text(st, 3);
	p->impl = cat_col_text(st, 4);
	for (unsigned i = 0; i < DM_ARRAY_SIZE(map); i++, col++)
		if (!sqldrv_col_is_null(st, col))
			p->prio[map[i][0]][map[i][1]] = (int)sqldrv_col_int64(st, col);
	p->extended_attributes = cat_col_text(st, 13);
}

#define PROTO_COLS "scheme, hostname, port, prefix, impl, read_lan, write_lan, delete_lan," \
		   " read_wan, write_wan, delete_wan, third_party_copy_read," \
		   " third_party_copy_write, extended_attributes"

enum dm_status cat_protocol_list(struct cat_db *db, const char *rse, cat_protocol_cb cb, void *ud)
{
	CAT_REMOTE(db, protocol_list, rse, cb, ud);
	int64_t num;
	enum dm_status rc = cat_rse_num(db, rse, &num);
	struct sqldrv_stmt *st;
	struct cat_protocol p;
	int r;

	if (rc)
		return rc;
	st = cat_stmt(db, "SELECT " PROTO_COLS " FROM rse_protocols WHERE rse_num=?"
			  " ORDER BY hostname, scheme, port");
	if (!st)
		return db->err.code;
	sqldrv_bind_int64(st, 1, num);
	while ((r = sqldrv_step(st)) == SQLDRV_ROW) {
		proto_from_row(st, &p);
		if (cb(ud, &p))
			break;
	}
	sqldrv_reset(st);
	if (r != SQLDRV_ROW && r != SQLDRV_DONE)
		return cat_dberr(db, "listing protocols");
	return DM_OK;
}

/* ---- LFN -> PFN ---- */

enum dm_status cat_lfn2path(const char *algorithm, const char *scope, const char *name,
			    struct dm_buf *out, struct dm_err *err)
{
	char md5[33];
	struct dm_buf did = DM_BUF_INIT;
	size_t start = out->len;
	int dots = !strncmp(scope, "user", 4) || !strncmp(scope, "group", 5);

	if (!algorithm || !*algorithm)
		algorithm = "hash";
	if (strcmp(algorithm, "hash") && strcmp(algorithm, "identity"))
		return dm_seterr(err, DM_ENOTSUP, "ConfigNotFound",
				 "unknown lfn2pfn algorithm '%s' (supported: hash, identity)", algorithm);
	for (const char *p = scope; *p; p++)
		dm_buf_addc(out, dots && *p == '.' ? '/' : *p);
	(void)start;
	if (!strcmp(algorithm, "hash")) {
		dm_buf_addf(&did, "%s:%s", scope, name);
		dm_md5_hex(did.s, did.len, md5);
		dm_buf_release(&did);
		dm_buf_addf(out, "/%.2s/%.2s/", md5, md5 + 2);
	} else {
		dm_buf_addc(out, '/');
	}
	dm_buf_adds(out, name);
	return DM_OK;
}

void cat_pfn_join(const struct cat_protocol *p, const char *path, struct dm_buf *out)
{
	const char *prefix = p->prefix && *p->prefix ? p->prefix : "/";
	size_t pl = strlen(prefix);

	dm_buf_addf(out, "%s://%s", p->scheme, p->hostname && *p->hostname ? p->hostname : "localhost");
	if (p->port > 0 && strcmp(p->scheme, "file") != 0)
		dm_buf_addf(out, ":%d", p->port);
	if (prefix[0] != '/')
		dm_buf_addc(out, '/');
	dm_buf_adds(out, prefix);
	if (prefix[pl - 1] != '/')
		dm_buf_addc(out, '/');
	while (*path == '/')
		path++;
	dm_buf_adds(out, path);
}

/* The one protocol choice (policy.h: cat_policy_proto_better) over an
 * RSE's protocols in (hostname, scheme, port) order, seen from the WAN as a
 * transfer or a PFN is: the best one copied into *best, its strings in b.
 * *found = 0 when no protocol is enabled for op (and scheme). */
struct proto_pick {
	enum cat_proto_op op;
	const char *scheme;
	struct cat_protocol best;
	int prio;
	struct dm_buf *b;
	size_t off[4];
};

static int pick_proto(void *ud, const struct cat_protocol *p)
{
	struct proto_pick *k = ud;
	int prio = cat_policy_proto_better(p, k->op, CAT_WAN, k->scheme, k->prio);

	if (prio < 0)
		return 0;
	k->prio = prio;
	k->best = *p;
	dm_buf_reset(k->b);
	k->off[0] = 0;
	dm_buf_add(k->b, p->scheme, strlen(p->scheme) + 1);
	k->off[1] = k->b->len;
	dm_buf_add(k->b, p->hostname ? p->hostname : "", strlen(p->hostname ? p->hostname : "") + 1);
	k->off[2] = k->b->len;
	dm_buf_add(k->b, p->prefix ? p->prefix : "", strlen(p->prefix ? p->prefix : "") + 1);
	k->off[3] = k->b->len;
	dm_buf_add(k->b, p->impl ? p->impl : "", strlen(p->impl ? p->impl : "") + 1);
	return 0;
}

static enum dm_status proto_best(struct cat_db *db, const char *rse, enum cat_proto_op op,
				 const char *scheme, struct cat_protocol *p, struct dm_buf *b,
				 int *found)
{
	struct proto_pick k;
	enum dm_status rc;

	memset(&k, 0, sizeof k);
	k.op = op;
	k.scheme = scheme;
	k.prio = -1;
	k.b = b;
	*found = 0;
	rc = cat_protocol_list(db, rse, pick_proto, &k);
	if (rc || k.prio < 0)
		return rc;
	*found = 1;
	*p = k.best;
	p->scheme = b->s + k.off[0];
	p->hostname = b->s + k.off[1];
	p->prefix = b->s + k.off[2];
	p->impl = b->s + k.off[3];
	p->extended_attributes = NULL;
	return DM_OK;
}

enum dm_status cat_rse_protocol_for(struct cat_db *db, const char *rse, enum cat_proto_op op,
				    const char *scheme, struct cat_protocol *p, struct dm_buf *b)
{
	int found;
	enum dm_status rc = proto_best(db, rse, op, scheme, p, b, &found);

	if (rc)
		return rc;
	if (!found)
		return cat_fail(db, DM_ENOTSUP, "RSEProtocolNotSupported",
				"RSE '%s' has no %s%sprotocol enabled for %s", rse, scheme ? scheme : "",
				scheme ? " " : "",
				op == CAT_OP_READ ? "read" : op == CAT_OP_WRITE ? "write" :
				op == CAT_OP_DELETE ? "delete" : op == CAT_OP_TPC_READ ? "third-party-copy read"
											: "third-party-copy write");
	return DM_OK;
}

enum dm_status cat_lfn2pfn(struct cat_db *db, const char *rse, const char *scope,
			   const char *name, const char *scheme, enum cat_proto_op op,
			   struct dm_buf *out)
{
	CAT_REMOTE(db, lfn2pfn, rse, scope, name, scheme, op, out);
	int64_t num;
	enum dm_status rc = cat_rse_num(db, rse, &num);
	struct sqldrv_stmt *st;
	struct cat_protocol best;
	int found = 0, deterministic = 1;
	char algo[64] = "hash";
	struct dm_buf path = DM_BUF_INIT, strs = DM_BUF_INIT;
	struct dm_err e;

	if (rc)
		return rc;
	st = cat_stmt(db, "SELECT deterministic FROM rses WHERE num=?");
	if (!st)
		return db->err.code;
	sqldrv_bind_int64(st, 1, num);
	if (sqldrv_step(st) == SQLDRV_ROW)
		deterministic = (int)sqldrv_col_int64(st, 0);
	sqldrv_reset(st);
	if (cat_rse_attr_get(db, rse, "lfn2pfn_algorithm", algo, sizeof algo) != DM_OK)
		dm_strlcpy(algo, "hash", sizeof algo);
	rc = proto_best(db, rse, op, scheme, &best, &strs, &found);
	if (rc)
		goto out;
	if (!found) {
		rc = cat_fail(db, DM_ENOTSUP, "RSEProtocolNotSupported",
			      "RSE '%s' has no %s protocol%s%s enabled for %s", rse, scheme ? "" : "",
			      scheme ? " " : "", scheme ? scheme : "",
			      op == CAT_OP_READ ? "read" : op == CAT_OP_WRITE ? "write" :
			      op == CAT_OP_DELETE ? "delete" : "third-party copy");
		goto out;
	}
	if (!deterministic) {
		int64_t id;
		rc = cat_did_id(db, scope, name, &id, NULL);
		if (rc)
			goto out;
		st = cat_stmt(db, "SELECT path FROM replicas WHERE did_id=? AND rse_num=?");
		if (!st) {
			rc = db->err.code;
			goto out;
		}
		sqldrv_bind_int64(st, 1, id);
		sqldrv_bind_int64(st, 2, num);
		if (sqldrv_step(st) == SQLDRV_ROW && cat_col_text(st, 0))
			dm_buf_adds(&path, cat_col_text(st, 0));
		sqldrv_reset(st);
		if (!path.len) {
			rc = cat_fail(db, DM_ENOENT, "ReplicaNotFound",
				      "no path for '%s:%s' on non-deterministic RSE '%s'", scope, name, rse);
			goto out;
		}
	} else {
		rc = cat_lfn2path(algo, scope, name, &path, &e);
		if (rc) {
			db->err = e;
			goto out;
		}
	}
	cat_pfn_join(&best, path.s, out);
out:
	dm_buf_release(&strs);
	dm_buf_release(&path);
	return rc;
}
