/* SPDX-License-Identifier: Apache-2.0 */
/*
 * necromancer.c - bad replicas (Rucio's declare_bad_file_replicas and its
 * necromancer daemon), the catalog side.
 *
 * Declaring: cat_replicas_declare_bad() is the door for people (CLI
 * `declare-bad-replicas`, admin only; Rucio: root only): a BAD row in
 * bad_replicas with the reason and the declaring account, the replica BAD
 * and its locks STUCK, so the judge-repairer queues a new copy from a good
 * replica, as for the SUSPICIOUS declarations the mount and `download` make
 * when they see a checksum mismatch (manifest.c) and the conveyor makes for
 * a corrupted transfer source (cat_replica_declare_bad, rule.c).
 *
 * The necromancer (cat_necromancer_run, engine.h) settles each declared
 * replica (rows in state BAD or SUSPICIOUS):
 *   the replica is AVAILABLE again (re-copied by the conveyor, verified at
 *   the destination)            -> RECOVERED (R)
 *   another AVAILABLE replica exists -> left for the repairer and conveyor
 *   no AVAILABLE replica left   -> LOST (L): the file's availability LOST,
 *                                  a LOST message per dataset it is in
 *                                  (Rucio's payload: scope, name,
 *                                  dataset_name, dataset_scope; one with
 *                                  null dataset keys when it is in none)
 * Unlike Rucio, a lost file stays attached and its locks stay STUCK with
 * the reason (the rules show what was lost) instead of being removed.
 */
#include "catalog_i.h"
#include "engine.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static enum dm_status step_done(struct cat_db *db, struct sqldrv_stmt *st, const char *what)
{
	int r = sqldrv_step(st);

	sqldrv_reset(st);
	if (r != SQLDRV_DONE && r != SQLDRV_ROW)
		return cat_dberr(db, what);
	return DM_OK;
}

enum dm_status cat_replicas_declare_bad(struct cat_db *db, const char *rse, const char *scope,
					const char *name, const char *reason)
{
	int64_t did, num;
	enum dm_status rc;

	if (!reason || !*reason)
		return cat_fail(db, DM_EINVAL, "InvalidObject", "declaring a replica bad needs a reason");
	if (strlen(reason) > 255)
		return cat_fail(db, DM_EINVAL, "InvalidObject", "the reason is longer than 255 characters");
	if ((rc = cat_tx_begin(db)))
		return rc;
	if ((rc = cat_require_admin(db, "declare bad replicas")) ||
	    (rc = cat_rse_num(db, rse, &num)) || (rc = cat_did_id(db, scope, name, &did, NULL)))
		goto out;
	rc = cat_replica_mark_bad(db, did, num, reason, dm_now());
	if (rc == DM_ENOENT)
		rc = cat_fail(db, DM_ENOENT, "ReplicaNotFound", "No replica of '%s:%s' on RSE '%s'",
			      scope, name, rse);
	if (rc)
		goto out;
	rc = cat_locks_on_replica_state(db, did, num, CAT_REPLICA_UNAVAILABLE);
out:
	return cat_tx_end(db, rc);
}

static enum dm_status lost_messages(struct cat_db *db, int64_t did)
{
	struct sqldrv_stmt *st = cat_stmt(db, "SELECT f.scope, f.name, p.scope, p.name FROM dids f"
				       " LEFT JOIN contents c ON c.child_id=f.id"
				       " LEFT JOIN dids p ON p.id=c.parent_id AND p.did_type='D'"
				       " WHERE f.id=?");
	struct {
		char *scope, *name, *ds_scope, *ds_name;
	} *rows = NULL;
	size_t n = 0;
	enum dm_status rc = DM_OK;
	int r, any_ds = 0;

	if (!st)
		return db->err.code;
	sqldrv_bind_int64(st, 1, did);
	while ((r = sqldrv_step(st)) == SQLDRV_ROW) {
		rows = dm_xrealloc(rows, (n + 1) * sizeof *rows);
		rows[n].scope = dm_xstrdup(cat_col_text(st, 0));
		rows[n].name = dm_xstrdup(cat_col_text(st, 1));
		rows[n].ds_scope = cat_col_text(st, 2) ? dm_xstrdup(cat_col_text(st, 2)) : NULL;
		rows[n].ds_name = cat_col_text(st, 3) ? dm_xstrdup(cat_col_text(st, 3)) : NULL;
		any_ds |= rows[n].ds_name != NULL;
		n++;
	}
	sqldrv_reset(st);
	if (r != SQLDRV_DONE)
		rc = cat_dberr(db, "finding a lost file's datasets");
	for (size_t i = 0; i < n && rc == DM_OK; i++) {
		json_t *p;
		char *txt;

		if (any_ds && !rows[i].ds_name)
			continue; /* a container parent: the datasets carry the message */
		if (!any_ds && i > 0)
			break;
		p = json_object();
		json_object_set_new(p, "scope", json_string(rows[i].scope));
		json_object_set_new(p, "name", json_string(rows[i].name));
		json_object_set_new(p, "dataset_name", rows[i].ds_name ? json_string(rows[i].ds_name) : json_null());
		json_object_set_new(p, "dataset_scope", rows[i].ds_scope ? json_string(rows[i].ds_scope) : json_null());
		txt = json_dumps(p, JSON_COMPACT);
		json_decref(p);
		rc = cat_outbox_add(db, "LOST", txt);
		free(txt);
	}
	for (size_t i = 0; i < n; i++) {
		free(rows[i].scope);
		free(rows[i].name);
		free(rows[i].ds_scope);
		free(rows[i].ds_name);
	}
	free(rows);
	return rc;
}

enum dm_status cat_necromancer_run(struct cat_db *db, int limit, int worker, int nworkers,
				   int *done, int *lost)
{
	struct sqldrv_stmt *st;
	struct {
		int64_t did, rse;
	} *v = NULL;
	size_t n = 0;
	enum dm_status rc;
	int r;

	*done = 0;
	*lost = 0;
	if ((rc = cat_tx_begin(db)))
		return rc;
	st = cat_stmt(db, "SELECT DISTINCT did_id, rse_num FROM bad_replicas WHERE state IN ('B','S')"
			  " AND (?2 <= 1 OR (did_id % ?2) = ?3) ORDER BY did_id, rse_num LIMIT ?1");
	if (!st) {
		rc = db->err.code;
		goto out;
	}
	sqldrv_bind_int64(st, 1, limit > 0 ? limit : 100);
	sqldrv_bind_int64(st, 2, nworkers);
	sqldrv_bind_int64(st, 3, worker);
	while ((r = sqldrv_step(st)) == SQLDRV_ROW) {
		v = dm_xrealloc(v, (n + 1) * sizeof *v);
		v[n].did = sqldrv_col_int64(st, 0);
		v[n].rse = sqldrv_col_int64(st, 1);
		n++;
	}
	sqldrv_reset(st);
	if (r != SQLDRV_DONE) {
		rc = cat_dberr(db, "listing bad replicas");
		goto out;
	}
	for (size_t i = 0; i < n && rc == DM_OK; i++) {
		const char *state = NULL;
		int64_t good = 0;
		char next = 0;

		st = cat_stmt(db, "SELECT (SELECT state FROM replicas WHERE did_id=?1 AND rse_num=?2),"
				  " (SELECT count(*) FROM replicas WHERE did_id=?1 AND rse_num<>?2 AND state='A')");
		if (!st) {
			rc = db->err.code;
			break;
		}
		sqldrv_bind_int64(st, 1, v[i].did);
		sqldrv_bind_int64(st, 2, v[i].rse);
		if (sqldrv_step(st) == SQLDRV_ROW) {
			state = cat_col_text(st, 0);
			next = state && state[0] == 'A' ? 'R' : 0;
			good = sqldrv_col_int64(st, 1);
		}
		sqldrv_reset(st);
		if (!next && good == 0)
			next = 'L';
		if (!next)
			continue; /* recoverable: the repairer and the conveyor re-copy it */
		st = cat_stmt(db, "UPDATE bad_replicas SET state=? WHERE did_id=? AND rse_num=?"
				  " AND state IN ('B','S')");
		if (!st) {
			rc = db->err.code;
			break;
		}
		sqldrv_bind_text(st, 1, (char[]){ next, 0 }, 1);
		sqldrv_bind_int64(st, 2, v[i].did);
		sqldrv_bind_int64(st, 3, v[i].rse);
		if ((rc = step_done(db, st, "settling a bad replica")))
			break;
		(*done)++;
		if (next == 'L') {
			st = cat_stmt(db, "UPDATE dids SET availability='L', updated_at=? WHERE id=?");
			if (!st) {
				rc = db->err.code;
				break;
			}
			sqldrv_bind_int64(st, 1, dm_now());
			sqldrv_bind_int64(st, 2, v[i].did);
			if ((rc = step_done(db, st, "marking a file lost")))
				break;
			rc = lost_messages(db, v[i].did);
			(*lost)++;
		}
	}
out:
	free(v);
	return cat_tx_end(db, rc);
}
