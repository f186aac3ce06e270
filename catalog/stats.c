/* SPDX-License-Identifier: Apache-2.0 */
/*
 * stats.c - queue depths of the rule engine, read in one snapshot for
 * monitoring (`didfs daemon --metrics` sets its gauges from them at each
 * scrape; engine.h: cat_queue_stats).
 *
 * What is counted (all through existing indexes, no full table scan of
 * replicas or DIDs):
 *   requests        live transfer requests by state (QUEUED, SUBMITTED; the
 *                   finished ones are in requests_history)
 *   rules           rules by state (REPLICATING, OK, STUCK, ...)
 *   judge_updates   queued DID updates for judge-evaluator (updated_dids)
 *   inject_due      INJECT rules whose time has come (judge-injector)
 *   expired_dids    DIDs past expired_at (undertaker)
 *   deletion        replicas without locks awaiting the reaper, by kind:
 *                   "obsolete" (tombstone 1, deleted at once), "expired"
 *                   (a tombstone in the past, deleted by a greedy reaper),
 *                   "being_deleted" (state BEING_DELETED)
 *   counter_updates pending abacus updates (account and RSE counters)
 * Every state the catalog knows is reported, zero included, so a gauge
 * drops to 0 instead of vanishing.  One read transaction.
 */
#include "engine.h"
#include "catalog_i.h"

#include <string.h>

static const char req_codes[] = "QSDFNL";
static const char rule_codes[] = "ROSUWI";

static enum dm_status count1(struct cat_db *db, const char *sql, int64_t now, int64_t *n)
{
	struct sqldrv_stmt *st = cat_stmt(db, sql);
	int r;

	if (!st)
		return db->err.code;
	if (strstr(sql, "?1"))
		sqldrv_bind_int64(st, 1, now);
	r = sqldrv_step(st);
	*n = r == SQLDRV_ROW ? sqldrv_col_int64(st, 0) : 0;
	sqldrv_reset(st);
	return r == SQLDRV_ROW || r == SQLDRV_DONE ? DM_OK : cat_dberr(db, "queue statistics");
}

static enum dm_status by_state(struct cat_db *db, const char *sql, const char *codes, int nstates,
			       const char *(*name)(int), const char *what, cat_stat_cb cb, void *ud)
{
	int64_t n[8] = { 0 };
	struct sqldrv_stmt *st = cat_stmt(db, sql);
	int r;

	if (!st)
		return db->err.code;
	while ((r = sqldrv_step(st)) == SQLDRV_ROW) {
		const char *s = sqldrv_col_text(st, 0);
		const char *p = s && *s ? strchr(codes, s[0]) : NULL;

		if (p)
			n[p - codes] += sqldrv_col_int64(st, 1);
	}
	sqldrv_reset(st);
	if (r != SQLDRV_DONE)
		return cat_dberr(db, "queue statistics");
	for (int i = 0; i < nstates; i++)
		cb(ud, what, name(i), n[i]);
	return DM_OK;
}

static const char *req_name(int i) { return cat_req_state_name((enum cat_req_state)i); }
static const char *rule_name(int i) { return cat_rule_state_name((enum cat_rule_state)i); }

enum dm_status cat_queue_stats(struct cat_db *db, cat_stat_cb cb, void *ud)
{
	int64_t now = dm_now(), n, m;
	enum dm_status rc;

	if ((rc = cat_tx_begin(db)) != DM_OK)
		return rc;
	rc = by_state(db, "SELECT state, count(*) FROM requests GROUP BY state", req_codes, 2,
		      req_name, "requests", cb, ud);
	if (rc == DM_OK)
		rc = by_state(db, "SELECT state, count(*) FROM rules GROUP BY state", rule_codes,
			      (int)strlen(rule_codes), rule_name, "rules", cb, ud);
	if (rc == DM_OK && (rc = count1(db, "SELECT count(*) FROM updated_dids", now, &n)) == DM_OK)
		cb(ud, "judge_updates", "", n);
	if (rc == DM_OK &&
	    (rc = count1(db, "SELECT count(*) FROM rules WHERE state='I' AND created_at<=?1", now, &n)) == DM_OK)
		cb(ud, "inject_due", "", n);
	if (rc == DM_OK &&
	    (rc = count1(db, "SELECT count(*) FROM dids WHERE expired_at IS NOT NULL AND expired_at < ?1",
			 now, &n)) == DM_OK)
		cb(ud, "expired_dids", "", n);
	if (rc == DM_OK &&
	    (rc = count1(db, "SELECT count(*) FROM replicas WHERE tombstone=1 AND lock_cnt=0 AND state!='B'",
			 now, &n)) == DM_OK)
		cb(ud, "deletion", "obsolete", n);
	if (rc == DM_OK &&
	    (rc = count1(db, "SELECT count(*) FROM replicas WHERE tombstone>1 AND tombstone<?1 AND lock_cnt=0"
			 " AND state!='B'", now, &n)) == DM_OK)
		cb(ud, "deletion", "expired", n);
	if (rc == DM_OK &&
	    (rc = count1(db, "SELECT count(*) FROM replicas WHERE tombstone IS NOT NULL AND state='B'", now,
			 &n)) == DM_OK)
		cb(ud, "deletion", "being_deleted", n);
	if (rc == DM_OK && (rc = count1(db, "SELECT count(*) FROM updated_account_counters", now, &n)) == DM_OK &&
	    (rc = count1(db, "SELECT count(*) FROM updated_rse_counters", now, &m)) == DM_OK)
		cb(ud, "counter_updates", "", n + m);
	return cat_tx_end(db, rc == DM_OK ? DM_OK : rc);
}

/* The request id travels with the rule: `didfs serve` puts the REST
 * request's id on its thread (dm_log_set_request_id) and the rule added
 * by that request keeps it in rules.request_id, which the daemons read
 * back with the rule's transfer requests (struct cat_request.request_id)
 * and log with their work.  Nothing is stored without an id (the CLI,
 * the mount's xattrs). */
enum dm_status cat_rule_note_request(struct cat_db *db, const char *rule_id)
{
	const char *rid = dm_log_request_id();
	struct sqldrv_stmt *st;
	int r;

	if (!rid || !*rid)
		return DM_OK;
	st = cat_stmt(db, "UPDATE rules SET request_id=? WHERE id=?");
	if (!st)
		return db->err.code;
	sqldrv_bind_text(st, 1, rid, -1);
	sqldrv_bind_text(st, 2, rule_id, -1);
	r = sqldrv_step(st);
	sqldrv_reset(st);
	return r == SQLDRV_DONE ? DM_OK : cat_dberr(db, "storing the rule's request id");
}
