/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rule.c - replication rules: their states' names, add / get / list,
 * deletion (locks removed with their replicas' lock counts), updates, and
 * the rule's state derived from its lock counts, following Rucio's
 * core/rule.py (shared/reference/rucio.md sections 5-8).
 *
 * The rule engine's SQL side is split by responsibility over files that
 * share catalog/rule_i.h (prefix rl_): placement.c (the RSEs a rule's copies
 * go to, its locks and the transfer requests they need), judge.c (the
 * judge's units of work: evaluator, injector, repairer, cleaner), request.c
 * (transfer requests: claims, outcomes, sources, distances, bad replicas),
 * reaper.c (reaper and undertaker queries), heartbeat.c (the daemons'
 * heartbeats and partitions).  Whether a process is still alive is not
 * judged here: the heartbeat calls ask the daemon's cat_alive_cb.
 *
 * Rule state (rl_rule_state_update): any stuck lock -> STUCK, none
 * replicating -> OK, else REPLICATING; rules.locks_*_cnt are kept
 * incrementally with every lock state change.
 *
 * The client calls (rules, locks, list-transfers, distances) are declared
 * in catalog.h, the daemons' (judge units, requests, reaper, undertaker,
 * heartbeats) in engine.h.  The decisions are Rucio's policy as pure
 * functions (policy.h); these files load their inputs and store their
 * results; states are enums in C, the one-letter codes of the rows
 * (rl_rule_codes, rl_lock_codes, rl_req_codes) only where rows are read and
 * written.
 */
#include "engine.h"
#include "catalog_i.h"
#include "policy.h"
#include "rule_i.h"
#include "rse_expr.h"
#include "dmcheck.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define OBSOLETE 1 /* tombstone 1970-01-01 00:00:01: delete at once */
#define DEFAULT_ACTIVITY "User Subscriptions"

/* ------------------------------------------------------------------ */
/* rule state                                                          */

/* Rule child is OK: the rules that waited for it (a move's parents, set by
 * subscription.c) are released to the judge-cleaner. */
static enum dm_status release_parents(struct cat_db *db, const char *child)
{
	struct sqldrv_stmt *st = cat_stmt(db, "UPDATE rules SET child_rule_id=NULL, updated_at=?"
				       " WHERE child_rule_id=?");

	if (!st)
		return db->err.code;
	sqldrv_bind_int64(st, 1, dm_now());
	sqldrv_bind_text(st, 2, child, -1);
	return rl_step_done(db, st, "releasing a parent rule");
}

/* Derive the rule's state from its lock counts (Rucio's rule state
 * transitions); SUSPENDED / WAITING_APPROVAL / INJECT are left alone. */
enum dm_status rl_rule_state_update(struct cat_db *db, const char *id, const char *error)
{
	struct sqldrv_stmt *st = cat_stmt(db, "SELECT state, locks_ok_cnt, locks_replicating_cnt, locks_stuck_cnt,"
				       " stuck_at FROM rules WHERE id=?");
	enum cat_rule_state cur, nxt;
	int64_t ok, repl, stuck, stuck_at;
	char next[2];
	int r;

	if (!st)
		return db->err.code;
	sqldrv_bind_text(st, 1, id, -1);
	r = sqldrv_step(st);
	if (r != SQLDRV_ROW) {
		sqldrv_reset(st);
		return DM_OK;
	}
	cur = (enum cat_rule_state)rl_code_index(rl_rule_codes, cat_col_text(st, 0));
	ok = sqldrv_col_int64(st, 1);
	repl = sqldrv_col_int64(st, 2);
	stuck = sqldrv_col_int64(st, 3);
	stuck_at = sqldrv_col_int64(st, 4);
	sqldrv_reset(st);
	nxt = cat_policy_rule_state(cur, ok, repl, stuck);
	if (nxt == cur && (cur == CAT_RULE_SUSPENDED || cur == CAT_RULE_WAITING_APPROVAL ||
			   cur == CAT_RULE_INJECT))
		return DM_OK;
	next[0] = rl_rule_codes[nxt];
	next[1] = 0;
	st = cat_stmt(db, "UPDATE rules SET state=?1, updated_at=?2,"
			  " stuck_at=CASE WHEN ?1='S' THEN coalesce(stuck_at, ?2) ELSE NULL END,"
			  " error=CASE WHEN ?1='S' THEN coalesce(?3, error, 'MissingSourceReplica')"
			  " WHEN ?1='O' THEN NULL ELSE error END WHERE id=?4");
	if (!st)
		return db->err.code;
	sqldrv_bind_text(st, 1, next, -1);
	sqldrv_bind_int64(st, 2, rl_now_s());
	if (error)
		sqldrv_bind_text(st, 3, error, (int)(strlen(error) > 245 ? 245 : strlen(error)));
	sqldrv_bind_text(st, 4, id, -1);
	(void)stuck_at;
	if (rl_step_done(db, st, "updating a rule state"))
		return db->err.code;
	if (nxt != cur && cat_outbox_rule_state(db, id, next[0])) /* RULE_OK (outbox.c) */
		return db->err.code;
	if (nxt == CAT_RULE_OK && release_parents(db, id))
		return db->err.code;
	if (nxt == CAT_RULE_OK) {
		st = cat_stmt(db, "UPDATE dataset_locks SET state='O', updated_at=? WHERE rule_id=? AND state!='O'");
		if (!st)
			return db->err.code;
		sqldrv_bind_int64(st, 1, rl_now_s());
		sqldrv_bind_text(st, 2, id, -1);
		return rl_step_done(db, st, "updating dataset locks");
	}
	return DM_OK;
}

/* Put a rule in STUCK with an error (evaluation failures). */
enum dm_status rl_rule_set_stuck(struct cat_db *db, const char *id, const char *error)
{
	struct sqldrv_stmt *st = cat_stmt(db, "UPDATE rules SET state='S', error=?, stuck_at=coalesce(stuck_at, ?),"
				       " updated_at=? WHERE id=? AND state NOT IN ('U','W')");
	int64_t now = rl_now_s();

	if (!st)
		return db->err.code;
	sqldrv_bind_text(st, 1, error, (int)(strlen(error) > 245 ? 245 : strlen(error)));
	sqldrv_bind_int64(st, 2, now);
	sqldrv_bind_int64(st, 3, now);
	sqldrv_bind_text(st, 4, id, -1);
	return rl_step_done(db, st, "marking a rule stuck");
}

/* ------------------------------------------------------------------ */
/* add / get / list                                                    */

static int valid_notification(const char *n, char *code)
{
	static const char *const names[] = { "YES", "NO", "CLOSE", "PROGRESS" };
	static const char codes[] = "YNCP";

	if (!n || !*n) {
		*code = 'N';
		return 1;
	}
	for (int i = 0; i < 4; i++)
		if (!strcasecmp(n, names[i]) || (n[0] == codes[i] && !n[1])) {
			*code = codes[i];
			return 1;
		}
	return 0;
}

static enum dm_status rule_add_once(struct cat_db *db, const char *scope, const char *name,
				    const struct cat_rule_opts *o, char *id_out)
{
	struct rule_ctx x;
	enum dm_status rc;
	struct sqldrv_stmt *st;
	struct dm_err e;
	char notif;
	int64_t did;
	enum cat_did_type type;

	memset(&x, 0, sizeof x);
	if (o->copies <= 0)
		return cat_fail(db, DM_EINVAL, "InvalidValueForKey", "copies must be > 0, not %d", o->copies);
	if (o->copies > 16)
		return cat_fail(db, DM_EINVAL, "InvalidValueForKey", "copies must be at most 16, not %d", o->copies);
	if (!o->rse_expression || !*o->rse_expression)
		return cat_fail(db, DM_EINVAL, "InvalidRSEExpression", "a rule needs an RSE expression");
	if (strlen(o->rse_expression) > 3000)
		return cat_fail(db, DM_EINVAL, "InvalidRSEExpression", "RSE expression longer than 3000 characters");
	if (o->lifetime < 0 || o->lifetime > DM_DURATION_MAX)
		return cat_fail(db, DM_EINVAL, "InvalidValueForKey",
				"lifetime must be from 0 to " DM_DURATION_MAX_STR " seconds (100 years), not %lld",
				(long long)o->lifetime);
	if (o->priority < 0 || o->priority > 5)
		return cat_fail(db, DM_EINVAL, "InvalidValueForKey", "priority must be 0..5, not %d", o->priority);
	if ((unsigned)o->grouping > CAT_GROUPING_NONE)
		return cat_fail(db, DM_EINVAL, "InvalidObject", "grouping must be ALL, DATASET or NONE");
	if (!valid_notification(o->notification, &notif))
		return cat_fail(db, DM_EINVAL, "InvalidObject", "notify must be YES, NO, CLOSE or PROGRESS, not '%s'",
				o->notification);
	if (o->comment && strlen(o->comment) > 250)
		return cat_fail(db, DM_EINVAL, "InvalidObject", "comment longer than 250 characters");
	if (o->activity && strlen(o->activity) > 50)
		return cat_fail(db, DM_EINVAL, "InvalidObject", "activity longer than 50 characters");
	if (o->source_replica_expression && *o->source_replica_expression &&
	    cat_rse_expr_check(o->source_replica_expression, &e))
		return cat_fail(db, DM_EINVAL, "InvalidSourceReplicaExpression",
				"source_replica_expression: %s", e.msg);
	rc = cat_tx_begin(db);
	if (rc)
		return rc;
	rc = cat_did_id(db, scope, name, &did, &type);
	if (rc)
		goto out;
	x.db = db;
	x.now = rl_now_s();
	dm_uuid32(x.id);
	x.did_id = did;
	x.did_type = type;
	dm_strlcpy(x.account, cat_issuer(db), sizeof x.account);
	x.copies = o->copies;
	x.grouping = o->grouping;
	x.expr = dm_xstrdup(o->rse_expression);
	x.weight = o->weight && *o->weight ? dm_xstrdup(o->weight) : NULL;
	x.src_expr = o->source_replica_expression && *o->source_replica_expression
			     ? dm_xstrdup(o->source_replica_expression) : NULL;
	x.activity = dm_xstrdup(o->activity && *o->activity ? o->activity : DEFAULT_ACTIVITY);
	x.priority = o->priority ? o->priority : 3;
	x.ignore_availability = o->ignore_availability;
	x.ignore_account_limit = o->ignore_account_limit && cat_issuer_is_admin(db);
	x.purge = o->purge_replicas;
	rc = rl_load_source_set(&x);
	if (rc == DM_OK)
		rc = rl_build_selector(&x);
	if (rc)
		goto out;
	st = cat_stmt(db, "INSERT INTO rules(id, did_id, account, state, rse_expression, copies, grouping,"
			  " weight, locked, source_replica_expression, activity, purge_replicas,"
			  " ignore_availability, ignore_account_limit, comments, notification, priority,"
			  " expires_at, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
			  " ON CONFLICT DO NOTHING");
	if (!st) {
		rc = db->err.code;
		goto out;
	}
	sqldrv_bind_text(st, 1, x.id, -1);
	sqldrv_bind_int64(st, 2, did);
	sqldrv_bind_text(st, 3, x.account, -1);
	sqldrv_bind_text(st, 4, o->asynchronous ? "I" : "R", -1);
	sqldrv_bind_text(st, 5, x.expr, -1);
	sqldrv_bind_int64(st, 6, x.copies);
	sqldrv_bind_text(st, 7, (char[]){ rl_grouping_codes[x.grouping], 0 }, 1);
	sqldrv_bind_text(st, 8, x.weight, -1);
	sqldrv_bind_int64(st, 9, !!o->locked);
	sqldrv_bind_text(st, 10, x.src_expr, -1);
	sqldrv_bind_text(st, 11, x.activity, -1);
	sqldrv_bind_int64(st, 12, !!o->purge_replicas);
	sqldrv_bind_int64(st, 13, !!o->ignore_availability);
	sqldrv_bind_int64(st, 14, x.ignore_account_limit);
	sqldrv_bind_text(st, 15, o->comment, -1);
	sqldrv_bind_text(st, 16, (char[]){ notif, 0 }, 1);
	sqldrv_bind_int64(st, 17, x.priority);
	if (o->lifetime)
		sqldrv_bind_int64(st, 18, dm_time_add(x.now, o->lifetime));
	sqldrv_bind_int64(st, 19, x.now);
	sqldrv_bind_int64(st, 20, x.now);
	if ((rc = rl_step_done(db, st, "adding a rule")))
		goto out;
	if (sqldrv_changes(db->sql) == 0) {
		rc = cat_fail(db, DM_EEXIST, "DuplicateRule",
			      "A duplicate rule for this account, did, rse_expression, copies already exists (%s:%s, '%s', %d)",
			      scope, name, x.expr, x.copies);
		goto out;
	}
	if ((rc = cat_rule_note_request(db, x.id)))
		goto out;
	if (!o->asynchronous) {
		rc = rl_apply_rule(&x);
		if (rc == DM_OK)
			rc = rl_rule_state_update(db, x.id, NULL);
	}
	if (rc == DM_OK && id_out)
		dm_strlcpy(id_out, x.id, 33);
out:
	rl_ctx_free(&x);
	return cat_tx_end(db, rc);
}

enum dm_status cat_rule_add(struct cat_db *db, const char *scope, const char *name,
			    const struct cat_rule_opts *o, char *id_out)
{
	CAT_REMOTE(db, rule_add, scope, name, o, id_out);
	enum dm_status rc;
	int attempt = 0;

	do
		rc = rule_add_once(db, scope, name, o, id_out);
	while (cat_redo(db, rc, &attempt));
	return rc;
}

#define RULE_COLS "r.id, d.scope, d.name, d.did_type, r.account, r.state, r.error, r.rse_expression," \
		  " r.copies, r.grouping, r.weight, r.locked, r.source_replica_expression, r.activity," \
		  " r.purge_replicas, r.ignore_availability, r.comments, r.notification," \
		  " r.locks_ok_cnt, r.locks_replicating_cnt, r.locks_stuck_cnt, r.expires_at," \
		  " r.created_at, r.updated_at, r.stuck_at, r.priority"

static void rule_from_row(struct sqldrv_stmt *st, struct cat_rule *r)
{
	static const char *const notif_names[] = { "YES", "NO", "CLOSE", "PROGRESS" };
	const char *n;

	memset(r, 0, sizeof *r);
	r->id = cat_col_text(st, 0);
	r->scope = cat_col_text(st, 1);
	r->name = cat_col_text(st, 2);
	cat_did_type_from_code(cat_col_text(st, 3), &r->did_type);
	r->account = cat_col_text(st, 4);
	r->state = (enum cat_rule_state)rl_code_index(rl_rule_codes, cat_col_text(st, 5));
	r->error = cat_col_text(st, 6);
	r->rse_expression = cat_col_text(st, 7);
	r->copies = (int)sqldrv_col_int64(st, 8);
	r->grouping = (enum cat_grouping)rl_code_index(rl_grouping_codes, cat_col_text(st, 9));
	r->weight = cat_col_text(st, 10);
	r->locked = (int)sqldrv_col_int64(st, 11);
	r->source_replica_expression = cat_col_text(st, 12);
	r->activity = cat_col_text(st, 13);
	r->purge_replicas = (int)sqldrv_col_int64(st, 14);
	r->ignore_availability = (int)sqldrv_col_int64(st, 15);
	r->comment = cat_col_text(st, 16);
	n = cat_col_text(st, 17);
	r->notification = notif_names[rl_code_index("YNCP", n)];
	r->locks_ok_cnt = sqldrv_col_int64(st, 18);
	r->locks_replicating_cnt = sqldrv_col_int64(st, 19);
	r->locks_stuck_cnt = sqldrv_col_int64(st, 20);
	r->expires_at = sqldrv_col_int64(st, 21);
	r->created_at = sqldrv_col_int64(st, 22);
	r->updated_at = sqldrv_col_int64(st, 23);
	r->stuck_at = sqldrv_col_int64(st, 24);
	r->priority = (int)sqldrv_col_int64(st, 25);
}

static enum dm_status rule_rows(struct cat_db *db, struct sqldrv_stmt *st, cat_rule_cb cb, void *ud,
				int *n)
{
	int r;
	struct cat_rule x;

	while ((r = sqldrv_step(st)) == SQLDRV_ROW) {
		rule_from_row(st, &x);
		if (n)
			(*n)++;
		if (cb(ud, &x))
			break;
	}
	sqldrv_reset(st);
	if (r != SQLDRV_ROW && r != SQLDRV_DONE)
		return cat_dberr(db, "listing rules");
	return DM_OK;
}

enum dm_status cat_rule_get(struct cat_db *db, const char *id, cat_rule_cb cb, void *ud)
{
	CAT_REMOTE(db, rule_get, id, cb, ud);
	struct sqldrv_stmt *st = cat_stmt(db, "SELECT " RULE_COLS " FROM rules r JOIN dids d ON d.id=r.did_id"
				       " WHERE r.id=?");
	int n = 0;
	enum dm_status rc;

	if (!st)
		return db->err.code;
	sqldrv_bind_text(st, 1, id, -1);
	rc = rule_rows(db, st, cb, ud, &n);
	if (rc == DM_OK && n == 0)
		rc = cat_fail(db, DM_ENOENT, "RuleNotFound", "No replication rule found with id '%s'", id);
	return rc;
}

enum dm_status cat_rule_list(struct cat_db *db, const char *scope, const char *name,
			     const char *account, cat_rule_cb cb, void *ud)
{
	CAT_REMOTE(db, rule_list, scope, name, account, cb, ud);
	struct sqldrv_stmt *st;
	int64_t did = 0;
	enum dm_status rc;

	if (scope && name && (rc = cat_did_id(db, scope, name, &did, NULL)))
		return rc;
	if (account && (rc = cat_account_check(db, account)))
		return rc;
	st = cat_stmt(db, "SELECT " RULE_COLS " FROM rules r JOIN dids d ON d.id=r.did_id"
			  " WHERE (?1=0 OR r.did_id=?1) AND (?2 IS NULL OR r.account=?2)"
			  " ORDER BY r.created_at, r.id");
	if (!st)
		return db->err.code;
	sqldrv_bind_int64(st, 1, did);
	sqldrv_bind_text(st, 2, account, -1);
	return rule_rows(db, st, cb, ud, NULL);
}

static const char sql_rules_covering[] =
	"WITH RECURSIVE up(id) AS (SELECT ?1 UNION SELECT c.parent_id FROM contents c"
	" JOIN up u ON c.child_id=u.id)"
	" SELECT " RULE_COLS " FROM up JOIN rules r ON r.did_id=up.id JOIN dids d ON d.id=r.did_id"
	" ORDER BY r.created_at, r.id";

enum dm_status cat_rule_list_for_file(struct cat_db *db, const char *scope, const char *name,
				      cat_rule_cb cb, void *ud)
{
	CAT_REMOTE(db, rule_list_for_file, scope, name, cb, ud);
	int64_t did;
	enum dm_status rc = cat_did_id(db, scope, name, &did, NULL);
	struct sqldrv_stmt *st;

	if (rc)
		return rc;
	st = cat_stmt(db, sql_rules_covering);
	if (!st)
		return db->err.code;
	sqldrv_bind_int64(st, 1, did);
	return rule_rows(db, st, cb, ud, NULL);
}

/* ------------------------------------------------------------------ */
/* lock removal and rule deletion                                      */

/* Remove one lock (Rucio's __delete_lock_and_update_replica). */
enum dm_status rl_remove_lock(struct cat_db *db, const char *rule_id, const char *account,
			      int64_t did, int64_t rse, char state, int64_t bytes, int purge,
			      int update_rule)
{
	struct sqldrv_stmt *st;
	enum dm_status rc;
	int64_t lock_cnt = 0, others = 0;
	char rstate = 0;
	int64_t now = rl_now_s();

	st = cat_stmt(db, "DELETE FROM locks WHERE rule_id=? AND did_id=? AND rse_num=?");
	if (!st)
		return db->err.code;
	sqldrv_bind_text(st, 1, rule_id, -1);
	sqldrv_bind_int64(st, 2, did);
	sqldrv_bind_int64(st, 3, rse);
	if ((rc = rl_step_done(db, st, "deleting a lock")))
		return rc;
	st = cat_stmt(db, "SELECT lock_cnt, state FROM replicas WHERE did_id=? AND rse_num=?");
	if (!st)
		return db->err.code;
	sqldrv_bind_int64(st, 1, did);
	sqldrv_bind_int64(st, 2, rse);
	if (sqldrv_step(st) == SQLDRV_ROW) {
		lock_cnt = sqldrv_col_int64(st, 0);
		rstate = cat_col_text(st, 1)[0];
	}
	sqldrv_reset(st);
	if (rstate) {
		/* Was this the last lock asking for a copy in flight? */
		if (state == 'R') {
			st = cat_stmt(db, "SELECT count(*) FROM locks WHERE did_id=? AND rse_num=? AND state='R'");
			if (!st)
				return db->err.code;
			sqldrv_bind_int64(st, 1, did);
			sqldrv_bind_int64(st, 2, rse);
			rl_query_i64(db, st, &others, NULL);
		}
		if (state == 'R' && others == 0) {
			/* cancel the queued transfer; the copy is not wanted any more */
			st = cat_stmt(db, "DELETE FROM requests WHERE did_id=? AND dest_rse_num=? AND state='Q'");
			if (!st)
				return db->err.code;
			sqldrv_bind_int64(st, 1, did);
			sqldrv_bind_int64(st, 2, rse);
			if ((rc = rl_step_done(db, st, "cancelling a request")))
				return rc;
			if (rstate == 'C')
				rstate = 'U';
		}
		st = cat_stmt(db, "UPDATE replicas SET lock_cnt=max(lock_cnt-1,0), state=?1,"
				  " tombstone=CASE WHEN lock_cnt-1 > 0 THEN NULL WHEN ?2 OR ?1='U' THEN 1"
				  " ELSE coalesce(accessed_at, created_at) END, updated_at=?3"
				  " WHERE did_id=?4 AND rse_num=?5");
		if (!st)
			return db->err.code;
		sqldrv_bind_text(st, 1, (char[]){ rstate, 0 }, 1);
		sqldrv_bind_int64(st, 2, purge);
		sqldrv_bind_int64(st, 3, now);
		sqldrv_bind_int64(st, 4, did);
		sqldrv_bind_int64(st, 5, rse);
		if ((rc = rl_step_done(db, st, "unlocking a replica")))
			return rc;
	}
	(void)lock_cnt;
	rc = cat_counter_account(db, account, rse, -1, -bytes);
	if (rc == DM_OK && update_rule) {
		st = cat_stmt(db, "UPDATE rules SET locks_ok_cnt=locks_ok_cnt-(?1='O'),"
				  " locks_replicating_cnt=locks_replicating_cnt-(?1='R'),"
				  " locks_stuck_cnt=locks_stuck_cnt-(?1='S'), updated_at=?2 WHERE id=?3");
		if (!st)
			return db->err.code;
		sqldrv_bind_text(st, 1, (char[]){ state, 0 }, 1);
		sqldrv_bind_int64(st, 2, now);
		sqldrv_bind_text(st, 3, rule_id, -1);
		rc = rl_step_done(db, st, "updating rule counters");
	}
	return rc;
}

enum dm_status rl_delete_rule_locked(struct cat_db *db, const char *id)
{
	struct sqldrv_stmt *st;
	enum dm_status rc = DM_OK;
	char account[CAT_ACCOUNT_MAX + 1];
	int purge = 0, r;
	struct lock_ref *batch = dm_xmalloc(LOCK_BATCH * sizeof *batch);
	size_t n;

	st = cat_stmt(db, "SELECT account, purge_replicas FROM rules WHERE id=?");
	if (!st) {
		rc = db->err.code;
		goto out;
	}
	sqldrv_bind_text(st, 1, id, -1);
	r = sqldrv_step(st);
	if (r == SQLDRV_ROW) {
		dm_strlcpy(account, cat_col_text(st, 0), sizeof account);
		purge = (int)sqldrv_col_int64(st, 1);
	}
	sqldrv_reset(st);
	if (r != SQLDRV_ROW) {
		rc = cat_fail(db, DM_ENOENT, "RuleNotFound", "No replication rule found with id '%s'", id);
		goto out;
	}
	do {
		st = cat_stmt(db, "SELECT did_id, rse_num, bytes, state FROM locks WHERE rule_id=? LIMIT 512");
		if (!st) {
			rc = db->err.code;
			goto out;
		}
		sqldrv_bind_text(st, 1, id, -1);
		n = 0;
		while (n < LOCK_BATCH && sqldrv_step(st) == SQLDRV_ROW) {
			batch[n].did = sqldrv_col_int64(st, 0);
			batch[n].rse = sqldrv_col_int64(st, 1);
			batch[n].bytes = sqldrv_col_int64(st, 2);
			batch[n].state = cat_col_text(st, 3)[0];
			n++;
		}
		sqldrv_reset(st);
		for (size_t i = 0; i < n && rc == DM_OK; i++)
			rc = rl_remove_lock(db, id, account, batch[i].did, batch[i].rse, batch[i].state,
					 batch[i].bytes, purge, 0);
	} while (rc == DM_OK && n == LOCK_BATCH);
	if (rc)
		goto out;
	{
		static const char *const sqls[] = {
			"DELETE FROM dataset_locks WHERE rule_id=?",
			"UPDATE requests SET rule_id=NULL WHERE rule_id=?",
			"DELETE FROM rules WHERE id=?",
		};
		for (unsigned i = 0; i < DM_ARRAY_SIZE(sqls) && rc == DM_OK; i++) {
			st = cat_stmt(db, sqls[i]);
			if (!st) {
				rc = db->err.code;
				break;
			}
			sqldrv_bind_text(st, 1, id, -1);
			rc = rl_step_done(db, st, "deleting a rule");
		}
	}
out:
	free(batch);
	return rc;
}

static enum dm_status rule_delete_now_once(struct cat_db *db, const char *id)
{
	enum dm_status rc = cat_tx_begin(db);

	if (rc)
		return rc;
	rc = rl_delete_rule_locked(db, id);
	return cat_tx_end(db, rc);
}

enum dm_status cat_rule_delete_now(struct cat_db *db, const char *id)
{
	CAT_REMOTE(db, rule_delete_now, id);
	enum dm_status rc;
	int attempt = 0;

	do
		rc = rule_delete_now_once(db, id);
	while (cat_redo(db, rc, &attempt));
	return rc;
}

static enum dm_status rule_owner_check(struct cat_db *db, const char *id, int *locked)
{
	struct sqldrv_stmt *st = cat_stmt(db, "SELECT account, locked FROM rules WHERE id=?");
	int r, own = 0;

	if (!st)
		return db->err.code;
	sqldrv_bind_text(st, 1, id, -1);
	r = sqldrv_step(st);
	if (r == SQLDRV_ROW) {
		own = !strcmp(cat_col_text(st, 0), cat_issuer(db));
		if (locked)
			*locked = (int)sqldrv_col_int64(st, 1);
	}
	sqldrv_reset(st);
	if (r != SQLDRV_ROW)
		return cat_fail(db, DM_ENOENT, "RuleNotFound", "No replication rule found with id '%s'", id);
	if (!own && !cat_issuer_is_admin(db))
		return cat_fail(db, DM_EPERM, "AccessDenied", "Account %s can not change rule %s of another account",
				cat_issuer(db), id);
	return DM_OK;
}

static enum dm_status rule_delete_once(struct cat_db *db, const char *id, int purge, int64_t delay)
{
	enum dm_status rc = cat_tx_begin(db);
	struct sqldrv_stmt *st;
	int locked = 0;
	int64_t now = rl_now_s();

	if (rc)
		return rc;
	if (delay < 0 || delay > DM_DURATION_MAX) {
		rc = cat_fail(db, DM_EINVAL, "InputValidationError",
			      "delay must be from 0 to " DM_DURATION_MAX_STR " seconds (100 years), not %lld",
			      (long long)delay);
		goto out;
	}
	rc = rule_owner_check(db, id, &locked);
	if (rc)
		goto out;
	if (locked) {
		rc = cat_fail(db, DM_ECONFLICT, "UnsupportedOperation",
			      "The replication rule %s is locked and has to be unlocked before it can be deleted", id);
		goto out;
	}
	st = cat_stmt(db, "UPDATE rules SET expires_at=min(coalesce(expires_at, ?1), ?1),"
			  " purge_replicas=CASE WHEN ?2 < 0 THEN purge_replicas ELSE ?2 END, updated_at=?3"
			  " WHERE id=?4");
	if (!st) {
		rc = db->err.code;
		goto out;
	}
	sqldrv_bind_int64(st, 1, dm_time_add(now, delay));
	sqldrv_bind_int64(st, 2, purge);
	sqldrv_bind_int64(st, 3, now);
	sqldrv_bind_text(st, 4, id, -1);
	rc = rl_step_done(db, st, "deleting a rule");
	if (rc == DM_OK && delay <= 0)
		rc = rl_delete_rule_locked(db, id);
out:
	return cat_tx_end(db, rc);
}

enum dm_status cat_rule_delete(struct cat_db *db, const char *id, int purge, int64_t delay)
{
	CAT_REMOTE(db, rule_delete, id, purge, delay);
	enum dm_status rc;
	int attempt = 0;

	do
		rc = rule_delete_once(db, id, purge, delay);
	while (cat_redo(db, rc, &attempt));
	return rc;
}

static enum dm_status rule_update_once(struct cat_db *db, const char *id, const char *key,
				       const char *value)
{
	enum dm_status rc;
	struct sqldrv_stmt *st = NULL;
	int64_t v = 0;
	int64_t now = rl_now_s();

	if (!key || !value)
		return cat_fail(db, DM_EINVAL, "InputValidationError", "update-rule needs an option and a value");
	rc = cat_tx_begin(db);
	if (rc)
		return rc;
	rc = rule_owner_check(db, id, NULL);
	if (rc)
		goto out;
	if (!strcmp(key, "lifetime")) {
		if (dm_parse_int(value, -1, DM_DURATION_MAX, &v)) {
			rc = cat_fail(db, DM_EINVAL, "InputValidationError",
				      "lifetime must be seconds from 0 to " DM_DURATION_MAX_STR
				      " (100 years), or -1 for none, not '%s'", value);
			goto out;
		}
		st = cat_stmt(db, "UPDATE rules SET expires_at=CASE WHEN ?1 < 0 THEN NULL ELSE ?3 END,"
				  " updated_at=?2 WHERE id=?4");
		if (st) {
			sqldrv_bind_int64(st, 1, v);
			sqldrv_bind_int64(st, 2, now);
			sqldrv_bind_int64(st, 3, dm_time_add(now, v));
			sqldrv_bind_text(st, 4, id, -1);
		}
	} else if (!strcmp(key, "locked") || !strcmp(key, "purge_replicas")) {
		int b;
		if (!strcasecmp(value, "true") || !strcmp(value, "1"))
			b = 1;
		else if (!strcasecmp(value, "false") || !strcmp(value, "0"))
			b = 0;
		else {
			rc = cat_fail(db, DM_EINVAL, "InputValidationError", "%s takes true or false, not '%s'", key, value);
			goto out;
		}
		st = !strcmp(key, "locked") ? cat_stmt(db, "UPDATE rules SET locked=?1, updated_at=?2 WHERE id=?3")
					    : cat_stmt(db, "UPDATE rules SET purge_replicas=?1, updated_at=?2 WHERE id=?3");
		if (st) {
			sqldrv_bind_int64(st, 1, b);
			sqldrv_bind_int64(st, 2, now);
			sqldrv_bind_text(st, 3, id, -1);
		}
	} else if (!strcmp(key, "comment") || !strcmp(key, "activity") ||
		   !strcmp(key, "source_replica_expression")) {
		struct dm_err e;
		if (!strcmp(key, "source_replica_expression") && *value && cat_rse_expr_check(value, &e)) {
			rc = cat_fail(db, DM_EINVAL, "InvalidSourceReplicaExpression", "%s", e.msg);
			goto out;
		}
		if (strlen(value) > 250) {
			rc = cat_fail(db, DM_EINVAL, "InputValidationError", "%s longer than 250 characters", key);
			goto out;
		}
		st = !strcmp(key, "comment") ? cat_stmt(db, "UPDATE rules SET comments=?1, updated_at=?2 WHERE id=?3")
		     : !strcmp(key, "activity") ? cat_stmt(db, "UPDATE rules SET activity=?1, updated_at=?2 WHERE id=?3")
		     : cat_stmt(db, "UPDATE rules SET source_replica_expression=nullif(?1,''), updated_at=?2 WHERE id=?3");
		if (st) {
			sqldrv_bind_text(st, 1, value, -1);
			sqldrv_bind_int64(st, 2, now);
			sqldrv_bind_text(st, 3, id, -1);
		}
	} else if (!strcmp(key, "priority")) {
		if (dm_parse_int(value, 0, 5, &v)) {
			rc = cat_fail(db, DM_EINVAL, "InputValidationError", "priority must be 0..5, not '%s'", value);
			goto out;
		}
		st = cat_stmt(db, "UPDATE rules SET priority=?1, updated_at=?2 WHERE id=?3");
		if (st) {
			sqldrv_bind_int64(st, 1, v);
			sqldrv_bind_int64(st, 2, now);
			sqldrv_bind_text(st, 3, id, -1);
		}
	} else if (!strcmp(key, "state")) {
		/* STUCK asks the repairer to look at it now; SUSPENDED parks it. */
		if (strcasecmp(value, "STUCK") && strcasecmp(value, "SUSPENDED")) {
			rc = cat_fail(db, DM_EINVAL, "InputValidationError", "state can only be set to STUCK or SUSPENDED, not '%s'", value);
			goto out;
		}
		st = cat_stmt(db, "UPDATE rules SET state=?1, stuck_at=coalesce(stuck_at, ?2),"
				  " updated_at=0 WHERE id=?3");
		if (st) {
			sqldrv_bind_text(st, 1, toupper((unsigned char)value[1]) == 'T' ? "S" : "U", -1);
			sqldrv_bind_int64(st, 2, now);
			sqldrv_bind_text(st, 3, id, -1);
		}
	} else {
		rc = cat_fail(db, DM_EINVAL, "InputValidationError",
			      "'%s' is not a rule option (lifetime, locked, comment, activity, priority, purge_replicas, state, source_replica_expression)",
			      key);
		goto out;
	}
	if (!st)
		rc = db->err.code;
	else
		rc = rl_step_done(db, st, "updating a rule");
out:
	return cat_tx_end(db, rc);
}

enum dm_status cat_rule_update(struct cat_db *db, const char *id, const char *key, const char *value)
{
	CAT_REMOTE(db, rule_update, id, key, value);
	enum dm_status rc;
	int attempt = 0;

	do
		rc = rule_update_once(db, id, key, value);
	while (cat_redo(db, rc, &attempt));
	return rc;
}

struct count_acc {
	cat_lock_count_cb cb;
	void *ud;
};

enum dm_status cat_rule_lock_counts(struct cat_db *db, const char *id, cat_lock_count_cb cb, void *ud)
{
	CAT_REMOTE(db, rule_lock_counts, id, cb, ud);
	struct sqldrv_stmt *st = cat_stmt(db, "SELECT s.rse, sum(l.state='O'), sum(l.state='R'), sum(l.state='S')"
				       " FROM locks l JOIN rses s ON s.num=l.rse_num WHERE l.rule_id=?"
				       " GROUP BY s.rse ORDER BY s.rse");
	int r;

	if (!st)
		return db->err.code;
	sqldrv_bind_text(st, 1, id, -1);
	while ((r = sqldrv_step(st)) == SQLDRV_ROW) {
		struct cat_lock_count c = { cat_col_text(st, 0), sqldrv_col_int64(st, 1),
					    sqldrv_col_int64(st, 2), sqldrv_col_int64(st, 3) };
		if (cb(ud, &c))
			break;
	}
	sqldrv_reset(st);
	if (r != SQLDRV_ROW && r != SQLDRV_DONE)
		return cat_dberr(db, "counting locks");
	return DM_OK;
}

enum dm_status cat_rule_list_locks(struct cat_db *db, const char *id, cat_lock_cb cb, void *ud)
{
	CAT_REMOTE(db, rule_list_locks, id, cb, ud);
	struct sqldrv_stmt *st = cat_stmt(db, "SELECT d.scope, d.name, s.rse, l.state, l.bytes FROM locks l"
				       " JOIN dids d ON d.id=l.did_id JOIN rses s ON s.num=l.rse_num"
				       " WHERE l.rule_id=? ORDER BY d.scope, d.name, s.rse");
	int r;

	if (!st)
		return db->err.code;
	sqldrv_bind_text(st, 1, id, -1);
	while ((r = sqldrv_step(st)) == SQLDRV_ROW) {
		struct cat_lock l = { cat_col_text(st, 0), cat_col_text(st, 1), cat_col_text(st, 2), id,
				      (enum cat_lock_state)rl_code_index(rl_lock_codes, cat_col_text(st, 3)),
				      (uint64_t)sqldrv_col_int64(st, 4) };
		if (cb(ud, &l))
			break;
	}
	sqldrv_reset(st);
	if (r != SQLDRV_ROW && r != SQLDRV_DONE)
		return cat_dberr(db, "listing locks");
	return DM_OK;
}
