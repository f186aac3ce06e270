/* SPDX-License-Identifier: Apache-2.0 */
/*
 * placement.c - where a rule's copies go and what that takes: the rule as
 * the engine works with it (struct rule_ctx, rule_i.h), RSE selection, locks
 * and the transfer requests they need, following Rucio's rse_selector.py,
 * rule_grouping.py and lock.py (shared/reference/rucio.md sections 5-8).
 *
 * Placement (the selector): the RSEs of the rule's expression, minus those
 * not writable (unless ignore_availability), restricted to those carrying the
 * weight attribute when a weight is given, minus those where the account has
 * no quota left (admins and ignore_account_limit skip quotas; a missing limit
 * is no quota, -1 is unlimited).  For each selection the RSEs that already
 * hold the most bytes of the data come first (Rucio's
 * prioritize_order_over_weight); the remaining copies are drawn weighted at
 * random (policy.h).  Grouping decides the unit of a selection: ALL one for
 * the whole DID, DATASET one per dataset, NONE one per file.
 *
 * Locks and replicas (create_lock): an AVAILABLE replica gives an OK lock;
 * anything else gives a REPLICATING lock, a COPYING replica and a QUEUED
 * transfer request when some other RSE holds an AVAILABLE copy to read from,
 * and a STUCK lock otherwise.  replica.lock_cnt counts locks; a replica with
 * locks has no tombstone.  Counter deltas are written once per call
 * (rl_ctx_flush).
 */
#include "engine.h"
#include "catalog_i.h"
#include "policy.h"
#include "rule_i.h"
#include "rse_expr.h"
#include "dmcheck.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* the rule as the engine works with it                                */


void rl_ctx_free(struct rule_ctx *x)
{
	free(x->expr);
	free(x->weight);
	free(x->src_expr);
	free(x->activity);
	free(x->c);
	free(x->src);
	free(x->acct);
	memset(x, 0, sizeof *x);
}

static void acct_add(struct rule_ctx *x, int64_t num, int64_t files, int64_t bytes)
{
	for (size_t i = 0; i < x->nacct; i++) {
		if (x->acct[i].num == num) {
			x->acct[i].files += files;
			x->acct[i].bytes += bytes;
			return;
		}
	}
	x->acct = dm_xrealloc(x->acct, (x->nacct + 1) * sizeof *x->acct);
	x->acct[x->nacct].num = num;
	x->acct[x->nacct].files = files;
	x->acct[x->nacct].bytes = bytes;
	x->nacct++;
}

/* Write the accumulated counters: rule lock counts and account usage. */
enum dm_status rl_ctx_flush(struct rule_ctx *x)
{
	struct cat_db *db = x->db;
	struct sqldrv_stmt *st;
	enum dm_status rc = DM_OK;

	if (x->d_ok || x->d_repl || x->d_stuck) {
		st = cat_stmt(db, "UPDATE rules SET locks_ok_cnt=locks_ok_cnt+?, locks_replicating_cnt="
				  "locks_replicating_cnt+?, locks_stuck_cnt=locks_stuck_cnt+?, updated_at=?"
				  " WHERE id=?");
		if (!st)
			return db->err.code;
		sqldrv_bind_int64(st, 1, x->d_ok);
		sqldrv_bind_int64(st, 2, x->d_repl);
		sqldrv_bind_int64(st, 3, x->d_stuck);
		sqldrv_bind_int64(st, 4, rl_now_s());
		sqldrv_bind_text(st, 5, x->id, -1);
		rc = rl_step_done(db, st, "updating rule counters");
		x->d_ok = x->d_repl = x->d_stuck = 0;
	}
	for (size_t i = 0; i < x->nacct && rc == DM_OK; i++)
		rc = cat_counter_account(db, x->account, x->acct[i].num, x->acct[i].files,
					 x->acct[i].bytes);
	x->nacct = 0;
	return rc;
}

enum dm_status rl_load_source_set(struct rule_ctx *x)
{
	int64_t *nums;
	uint8_t *match;
	size_t n = 0, count = 0;
	enum dm_status rc;

	if (!x->src_expr || !*x->src_expr)
		return DM_OK;
	rc = cat_rse_expr_match(x->db, x->src_expr, 0, &nums, &match, &n, &count);
	if (rc) {
		struct dm_err e = *cat_error(x->db);
		return cat_fail(x->db, DM_EINVAL, "InvalidSourceReplicaExpression",
				"source_replica_expression '%s': %s", x->src_expr, e.msg);
	}
	x->src = dm_xcalloc(count ? count : 1, sizeof *x->src);
	for (size_t i = 0; i < n; i++)
		if (match[i])
			x->src[x->nsrc++] = nums[i];
	free(nums);
	free(match);
	return DM_OK;
}

/* RSESelector: candidates from the expression, filtered as Rucio does. */
enum dm_status rl_build_selector(struct rule_ctx *x)
{
	struct cat_db *db = x->db;
	int64_t *nums = NULL;
	uint8_t *match = NULL;
	size_t n = 0, count = 0, writable = 0;
	enum dm_status rc;
	struct sqldrv_stmt *st;
	int admin;

	rc = cat_rse_expr_match(db, x->expr, 0, &nums, &match, &n, &count);
	if (rc)
		return rc;
	x->c = dm_xcalloc(count ? count : 1, sizeof *x->c);
	x->nc = 0;
	for (size_t i = 0; i < n; i++) {
		int64_t aw = 1;
		struct cat_policy_rse *c;

		if (!match[i])
			continue;
		st = cat_stmt(db, "SELECT availability_write FROM rses WHERE num=?");
		if (!st) {
			rc = db->err.code;
			goto out;
		}
		sqldrv_bind_int64(st, 1, nums[i]);
		rl_query_i64(db, st, &aw, NULL);
		if (aw)
			writable++;
		if (!aw && !x->ignore_availability)
			continue;
		c = &x->c[x->nc];
		c->id = nums[i];
		c->weight = 1;
		c->quota_left = -1;
		c->space_left = -1;
		if (x->weight && *x->weight) {
			const char *v;
			char *end;
			int r;
			st = cat_stmt(db, "SELECT value FROM rse_attr_map WHERE rse_num=? AND key=?");
			if (!st) {
				rc = db->err.code;
				goto out;
			}
			sqldrv_bind_int64(st, 1, nums[i]);
			sqldrv_bind_text(st, 2, x->weight, -1);
			r = sqldrv_step(st);
			if (r != SQLDRV_ROW) {
				sqldrv_reset(st);
				continue; /* RSEs without the weight attribute are not candidates */
			}
			v = cat_col_text(st, 0);
			c->weight = v ? strtod(v, &end) : 0;
			if (!v || *end || end == v || c->weight < 0) {
				rc = cat_fail(db, DM_EINVAL, "InvalidRuleWeight",
					      "The RSE attribute '%s' (weight) of an RSE is not a number: '%s'",
					      x->weight, v ? v : "");
				sqldrv_reset(st);
				goto out;
			}
			sqldrv_reset(st);
		}
		x->nc++;
	}
	if (x->nc == 0 && writable == 0 && count > 0 && !x->ignore_availability) {
		rc = cat_fail(db, DM_EPERM, "RSEWriteBlocked", "RSE excluded; not available for writing. (expression '%s')",
			      x->expr);
		goto out;
	}
	if ((int)x->nc < x->copies) {
		rc = cat_fail(db, DM_EINVAL, "InsufficientTargetRSEs",
			      "Target RSE set not sufficient for number of copies. (%d copies requested, RSE set size %zu for '%s')",
			      x->copies, x->nc, x->expr);
		goto out;
	}
	admin = cat_account_has_attr(db, x->account, "admin") == 1 || !strcmp(x->account, "root");
	if (!admin && !x->ignore_account_limit) {
		size_t kept = 0;
		for (size_t i = 0; i < x->nc; i++) {
			int64_t limit = 0, used = 0, pend = 0;
			int has = 0;
			st = cat_stmt(db, "SELECT bytes FROM account_limits WHERE account=? AND rse_num=?");
			if (!st) {
				rc = db->err.code;
				goto out;
			}
			sqldrv_bind_text(st, 1, x->account, -1);
			sqldrv_bind_int64(st, 2, x->c[i].id);
			rl_query_i64(db, st, &limit, &has);
			if (!has)
				continue; /* no limit is no quota (Rucio) */
			if (limit >= 0) {
				st = cat_stmt(db, "SELECT coalesce((SELECT bytes FROM account_usage WHERE account=?1"
						  " AND rse_num=?2),0) + coalesce((SELECT sum(bytes) FROM"
						  " updated_account_counters WHERE account=?1 AND rse_num=?2),0)");
				if (!st) {
					rc = db->err.code;
					goto out;
				}
				sqldrv_bind_text(st, 1, x->account, -1);
				sqldrv_bind_int64(st, 2, x->c[i].id);
				rl_query_i64(db, st, &used, NULL);
				(void)pend;
				if (limit - used <= 0)
					continue;
				x->c[i].quota_left = limit - used;
			}
			x->c[kept++] = x->c[i];
		}
		x->nc = kept;
		if ((int)x->nc < x->copies) {
			rc = cat_fail(db, DM_EQUOTA, "InsufficientAccountLimit",
				      "There is insufficient quota on any of the target RSE's to fullfill the operation. (account %s, %d copies, expression '%s')",
				      x->account, x->copies, x->expr);
			goto out;
		}
	}
	/* MaxSpaceAvailable - used, where an RSE has that limit */
	for (size_t i = 0; i < x->nc; i++) {
		int64_t maxs = 0, used = 0;
		int has = 0;
		st = cat_stmt(db, "SELECT value FROM rse_limits WHERE rse_num=? AND name='MaxSpaceAvailable'");
		if (!st) {
			rc = db->err.code;
			goto out;
		}
		sqldrv_bind_int64(st, 1, x->c[i].id);
		rl_query_i64(db, st, &maxs, &has);
		if (!has || maxs < 0)
			continue;
		st = cat_stmt(db, "SELECT coalesce((SELECT used FROM rse_usage WHERE rse_num=?1 AND"
				  " source='rucio'),0) + coalesce((SELECT sum(bytes) FROM updated_rse_counters"
				  " WHERE rse_num=?1),0)");
		if (!st) {
			rc = db->err.code;
			goto out;
		}
		sqldrv_bind_int64(st, 1, x->c[i].id);
		rl_query_i64(db, st, &used, NULL);
		x->c[i].space_left = maxs - used > 0 ? maxs - used : 0;
	}
out:
	free(nums);
	free(match);
	return rc;
}

/* Choose `copies` RSEs for `size` bytes.  preferred: RSE nums in order of
 * preference (taken first, in that order, if eligible). */
static double draw_random(void *ud)
{
	(void)ud;
	return (double)random() / ((double)RAND_MAX + 1.0);
}

static enum dm_status select_rses(struct rule_ctx *x, int64_t size, const int64_t *preferred,
				  size_t npref, int64_t *out)
{
	struct cat_db *db = x->db;

	switch (cat_policy_select_rses(x->c, x->nc, x->copies, size, preferred, npref, draw_random,
				       NULL, out)) {
	case CAT_SELECT_OK:
		return DM_OK;
	case CAT_SELECT_NO_QUOTA:
		return cat_fail(db, DM_EQUOTA, "InsufficientAccountLimit",
				"There is insufficient quota on any of the target RSE's to fullfill the operation. (account %s needs %lld bytes on %d RSEs of '%s')",
				x->account, (long long)size, x->copies, x->expr);
	case CAT_SELECT_NO_SPACE:
		return cat_fail(db, DM_EQUOTA, "RSEOverQuota",
				"There is insufficient space on any of the target RSE's to fullfill the operation. (%lld bytes, '%s')",
				(long long)size, x->expr);
	case CAT_SELECT_TOO_FEW:
		break;
	}
	return cat_fail(db, DM_EINVAL, "InsufficientTargetRSEs",
			"Target RSE set not sufficient for number of copies");
}

static void ctx_fill_from_row(struct rule_ctx *x, struct sqldrv_stmt *st)
{
	const char *s;

	dm_strlcpy(x->id, cat_col_text(st, 0), sizeof x->id);
	x->did_id = sqldrv_col_int64(st, 1);
	dm_strlcpy(x->account, cat_col_text(st, 2), sizeof x->account);
	x->copies = (int)sqldrv_col_int64(st, 3);
	x->grouping = (enum cat_grouping)rl_code_index(rl_grouping_codes, cat_col_text(st, 4));
	x->expr = dm_xstrdup(cat_col_text(st, 5));
	s = cat_col_text(st, 6);
	x->weight = s ? dm_xstrdup(s) : NULL;
	s = cat_col_text(st, 7);
	x->src_expr = s ? dm_xstrdup(s) : NULL;
	x->activity = dm_xstrdup(cat_col_text(st, 8));
	x->priority = (int)sqldrv_col_int64(st, 9);
	x->ignore_availability = (int)sqldrv_col_int64(st, 10);
	x->ignore_account_limit = (int)sqldrv_col_int64(st, 11);
	x->purge = (int)sqldrv_col_int64(st, 12);
	x->expires_at = sqldrv_col_int64(st, 13);
	cat_did_type_from_code(cat_col_text(st, 14), &x->did_type);
}

#define CTX_COLS "r.id, r.did_id, r.account, r.copies, r.grouping, r.rse_expression, r.weight," \
		 " r.source_replica_expression, r.activity, r.priority, r.ignore_availability," \
		 " r.ignore_account_limit, r.purge_replicas, r.expires_at, d.did_type"

/* Load a rule; with_selector builds its placement candidates (may fail with
 * the rule's placement error, recorded on the handle). */
enum dm_status rl_ctx_load(struct cat_db *db, const char *id, struct rule_ctx *x,
			   int with_selector)
{
	struct sqldrv_stmt *st = cat_stmt(db, "SELECT " CTX_COLS " FROM rules r JOIN dids d ON d.id=r.did_id"
				       " WHERE r.id=?");
	int r;
	enum dm_status rc;

	memset(x, 0, sizeof *x);
	x->db = db;
	x->now = rl_now_s();
	if (!st)
		return db->err.code;
	sqldrv_bind_text(st, 1, id, -1);
	r = sqldrv_step(st);
	if (r == SQLDRV_ROW)
		ctx_fill_from_row(x, st);
	sqldrv_reset(st);
	if (r != SQLDRV_ROW)
		return r == SQLDRV_DONE ? cat_fail(db, DM_ENOENT, "RuleNotFound", "No replication rule found with id '%s'", id)
					: cat_dberr(db, "reading a rule");
	rc = rl_load_source_set(x);
	if (rc == DM_OK && with_selector)
		rc = rl_build_selector(x);
	return rc;
}

/* ------------------------------------------------------------------ */
/* locks                                                               */

int rl_src_allowed(struct rule_ctx *x, int64_t num)
{
	if (!x->src)
		return 1;
	for (size_t i = 0; i < x->nsrc; i++)
		if (x->src[i] == num)
			return 1;
	return 0;
}

/* Is there an AVAILABLE copy elsewhere, on a readable RSE, allowed as source? */
int rl_has_source(struct rule_ctx *x, int64_t did, int64_t dest)
{
	struct sqldrv_stmt *st = cat_stmt(x->db, "SELECT rp.rse_num FROM replicas rp JOIN rses s ON s.num=rp.rse_num"
					   " WHERE rp.did_id=? AND rp.rse_num!=? AND rp.state='A'"
					   " AND s.availability_read=1 AND s.deleted=0");
	int found = 0;

	if (!st)
		return 0;
	sqldrv_bind_int64(st, 1, did);
	sqldrv_bind_int64(st, 2, dest);
	while (!found && sqldrv_step(st) == SQLDRV_ROW)
		found = rl_src_allowed(x, sqldrv_col_int64(st, 0));
	sqldrv_reset(st);
	return found;
}

enum dm_status rl_queue_request(struct rule_ctx *x, const struct file_row *f, int64_t dest)
{
	struct sqldrv_stmt *st = cat_stmt(x->db, "INSERT INTO requests(id, did_id, dest_rse_num, rule_id, activity,"
					   " state, bytes, adler32, md5, account, priority, requested_at,"
					   " created_at, updated_at) VALUES (?,?,?,?,?,'Q',?,?,?,?,?,?,?,?)"
					   " ON CONFLICT(did_id, dest_rse_num) DO NOTHING");
	char id[33];

	if (!st)
		return x->db->err.code;
	dm_uuid32(id);
	sqldrv_bind_text(st, 1, id, -1);
	sqldrv_bind_int64(st, 2, f->id);
	sqldrv_bind_int64(st, 3, dest);
	sqldrv_bind_text(st, 4, x->id, -1);
	sqldrv_bind_text(st, 5, x->activity, -1);
	sqldrv_bind_int64(st, 6, f->bytes);
	sqldrv_bind_text(st, 7, f->adler32, -1);
	if (f->md5[0])
		sqldrv_bind_text(st, 8, f->md5, -1);
	sqldrv_bind_text(st, 9, x->account, -1);
	sqldrv_bind_int64(st, 10, x->priority);
	sqldrv_bind_int64(st, 11, x->now);
	sqldrv_bind_int64(st, 12, x->now);
	sqldrv_bind_int64(st, 13, x->now);
	return rl_step_done(x->db, st, "queueing a transfer");
}

/* Rucio's __create_lock_and_replica. */
static enum dm_status create_lock(struct rule_ctx *x, const struct file_row *f, int64_t rse)
{
	struct cat_db *db = x->db;
	struct sqldrv_stmt *st;
	int r, exists = 0, need_request;
	enum cat_replica_state state = CAT_REPLICA_UNAVAILABLE;
	struct cat_policy_lock d;
	enum cat_lock_state ls;
	enum dm_status rc;
	const char *new_state;

	st = cat_stmt(db, "SELECT state FROM replicas WHERE did_id=? AND rse_num=?");
	if (!st)
		return db->err.code;
	sqldrv_bind_int64(st, 1, f->id);
	sqldrv_bind_int64(st, 2, rse);
	r = sqldrv_step(st);
	if (r == SQLDRV_ROW) {
		exists = 1;
		if (cat_replica_state_from_code(cat_col_text(st, 0), &state))
			state = CAT_REPLICA_UNAVAILABLE;
	}
	sqldrv_reset(st);
	/* a source is looked for only when the replica there cannot serve */
	d = cat_policy_new_lock(exists, state,
				exists && (state == CAT_REPLICA_AVAILABLE || state == CAT_REPLICA_COPYING ||
					   state == CAT_REPLICA_TEMPORARY_UNAVAILABLE)
					? 0 : rl_has_source(x, f->id, rse));
	ls = d.lock;
	need_request = d.queue_request;
	new_state = d.set_replica ? cat_replica_state_code(d.replica) : NULL;
	if (!exists) {
		st = cat_stmt(db, "INSERT INTO replicas(did_id, rse_num, bytes, state, lock_cnt, created_at,"
				  " updated_at) VALUES (?,?,?,?,0,?,?)");
		if (!st)
			return db->err.code;
		sqldrv_bind_int64(st, 1, f->id);
		sqldrv_bind_int64(st, 2, rse);
		sqldrv_bind_int64(st, 3, f->bytes);
		sqldrv_bind_text(st, 4, new_state ? new_state : "U", -1);
		sqldrv_bind_int64(st, 5, x->now);
		sqldrv_bind_int64(st, 6, x->now);
		if ((rc = rl_step_done(db, st, "creating a replica")))
			return rc;
		if ((rc = cat_counter_rse(db, rse, 1, f->bytes)))
			return rc;
		new_state = NULL;
	}
	st = cat_stmt(db, "UPDATE replicas SET lock_cnt=lock_cnt+1, tombstone=NULL, state=coalesce(?, state),"
			  " updated_at=? WHERE did_id=? AND rse_num=?");
	if (!st)
		return db->err.code;
	if (new_state)
		sqldrv_bind_text(st, 1, new_state, -1);
	sqldrv_bind_int64(st, 2, x->now);
	sqldrv_bind_int64(st, 3, f->id);
	sqldrv_bind_int64(st, 4, rse);
	if ((rc = rl_step_done(db, st, "locking a replica")))
		return rc;
	st = cat_stmt(db, "INSERT INTO locks(rule_id, did_id, rse_num, account, bytes, state, created_at,"
			  " updated_at) VALUES (?,?,?,?,?,?,?,?)");
	if (!st)
		return db->err.code;
	sqldrv_bind_text(st, 1, x->id, -1);
	sqldrv_bind_int64(st, 2, f->id);
	sqldrv_bind_int64(st, 3, rse);
	sqldrv_bind_text(st, 4, x->account, -1);
	sqldrv_bind_int64(st, 5, f->bytes);
	sqldrv_bind_text(st, 6, (char[]){ rl_lock_codes[ls], 0 }, 1);
	sqldrv_bind_int64(st, 7, x->now);
	sqldrv_bind_int64(st, 8, x->now);
	if ((rc = rl_step_done(db, st, "creating a lock")))
		return rc;
	if (ls == CAT_LOCK_OK)
		x->d_ok++;
	else if (ls == CAT_LOCK_REPLICATING)
		x->d_repl++;
	else
		x->d_stuck++;
	acct_add(x, rse, 1, f->bytes);
	if (need_request)
		return rl_queue_request(x, f, rse);
	return DM_OK;
}

/* Give one file the locks it lacks on the chosen RSEs. */
static enum dm_status place_file(struct rule_ctx *x, const struct file_row *f, const int64_t *chosen)
{
	struct cat_db *db = x->db;
	struct sqldrv_stmt *st = cat_stmt(db, "SELECT rse_num FROM locks WHERE rule_id=? AND did_id=?");
	int64_t have[16];
	int nhave = 0, need;
	enum dm_status rc = DM_OK;

	if (!st)
		return db->err.code;
	sqldrv_bind_text(st, 1, x->id, -1);
	sqldrv_bind_int64(st, 2, f->id);
	while (sqldrv_step(st) == SQLDRV_ROW && nhave < 16)
		have[nhave++] = sqldrv_col_int64(st, 0);
	sqldrv_reset(st);
	need = x->copies - nhave;
	for (int k = 0; k < x->copies && need > 0 && rc == DM_OK; k++) {
		int dup = 0;
		for (int h = 0; h < nhave; h++)
			dup |= have[h] == chosen[k];
		if (dup)
			continue;
		rc = create_lock(x, f, chosen[k]);
		need--;
	}
	return rc;
}

void rl_file_from_row(struct sqldrv_stmt *st, struct file_row *f)
{
	const char *a = cat_col_text(st, 2), *m = cat_col_text(st, 3);

	f->id = sqldrv_col_int64(st, 0);
	f->bytes = sqldrv_col_int64(st, 1);
	dm_strlcpy(f->adler32, a ? a : "", sizeof f->adler32);
	dm_strlcpy(f->md5, m ? m : "", sizeof f->md5);
}

/* Preferred RSEs: those of existing dataset locks of the rule, then those
 * holding the most bytes of the dataset (or file).  out: up to cap. */
static size_t preferred_rses(struct rule_ctx *x, int64_t ds, int64_t file, int64_t *out, size_t cap)
{
	struct cat_db *db = x->db;
	struct sqldrv_stmt *st;
	size_t n = 0;

	if (ds) {
		st = x->grouping == CAT_GROUPING_ALL
			     ? cat_stmt(db, "SELECT DISTINCT rse_num FROM dataset_locks WHERE rule_id=?1"
					    " AND ?2 >= 0 ORDER BY rse_num")
			     : cat_stmt(db, "SELECT rse_num FROM dataset_locks WHERE rule_id=?1 AND did_id=?2"
					    " ORDER BY rse_num");
		if (st) {
			sqldrv_bind_text(st, 1, x->id, -1);
			sqldrv_bind_int64(st, 2, ds);
			while (n < cap && sqldrv_step(st) == SQLDRV_ROW)
				out[n++] = sqldrv_col_int64(st, 0);
			sqldrv_reset(st);
		}
		st = cat_stmt(db, "SELECT rp.rse_num, sum(rp.bytes) s FROM contents c JOIN replicas rp"
				  " ON rp.did_id=c.child_id WHERE c.parent_id=? AND rp.state IN ('A','C','T')"
				  " GROUP BY rp.rse_num ORDER BY s DESC, rp.rse_num");
		if (st)
			sqldrv_bind_int64(st, 1, ds);
	} else {
		st = cat_stmt(db, "SELECT rse_num FROM replicas WHERE did_id=? AND state IN ('A','C','T')"
				  " ORDER BY (state='A') DESC, rse_num");
		if (st)
			sqldrv_bind_int64(st, 1, file);
	}
	if (!st)
		return n;
	while (n < cap && sqldrv_step(st) == SQLDRV_ROW) {
		int64_t num = sqldrv_col_int64(st, 0);
		int dup = 0;
		for (size_t i = 0; i < n; i++)
			dup |= out[i] == num;
		if (!dup)
			out[n++] = num;
	}
	sqldrv_reset(st);
	return n;
}

#define MAX_PREF 64

static enum dm_status dataset_lock(struct rule_ctx *x, int64_t ds, int64_t rse)
{
	struct sqldrv_stmt *st = cat_stmt(x->db, "INSERT INTO dataset_locks(rule_id, did_id, rse_num, account, state,"
					   " created_at, updated_at) VALUES (?,?,?,?,'R',?,?)"
					   " ON CONFLICT DO NOTHING");
	if (!st)
		return x->db->err.code;
	sqldrv_bind_text(st, 1, x->id, -1);
	sqldrv_bind_int64(st, 2, ds);
	sqldrv_bind_int64(st, 3, rse);
	sqldrv_bind_text(st, 4, x->account, -1);
	sqldrv_bind_int64(st, 5, x->now);
	sqldrv_bind_int64(st, 6, x->now);
	return rl_step_done(x->db, st, "creating a dataset lock");
}

/* A dataset's files in pages of PLACE_PAGE after child id ?2: each page is
 * read whole before its files are placed, so no query streams while the
 * placement's own statements run (on PostgreSQL they would pull the rest
 * of a million-file listing into memory), and memory stays one page. */
#define PLACE_PAGE 512
static const char sql_ds_files_all[] =
	"SELECT d.id, d.bytes, d.adler32, d.md5 FROM contents c JOIN dids d ON d.id=c.child_id"
	" WHERE c.parent_id=?1 AND c.child_id > ?2 AND d.did_type='F' ORDER BY c.child_id"
	" LIMIT " DM_STR(PLACE_PAGE);
static const char sql_ds_files_new[] =
	"SELECT d.id, d.bytes, d.adler32, d.md5 FROM contents c JOIN dids d ON d.id=c.child_id"
	" WHERE c.parent_id=?1 AND c.child_id > ?2 AND d.did_type='F' AND c.rule_evaluation=1"
	" ORDER BY c.child_id LIMIT " DM_STR(PLACE_PAGE);

/* Place the (new) files of one dataset.  all_chosen: the ALL grouping's
 * RSEs decided once for the whole rule (NULL otherwise). */
enum dm_status rl_apply_dataset(struct rule_ctx *x, int64_t ds, int only_new,
				const int64_t *all_chosen)
{
	struct cat_db *db = x->db;
	const char *sql = only_new ? sql_ds_files_new : sql_ds_files_all;
	int64_t chosen[16], pref[MAX_PREF], after = 0;
	size_t npref, n;
	struct sqldrv_stmt *st;
	struct file_row *page;
	enum dm_status rc = DM_OK;
	int r = SQLDRV_DONE;

	if (x->copies > 16)
		return cat_fail(db, DM_EINVAL, "InvalidValueForKey", "at most 16 copies per rule");
	if (x->grouping == CAT_GROUPING_DATASET) {
		int64_t size = 0;
		st = cat_stmt(db, only_new ? "SELECT coalesce(sum(d.bytes),0) FROM contents c JOIN dids d"
					     " ON d.id=c.child_id WHERE c.parent_id=? AND c.rule_evaluation=1"
					   : "SELECT coalesce(sum(d.bytes),0) FROM contents c JOIN dids d"
					     " ON d.id=c.child_id WHERE c.parent_id=?");
		if (!st)
			return db->err.code;
		sqldrv_bind_int64(st, 1, ds);
		rl_query_i64(db, st, &size, NULL);
		npref = preferred_rses(x, ds, 0, pref, MAX_PREF);
		rc = select_rses(x, size, pref, npref, chosen);
		if (rc)
			return rc;
		all_chosen = chosen;
	}
	if (all_chosen)
		for (int k = 0; k < x->copies && rc == DM_OK; k++)
			rc = dataset_lock(x, ds, all_chosen[k]);
	if (rc)
		return rc;
	page = dm_xmalloc(PLACE_PAGE * sizeof *page);
	do {
		n = 0;
		if (!(st = cat_stmt(db, sql))) {
			rc = db->err.code;
			break;
		}
		sqldrv_bind_int64(st, 1, ds);
		sqldrv_bind_int64(st, 2, after);
		while (n < PLACE_PAGE && (r = sqldrv_step(st)) == SQLDRV_ROW)
			rl_file_from_row(st, &page[n++]);
		sqldrv_reset(st);
		if (n < PLACE_PAGE && r != SQLDRV_DONE) {
			rc = cat_dberr(db, "listing files to place");
			break;
		}
		for (size_t i = 0; i < n && rc == DM_OK; i++) {
			if (all_chosen) {
				rc = place_file(x, &page[i], all_chosen);
			} else {
				npref = preferred_rses(x, 0, page[i].id, pref, MAX_PREF);
				rc = select_rses(x, page[i].bytes, pref, npref, chosen);
				if (rc == DM_OK)
					rc = place_file(x, &page[i], chosen);
			}
		}
		if (n)
			after = page[n - 1].id;
	} while (rc == DM_OK && n == PLACE_PAGE);
	free(page);
	return rc;
}

/* Dataset ids under a DID (itself if a dataset). Caller frees. */
enum dm_status rl_datasets_under(struct cat_db *db, int64_t did, enum cat_did_type t,
				 int64_t **out, size_t *n)
{
	struct sqldrv_stmt *st;
	size_t cap = 0;

	*out = NULL;
	*n = 0;
	if (t == CAT_DID_DATASET) {
		*out = dm_xmalloc(sizeof **out);
		(*out)[0] = did;
		*n = 1;
		return DM_OK;
	}
	if (!(st = sqldrv_prepare(db->sql, "WITH RECURSIVE tree(id) AS (SELECT ?1 UNION SELECT c.child_id"
				       " FROM contents c JOIN tree t ON c.parent_id=t.id JOIN dids x"
				       " ON x.id=c.child_id AND x.did_type!='F')"
				       " SELECT t.id FROM tree t JOIN dids d ON d.id=t.id AND d.did_type='D'"
				       " ORDER BY t.id")))
		return cat_dberr(db, "listing datasets");
	sqldrv_bind_int64(st, 1, did);
	while (sqldrv_step(st) == SQLDRV_ROW) {
		if (*n == cap) {
			cap = cap ? 2 * cap : 16;
			*out = dm_xrealloc(*out, cap * sizeof **out);
		}
		(*out)[(*n)++] = sqldrv_col_int64(st, 0);
	}
	sqldrv_reset(st);
	return DM_OK;
}

/* ALL grouping: one selection for everything, preferring coverage summed
 * over the datasets (and existing dataset locks of the rule). */
enum dm_status rl_choose_all(struct rule_ctx *x, const int64_t *ds, size_t nds, int only_new,
			     int64_t *chosen)
{
	struct cat_db *db = x->db;
	int64_t pref[MAX_PREF], bytes[MAX_PREF], size = 0;
	size_t npref = 0;
	struct sqldrv_stmt *st;

	st = cat_stmt(db, "SELECT DISTINCT rse_num FROM dataset_locks WHERE rule_id=? ORDER BY rse_num");
	if (!st)
		return db->err.code;
	sqldrv_bind_text(st, 1, x->id, -1);
	while (npref < MAX_PREF && sqldrv_step(st) == SQLDRV_ROW) {
		pref[npref] = sqldrv_col_int64(st, 0);
		bytes[npref++] = INT64_MAX;
	}
	sqldrv_reset(st);
	for (size_t i = 0; i < nds; i++) {
		int64_t s = 0;
		st = cat_stmt(db, only_new ? "SELECT coalesce(sum(d.bytes),0) FROM contents c JOIN dids d"
					     " ON d.id=c.child_id WHERE c.parent_id=? AND c.rule_evaluation=1"
					   : "SELECT coalesce(sum(d.bytes),0) FROM contents c JOIN dids d"
					     " ON d.id=c.child_id WHERE c.parent_id=?");
		if (!st)
			return db->err.code;
		sqldrv_bind_int64(st, 1, ds[i]);
		rl_query_i64(db, st, &s, NULL);
		size += s;
		st = cat_stmt(db, "SELECT rp.rse_num, sum(rp.bytes) s FROM contents c JOIN replicas rp"
				  " ON rp.did_id=c.child_id WHERE c.parent_id=? AND rp.state IN ('A','C','T')"
				  " GROUP BY rp.rse_num ORDER BY s DESC, rp.rse_num");
		if (!st)
			return db->err.code;
		sqldrv_bind_int64(st, 1, ds[i]);
		while (sqldrv_step(st) == SQLDRV_ROW) {
			int64_t num = sqldrv_col_int64(st, 0), b = sqldrv_col_int64(st, 1);
			size_t j;
			for (j = 0; j < npref && pref[j] != num; j++)
				;
			if (j == npref && npref < MAX_PREF) {
				pref[npref] = num;
				bytes[npref++] = 0;
			}
			if (j < MAX_PREF && bytes[j] != INT64_MAX)
				bytes[j] += b;
		}
		sqldrv_reset(st);
	}
	/* order by bytes present, descending (insertion sort: few RSEs) */
	for (size_t i = 1; i < npref; i++)
		for (size_t j = i; j > 0 && bytes[j] > bytes[j - 1]; j--) {
			int64_t t = bytes[j];
			bytes[j] = bytes[j - 1];
			bytes[j - 1] = t;
			t = pref[j];
			pref[j] = pref[j - 1];
			pref[j - 1] = t;
		}
	return select_rses(x, size, pref, npref, chosen);
}

/* Place a whole rule (creation, injector, repair of missing locks). */
enum dm_status rl_apply_rule(struct rule_ctx *x)
{
	struct cat_db *db = x->db;
	enum dm_status rc = DM_OK;
	int64_t *ds = NULL, chosen[16];
	size_t nds = 0;

	if (x->did_type == CAT_DID_FILE) {
		struct file_row f;
		int64_t pref[MAX_PREF];
		size_t npref;
		struct sqldrv_stmt *st = cat_stmt(db, "SELECT id, bytes, adler32, md5 FROM dids WHERE id=?");
		if (!st)
			return db->err.code;
		sqldrv_bind_int64(st, 1, x->did_id);
		if (sqldrv_step(st) != SQLDRV_ROW) {
			sqldrv_reset(st);
			return cat_fail(db, DM_ENOENT, "DataIdentifierNotFound", "the rule's file is gone");
		}
		rl_file_from_row(st, &f);
		sqldrv_reset(st);
		npref = preferred_rses(x, 0, f.id, pref, MAX_PREF);
		rc = select_rses(x, f.bytes, pref, npref, chosen);
		if (rc == DM_OK)
			rc = place_file(x, &f, chosen);
		goto out;
	}
	rc = rl_datasets_under(db, x->did_id, x->did_type, &ds, &nds);
	if (rc)
		goto out;
	if (x->grouping == CAT_GROUPING_ALL && nds) {
		rc = rl_choose_all(x, ds, nds, 0, chosen);
		for (size_t i = 0; i < nds && rc == DM_OK; i++)
			rc = rl_apply_dataset(x, ds[i], 0, chosen);
	} else {
		for (size_t i = 0; i < nds && rc == DM_OK; i++)
			rc = rl_apply_dataset(x, ds[i], 0, NULL);
	}
out:
	free(ds);
	if (rc == DM_OK)
		rc = rl_ctx_flush(x);
	return rc;
}
