/* SPDX-License-Identifier: Apache-2.0 */
/*
 * reaper.c - the catalog's side of Rucio's reaper (replicas without locks
 * whose tombstone has passed, per RSE, greedy or by space) and undertaker
 * (expired DIDs: their rules removed, their content detached, the DIDs
 * deleted), both called by daemons/ through engine.h.
 */
#include "engine.h"
#include "catalog_i.h"
#include "policy.h"
#include "rule_i.h"
#include "dmcheck.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* reaper                                                              */

enum dm_status cat_reaper_rses(struct cat_db *db, cat_rse_cb cb, void *ud)
{
	struct sqldrv_stmt *st = cat_stmt(db, "SELECT rse FROM rses WHERE deleted=0 AND availability_delete=1 ORDER BY rse");
	enum dm_status rc = DM_OK;

	if (!st)
		return db->err.code;
	/* names first, then one cat_rse_get each (it reuses the handle) */
	{
		char **names = NULL;
		size_t n = 0;
		while (sqldrv_step(st) == SQLDRV_ROW) {
			names = dm_xrealloc(names, (n + 1) * sizeof *names);
			names[n++] = dm_xstrdup(cat_col_text(st, 0));
		}
		sqldrv_reset(st);
		for (size_t i = 0; i < n; i++) {
			if (rc == DM_OK)
				rc = cat_rse_get(db, names[i], cb, ud);
			free(names[i]);
		}
		free(names);
	}
	return rc;
}

enum dm_status cat_reaper_claim(struct cat_db *db, const char *rse, int greedy, int limit,
				cat_deletion_cb cb, void *ud)
{
	int64_t num, now = rl_now_s();
	enum dm_status rc = cat_tx_begin(db);
	struct sqldrv_stmt *st;
	struct id_list l;
	char rsename[CAT_RSE_MAX + 1];

	if (rc)
		return rc;
	rc = cat_rse_num(db, rse, &num);
	if (rc)
		return cat_tx_end(db, rc);
	dm_strlcpy(rsename, rse, sizeof rsename);
	/* The last AVAILABLE copy of a file that a request still needs stays. */
	st = cat_stmt(db, "UPDATE replicas SET state='B', tombstone=1, updated_at=?3"
			  " WHERE rse_num=?1 AND did_id IN (SELECT rp.did_id FROM replicas rp"
			  " WHERE rp.rse_num=?1 AND rp.lock_cnt=0 AND rp.tombstone IS NOT NULL AND"
			  " (CASE WHEN ?2 THEN rp.tombstone < ?3 ELSE rp.tombstone = 1 END) AND"
			  " (rp.state IN ('A','U','D') OR (rp.state='B' AND rp.updated_at < ?3 - 600)) AND"
			  " NOT EXISTS (SELECT 1 FROM requests q WHERE q.did_id=rp.did_id AND q.source_rse_num=?1"
			  " AND q.state IN ('Q','S')) AND"
			  " NOT (rp.state='A' AND EXISTS (SELECT 1 FROM requests q WHERE q.did_id=rp.did_id) AND"
			  " (SELECT count(*) FROM replicas x WHERE x.did_id=rp.did_id AND x.state='A') = 1)"
			  " ORDER BY rp.tombstone, rp.updated_at LIMIT ?4) RETURNING did_id, did_id");
	if (!st)
		return cat_tx_end(db, db->err.code);
	sqldrv_bind_int64(st, 1, num);
	sqldrv_bind_int64(st, 2, greedy);
	sqldrv_bind_int64(st, 3, now);
	sqldrv_bind_int64(st, 4, limit);
	rl_collect_ids(db, st, limit, &l);
	rc = cat_tx_end(db, DM_OK);
	for (size_t i = 0; i < l.n && rc == DM_OK; i++) {
		st = cat_stmt(db, "SELECT d.scope, d.name, rp.bytes, rp.path FROM replicas rp JOIN dids d"
				  " ON d.id=rp.did_id WHERE rp.did_id=? AND rp.rse_num=?");
		if (!st) {
			rc = db->err.code;
			break;
		}
		sqldrv_bind_int64(st, 1, l.nums[i]);
		sqldrv_bind_int64(st, 2, num);
		if (sqldrv_step(st) == SQLDRV_ROW) {
			struct cat_deletion d = { cat_col_text(st, 0), cat_col_text(st, 1), rsename,
						  (uint64_t)sqldrv_col_int64(st, 2), cat_col_text(st, 3) };
			cb(ud, &d);
		}
		sqldrv_reset(st);
	}
	rl_id_list_free(&l);
	return rc;
}

enum dm_status cat_reaper_done(struct cat_db *db, const char *rse, const char *scope, const char *name)
{
	int64_t did, num, bytes = 0;
	enum dm_status rc = cat_tx_begin(db);
	struct sqldrv_stmt *st;
	int found = 0;

	if (rc)
		return rc;
	rc = cat_rse_num(db, rse, &num);
	if (rc == DM_OK)
		rc = cat_did_id(db, scope, name, &did, NULL);
	if (rc)
		goto out;
	/* only if nobody locked it again meanwhile */
	st = cat_stmt(db, "SELECT bytes FROM replicas WHERE did_id=? AND rse_num=? AND state='B' AND lock_cnt=0");
	if (!st) {
		rc = db->err.code;
		goto out;
	}
	sqldrv_bind_int64(st, 1, did);
	sqldrv_bind_int64(st, 2, num);
	rl_query_i64(db, st, &bytes, &found);
	if (found)
		rc = cat_outbox_deletion(db, rse, scope, name, bytes, NULL); /* deletion-done */
	if (found && rc == DM_OK)
		rc = cat_replica_remove_row(db, did, num, bytes);
out:
	return cat_tx_end(db, rc);
}

/* ------------------------------------------------------------------ */
/* undertaker                                                          */

enum dm_status cat_undertaker_run(struct cat_db *db, int limit, int worker, int nworkers, int *done)
{
	struct sqldrv_stmt *st;
	struct id_list l;
	enum dm_status rc;

	*done = 0;
	rc = rl_judge_pick(db, "SELECT d.id, d.id FROM dids d WHERE d.expired_at < ?1 AND"
			    " NOT EXISTS (SELECT 1 FROM rules r WHERE r.did_id=d.id AND r.locked=1) AND"
			    " (?2 <= 1 OR d.id % ?2 = ?3) ORDER BY d.expired_at LIMIT ?4",
			rl_now_s(), limit, worker, nworkers, &l);
	for (size_t i = 0; i < l.n && rc == DM_OK; i++) {
		int64_t did = l.nums[i];
		struct id_list rules;
		char type = 0;

		rc = cat_tx_begin(db);
		if (rc)
			break;
		st = cat_stmt(db, "SELECT did_type FROM dids WHERE id=? AND expired_at < ?");
		if (st) {
			sqldrv_bind_int64(st, 1, did);
			sqldrv_bind_int64(st, 2, rl_now_s());
			if (sqldrv_step(st) == SQLDRV_ROW)
				type = cat_col_text(st, 0)[0];
			sqldrv_reset(st);
		}
		if (!type) {
			cat_tx_end(db, DM_OK);
			continue;
		}
		/* rules on the DID go, purging their replicas */
		st = cat_stmt(db, "SELECT id FROM rules WHERE did_id=?");
		if (!st) {
			rc = cat_tx_end(db, db->err.code);
			break;
		}
		sqldrv_bind_int64(st, 1, did);
		rl_collect_ids(db, st, 10000, &rules);
		for (size_t k = 0; k < rules.n && rc == DM_OK; k++) {
			struct sqldrv_stmt *u = cat_stmt(db, "UPDATE rules SET purge_replicas=1 WHERE id=?");
			if (u) {
				sqldrv_bind_text(u, 1, rules.ids[k], -1);
				rl_step_done(db, u, "purging");
			}
			rc = rl_delete_rule_locked(db, rules.ids[k]);
		}
		rl_id_list_free(&rules);
		if (rc == DM_OK && type == 'F') {
			/* a file goes with its replicas: mark them for the reaper;
			 * the last replica deleted deletes the DID */
			st = cat_stmt(db, "UPDATE replicas SET tombstone=1 WHERE did_id=? AND lock_cnt=0");
			if (st) {
				sqldrv_bind_int64(st, 1, did);
				rc = rl_step_done(db, st, "expiring replicas");
			}
			if (rc == DM_OK) {
				st = cat_stmt(db, "UPDATE dids SET expired_at=NULL WHERE id=?");
				if (st) {
					sqldrv_bind_int64(st, 1, did);
					rc = rl_step_done(db, st, "expiring a file");
				}
			}
		} else if (rc == DM_OK) {
			static const char *const sqls[] = {
				"DELETE FROM contents WHERE parent_id=?",
				"DELETE FROM contents WHERE child_id=?",
				"DELETE FROM did_meta WHERE did_id=?",
				"DELETE FROM updated_dids WHERE did_id=?",
				"DELETE FROM dids WHERE id=?",
			};
			for (unsigned k = 0; k < DM_ARRAY_SIZE(sqls) && rc == DM_OK; k++) {
				st = cat_stmt(db, sqls[k]);
				if (!st) {
					rc = db->err.code;
					break;
				}
				sqldrv_bind_int64(st, 1, did);
				rc = rl_step_done(db, st, "deleting an expired DID");
			}
		}
		rc = cat_tx_end(db, rc);
		if (rc == DM_OK)
			(*done)++;
	}
	rl_id_list_free(&l);
	return rc;
}
