/* SPDX-License-Identifier: Apache-2.0 */
/*
 * overview.c - the monitoring queries behind the web UI of `didfs serve`
 * (server/ui.c): rules by state/account/scope with per-RSE lock counts,
 * stuck locks with their reasons, the transfer matrix of the last hour, RSE
 * usage against limits and quotas, the daemons' heartbeats, and a page of
 * a scope's DIDs.  Declared in catalog.h ("monitoring overview").
 *
 * Every call is admin only (AccessDenied otherwise; the UI is an operator's
 * view, see README) and bounded: each takes a limit (clamped to
 * CAT_OV_MAX_LIMIT) and a keyset cursor (rules by rowid, DIDs and RSEs by
 * name), so a page costs the same on a catalog of ten rows or ten million.
 * Counts that would need a scan of unbounded size are capped instead
 * (per-RSE lock counts look at the first locks of a rule, at most
 * CAT_OV_LOCK_SCAN, and say so).  The transfer matrix reads requests_history, where finished
 * requests go (rule.c, req_archive), through the index on transferred_at
 * that migration 4 adds (store_sqlite.c, schema_pg.c).  Rows stream through callbacks as
 * elsewhere in the catalog; the pointers are valid during the callback.
 */
#include "catalog_i.h"

#include <stdint.h>
#include <string.h>

static int clamp_limit(int limit)
{
	if (limit <= 0)
		return 50;
	return limit > CAT_OV_MAX_LIMIT ? CAT_OV_MAX_LIMIT : limit;
}

static enum dm_status need_admin(struct cat_db *db)
{
	return cat_require_admin(db, "read the monitoring overview");
}

static enum dm_status step_all(struct cat_db *db, struct sqldrv_stmt *st, int r, const char *what)
{
	sqldrv_reset(st);
	if (r != SQLDRV_ROW && r != SQLDRV_DONE)
		return cat_dberr(db, what);
	return DM_OK;
}

static const char rule_letters[] = "ROSUWI"; /* enum cat_rule_state order, as rule.c */

static int letter_index(const char *letters, const char *c)
{
	const char *p = c && *c ? strchr(letters, *c) : NULL;

	return p ? (int)(p - letters) : 0;
}

/* ---- rules ---- */

#define OV_RULE_SEL "SELECT r.rowid, r.id, d.scope, d.name, d.did_type, r.account, r.state, r.error," \
		    " r.rse_expression, r.copies, r.locks_ok_cnt, r.locks_replicating_cnt," \
		    " r.locks_stuck_cnt, r.created_at, r.updated_at, r.stuck_at, r.expires_at" \
		    " FROM rules r JOIN dids d ON d.id=r.did_id WHERE "
#define OV_RULE_TAIL " AND r.rowid < ?4 AND (?3 IS NULL OR d.scope=?3) ORDER BY r.rowid DESC LIMIT ?6"

enum dm_status cat_ov_rules(struct cat_db *db, const struct cat_ov_rule_filter *f,
			    cat_ov_rule_cb cb, void *ud)
{
	struct sqldrv_stmt *st;
	enum dm_status rc = need_admin(db);
	char state[2] = { 0, 0 };
	struct cat_ov_rule x;
	int r, n = 0, limit;

	if (rc)
		return rc;
	if (f->state >= 0) {
		if ((size_t)f->state >= sizeof(rule_letters) - 1)
			return cat_fail(db, DM_EINVAL, "InvalidValueForKey", "unknown rule state %d", f->state);
		state[0] = rule_letters[f->state];
	}
	limit = clamp_limit(f->limit);
	/* rowid order (creation order, newest first): with a state or an
	 * account the page is a range of rules_state_idx / rules_account_idx
	 * (both end in the rowid), so one statement per combination (an "?1 IS
	 * NULL OR" would make SQLite scan); a scope alone filters the walk */
	if (f->id && *f->id)
		st = cat_stmt(db, OV_RULE_SEL "r.id=?5" OV_RULE_TAIL);
	else if (state[0] && f->account && *f->account)
		st = cat_stmt(db, OV_RULE_SEL "r.state=?1 AND r.account=?2" OV_RULE_TAIL);
	else if (state[0])
		st = cat_stmt(db, OV_RULE_SEL "r.state=?1" OV_RULE_TAIL);
	else if (f->account && *f->account)
		st = cat_stmt(db, OV_RULE_SEL "r.account=?2" OV_RULE_TAIL);
	else
		st = cat_stmt(db, OV_RULE_SEL "true" OV_RULE_TAIL);
	if (!st)
		return db->err.code;
	/* parameters a variant lacks are ignored (SQLITE_RANGE) */
	sqldrv_bind_text(st, 1, state, -1);
	sqldrv_bind_text(st, 2, f->account, -1);
	sqldrv_bind_text(st, 3, f->scope && *f->scope ? f->scope : NULL, -1);
	sqldrv_bind_int64(st, 4, f->before > 0 ? f->before : INT64_MAX);
	sqldrv_bind_text(st, 5, f->id, -1);
	sqldrv_bind_int64(st, 6, limit);
	while ((r = sqldrv_step(st)) == SQLDRV_ROW) {
		memset(&x, 0, sizeof x);
		x.cursor = sqldrv_col_int64(st, 0);
		x.id = cat_col_text(st, 1);
		x.scope = cat_col_text(st, 2);
		x.name = cat_col_text(st, 3);
		if (cat_did_type_from_code(cat_col_text(st, 4), &x.did_type))
			x.did_type = CAT_DID_FILE;
		x.account = cat_col_text(st, 5);
		x.state = (enum cat_rule_state)letter_index(rule_letters, cat_col_text(st, 6));
		x.error = cat_col_text(st, 7);
		x.rse_expression = cat_col_text(st, 8);
		x.copies = (int)sqldrv_col_int64(st, 9);
		x.locks_ok = sqldrv_col_int64(st, 10);
		x.locks_replicating = sqldrv_col_int64(st, 11);
		x.locks_stuck = sqldrv_col_int64(st, 12);
		x.created_at = sqldrv_col_int64(st, 13);
		x.updated_at = sqldrv_col_int64(st, 14);
		x.stuck_at = sqldrv_col_int64(st, 15);
		x.expires_at = sqldrv_col_int64(st, 16);
		n++;
		if (cb(ud, &x))
			break;
	}
	return step_all(db, st, r, "listing rules for the overview");
}

enum dm_status cat_ov_rule_rses(struct cat_db *db, const char *rule_id, int scan,
				cat_ov_rule_rse_cb cb, void *ud, int *capped)
{
	struct sqldrv_stmt *st;
	enum dm_status rc = need_admin(db);
	struct cat_ov_rule_rse x;
	int r, seen = 0;

	if (rc)
		return rc;
	*capped = 0;
	st = cat_stmt(db, "SELECT s.rse, sum(l.state='O'), sum(l.state='R'), sum(l.state='S'), count(*)"
			  " FROM (SELECT rse_num, state FROM locks WHERE rule_id=?1 LIMIT ?2) l"
			  " JOIN rses s ON s.num=l.rse_num GROUP BY s.rse ORDER BY s.rse");
	if (!st)
		return db->err.code;
	sqldrv_bind_text(st, 1, rule_id, -1);
	if (scan <= 0 || scan > CAT_OV_LOCK_SCAN)
		scan = CAT_OV_LOCK_SCAN;
	sqldrv_bind_int64(st, 2, scan);
	while ((r = sqldrv_step(st)) == SQLDRV_ROW) {
		x.rse = cat_col_text(st, 0);
		x.ok = sqldrv_col_int64(st, 1);
		x.replicating = sqldrv_col_int64(st, 2);
		x.stuck = sqldrv_col_int64(st, 3);
		seen += (int)sqldrv_col_int64(st, 4);
		if (cb(ud, &x))
			break;
	}
	if (seen >= scan)
		*capped = 1;
	return step_all(db, st, r, "counting a rule's locks per RSE");
}

enum dm_status cat_ov_stuck_locks(struct cat_db *db, const char *rule_id, int limit,
				  cat_ov_stuck_cb cb, void *ud)
{
	struct sqldrv_stmt *st;
	enum dm_status rc = need_admin(db);
	struct cat_ov_stuck x;
	int r;

	if (rc)
		return rc;
	/* the reason: the live request's last error, else the newest finished
	 * one's (requests_history_did_idx, migration 4) */
	st = cat_stmt(db, "SELECT d.scope, d.name, s.rse, l.repair_cnt, l.updated_at,"
			  " coalesce((SELECT q.err_msg FROM requests q WHERE q.did_id=l.did_id"
			  "   AND q.dest_rse_num=l.rse_num),"
			  "  (SELECT h.err_msg FROM requests_history h WHERE h.did_id=l.did_id"
			  "   AND h.dest_rse_num=l.rse_num ORDER BY h.updated_at DESC LIMIT 1))"
			  " FROM locks l JOIN dids d ON d.id=l.did_id JOIN rses s ON s.num=l.rse_num"
			  " WHERE l.rule_id=?1 AND l.state='S' LIMIT ?2");
	if (!st)
		return db->err.code;
	sqldrv_bind_text(st, 1, rule_id, -1);
	sqldrv_bind_int64(st, 2, clamp_limit(limit));
	while ((r = sqldrv_step(st)) == SQLDRV_ROW) {
		x.scope = cat_col_text(st, 0);
		x.name = cat_col_text(st, 1);
		x.rse = cat_col_text(st, 2);
		x.repair_cnt = (int)sqldrv_col_int64(st, 3);
		x.updated_at = sqldrv_col_int64(st, 4);
		x.reason = cat_col_text(st, 5);
		if (cb(ud, &x))
			break;
	}
	return step_all(db, st, r, "listing stuck locks");
}

/* ---- transfers ---- */

enum dm_status cat_ov_transfers(struct cat_db *db, int64_t since, cat_ov_transfer_cb cb, void *ud)
{
	struct sqldrv_stmt *st;
	enum dm_status rc = need_admin(db);
	struct cat_ov_transfer x;
	int r;

	if (rc)
		return rc;
	st = cat_stmt(db, "SELECT coalesce(s.rse, ''), d.rse, sum(h.state='D'),"
			  " sum(CASE WHEN h.state='D' THEN coalesce(h.bytes, 0) ELSE 0 END),"
			  " sum(h.state!='D'), sum(h.retry_count),"
			  " sum(CASE WHEN h.state='D' THEN max(h.transferred_at - coalesce(h.submitted_at,"
			  "   h.transferred_at), 0) ELSE 0 END), max(h.transferred_at)"
			  " FROM requests_history h JOIN rses d ON d.num=h.dest_rse_num"
			  " LEFT JOIN rses s ON s.num=h.source_rse_num"
			  " WHERE h.transferred_at >= ?1"
			  " GROUP BY h.source_rse_num, h.dest_rse_num, s.rse, d.rse ORDER BY 1, 2 LIMIT ?2");
	if (!st)
		return db->err.code;
	sqldrv_bind_int64(st, 1, since);
	sqldrv_bind_int64(st, 2, CAT_OV_MAX_LIMIT);
	while ((r = sqldrv_step(st)) == SQLDRV_ROW) {
		x.source = cat_col_text(st, 0);
		x.dest = cat_col_text(st, 1);
		x.files = (uint64_t)sqldrv_col_int64(st, 2);
		x.bytes = (uint64_t)sqldrv_col_int64(st, 3);
		x.failures = (uint64_t)sqldrv_col_int64(st, 4);
		x.retries = (uint64_t)sqldrv_col_int64(st, 5);
		x.busy_seconds = sqldrv_col_int64(st, 6);
		x.last_at = sqldrv_col_int64(st, 7);
		if (cb(ud, &x))
			break;
	}
	return step_all(db, st, r, "reading the transfer matrix");
}

enum dm_status cat_ov_queued(struct cat_db *db, cat_ov_queued_cb cb, void *ud, int *capped)
{
	struct sqldrv_stmt *st;
	enum dm_status rc = need_admin(db);
	int64_t seen = 0;
	int r;

	if (rc)
		return rc;
	*capped = 0;
	/* live requests per destination and state, counted over at most
	 * CAT_OV_QUEUE_SCAN rows (requests_state_idx) */
	st = cat_stmt(db, "SELECT d.rse, sum(q.state='Q'), sum(q.state='S'), count(*)"
			  " FROM (SELECT dest_rse_num, state FROM requests WHERE state IN ('Q','S')"
			  "  LIMIT ?1) q JOIN rses d ON d.num=q.dest_rse_num GROUP BY d.rse ORDER BY d.rse");
	if (!st)
		return db->err.code;
	sqldrv_bind_int64(st, 1, CAT_OV_QUEUE_SCAN);
	while ((r = sqldrv_step(st)) == SQLDRV_ROW) {
		seen += sqldrv_col_int64(st, 3);
		if (cb(ud, cat_col_text(st, 0), sqldrv_col_int64(st, 1), sqldrv_col_int64(st, 2)))
			break;
	}
	if (seen >= CAT_OV_QUEUE_SCAN)
		*capped = 1;
	return step_all(db, st, r, "counting live requests");
}

/* ---- RSEs ---- */

enum dm_status cat_ov_rses(struct cat_db *db, const char *after, int limit, cat_ov_rse_cb cb, void *ud)
{
	struct sqldrv_stmt *st;
	enum dm_status rc = need_admin(db);
	struct cat_ov_rse x;
	int r;

	if (rc)
		return rc;
	st = cat_stmt(db, "SELECT r.rse, r.rse_type, r.availability_read, r.availability_write,"
			  " r.availability_delete,"
			  " coalesce((SELECT used FROM rse_usage WHERE rse_num=r.num AND source='rucio'), 0),"
			  " coalesce((SELECT files FROM rse_usage WHERE rse_num=r.num AND source='rucio'), 0),"
			  " (SELECT value FROM rse_limits WHERE rse_num=r.num AND name='MaxSpaceAvailable'),"
			  " (SELECT value FROM rse_limits WHERE rse_num=r.num AND name='MinFreeSpace'),"
			  " (SELECT free FROM rse_usage WHERE rse_num=r.num AND source='storage'),"
			  " (SELECT count(*) FROM rse_protocols WHERE rse_num=r.num),"
			  " (SELECT updated_at FROM rse_usage WHERE rse_num=r.num AND source='rucio')"
			  " FROM rses r WHERE r.deleted=0 AND r.rse > ?1 ORDER BY r.rse LIMIT ?2");
	if (!st)
		return db->err.code;
	sqldrv_bind_text(st, 1, after ? after : "", -1);
	sqldrv_bind_int64(st, 2, clamp_limit(limit));
	while ((r = sqldrv_step(st)) == SQLDRV_ROW) {
		memset(&x, 0, sizeof x);
		x.rse = cat_col_text(st, 0);
		x.rse_type = cat_col_text(st, 1);
		x.availability_read = (int)sqldrv_col_int64(st, 2);
		x.availability_write = (int)sqldrv_col_int64(st, 3);
		x.availability_delete = (int)sqldrv_col_int64(st, 4);
		x.used = sqldrv_col_int64(st, 5);
		x.files = sqldrv_col_int64(st, 6);
		x.max_space = sqldrv_col_is_null(st, 7) ? -1 : sqldrv_col_int64(st, 7);
		x.min_free = sqldrv_col_is_null(st, 8) ? -1 : sqldrv_col_int64(st, 8);
		x.storage_free = sqldrv_col_is_null(st, 9) ? -1 : sqldrv_col_int64(st, 9);
		x.protocols = (int)sqldrv_col_int64(st, 10);
		x.usage_at = sqldrv_col_int64(st, 11);
		if (cb(ud, &x))
			break;
	}
	return step_all(db, st, r, "listing RSEs for the overview");
}

enum dm_status cat_ov_rse_accounts(struct cat_db *db, const char *rse, int limit,
				   cat_usage_cb cb, void *ud)
{
	struct sqldrv_stmt *st;
	enum dm_status rc = need_admin(db);
	struct cat_usage u;
	int64_t num;
	int r;

	if (rc || (rc = cat_rse_num(db, rse, &num)))
		return rc;
	/* accounts with a limit or a usage on the RSE */
	st = cat_stmt(db, "SELECT a.account, coalesce(u.files, 0), coalesce(u.bytes, 0), l.bytes"
			  " FROM (SELECT account FROM account_limits WHERE rse_num=?1"
			  "  UNION SELECT account FROM account_usage WHERE rse_num=?1) a"
			  " LEFT JOIN account_usage u ON u.account=a.account AND u.rse_num=?1"
			  " LEFT JOIN account_limits l ON l.account=a.account AND l.rse_num=?1"
			  " ORDER BY a.account LIMIT ?2");
	if (!st)
		return db->err.code;
	sqldrv_bind_int64(st, 1, num);
	sqldrv_bind_int64(st, 2, clamp_limit(limit));
	while ((r = sqldrv_step(st)) == SQLDRV_ROW) {
		memset(&u, 0, sizeof u);
		u.account = cat_col_text(st, 0);
		u.rse = rse;
		u.files = (uint64_t)sqldrv_col_int64(st, 1);
		u.bytes = (uint64_t)sqldrv_col_int64(st, 2);
		u.limit_set = !sqldrv_col_is_null(st, 3);
		u.limit = u.limit_set ? sqldrv_col_int64(st, 3) : 0;
		if (cb(ud, &u))
			break;
	}
	return step_all(db, st, r, "listing account usage of an RSE");
}

/* ---- daemons ---- */

enum dm_status cat_ov_heartbeats(struct cat_db *db, int limit, cat_ov_heartbeat_cb cb, void *ud)
{
	struct sqldrv_stmt *st;
	enum dm_status rc = need_admin(db);
	struct cat_ov_heartbeat x;
	int r;

	if (rc)
		return rc;
	st = cat_stmt(db, "SELECT executable, hostname, pid, thread_id, created_at, updated_at"
			  " FROM heartbeats ORDER BY executable, hostname, pid, thread_id LIMIT ?1");
	if (!st)
		return db->err.code;
	sqldrv_bind_int64(st, 1, clamp_limit(limit));
	while ((r = sqldrv_step(st)) == SQLDRV_ROW) {
		x.executable = cat_col_text(st, 0);
		x.hostname = cat_col_text(st, 1);
		x.pid = sqldrv_col_int64(st, 2);
		x.thread = (int)sqldrv_col_int64(st, 3);
		x.created_at = sqldrv_col_int64(st, 4);
		x.updated_at = sqldrv_col_int64(st, 5);
		if (cb(ud, &x))
			break;
	}
	return step_all(db, st, r, "listing heartbeats");
}

/* ---- DIDs ---- */

/* stored columns only (a collection's size would be a sum over all its
 * files); a collection's children counted up to CAT_OV_CHILD_COUNT + 1 */
#define OV_DID_SEL "SELECT d.id, d.name, d.account, d.did_type, d.bytes," \
		   " CASE WHEN d.did_type='F' THEN 1 ELSE (SELECT count(*) FROM (SELECT 1 FROM contents c" \
		   "  WHERE c.parent_id=d.id LIMIT ?9) x) END, d.is_open, d.created_at, d.adler32, d.md5," \
		   " d.expired_at FROM dids d "

static enum dm_status ov_did_rows(struct cat_db *db, struct sqldrv_stmt *st, const char *scope,
				  const char *prefix, cat_did_cb cb, void *ud)
{
	size_t plen = prefix ? strlen(prefix) : 0;
	struct cat_did d;
	int r;

	while ((r = sqldrv_step(st)) == SQLDRV_ROW) {
		if (plen && strncmp(cat_col_text(st, 1), prefix, plen))
			break;
		memset(&d, 0, sizeof d);
		d.id = sqldrv_col_int64(st, 0);
		d.scope = scope;
		d.name = cat_col_text(st, 1);
		d.account = cat_col_text(st, 2);
		if (cat_did_type_from_code(cat_col_text(st, 3), &d.type))
			d.type = CAT_DID_FILE;
		d.bytes = d.type == CAT_DID_FILE ? (uint64_t)sqldrv_col_int64(st, 4) : 0;
		d.length = (uint64_t)sqldrv_col_int64(st, 5);
		d.is_open = (int)sqldrv_col_int64(st, 6);
		d.created_at = sqldrv_col_int64(st, 7);
		d.adler32 = cat_col_text(st, 8);
		d.md5 = cat_col_text(st, 9);
		d.expired_at = sqldrv_col_int64(st, 10);
		d.availability = "AVAILABLE";
		if (cb(ud, &d))
			break;
	}
	return step_all(db, st, r, "listing DIDs for the overview");
}

enum dm_status cat_ov_dids(struct cat_db *db, const char *scope, const char *prefix,
			   const char *after, int limit, cat_did_cb cb, void *ud)
{
	struct sqldrv_stmt *st;
	enum dm_status rc = need_admin(db);

	if (rc || (rc = cat_scope_check(db, scope, NULL)))
		return rc;
	/* UNIQUE(scope, name) gives the order and the range: names from the
	 * prefix (and after the cursor) on, until one no longer starts with it */
	st = cat_stmt(db, OV_DID_SEL "WHERE d.scope=?1 AND d.name >= ?2 AND d.name != ?3"
			  " ORDER BY d.name LIMIT ?4");
	if (!st)
		return db->err.code;
	/* one lower bound, the larger of prefix and cursor (names are unique:
	 * ">= cursor and not the cursor" is "> cursor") */
	if (!prefix)
		prefix = "";
	if (!after)
		after = "";
	sqldrv_bind_text(st, 1, scope, -1);
	sqldrv_bind_text(st, 2, strcmp(after, prefix) > 0 ? after : prefix, -1);
	sqldrv_bind_text(st, 3, after, -1);
	sqldrv_bind_int64(st, 4, clamp_limit(limit));
	sqldrv_bind_int64(st, 9, CAT_OV_CHILD_COUNT_LIST + 1);
	return ov_did_rows(db, st, scope, prefix, cb, ud);
}

enum dm_status cat_ov_did(struct cat_db *db, const char *scope, const char *name, cat_did_cb cb,
			  void *ud)
{
	struct sqldrv_stmt *st;
	enum dm_status rc = need_admin(db);
	int found = 0;

	if (rc)
		return rc;
	st = cat_stmt(db, OV_DID_SEL "WHERE d.scope=?1 AND d.name=?2");
	if (!st)
		return db->err.code;
	sqldrv_bind_text(st, 1, scope, -1);
	sqldrv_bind_text(st, 2, name, -1);
	sqldrv_bind_int64(st, 9, CAT_OV_CHILD_COUNT + 1);
	if (sqldrv_step(st) == SQLDRV_ROW)
		found = 1;
	sqldrv_reset(st);
	if (!found)
		return cat_did_id(db, scope, name, NULL, NULL); /* DataIdentifierNotFound, or the scope's error */
	return ov_did_rows(db, st, scope, NULL, cb, ud);
}
