/* SPDX-License-Identifier: Apache-2.0 */
/*
 * judge.c - the judge's units of work (engine.h), following Rucio's
 * judge-evaluator, -injector, -repairer and -cleaner: re-evaluating rules
 * after DIDs were attached or detached (updated_dids), creating the locks of
 * asynchronous rules, requeueing stuck locks with a back-off (policy.h), and
 * removing expired rules.  Each pick is partitioned by the caller's worker
 * index (heartbeat.c) so several daemons share one queue.
 */
#include "engine.h"
#include "catalog_i.h"
#include "policy.h"
#include "rule_i.h"
#include "rse_expr.h"
#include "dmcheck.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* judge                                                               */

void rl_id_list_free(struct id_list *l)
{
	free(l->ids);
	free(l->nums);
}

/* Collect up to limit rows of (text id or int) from a query. */
enum dm_status rl_collect_ids(struct cat_db *db, struct sqldrv_stmt *st, int limit, struct id_list *l)
{
	int r;

	memset(l, 0, sizeof *l);
	l->ids = dm_xcalloc((size_t)limit + 1, sizeof *l->ids);
	l->nums = dm_xcalloc((size_t)limit + 1, sizeof *l->nums);
	while (l->n < (size_t)limit && (r = sqldrv_step(st)) == SQLDRV_ROW) {
		const char *t = cat_col_text(st, 0);
		dm_strlcpy(l->ids[l->n], t ? t : "", 33);
		l->nums[l->n] = sqldrv_col_int64(st, 0);
		if (sqldrv_col_count(st) > 1)
			l->nums[l->n] = sqldrv_col_int64(st, 1);
		l->n++;
	}
	sqldrv_reset(st);
	return DM_OK;
}

/* The ids of up to limit rows of this worker's partition: sql binds
 * ?1 = now, ?2 = number of workers, ?3 = this worker, ?4 = limit. */
enum dm_status rl_judge_pick(struct cat_db *db, const char *sql, int64_t now, int limit,
			     int worker, int nworkers, struct id_list *l)
{
	struct sqldrv_stmt *st = cat_stmt(db, sql);

	memset(l, 0, sizeof *l);
	if (!st)
		return db->err.code;
	sqldrv_bind_int64(st, 1, now);
	sqldrv_bind_int64(st, 2, nworkers);
	sqldrv_bind_int64(st, 3, worker);
	sqldrv_bind_int64(st, 4, limit);
	return rl_collect_ids(db, st, limit, l);
}

/* A rule that cannot be placed now is STUCK with the reason (the judge's
 * units of work), recorded in a transaction of its own after the failed
 * one was rolled back. */
static enum dm_status stuck_after_failure(struct cat_db *db, const char *rule_id, enum dm_status rc)
{
	struct dm_err e = *cat_error(db);
	char msg[300];

	snprintf(msg, sizeof msg, "%.40s: %.250s", e.cls, e.msg);
	cat_tx_end(db, rc);
	rc = cat_tx_begin(db);
	if (rc == DM_OK)
		rc = cat_tx_end(db, rl_rule_set_stuck(db, rule_id, msg));
	return rc;
}

static int placement_error(enum dm_status rc)
{
	return rc == DM_EQUOTA || rc == DM_EINVAL || rc == DM_EPERM;
}

/* Re-evaluate one rule for new content of `did` (attach). */
static enum dm_status evaluate_attach_rule(struct cat_db *db, const char *rule_id, int64_t did,
					   enum cat_did_type dtype)
{
	struct rule_ctx x;
	enum dm_status rc = rl_ctx_load(db, rule_id, &x, 1);
	int64_t *ds = NULL, chosen[16];
	size_t nds = 0;

	if (rc) {
		/* placement is impossible now: the rule is STUCK with the reason */
		struct dm_err e = *cat_error(db);
		char msg[300];
		snprintf(msg, sizeof msg, "%.40s: %.250s", e.cls, e.msg);
		rl_ctx_free(&x);
		if (e.code == DM_ENOENT && !strcmp(e.cls, "RuleNotFound"))
			return DM_OK;
		return rl_rule_set_stuck(db, rule_id, msg);
	}
	if (dtype == CAT_DID_DATASET) {
		if (x.grouping == CAT_GROUPING_ALL) {
			rc = rl_choose_all(&x, &did, 1, 1, chosen);
			if (rc == DM_OK)
				rc = rl_apply_dataset(&x, did, 1, chosen);
		} else {
			rc = rl_apply_dataset(&x, did, 1, NULL);
		}
	} else {
		/* new collections in a container: every dataset under them */
		struct sqldrv_stmt *st;
		struct id_list kids;
		if (!(st = sqldrv_prepare(db->sql, "SELECT c.child_id, c.child_id FROM contents c WHERE c.parent_id=?"
					       " AND c.rule_evaluation=1"))) {
			rc = cat_dberr(db, "listing new content");
			goto out;
		}
		sqldrv_bind_int64(st, 1, did);
		rl_collect_ids(db, st, 100000, &kids);
		sqldrv_reset(st);
		for (size_t k = 0; k < kids.n && rc == DM_OK; k++) {
			enum cat_did_type t = CAT_DID_DATASET;
			struct sqldrv_stmt *q = cat_stmt(db, "SELECT did_type FROM dids WHERE id=?");
			if (!q) {
				rc = db->err.code;
				break;
			}
			sqldrv_bind_int64(q, 1, kids.nums[k]);
			if (sqldrv_step(q) == SQLDRV_ROW)
				cat_did_type_from_code(cat_col_text(q, 0), &t);
			sqldrv_reset(q);
			free(ds);
			ds = NULL;
			rc = rl_datasets_under(db, kids.nums[k], t, &ds, &nds);
			if (rc)
				break;
			if (x.grouping == CAT_GROUPING_ALL && nds) {
				rc = rl_choose_all(&x, ds, nds, 0, chosen);
				for (size_t i = 0; i < nds && rc == DM_OK; i++)
					rc = rl_apply_dataset(&x, ds[i], 0, chosen);
			} else {
				for (size_t i = 0; i < nds && rc == DM_OK; i++)
					rc = rl_apply_dataset(&x, ds[i], 0, NULL);
			}
		}
		rl_id_list_free(&kids);
	}
	if (rc == DM_OK)
		rc = rl_ctx_flush(&x);
	if (rc == DM_OK)
		rc = rl_rule_state_update(db, rule_id, NULL);
	else if (rc == DM_EQUOTA || rc == DM_EINVAL || rc == DM_EPERM) {
		struct dm_err e = *cat_error(db);
		char msg[300];
		snprintf(msg, sizeof msg, "%.40s: %.250s", e.cls, e.msg);
		rc = rl_rule_set_stuck(db, rule_id, msg);
	}
out:
	free(ds);
	rl_ctx_free(&x);
	return rc;
}

/* Remove locks of a rule on files no longer under the rule's DID (detach). */
static enum dm_status evaluate_detach_rule(struct cat_db *db, const char *rule_id)
{
	struct sqldrv_stmt *st;
	enum dm_status rc;
	struct lock_ref *batch;
	char account[CAT_ACCOUNT_MAX + 1] = "";
	int64_t did = 0;
	size_t n = 0;
	int purge = 0;

	st = cat_stmt(db, "SELECT did_id, account, purge_replicas FROM rules WHERE id=?");
	if (!st)
		return db->err.code;
	sqldrv_bind_text(st, 1, rule_id, -1);
	if (sqldrv_step(st) == SQLDRV_ROW) {
		did = sqldrv_col_int64(st, 0);
		dm_strlcpy(account, cat_col_text(st, 1), sizeof account);
		purge = (int)sqldrv_col_int64(st, 2);
	}
	sqldrv_reset(st);
	if (!did)
		return DM_OK;
	rc = cat_exec(db, "CREATE TEMP TABLE IF NOT EXISTS judge_cover(id INTEGER PRIMARY KEY);"
			  "DELETE FROM judge_cover");
	if (rc)
		return rc;
	st = cat_stmt(db, "INSERT INTO judge_cover(id) WITH RECURSIVE tree(id) AS (SELECT ?1"
			  " UNION SELECT c.child_id FROM contents c JOIN tree t ON c.parent_id=t.id)"
			  " SELECT id FROM tree WHERE true ON CONFLICT DO NOTHING");
	if (!st)
		return db->err.code;
	sqldrv_bind_int64(st, 1, did);
	if ((rc = rl_step_done(db, st, "computing rule coverage")))
		return rc;
	batch = dm_xmalloc(LOCK_BATCH * sizeof *batch);
	do {
		st = cat_stmt(db, "SELECT l.did_id, l.rse_num, l.bytes, l.state FROM locks l WHERE l.rule_id=?"
				  " AND NOT EXISTS (SELECT 1 FROM judge_cover j WHERE j.id=l.did_id) LIMIT 512");
		if (!st) {
			rc = db->err.code;
			break;
		}
		sqldrv_bind_text(st, 1, rule_id, -1);
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
			rc = rl_remove_lock(db, rule_id, account, batch[i].did, batch[i].rse, batch[i].state,
					 batch[i].bytes, purge, 1);
	} while (rc == DM_OK && n == LOCK_BATCH);
	free(batch);
	if (rc == DM_OK) {
		st = cat_stmt(db, "DELETE FROM dataset_locks WHERE rule_id=? AND NOT EXISTS"
				  " (SELECT 1 FROM judge_cover j WHERE j.id=dataset_locks.did_id)");
		if (!st)
			return db->err.code;
		sqldrv_bind_text(st, 1, rule_id, -1);
		rc = rl_step_done(db, st, "deleting dataset locks");
	}
	if (rc == DM_OK)
		rc = rl_rule_state_update(db, rule_id, NULL);
	return rc;
}

enum dm_status cat_judge_evaluate(struct cat_db *db, int limit, int worker, int nworkers, int *done)
{
	struct sqldrv_stmt *st;
	struct id_list upd;
	enum dm_status rc = DM_OK;

	*done = 0;
	st = cat_stmt(db, "SELECT id, did_id FROM updated_dids WHERE ?1 <= 1 OR did_id % ?1 = ?2"
			  " ORDER BY id LIMIT ?3");
	if (!st)
		return db->err.code;
	sqldrv_bind_int64(st, 1, nworkers);
	sqldrv_bind_int64(st, 2, worker);
	sqldrv_bind_int64(st, 3, limit);
	rl_collect_ids(db, st, limit, &upd);
	for (size_t i = 0; i < upd.n; i++) {
		int64_t qid = 0, did = upd.nums[i];
		char action = 0;
		enum cat_did_type dtype = CAT_DID_DATASET;
		struct id_list rules;

		rc = cat_tx_begin(db);
		if (rc)
			break;
		st = cat_stmt(db, "SELECT u.id, u.rule_evaluation_action, d.did_type FROM updated_dids u"
				  " LEFT JOIN dids d ON d.id=u.did_id WHERE u.id=?");
		if (!st) {
			rc = cat_tx_end(db, db->err.code);
			break;
		}
		sqldrv_bind_int64(st, 1, (int64_t)strtoll(upd.ids[i], NULL, 10));
		if (sqldrv_step(st) == SQLDRV_ROW) {
			qid = sqldrv_col_int64(st, 0);
			action = cat_col_text(st, 1)[0];
			if (cat_col_text(st, 2))
				cat_did_type_from_code(cat_col_text(st, 2), &dtype);
			else
				action = 0; /* the DID is gone: nothing to evaluate */
		}
		sqldrv_reset(st);
		if (!qid) {
			cat_tx_end(db, DM_OK);
			continue;
		}
		/* rules on the DID and on all its ancestors */
		st = cat_stmt(db, "WITH RECURSIVE up(id) AS (SELECT ?1 UNION SELECT c.parent_id FROM contents c"
				  " JOIN up u ON c.child_id=u.id) SELECT r.id FROM up JOIN rules r ON r.did_id=up.id"
				  " WHERE r.state NOT IN ('U','W','I') ORDER BY r.created_at");
		if (!st) {
			rc = cat_tx_end(db, db->err.code);
			break;
		}
		sqldrv_bind_int64(st, 1, did);
		rl_collect_ids(db, st, 10000, &rules);
		for (size_t k = 0; k < rules.n && rc == DM_OK; k++) {
			if (action == 'A')
				rc = evaluate_attach_rule(db, rules.ids[k], did, dtype);
			else if (action == 'D')
				rc = evaluate_detach_rule(db, rules.ids[k]);
		}
		rl_id_list_free(&rules);
		if (rc == DM_OK && action == 'A') {
			st = cat_stmt(db, "UPDATE contents SET rule_evaluation=0 WHERE parent_id=? AND rule_evaluation=1");
			if (!st)
				rc = db->err.code;
			else {
				sqldrv_bind_int64(st, 1, did);
				rc = rl_step_done(db, st, "clearing rule evaluation flags");
			}
		}
		if (rc == DM_OK) {
			st = cat_stmt(db, "DELETE FROM updated_dids WHERE id=?");
			if (!st)
				rc = db->err.code;
			else {
				sqldrv_bind_int64(st, 1, qid);
				rc = rl_step_done(db, st, "dequeueing a DID update");
			}
		}
		rc = cat_tx_end(db, rc);
		if (rc)
			break;
		(*done)++;
	}
	rl_id_list_free(&upd);
	return rc;
}

enum dm_status cat_judge_inject(struct cat_db *db, int limit, int worker, int nworkers, int *done)
{
	struct id_list l;
	enum dm_status rc;

	*done = 0;
	rc = rl_judge_pick(db, "SELECT id FROM rules WHERE state='I' AND created_at<=?1 AND"
			    " (?2 <= 1 OR didfs_hash(id) % ?2 = ?3) ORDER BY created_at LIMIT ?4",
			rl_now_s(), limit, worker, nworkers, &l);
	for (size_t i = 0; i < l.n && rc == DM_OK; i++) {
		struct rule_ctx x;
		rc = cat_tx_begin(db);
		if (rc)
			break;
		rc = rl_ctx_load(db, l.ids[i], &x, 1);
		if (rc == DM_OK) {
			struct sqldrv_stmt *u = cat_stmt(db, "UPDATE rules SET state='R' WHERE id=? AND state='I'");
			if (u) {
				sqldrv_bind_text(u, 1, l.ids[i], -1);
				rc = rl_step_done(db, u, "injecting a rule");
			}
			if (rc == DM_OK)
				rc = rl_apply_rule(&x);
			if (rc == DM_OK)
				rc = rl_rule_state_update(db, l.ids[i], NULL);
		}
		rl_ctx_free(&x);
		if (placement_error(rc))
			rc = stuck_after_failure(db, l.ids[i], rc);
		else
			rc = cat_tx_end(db, rc);
		if (rc == DM_OK)
			(*done)++;
	}
	rl_id_list_free(&l);
	return rc;
}

enum dm_status cat_judge_repair(struct cat_db *db, int limit, int64_t min_age, int64_t suspend_after,
				int worker, int nworkers, int *done)
{
	int64_t now = rl_now_s();
	struct sqldrv_stmt *st;
	struct id_list l;
	enum dm_status rc;

	*done = 0;
	rc = rl_judge_pick(db, "SELECT id FROM rules WHERE state='S' AND updated_at<=?1 AND"
			    " (?2 <= 1 OR didfs_hash(id) % ?2 = ?3) ORDER BY updated_at LIMIT ?4",
			now - min_age, limit, worker, nworkers, &l);
	for (size_t i = 0; i < l.n && rc == DM_OK; i++) {
		struct rule_ctx x;
		int64_t stuck_at = 0, files = 0, total = 0;
		struct lock_ref *batch;
		size_t n;

		rc = cat_tx_begin(db);
		if (rc)
			break;
		st = cat_stmt(db, "SELECT stuck_at, locks_ok_cnt+locks_replicating_cnt+locks_stuck_cnt FROM rules"
				  " WHERE id=? AND state='S'");
		if (!st) {
			rc = cat_tx_end(db, db->err.code);
			break;
		}
		sqldrv_bind_text(st, 1, l.ids[i], -1);
		if (sqldrv_step(st) != SQLDRV_ROW) {
			sqldrv_reset(st);
			cat_tx_end(db, DM_OK);
			continue;
		}
		stuck_at = sqldrv_col_int64(st, 0);
		total = sqldrv_col_int64(st, 1);
		sqldrv_reset(st);
		if (stuck_at && stuck_at < now - suspend_after) {
			st = cat_stmt(db, "UPDATE rules SET state='U', updated_at=? WHERE id=?");
			if (st) {
				sqldrv_bind_int64(st, 1, now);
				sqldrv_bind_text(st, 2, l.ids[i], -1);
				rc = rl_step_done(db, st, "suspending a rule");
			}
			rc = cat_tx_end(db, rc);
			(*done)++;
			continue;
		}
		rc = rl_ctx_load(db, l.ids[i], &x, 1);
		if (rc) {
			rl_ctx_free(&x);
			rc = stuck_after_failure(db, l.ids[i], rc);
			(*done)++;
			continue;
		}
		/* stuck locks whose back-off has passed go back to REPLICATING */
		batch = dm_xmalloc(LOCK_BATCH * sizeof *batch);
		st = cat_stmt(db, "SELECT l.did_id, l.rse_num, l.bytes, l.updated_at, l.repair_cnt FROM locks l"
				  " WHERE l.rule_id=?1 AND l.state='S' AND l.updated_at <= ?2 - ?3");
		n = 0;
		if (st) {
			sqldrv_bind_text(st, 1, l.ids[i], -1);
			sqldrv_bind_int64(st, 2, now);
			sqldrv_bind_int64(st, 3, min_age > 0 ? min_age : 0);
			while (n < LOCK_BATCH && sqldrv_step(st) == SQLDRV_ROW) {
				if (!cat_policy_repair_due(now, sqldrv_col_int64(st, 3), min_age,
							   sqldrv_col_int64(st, 4)))
					continue; /* its back-off has not passed */
				batch[n].did = sqldrv_col_int64(st, 0);
				batch[n].rse = sqldrv_col_int64(st, 1);
				batch[n].bytes = sqldrv_col_int64(st, 2);
				n++;
			}
			sqldrv_reset(st);
		}
		for (size_t k = 0; k < n && rc == DM_OK; k++) {
			struct file_row f;
			int src = rl_has_source(&x, batch[k].did, batch[k].rse);
			struct sqldrv_stmt *q = cat_stmt(db, "SELECT id, bytes, adler32, md5 FROM dids WHERE id=?");
			if (!q) {
				rc = db->err.code;
				break;
			}
			sqldrv_bind_int64(q, 1, batch[k].did);
			if (sqldrv_step(q) != SQLDRV_ROW) {
				sqldrv_reset(q);
				continue;
			}
			rl_file_from_row(q, &f);
			sqldrv_reset(q);
			q = cat_stmt(db, "UPDATE locks SET state=CASE WHEN ?1 THEN 'R' ELSE 'S' END,"
					 " repair_cnt=repair_cnt+1, updated_at=?2 WHERE rule_id=?3 AND did_id=?4 AND rse_num=?5");
			if (!q) {
				rc = db->err.code;
				break;
			}
			sqldrv_bind_int64(q, 1, src);
			sqldrv_bind_int64(q, 2, now);
			sqldrv_bind_text(q, 3, l.ids[i], -1);
			sqldrv_bind_int64(q, 4, batch[k].did);
			sqldrv_bind_int64(q, 5, batch[k].rse);
			if ((rc = rl_step_done(db, q, "repairing a lock")))
				break;
			if (!src)
				continue;
			x.d_stuck--;
			x.d_repl++;
			q = cat_stmt(db, "UPDATE replicas SET state='C', updated_at=? WHERE did_id=? AND rse_num=?"
					 " AND state!='A'");
			if (!q) {
				rc = db->err.code;
				break;
			}
			sqldrv_bind_int64(q, 1, now);
			sqldrv_bind_int64(q, 2, batch[k].did);
			sqldrv_bind_int64(q, 3, batch[k].rse);
			if ((rc = rl_step_done(db, q, "repairing a replica")))
				break;
			rc = rl_queue_request(&x, &f, batch[k].rse);
		}
		free(batch);
		/* missing locks (files attached while the rule could not be placed) */
		if (rc == DM_OK) {
			st = cat_stmt(db, "WITH RECURSIVE tree(id) AS (SELECT ?1 UNION SELECT c.child_id FROM contents c"
					  " JOIN tree t ON c.parent_id=t.id) SELECT count(*) FROM tree t JOIN dids d"
					  " ON d.id=t.id AND d.did_type='F'");
			if (st) {
				sqldrv_bind_int64(st, 1, x.did_id);
				rl_query_i64(db, st, &files, NULL);
			}
			if (files * x.copies != total)
				rc = rl_apply_rule(&x);
		}
		if (rc == DM_OK)
			rc = rl_ctx_flush(&x);
		if (rc == DM_OK) {
			st = cat_stmt(db, "UPDATE rules SET updated_at=?, state='R' WHERE id=?");
			if (st) {
				sqldrv_bind_int64(st, 1, now);
				sqldrv_bind_text(st, 2, l.ids[i], -1);
				rc = rl_step_done(db, st, "repairing a rule");
			}
		}
		if (rc == DM_OK)
			rc = rl_rule_state_update(db, l.ids[i], NULL);
		rl_ctx_free(&x);
		if (placement_error(rc))
			rc = stuck_after_failure(db, l.ids[i], rc);
		else
			rc = cat_tx_end(db, rc);
		if (rc == DM_OK)
			(*done)++;
	}
	rl_id_list_free(&l);
	return rc;
}

enum dm_status cat_judge_clean(struct cat_db *db, int limit, int worker, int nworkers, int *done)
{
	struct id_list l;
	enum dm_status rc;

	*done = 0;
	/* a parent waiting for its child rule (child_rule_id) stays */
	rc = rl_judge_pick(db, "SELECT id FROM rules WHERE expires_at < ?1 AND locked=0 AND child_rule_id IS NULL AND"
			    " (?2 <= 1 OR didfs_hash(id) % ?2 = ?3) ORDER BY expires_at LIMIT ?4",
			rl_now_s(), limit, worker, nworkers, &l);
	for (size_t i = 0; i < l.n && rc == DM_OK; i++) {
		rc = cat_rule_delete_now(db, l.ids[i]);
		if (rc == DM_ENOENT)
			rc = DM_OK;
		else if (rc == DM_OK)
			(*done)++;
	}
	rl_id_list_free(&l);
	return rc;
}
