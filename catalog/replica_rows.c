/* SPDX-License-Identifier: Apache-2.0 */
/*
 * replica_rows.c - the rows under replicas that the rule engine and the
 * replica calls both write (catalog_i.h): the replica states' names and
 * one-letter codes, the queued usage deltas (updated_rse_counters,
 * updated_account_counters, folded by cat_usage_refresh()), removing
 * one replica row (with its counter, and the file DID when its last
 * replica is gone) and declaring one BAD (its bad_replicas row).  Kept
 * apart from replica.c so that placement, requests and the reaper
 * (rule_i.h's files) use them without a cycle through replica.c, which
 * calls the rule engine on state changes.
 */
#include "catalog_i.h"

#include <string.h>
#include <strings.h>

static const char *const state_names[] = { "AVAILABLE", "UNAVAILABLE", "COPYING",
					   "BEING_DELETED", "BAD", "TEMPORARY_UNAVAILABLE" };
static const char *const state_codes[] = { "A", "U", "C", "B", "D", "T" };

const char *cat_replica_state_name(enum cat_replica_state s)
{
	return (unsigned)s < DM_ARRAY_SIZE(state_names) ? state_names[s] : "?";
}

const char *cat_replica_state_code(enum cat_replica_state s)
{
	return (unsigned)s < DM_ARRAY_SIZE(state_codes) ? state_codes[s] : "?";
}

int cat_replica_state_parse(const char *s, enum cat_replica_state *st)
{
	for (unsigned i = 0; i < DM_ARRAY_SIZE(state_names); i++) {
		if (s && (!strcasecmp(s, state_names[i]) || !strcasecmp(s, state_codes[i]))) {
			*st = (enum cat_replica_state)i;
			return 0;
		}
	}
	return -1;
}

int cat_replica_state_from_code(const char *code, enum cat_replica_state *s)
{
	return cat_replica_state_parse(code, s);
}

enum dm_status cat_counter_rse(struct cat_db *db, int64_t rse_num, int64_t files, int64_t bytes)
{
	struct sqldrv_stmt *st;

	if (!files && !bytes)
		return DM_OK;
	st = cat_stmt(db, "INSERT INTO updated_rse_counters(rse_num, files, bytes) VALUES (?,?,?)");
	if (!st)
		return db->err.code;
	sqldrv_bind_int64(st, 1, rse_num);
	sqldrv_bind_int64(st, 2, files);
	sqldrv_bind_int64(st, 3, bytes);
	if (sqldrv_step(st) != SQLDRV_DONE)
		return cat_dberr(db, "queueing an RSE counter");
	return DM_OK;
}

enum dm_status cat_counter_account(struct cat_db *db, const char *account, int64_t rse_num,
				   int64_t files, int64_t bytes)
{
	struct sqldrv_stmt *st;

	if (!files && !bytes)
		return DM_OK;
	st = cat_stmt(db, "INSERT INTO updated_account_counters(account, rse_num, files, bytes)"
			  " VALUES (?,?,?,?)");
	if (!st)
		return db->err.code;
	sqldrv_bind_text(st, 1, account, -1);
	sqldrv_bind_int64(st, 2, rse_num);
	sqldrv_bind_int64(st, 3, files);
	sqldrv_bind_int64(st, 4, bytes);
	if (sqldrv_step(st) != SQLDRV_DONE)
		return cat_dberr(db, "queueing an account counter");
	return DM_OK;
}

enum dm_status cat_replica_remove_row(struct cat_db *db, int64_t did, int64_t num, int64_t bytes)
{
	struct sqldrv_stmt *st = cat_stmt(db, "DELETE FROM replicas WHERE did_id=? AND rse_num=?");
	enum dm_status rc;
	int64_t left = 1;

	if (!st)
		return db->err.code;
	sqldrv_bind_int64(st, 1, did);
	sqldrv_bind_int64(st, 2, num);
	if (sqldrv_step(st) != SQLDRV_DONE)
		return cat_dberr(db, "deleting a replica");
	if (sqldrv_changes(db->sql) == 0)
		return DM_OK;
	rc = cat_counter_rse(db, num, -1, -bytes);
	if (rc)
		return rc;
	/* Last replica gone: Rucio detaches the file and deletes its DID,
	 * unless it is LOST (kept to remember it). */
	st = cat_stmt(db, "SELECT count(*) FROM replicas WHERE did_id=?");
	if (!st)
		return db->err.code;
	sqldrv_bind_int64(st, 1, did);
	if (sqldrv_step(st) == SQLDRV_ROW)
		left = sqldrv_col_int64(st, 0);
	sqldrv_reset(st);
	if (left)
		return DM_OK;
	st = cat_stmt(db, "SELECT 1 FROM dids WHERE id=? AND did_type='F' AND availability!='L'");
	if (!st)
		return db->err.code;
	sqldrv_bind_int64(st, 1, did);
	left = sqldrv_step(st) != SQLDRV_ROW;
	sqldrv_reset(st);
	if (left)
		return DM_OK;
	{
		static const char *const cleanup[] = {
			"DELETE FROM contents WHERE child_id=?",
			"DELETE FROM did_meta WHERE did_id=?",
			"DELETE FROM requests WHERE did_id=? AND state NOT IN ('Q','S')",
			"DELETE FROM dids WHERE id=? AND NOT EXISTS (SELECT 1 FROM locks l WHERE l.did_id=dids.id)"
			" AND NOT EXISTS (SELECT 1 FROM requests q WHERE q.did_id=dids.id)"
			" AND NOT EXISTS (SELECT 1 FROM rules r WHERE r.did_id=dids.id)",
		};
		for (unsigned i = 0; i < DM_ARRAY_SIZE(cleanup); i++) {
			st = cat_stmt(db, cleanup[i]);
			if (!st)
				return db->err.code;
			sqldrv_bind_int64(st, 1, did);
			if (sqldrv_step(st) != SQLDRV_DONE)
				return cat_dberr(db, "deleting a file without replicas");
		}
	}
	return DM_OK;
}

enum dm_status cat_replica_mark_bad(struct cat_db *db, int64_t did, int64_t num,
				    const char *reason, int64_t now)
{
	struct sqldrv_stmt *st = cat_stmt(db, "UPDATE replicas SET state='D', updated_at=?"
					      " WHERE did_id=? AND rse_num=?");
	int r;

	if (!st)
		return db->err.code;
	sqldrv_bind_int64(st, 1, now);
	sqldrv_bind_int64(st, 2, did);
	sqldrv_bind_int64(st, 3, num);
	r = sqldrv_step(st);
	sqldrv_reset(st);
	if (r != SQLDRV_DONE)
		return cat_dberr(db, "declaring a bad replica");
	if (sqldrv_changes(db->sql) == 0)
		return DM_ENOENT;
	st = cat_stmt(db, "INSERT INTO bad_replicas(did_id, rse_num, reason, state, account,"
			  " created_at) VALUES (?,?,?,'B',?,?)");
	if (!st)
		return db->err.code;
	sqldrv_bind_int64(st, 1, did);
	sqldrv_bind_int64(st, 2, num);
	sqldrv_bind_text(st, 3, reason, -1);
	sqldrv_bind_text(st, 4, cat_issuer(db), -1);
	sqldrv_bind_int64(st, 5, now);
	r = sqldrv_step(st);
	sqldrv_reset(st);
	if (r != SQLDRV_DONE)
		return cat_dberr(db, "declaring a bad replica");
	return DM_OK;
}
