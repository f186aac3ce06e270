/* SPDX-License-Identifier: Apache-2.0 */
/*
 * request.c - transfer requests (engine.h): one row per (file, destination
 * RSE) while QUEUED or SUBMITTED; finished ones move to requests_history.
 * cat_req_claim() flips QUEUED -> SUBMITTED atomically (on PostgreSQL rows
 * another daemon holds are skipped: FOR UPDATE SKIP LOCKED), so two
 * conveyors never claim the same request; requests of a conveyor that is
 * gone go back to the queue; cat_req_finish() records the outcome and its
 * consequences for replicas, locks and rules (Rucio's fate of a request:
 * policy.h); sources are ranked by distance.  Also list-transfers,
 * distances and replicas declared bad.
 */
#include "engine.h"
#include "catalog_i.h"
#include "policy.h"
#include "rule_i.h"
#include "dmcheck.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* requests                                                            */

#define REQ_COLS "q.id, d.scope, d.name, s.rse, q.rule_id, q.activity, q.state, q.bytes, q.adler32," \
		 " q.md5, q.retry_count, q.err_msg, src.rse, q.last_processed_by, q.requested_at," \
		 " q.submitted_at, q.transferred_at, q.updated_at, r.source_replica_expression," \
		 " r.request_id"

static void req_from_row(struct sqldrv_stmt *st, struct cat_request *r)
{
	memset(r, 0, sizeof *r);
	r->id = cat_col_text(st, 0);
	r->scope = cat_col_text(st, 1);
	r->name = cat_col_text(st, 2);
	r->dest_rse = cat_col_text(st, 3);
	r->rule_id = cat_col_text(st, 4);
	r->activity = cat_col_text(st, 5);
	r->state = (enum cat_req_state)rl_code_index(rl_req_codes, cat_col_text(st, 6));
	r->bytes = (uint64_t)sqldrv_col_int64(st, 7);
	r->adler32 = cat_col_text(st, 8);
	r->md5 = cat_col_text(st, 9);
	r->retry_count = (int)sqldrv_col_int64(st, 10);
	r->err_msg = cat_col_text(st, 11);
	r->source_rse = cat_col_text(st, 12);
	r->last_processed_by = cat_col_text(st, 13);
	r->requested_at = sqldrv_col_int64(st, 14);
	r->submitted_at = sqldrv_col_int64(st, 15);
	r->transferred_at = sqldrv_col_int64(st, 16);
	r->updated_at = sqldrv_col_int64(st, 17);
	r->source_replica_expression = cat_col_text(st, 18);
	r->request_id = cat_col_text(st, 19);
}

enum dm_status cat_req_claim(struct cat_db *db, const char *worker_name, int limit, int worker,
			     int nworkers, cat_request_cb cb, void *ud)
{
	struct sqldrv_stmt *st;
	struct id_list l;
	enum dm_status rc = cat_tx_begin(db);
	int64_t now = rl_now_s();

	if (rc)
		return rc;
	/* Two daemon processes on one PostgreSQL never claim the same request:
	 * rows another claimer holds are skipped, and the outer state test is
	 * checked again after any row-lock wait.  SQLite has one writer. */
	st = cat_stmt(db, cat_is_pg(db)
			  ? "WITH c AS MATERIALIZED (SELECT id FROM requests WHERE state='Q' AND"
			    " (?3 <= 1 OR didfs_hash(id) % ?3 = ?4) ORDER BY priority, requested_at LIMIT ?5"
			    " FOR UPDATE SKIP LOCKED)"
			    " UPDATE requests SET state='S', last_processed_by=?1, submitted_at=?2, updated_at=?2"
			    " FROM c WHERE requests.id=c.id AND requests.state='Q' RETURNING requests.id"
			  : "UPDATE requests SET state='S', last_processed_by=?1, submitted_at=?2, updated_at=?2"
			    " WHERE id IN (SELECT id FROM requests WHERE state='Q' AND"
			    " (?3 <= 1 OR didfs_hash(id) % ?3 = ?4) ORDER BY priority, requested_at LIMIT ?5)"
			    " RETURNING id");
	if (!st)
		return cat_tx_end(db, db->err.code);
	sqldrv_bind_text(st, 1, worker_name, -1);
	sqldrv_bind_int64(st, 2, now);
	sqldrv_bind_int64(st, 3, nworkers);
	sqldrv_bind_int64(st, 4, worker);
	sqldrv_bind_int64(st, 5, limit);
	rl_collect_ids(db, st, limit, &l);
	for (size_t i = 0; i < l.n && rc == DM_OK; i++) /* transfer-submitted (outbox.c) */
		rc = cat_outbox_transfer(db, l.ids[i], "transfer-submitted", NULL);
	rc = cat_tx_end(db, rc);
	for (size_t i = 0; i < l.n && rc == DM_OK; i++) {
		struct cat_request r;
		st = cat_stmt(db, "SELECT " REQ_COLS " FROM requests q JOIN dids d ON d.id=q.did_id"
				  " JOIN rses s ON s.num=q.dest_rse_num LEFT JOIN rses src ON src.num=q.source_rse_num"
				  " LEFT JOIN rules r ON r.id=q.rule_id WHERE q.id=?");
		if (!st) {
			rc = db->err.code;
			break;
		}
		sqldrv_bind_text(st, 1, l.ids[i], -1);
		if (sqldrv_step(st) == SQLDRV_ROW) {
			req_from_row(st, &r);
			cb(ud, &r);
		}
		sqldrv_reset(st);
	}
	rl_id_list_free(&l);
	return rc;
}

enum dm_status cat_req_requeue_orphans(struct cat_db *db, const char *executable, int64_t max_age,
				       int64_t live_seconds, cat_alive_cb alive, void *alive_ud,
				       int *done)
{
	struct sqldrv_stmt *st;
	char **who = NULL;
	size_t n = 0;
	enum dm_status rc;
	int64_t now = rl_now_s();

	*done = 0;
	/* one liveness check per claimant, not per request */
	st = cat_stmt(db, "SELECT DISTINCT coalesce(last_processed_by, '') FROM requests WHERE state='S'");
	if (!st)
		return db->err.code;
	while (n < 4096 && sqldrv_step(st) == SQLDRV_ROW) {
		who = dm_xrealloc(who, (n + 1) * sizeof *who);
		who[n++] = dm_xstrdup(cat_col_text(st, 0));
	}
	sqldrv_reset(st);
	rc = cat_tx_begin(db);
	if (rc)
		goto out;
	for (size_t i = 0; i < n && rc == DM_OK; i++) {
		if (*who[i] && cat_hb_is_live(db, executable, who[i], live_seconds, alive, alive_ud))
			continue;
		st = cat_stmt(db, "UPDATE requests SET state='Q', last_processed_by=NULL, updated_at=?"
				  " WHERE state='S' AND coalesce(last_processed_by, '')=?");
		if (!st) {
			rc = db->err.code;
			break;
		}
		sqldrv_bind_int64(st, 1, now);
		sqldrv_bind_text(st, 2, who[i], -1);
		rc = rl_step_done(db, st, "requeueing requests");
		*done += sqldrv_changes(db->sql);
	}
	if (rc == DM_OK && max_age > 0) {
		/* and whatever has been in flight for too long, whoever holds it */
		st = cat_stmt(db, "UPDATE requests SET state='Q', last_processed_by=NULL, updated_at=?1"
				  " WHERE state='S' AND submitted_at < ?1 - ?2");
		if (!st) {
			rc = db->err.code;
		} else {
			sqldrv_bind_int64(st, 1, now);
			sqldrv_bind_int64(st, 2, max_age);
			rc = rl_step_done(db, st, "requeueing old requests");
			*done += sqldrv_changes(db->sql);
		}
	}
	rc = cat_tx_end(db, rc);
out:
	for (size_t i = 0; i < n; i++)
		free(who[i]);
	free(who);
	return rc;
}

/* Move a request to history with a final state. */
static enum dm_status req_archive(struct cat_db *db, const char *id, char state, const char *err)
{
	struct sqldrv_stmt *st = cat_stmt(db, "INSERT INTO requests_history(id, did_id, dest_rse_num,"
				       " source_rse_num, rule_id, activity, state, retry_count, err_msg, bytes,"
				       " account, last_processed_by, requested_at, submitted_at, transferred_at,"
				       " created_at, updated_at) SELECT id, did_id, dest_rse_num, source_rse_num,"
				       " rule_id, activity, ?2, retry_count, coalesce(?3, err_msg), bytes, account,"
				       " last_processed_by, requested_at, submitted_at, ?4, created_at, ?4"
				       " FROM requests WHERE id=?1 ON CONFLICT(id) DO UPDATE SET did_id=excluded.did_id,"
				       " dest_rse_num=excluded.dest_rse_num, source_rse_num=excluded.source_rse_num,"
				       " rule_id=excluded.rule_id, activity=excluded.activity, state=excluded.state,"
				       " retry_count=excluded.retry_count, err_msg=excluded.err_msg,"
				       " bytes=excluded.bytes, account=excluded.account,"
				       " last_processed_by=excluded.last_processed_by,"
				       " requested_at=excluded.requested_at, submitted_at=excluded.submitted_at,"
				       " transferred_at=excluded.transferred_at, created_at=excluded.created_at,"
				       " updated_at=excluded.updated_at");
	enum dm_status rc;

	if (!st)
		return db->err.code;
	sqldrv_bind_text(st, 1, id, -1);
	sqldrv_bind_text(st, 2, (char[]){ state, 0 }, 1);
	sqldrv_bind_text(st, 3, err, -1);
	sqldrv_bind_int64(st, 4, rl_now_s());
	if ((rc = rl_step_done(db, st, "archiving a request")))
		return rc;
	st = cat_stmt(db, "DELETE FROM requests WHERE id=?");
	if (!st)
		return db->err.code;
	sqldrv_bind_text(st, 1, id, -1);
	return rl_step_done(db, st, "archiving a request");
}

/* Move every lock on (did, rse) not in `to` into `to`, with rule counters and
 * states; error goes to rules that become STUCK. */
static enum dm_status locks_transition(struct cat_db *db, int64_t did, int64_t rse,
				       enum cat_lock_state to_state, const char *error)
{
	struct sqldrv_stmt *st = cat_stmt(db, "SELECT rule_id, state FROM locks WHERE did_id=? AND rse_num=? AND state!=?");
	const char to = rl_lock_codes[to_state]; /* the row's letter */
	struct id_list rules;
	char *states;
	enum dm_status rc = DM_OK;
	int64_t now = rl_now_s();

	if (!st)
		return db->err.code;
	sqldrv_bind_int64(st, 1, did);
	sqldrv_bind_int64(st, 2, rse);
	sqldrv_bind_text(st, 3, (char[]){ to, 0 }, 1);
	/* the state letter rides in nums via a second pass */
	rl_collect_ids(db, st, 1000, &rules);
	states = dm_xcalloc(rules.n + 1, 1);
	for (size_t i = 0; i < rules.n; i++) {
		st = cat_stmt(db, "SELECT state FROM locks WHERE rule_id=? AND did_id=? AND rse_num=?");
		if (!st) {
			rc = db->err.code;
			goto out;
		}
		sqldrv_bind_text(st, 1, rules.ids[i], -1);
		sqldrv_bind_int64(st, 2, did);
		sqldrv_bind_int64(st, 3, rse);
		if (sqldrv_step(st) == SQLDRV_ROW)
			states[i] = cat_col_text(st, 0)[0];
		sqldrv_reset(st);
	}
	for (size_t i = 0; i < rules.n && rc == DM_OK; i++) {
		if (!states[i] || states[i] == to)
			continue;
		st = cat_stmt(db, "UPDATE locks SET state=?, updated_at=? WHERE rule_id=? AND did_id=? AND rse_num=?");
		if (!st) {
			rc = db->err.code;
			break;
		}
		sqldrv_bind_text(st, 1, (char[]){ to, 0 }, 1);
		sqldrv_bind_int64(st, 2, now);
		sqldrv_bind_text(st, 3, rules.ids[i], -1);
		sqldrv_bind_int64(st, 4, did);
		sqldrv_bind_int64(st, 5, rse);
		if ((rc = rl_step_done(db, st, "updating a lock")))
			break;
		st = cat_stmt(db, "UPDATE rules SET locks_ok_cnt=locks_ok_cnt-(?1='O')+(?2='O'),"
				  " locks_replicating_cnt=locks_replicating_cnt-(?1='R')+(?2='R'),"
				  " locks_stuck_cnt=locks_stuck_cnt-(?1='S')+(?2='S'), updated_at=?3 WHERE id=?4");
		if (!st) {
			rc = db->err.code;
			break;
		}
		sqldrv_bind_text(st, 1, (char[]){ states[i], 0 }, 1);
		sqldrv_bind_text(st, 2, (char[]){ to, 0 }, 1);
		sqldrv_bind_int64(st, 3, now);
		sqldrv_bind_text(st, 4, rules.ids[i], -1);
		if ((rc = rl_step_done(db, st, "updating rule counters")))
			break;
		rc = rl_rule_state_update(db, rules.ids[i], to_state == CAT_LOCK_STUCK ? error : NULL);
	}
out:
	free(states);
	rl_id_list_free(&rules);
	return rc;
}

enum dm_status cat_locks_on_replica_state(struct cat_db *db, int64_t did, int64_t rse,
					  enum cat_replica_state state)
{
	enum cat_lock_state to;

	if (!cat_policy_locks_after_replica(state, &to))
		return DM_OK;
	return locks_transition(db, did, rse, to,
				to == CAT_LOCK_STUCK ? "the replica was declared unavailable" : NULL);
}

enum dm_status cat_req_finish(struct cat_db *db, const char *id, const char *worker,
			      enum cat_req_state state, const char *source_rse, const char *err_msg,
			      int max_retries)
{
	struct sqldrv_stmt *st;
	enum dm_status rc = cat_tx_begin(db);
	int64_t did = 0, dest = 0, src = 0, now = rl_now_s();
	int retry = 0, r, holder_ok = 0;
	char cur = 0;
	struct cat_policy_outcome fate;

	if (rc)
		return rc;
	st = cat_stmt(db, "SELECT did_id, dest_rse_num, retry_count, state,"
			  " coalesce(last_processed_by, '') FROM requests WHERE id=?");
	if (!st) {
		rc = db->err.code;
		goto out;
	}
	sqldrv_bind_text(st, 1, id, -1);
	r = sqldrv_step(st);
	if (r == SQLDRV_ROW) {
		did = sqldrv_col_int64(st, 0);
		dest = sqldrv_col_int64(st, 1);
		retry = (int)sqldrv_col_int64(st, 2);
		cur = cat_col_text(st, 3)[0];
		holder_ok = !worker || !strcmp(worker, cat_col_text(st, 4));
	}
	sqldrv_reset(st);
	if (r != SQLDRV_ROW) {
		rc = cat_fail(db, DM_ENOENT, "RequestNotFound", "No request with id '%s' (cancelled?)", id);
		goto out;
	}
	/* A claimant that was taken for dead may not overrule the one that
	 * holds the request now. */
	if (worker && (cur != 'S' || !holder_ok)) {
		rc = cat_fail(db, DM_ENOENT, "RequestNotFound",
			      "Request '%s' is no longer held by %s (state %s)", id, worker,
			      rl_req_names[rl_code_index(rl_req_codes, (char[]){ cur, 0 })]);
		goto out;
	}
	if (source_rse && *source_rse && cat_rse_num(db, source_rse, &src) == DM_OK) {
		st = cat_stmt(db, "UPDATE requests SET source_rse_num=? WHERE id=?");
		if (st) {
			sqldrv_bind_int64(st, 1, src);
			sqldrv_bind_text(st, 2, id, -1);
			rl_step_done(db, st, "recording the source");
		}
	}
	fate = cat_policy_request_fate(state, retry, max_retries);
	/* transfer-done / transfer-failed (outbox.c), before the request is archived */
	rc = cat_outbox_transfer(db, id, fate.fate == CAT_FATE_DONE ? "transfer-done" : "transfer-failed",
				 fate.fate == CAT_FATE_DONE ? NULL : (err_msg ? err_msg : "transfer failed"));
	if (rc)
		goto out;
	if (fate.fate == CAT_FATE_DONE) {
		rc = req_archive(db, id, rl_req_codes[CAT_REQ_DONE], NULL);
		if (rc)
			goto out;
		st = cat_stmt(db, "UPDATE replicas SET state='A', updated_at=?1, tombstone=CASE WHEN lock_cnt>0"
				  " THEN NULL ELSE tombstone END WHERE did_id=?2 AND rse_num=?3");
		if (!st) {
			rc = db->err.code;
			goto out;
		}
		sqldrv_bind_int64(st, 1, now);
		sqldrv_bind_int64(st, 2, did);
		sqldrv_bind_int64(st, 3, dest);
		if ((rc = rl_step_done(db, st, "making a replica available")))
			goto out;
		rc = locks_transition(db, did, dest, CAT_LOCK_OK, NULL);
		goto out;
	}
	if (fate.fate == CAT_FATE_RETRY) {
		st = cat_stmt(db, "UPDATE requests SET state='Q', retry_count=retry_count+1, err_msg=?,"
				  " last_processed_by=NULL, updated_at=? WHERE id=?");
		if (!st) {
			rc = db->err.code;
			goto out;
		}
		sqldrv_bind_text(st, 1, err_msg, -1);
		sqldrv_bind_int64(st, 2, now);
		sqldrv_bind_text(st, 3, id, -1);
		rc = rl_step_done(db, st, "retrying a request");
		goto out;
	}
	/* given up: FAILED after the last retry, or NO_SOURCES */
	rc = req_archive(db, id, rl_req_codes[fate.archived], err_msg);
	if (rc)
		goto out;
	st = cat_stmt(db, "UPDATE replicas SET state='U', updated_at=? WHERE did_id=? AND rse_num=? AND state='C'");
	if (!st) {
		rc = db->err.code;
		goto out;
	}
	sqldrv_bind_int64(st, 1, now);
	sqldrv_bind_int64(st, 2, did);
	sqldrv_bind_int64(st, 3, dest);
	if ((rc = rl_step_done(db, st, "marking a replica unavailable")))
		goto out;
	{
		char msg[300];
		snprintf(msg, sizeof msg, "%s: %.270s",
			 fate.archived == CAT_REQ_NO_SOURCES ? "NO_SOURCES" : "TRANSFER_FAILED",
			 err_msg ? err_msg : "transfer failed");
		rc = locks_transition(db, did, dest, CAT_LOCK_STUCK, msg);
	}
out:
	return cat_tx_end(db, rc);
}

enum dm_status cat_req_list(struct cat_db *db, unsigned state_mask, const char *rule_id,
			    cat_request_cb cb, void *ud)
{
	char states[8] = "";
	int ns = 0, r;
	struct sqldrv_stmt *st;

	if (!state_mask)
		state_mask = ~0u;
	for (int i = 0; i < 6; i++)
		if (state_mask & (1u << i))
			states[ns++] = rl_req_codes[i];
	st = cat_stmt(db, "SELECT * FROM (SELECT " REQ_COLS " FROM requests q JOIN dids d ON d.id=q.did_id"
			  " JOIN rses s ON s.num=q.dest_rse_num LEFT JOIN rses src ON src.num=q.source_rse_num"
			  " LEFT JOIN rules r ON r.id=q.rule_id WHERE instr(?1, q.state) > 0 AND"
			  " (?2 IS NULL OR q.rule_id=?2)"
			  " UNION ALL SELECT q.id, d.scope, d.name, s.rse, q.rule_id, q.activity, q.state, q.bytes,"
			  " NULL, NULL, q.retry_count, q.err_msg, src.rse, q.last_processed_by, q.requested_at,"
			  " q.submitted_at, q.transferred_at, q.updated_at, NULL, NULL FROM requests_history q"
			  " JOIN dids d ON d.id=q.did_id JOIN rses s ON s.num=q.dest_rse_num"
			  " LEFT JOIN rses src ON src.num=q.source_rse_num WHERE instr(?1, q.state) > 0 AND"
			  " (?2 IS NULL OR q.rule_id=?2)) t ORDER BY 15, 1");
	if (!st)
		return db->err.code;
	sqldrv_bind_text(st, 1, states, -1);
	sqldrv_bind_text(st, 2, rule_id, -1);
	while ((r = sqldrv_step(st)) == SQLDRV_ROW) {
		struct cat_request q;
		req_from_row(st, &q);
		if (cb(ud, &q))
			break;
	}
	sqldrv_reset(st);
	if (r != SQLDRV_ROW && r != SQLDRV_DONE)
		return cat_dberr(db, "listing transfers");
	return DM_OK;
}

enum dm_status cat_req_sources(struct cat_db *db, const char *request_id, cat_source_cb cb, void *ud)
{
	struct sqldrv_stmt *st;
	struct rule_ctx x;
	int64_t did = 0, dest = 0;
	int r;
	enum dm_status rc = DM_OK;

	memset(&x, 0, sizeof x);
	x.db = db;
	st = cat_stmt(db, "SELECT q.did_id, q.dest_rse_num, r.source_replica_expression FROM requests q"
			  " LEFT JOIN rules r ON r.id=q.rule_id WHERE q.id=?");
	if (!st)
		return db->err.code;
	sqldrv_bind_text(st, 1, request_id, -1);
	r = sqldrv_step(st);
	if (r == SQLDRV_ROW) {
		did = sqldrv_col_int64(st, 0);
		dest = sqldrv_col_int64(st, 1);
		if (cat_col_text(st, 2))
			x.src_expr = dm_xstrdup(cat_col_text(st, 2));
	}
	sqldrv_reset(st);
	if (r != SQLDRV_ROW)
		return cat_fail(db, DM_ENOENT, "RequestNotFound", "No request with id '%s'", request_id);
	if (x.src_expr && rl_load_source_set(&x) != DM_OK) {
		rl_ctx_free(&x);
		return db->err.code;
	}
	if (!(st = sqldrv_prepare(db->sql, "SELECT s.num, s.rse, coalesce(dist.distance, 10) FROM replicas rp"
				       " JOIN rses s ON s.num=rp.rse_num LEFT JOIN distances dist ON"
				       " dist.src_rse_num=rp.rse_num AND dist.dest_rse_num=?2"
				       " WHERE rp.did_id=?1 AND rp.rse_num!=?2 AND rp.state='A' AND"
				       " s.availability_read=1 AND s.deleted=0"
				       " ORDER BY max(coalesce(dist.distance,10),0), s.rse"))) {
		rl_ctx_free(&x);
		return cat_dberr(db, "listing sources");
	}
	sqldrv_bind_int64(st, 1, did);
	sqldrv_bind_int64(st, 2, dest);
	while ((r = sqldrv_step(st)) == SQLDRV_ROW) {
		if (!rl_src_allowed(&x, sqldrv_col_int64(st, 0)))
			continue;
		if (cb(ud, cat_col_text(st, 1), (int)sqldrv_col_int64(st, 2)))
			break;
	}
	if (r != SQLDRV_ROW && r != SQLDRV_DONE)
		rc = cat_dberr(db, "listing sources");
	sqldrv_reset(st);
	rl_ctx_free(&x);
	return rc;
}

enum dm_status cat_distance_set(struct cat_db *db, const char *src, const char *dst, int distance)
{
	int64_t s, d;
	enum dm_status rc = cat_tx_begin(db);
	struct sqldrv_stmt *st;

	if (rc)
		return rc;
	rc = cat_require_admin(db, "set distances");
	if (rc == DM_OK)
		rc = cat_rse_num(db, src, &s);
	if (rc == DM_OK)
		rc = cat_rse_num(db, dst, &d);
	if (rc)
		goto out;
	st = cat_stmt(db, "INSERT INTO distances(src_rse_num, dest_rse_num, distance) VALUES (?,?,?)"
			  " ON CONFLICT(src_rse_num, dest_rse_num) DO UPDATE SET distance=excluded.distance");
	if (!st) {
		rc = db->err.code;
		goto out;
	}
	sqldrv_bind_int64(st, 1, s);
	sqldrv_bind_int64(st, 2, d);
	sqldrv_bind_int64(st, 3, distance);
	rc = rl_step_done(db, st, "setting a distance");
out:
	return cat_tx_end(db, rc);
}

enum dm_status cat_replica_declare_bad(struct cat_db *db, const char *rse, const char *scope,
				       const char *name, const char *reason)
{
	int64_t did, num;
	enum dm_status rc = cat_tx_begin(db);

	if (rc)
		return rc;
	rc = cat_rse_num(db, rse, &num);
	if (rc == DM_OK)
		rc = cat_did_id(db, scope, name, &did, NULL);
	if (rc)
		goto out;
	rc = cat_replica_mark_bad(db, did, num, reason, rl_now_s());
	if (rc == DM_ENOENT)
		rc = cat_fail(db, DM_ENOENT, "ReplicaNotFound", "No replica of '%s:%s' on RSE '%s'",
			      scope, name, rse);
out:
	return cat_tx_end(db, rc);
}
