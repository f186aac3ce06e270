/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rule.c - replication rules, placement, locks, transfer requests and the
 * judge's units of work, following Rucio's core/rule.py, rse_selector.py,
 * rule_grouping.py and lock.py (shared/reference/rucio.md sections 5-8).
 *
 * Placement (struct selector): the RSEs of the rule's expression, minus those
 * not writable (unless ignore_availability), restricted to those carrying the
 * weight attribute when a weight is given, minus those where the account has
 * no quota left (admins and ignore_account_limit skip quotas; a missing limit
 * is no quota, -1 is unlimited).  For each selection the RSEs that already
 * hold the most bytes of the data come first (Rucio's
 * prioritize_order_over_weight); the remaining copies are drawn weighted at
 * random.  Grouping decides the unit of a selection: ALL one for the whole
 * DID, DATASET one per dataset, NONE one per file.
 *
 * Locks and replicas (create_lock): an AVAILABLE replica gives an OK lock;
 * anything else gives a REPLICATING lock, a COPYING replica and a QUEUED
 * transfer request when some other RSE holds an AVAILABLE copy to read from,
 * and a STUCK lock otherwise.  replica.lock_cnt counts locks; a replica with
 * locks has no tombstone.  rules.locks_*_cnt are kept incrementally with
 * every lock state change; rule_state_update() derives the rule's state:
 * any stuck lock -> STUCK, none replicating -> OK, else REPLICATING.
 *
 * Requests: one row per (file, destination RSE) while QUEUED or SUBMITTED;
 * finished ones move to requests_history.  cat_req_claim() flips QUEUED ->
 * SUBMITTED in one UPDATE, so two conveyors never claim the same request.
 *
 * The client calls (rules, locks, list-transfers, distances) are declared
 * in catalog.h, the daemons' (judge units, requests, reaper, undertaker,
 * heartbeats) in engine.h.  Whether a process is still alive is not judged
 * here: the heartbeat calls ask the daemon's cat_alive_cb.
 *
 * The decisions are Rucio's policy as pure functions (policy.h): a new
 * lock's state from the replica (create_lock), locks after a replica state
 * change (cat_locks_on_replica_state), the rule's state from its counts
 * (rule_state_update), a request's fate (cat_req_finish), the repairer's
 * back-off, RSE selection (select_rses).  This file loads their inputs and
 * stores their results; states are enums in C, the one-letter codes of the
 * rows (rule_codes, lock_codes, req_codes) only where rows are read and
 * written.
 */
#include "engine.h"
#include "catalog_i.h"
#include "policy.h"
#include "rse_expr.h"
#include "dmcheck.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define OBSOLETE 1 /* tombstone 1970-01-01 00:00:01: delete at once */
#define DEFAULT_ACTIVITY "User Subscriptions"

static const char rule_codes[] = "ROSUWI";
static const char *const rule_names[] = { "REPLICATING", "OK", "STUCK", "SUSPENDED",
					  "WAITING_APPROVAL", "INJECT" };
static const char lock_codes[] = "ROS";
static const char *const lock_names[] = { "REPLICATING", "OK", "STUCK" };
static const char grouping_codes[] = "ADN";
static const char *const grouping_names[] = { "ALL", "DATASET", "NONE" };
static const char req_codes[] = "QSDFNL";
static const char *const req_names[] = { "QUEUED", "SUBMITTED", "DONE", "FAILED", "NO_SOURCES",
					 "LOST" };

const char *cat_rule_state_name(enum cat_rule_state s)
{
	return (unsigned)s < 6 ? rule_names[s] : "?";
}

const char *cat_lock_state_name(enum cat_lock_state s)
{
	return (unsigned)s < 3 ? lock_names[s] : "?";
}

const char *cat_grouping_name(enum cat_grouping g)
{
	return (unsigned)g < 3 ? grouping_names[g] : "?";
}

int cat_grouping_parse(const char *s, enum cat_grouping *g)
{
	for (int i = 0; i < 3; i++) {
		if (s && (!strcasecmp(s, grouping_names[i]) || (s[0] == grouping_codes[i] && !s[1]))) {
			*g = (enum cat_grouping)i;
			return 0;
		}
	}
	return -1;
}

const char *cat_req_state_name(enum cat_req_state s)
{
	return (unsigned)s < 6 ? req_names[s] : "?";
}

static int code_index(const char *codes, const char *c)
{
	const char *p = c && *c ? strchr(codes, c[0]) : NULL;

	return p ? (int)(p - codes) : 0;
}

void cat_rule_opts_init(struct cat_rule_opts *o)
{
	memset(o, 0, sizeof *o);
	o->copies = 1;
	o->grouping = CAT_GROUPING_DATASET;
	o->priority = 3;
}

/* ------------------------------------------------------------------ */
/* small SQL helpers                                                   */

static enum dm_status step_done(struct cat_db *db, struct sqldrv_stmt *st, const char *what)
{
	int r = sqldrv_step(st);

	sqldrv_reset(st);
	if (r != SQLDRV_DONE && r != SQLDRV_ROW)
		return cat_dberr(db, what);
	return DM_OK;
}

/* Run a one-int64-result query; *out untouched if no row. */
static enum dm_status query_i64(struct cat_db *db, struct sqldrv_stmt *st, int64_t *out, int *found)
{
	int r = sqldrv_step(st);

	if (found)
		*found = r == SQLDRV_ROW;
	if (r == SQLDRV_ROW && out)
		*out = sqldrv_col_int64(st, 0);
	sqldrv_reset(st);
	if (r != SQLDRV_ROW && r != SQLDRV_DONE)
		return cat_dberr(db, "query");
	return DM_OK;
}

static int64_t now_s(void)
{
	return dm_now();
}

/* ------------------------------------------------------------------ */
/* the rule as the engine works with it                                */

struct acct_delta {
	int64_t num, files, bytes;
};

struct rule_ctx {
	struct cat_db *db;
	char id[33];
	int64_t did_id;
	enum cat_did_type did_type;
	char account[CAT_ACCOUNT_MAX + 1];
	int copies;
	enum cat_grouping grouping;
	char *expr, *weight, *src_expr;
	char *activity;
	int priority;
	int ignore_availability, ignore_account_limit, purge;
	int64_t expires_at;
	/* placement */
	struct cat_policy_rse *c; /* candidates (policy.h), id = RSE num */
	size_t nc;
	int64_t *src; /* allowed source RSEs (NULL: any) */
	size_t nsrc;
	/* deltas to write once */
	int64_t d_ok, d_repl, d_stuck;
	struct acct_delta *acct;
	size_t nacct;
	int64_t now;
};

static void ctx_free(struct rule_ctx *x)
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
static enum dm_status ctx_flush(struct rule_ctx *x)
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
		sqldrv_bind_int64(st, 4, now_s());
		sqldrv_bind_text(st, 5, x->id, -1);
		rc = step_done(db, st, "updating rule counters");
		x->d_ok = x->d_repl = x->d_stuck = 0;
	}
	for (size_t i = 0; i < x->nacct && rc == DM_OK; i++)
		rc = cat_counter_account(db, x->account, x->acct[i].num, x->acct[i].files,
					 x->acct[i].bytes);
	x->nacct = 0;
	return rc;
}

static enum dm_status load_source_set(struct rule_ctx *x)
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
static enum dm_status build_selector(struct rule_ctx *x)
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
		query_i64(db, st, &aw, NULL);
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
			query_i64(db, st, &limit, &has);
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
				query_i64(db, st, &used, NULL);
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
		query_i64(db, st, &maxs, &has);
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
		query_i64(db, st, &used, NULL);
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
	x->grouping = (enum cat_grouping)code_index(grouping_codes, cat_col_text(st, 4));
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
static enum dm_status ctx_load(struct cat_db *db, const char *id, struct rule_ctx *x,
			       int with_selector)
{
	struct sqldrv_stmt *st = cat_stmt(db, "SELECT " CTX_COLS " FROM rules r JOIN dids d ON d.id=r.did_id"
				       " WHERE r.id=?");
	int r;
	enum dm_status rc;

	memset(x, 0, sizeof *x);
	x->db = db;
	x->now = now_s();
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
	rc = load_source_set(x);
	if (rc == DM_OK && with_selector)
		rc = build_selector(x);
	return rc;
}

/* ------------------------------------------------------------------ */
/* locks                                                               */

struct file_row {
	int64_t id;
	int64_t bytes;
	char adler32[9];
	char md5[33];
};

static int src_allowed(struct rule_ctx *x, int64_t num)
{
	if (!x->src)
		return 1;
	for (size_t i = 0; i < x->nsrc; i++)
		if (x->src[i] == num)
			return 1;
	return 0;
}

/* Is there an AVAILABLE copy elsewhere, on a readable RSE, allowed as source? */
static int has_source(struct rule_ctx *x, int64_t did, int64_t dest)
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
		found = src_allowed(x, sqldrv_col_int64(st, 0));
	sqldrv_reset(st);
	return found;
}

static enum dm_status queue_request(struct rule_ctx *x, const struct file_row *f, int64_t dest)
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
	return step_done(x->db, st, "queueing a transfer");
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
					? 0 : has_source(x, f->id, rse));
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
		if ((rc = step_done(db, st, "creating a replica")))
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
	if ((rc = step_done(db, st, "locking a replica")))
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
	sqldrv_bind_text(st, 6, (char[]){ lock_codes[ls], 0 }, 1);
	sqldrv_bind_int64(st, 7, x->now);
	sqldrv_bind_int64(st, 8, x->now);
	if ((rc = step_done(db, st, "creating a lock")))
		return rc;
	if (ls == CAT_LOCK_OK)
		x->d_ok++;
	else if (ls == CAT_LOCK_REPLICATING)
		x->d_repl++;
	else
		x->d_stuck++;
	acct_add(x, rse, 1, f->bytes);
	if (need_request)
		return queue_request(x, f, rse);
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

static void file_from_row(struct sqldrv_stmt *st, struct file_row *f)
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
	return step_done(x->db, st, "creating a dataset lock");
}

static const char sql_ds_files_all[] =
	"SELECT d.id, d.bytes, d.adler32, d.md5 FROM contents c JOIN dids d ON d.id=c.child_id"
	" WHERE c.parent_id=? AND d.did_type='F' ORDER BY c.child_id";
static const char sql_ds_files_new[] =
	"SELECT d.id, d.bytes, d.adler32, d.md5 FROM contents c JOIN dids d ON d.id=c.child_id"
	" WHERE c.parent_id=? AND d.did_type='F' AND c.rule_evaluation=1 ORDER BY c.child_id";

/* Place the (new) files of one dataset.  all_chosen: the ALL grouping's
 * RSEs decided once for the whole rule (NULL otherwise). */
static enum dm_status apply_dataset(struct rule_ctx *x, int64_t ds, int only_new,
				    const int64_t *all_chosen)
{
	struct cat_db *db = x->db;
	const char *sql = only_new ? sql_ds_files_new : sql_ds_files_all;
	int64_t chosen[16], pref[MAX_PREF];
	size_t npref;
	struct sqldrv_stmt *st;
	enum dm_status rc = DM_OK;
	int r;

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
		query_i64(db, st, &size, NULL);
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
	/* Iterate with a private statement: the per-file work below uses the
	 * handle's cached statements. */
	if (!(st = sqldrv_prepare(db->sql, sql)))
		return cat_dberr(db, "listing files to place");
	sqldrv_bind_int64(st, 1, ds);
	while (rc == DM_OK && (r = sqldrv_step(st)) == SQLDRV_ROW) {
		struct file_row f;
		file_from_row(st, &f);
		if (all_chosen) {
			rc = place_file(x, &f, all_chosen);
		} else {
			npref = preferred_rses(x, 0, f.id, pref, MAX_PREF);
			rc = select_rses(x, f.bytes, pref, npref, chosen);
			if (rc == DM_OK)
				rc = place_file(x, &f, chosen);
		}
	}
	if (rc == DM_OK && r != SQLDRV_DONE)
		rc = cat_dberr(db, "listing files to place");
	sqldrv_reset(st);
	return rc;
}

/* Dataset ids under a DID (itself if a dataset). Caller frees. */
static enum dm_status datasets_under(struct cat_db *db, int64_t did, enum cat_did_type t,
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
static enum dm_status choose_all(struct rule_ctx *x, const int64_t *ds, size_t nds, int only_new,
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
		query_i64(db, st, &s, NULL);
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

static enum dm_status rule_state_update(struct cat_db *db, const char *id, const char *error);

/* Place a whole rule (creation, injector, repair of missing locks). */
static enum dm_status apply_rule(struct rule_ctx *x)
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
		file_from_row(st, &f);
		sqldrv_reset(st);
		npref = preferred_rses(x, 0, f.id, pref, MAX_PREF);
		rc = select_rses(x, f.bytes, pref, npref, chosen);
		if (rc == DM_OK)
			rc = place_file(x, &f, chosen);
		goto out;
	}
	rc = datasets_under(db, x->did_id, x->did_type, &ds, &nds);
	if (rc)
		goto out;
	if (x->grouping == CAT_GROUPING_ALL && nds) {
		rc = choose_all(x, ds, nds, 0, chosen);
		for (size_t i = 0; i < nds && rc == DM_OK; i++)
			rc = apply_dataset(x, ds[i], 0, chosen);
	} else {
		for (size_t i = 0; i < nds && rc == DM_OK; i++)
			rc = apply_dataset(x, ds[i], 0, NULL);
	}
out:
	free(ds);
	if (rc == DM_OK)
		rc = ctx_flush(x);
	return rc;
}

/* ------------------------------------------------------------------ */
/* rule state                                                          */

/* Derive the rule's state from its lock counts (Rucio's rule state
 * transitions); SUSPENDED / WAITING_APPROVAL / INJECT are left alone. */
static enum dm_status rule_state_update(struct cat_db *db, const char *id, const char *error)
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
	cur = (enum cat_rule_state)code_index(rule_codes, cat_col_text(st, 0));
	ok = sqldrv_col_int64(st, 1);
	repl = sqldrv_col_int64(st, 2);
	stuck = sqldrv_col_int64(st, 3);
	stuck_at = sqldrv_col_int64(st, 4);
	sqldrv_reset(st);
	nxt = cat_policy_rule_state(cur, ok, repl, stuck);
	if (nxt == cur && (cur == CAT_RULE_SUSPENDED || cur == CAT_RULE_WAITING_APPROVAL ||
			   cur == CAT_RULE_INJECT))
		return DM_OK;
	next[0] = rule_codes[nxt];
	next[1] = 0;
	st = cat_stmt(db, "UPDATE rules SET state=?1, updated_at=?2,"
			  " stuck_at=CASE WHEN ?1='S' THEN coalesce(stuck_at, ?2) ELSE NULL END,"
			  " error=CASE WHEN ?1='S' THEN coalesce(?3, error, 'MissingSourceReplica')"
			  " WHEN ?1='O' THEN NULL ELSE error END WHERE id=?4");
	if (!st)
		return db->err.code;
	sqldrv_bind_text(st, 1, next, -1);
	sqldrv_bind_int64(st, 2, now_s());
	if (error)
		sqldrv_bind_text(st, 3, error, (int)(strlen(error) > 245 ? 245 : strlen(error)));
	sqldrv_bind_text(st, 4, id, -1);
	(void)stuck_at;
	if (step_done(db, st, "updating a rule state"))
		return db->err.code;
	if (nxt != cur && cat_outbox_rule_state(db, id, next[0])) /* RULE_OK (outbox.c) */
		return db->err.code;
	if (nxt == CAT_RULE_OK && cat_rule_release_parents(db, id)) /* subscription.c */
		return db->err.code;
	if (nxt == CAT_RULE_OK) {
		st = cat_stmt(db, "UPDATE dataset_locks SET state='O', updated_at=? WHERE rule_id=? AND state!='O'");
		if (!st)
			return db->err.code;
		sqldrv_bind_int64(st, 1, now_s());
		sqldrv_bind_text(st, 2, id, -1);
		return step_done(db, st, "updating dataset locks");
	}
	return DM_OK;
}

/* Put a rule in STUCK with an error (evaluation failures). */
static enum dm_status rule_set_stuck(struct cat_db *db, const char *id, const char *error)
{
	struct sqldrv_stmt *st = cat_stmt(db, "UPDATE rules SET state='S', error=?, stuck_at=coalesce(stuck_at, ?),"
				       " updated_at=? WHERE id=? AND state NOT IN ('U','W')");
	int64_t now = now_s();

	if (!st)
		return db->err.code;
	sqldrv_bind_text(st, 1, error, (int)(strlen(error) > 245 ? 245 : strlen(error)));
	sqldrv_bind_int64(st, 2, now);
	sqldrv_bind_int64(st, 3, now);
	sqldrv_bind_text(st, 4, id, -1);
	return step_done(db, st, "marking a rule stuck");
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

enum dm_status cat_rule_add(struct cat_db *db, const char *scope, const char *name,
			    const struct cat_rule_opts *o, char *id_out)
{
	CAT_REMOTE(db, rule_add, scope, name, o, id_out);
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
	x.now = now_s();
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
	rc = load_source_set(&x);
	if (rc == DM_OK)
		rc = build_selector(&x);
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
	sqldrv_bind_text(st, 7, (char[]){ grouping_codes[x.grouping], 0 }, 1);
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
	if ((rc = step_done(db, st, "adding a rule")))
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
		rc = apply_rule(&x);
		if (rc == DM_OK)
			rc = rule_state_update(db, x.id, NULL);
	}
	if (rc == DM_OK && id_out)
		dm_strlcpy(id_out, x.id, 33);
out:
	ctx_free(&x);
	return cat_tx_end(db, rc);
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
	r->state = (enum cat_rule_state)code_index(rule_codes, cat_col_text(st, 5));
	r->error = cat_col_text(st, 6);
	r->rse_expression = cat_col_text(st, 7);
	r->copies = (int)sqldrv_col_int64(st, 8);
	r->grouping = (enum cat_grouping)code_index(grouping_codes, cat_col_text(st, 9));
	r->weight = cat_col_text(st, 10);
	r->locked = (int)sqldrv_col_int64(st, 11);
	r->source_replica_expression = cat_col_text(st, 12);
	r->activity = cat_col_text(st, 13);
	r->purge_replicas = (int)sqldrv_col_int64(st, 14);
	r->ignore_availability = (int)sqldrv_col_int64(st, 15);
	r->comment = cat_col_text(st, 16);
	n = cat_col_text(st, 17);
	r->notification = notif_names[code_index("YNCP", n)];
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
static enum dm_status remove_lock(struct cat_db *db, const char *rule_id, const char *account,
				  int64_t did, int64_t rse, char state, int64_t bytes, int purge,
				  int update_rule)
{
	struct sqldrv_stmt *st;
	enum dm_status rc;
	int64_t lock_cnt = 0, others = 0;
	char rstate = 0;
	int64_t now = now_s();

	st = cat_stmt(db, "DELETE FROM locks WHERE rule_id=? AND did_id=? AND rse_num=?");
	if (!st)
		return db->err.code;
	sqldrv_bind_text(st, 1, rule_id, -1);
	sqldrv_bind_int64(st, 2, did);
	sqldrv_bind_int64(st, 3, rse);
	if ((rc = step_done(db, st, "deleting a lock")))
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
			query_i64(db, st, &others, NULL);
		}
		if (state == 'R' && others == 0) {
			/* cancel the queued transfer; the copy is not wanted any more */
			st = cat_stmt(db, "DELETE FROM requests WHERE did_id=? AND dest_rse_num=? AND state='Q'");
			if (!st)
				return db->err.code;
			sqldrv_bind_int64(st, 1, did);
			sqldrv_bind_int64(st, 2, rse);
			if ((rc = step_done(db, st, "cancelling a request")))
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
		if ((rc = step_done(db, st, "unlocking a replica")))
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
		rc = step_done(db, st, "updating rule counters");
	}
	return rc;
}

#define LOCK_BATCH 512

struct lock_ref {
	int64_t did, rse, bytes;
	char state;
};

static enum dm_status delete_rule_locked(struct cat_db *db, const char *id)
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
			rc = remove_lock(db, id, account, batch[i].did, batch[i].rse, batch[i].state,
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
			rc = step_done(db, st, "deleting a rule");
		}
	}
out:
	free(batch);
	return rc;
}

enum dm_status cat_rule_delete_now(struct cat_db *db, const char *id)
{
	CAT_REMOTE(db, rule_delete_now, id);
	enum dm_status rc = cat_tx_begin(db);

	if (rc)
		return rc;
	rc = delete_rule_locked(db, id);
	return cat_tx_end(db, rc);
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

enum dm_status cat_rule_delete(struct cat_db *db, const char *id, int purge, int64_t delay)
{
	CAT_REMOTE(db, rule_delete, id, purge, delay);
	enum dm_status rc = cat_tx_begin(db);
	struct sqldrv_stmt *st;
	int locked = 0;
	int64_t now = now_s();

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
	rc = step_done(db, st, "deleting a rule");
	if (rc == DM_OK && delay <= 0)
		rc = delete_rule_locked(db, id);
out:
	return cat_tx_end(db, rc);
}

enum dm_status cat_rule_update(struct cat_db *db, const char *id, const char *key, const char *value)
{
	CAT_REMOTE(db, rule_update, id, key, value);
	enum dm_status rc;
	struct sqldrv_stmt *st = NULL;
	int64_t v = 0;
	int64_t now = now_s();

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
		rc = step_done(db, st, "updating a rule");
out:
	return cat_tx_end(db, rc);
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
				      (enum cat_lock_state)code_index(lock_codes, cat_col_text(st, 3)),
				      (uint64_t)sqldrv_col_int64(st, 4) };
		if (cb(ud, &l))
			break;
	}
	sqldrv_reset(st);
	if (r != SQLDRV_ROW && r != SQLDRV_DONE)
		return cat_dberr(db, "listing locks");
	return DM_OK;
}

/* ------------------------------------------------------------------ */
/* judge                                                               */

struct id_list {
	char (*ids)[33];
	int64_t *nums;
	size_t n;
};

static void id_list_free(struct id_list *l)
{
	free(l->ids);
	free(l->nums);
}

/* Collect up to limit rows of (text id or int) from a query. */
static enum dm_status collect_ids(struct cat_db *db, struct sqldrv_stmt *st, int limit, struct id_list *l)
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
static enum dm_status judge_pick(struct cat_db *db, const char *sql, int64_t now, int limit,
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
	return collect_ids(db, st, limit, l);
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
		rc = cat_tx_end(db, rule_set_stuck(db, rule_id, msg));
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
	enum dm_status rc = ctx_load(db, rule_id, &x, 1);
	int64_t *ds = NULL, chosen[16];
	size_t nds = 0;

	if (rc) {
		/* placement is impossible now: the rule is STUCK with the reason */
		struct dm_err e = *cat_error(db);
		char msg[300];
		snprintf(msg, sizeof msg, "%.40s: %.250s", e.cls, e.msg);
		ctx_free(&x);
		if (e.code == DM_ENOENT && !strcmp(e.cls, "RuleNotFound"))
			return DM_OK;
		return rule_set_stuck(db, rule_id, msg);
	}
	if (dtype == CAT_DID_DATASET) {
		if (x.grouping == CAT_GROUPING_ALL) {
			rc = choose_all(&x, &did, 1, 1, chosen);
			if (rc == DM_OK)
				rc = apply_dataset(&x, did, 1, chosen);
		} else {
			rc = apply_dataset(&x, did, 1, NULL);
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
		collect_ids(db, st, 100000, &kids);
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
			rc = datasets_under(db, kids.nums[k], t, &ds, &nds);
			if (rc)
				break;
			if (x.grouping == CAT_GROUPING_ALL && nds) {
				rc = choose_all(&x, ds, nds, 0, chosen);
				for (size_t i = 0; i < nds && rc == DM_OK; i++)
					rc = apply_dataset(&x, ds[i], 0, chosen);
			} else {
				for (size_t i = 0; i < nds && rc == DM_OK; i++)
					rc = apply_dataset(&x, ds[i], 0, NULL);
			}
		}
		id_list_free(&kids);
	}
	if (rc == DM_OK)
		rc = ctx_flush(&x);
	if (rc == DM_OK)
		rc = rule_state_update(db, rule_id, NULL);
	else if (rc == DM_EQUOTA || rc == DM_EINVAL || rc == DM_EPERM) {
		struct dm_err e = *cat_error(db);
		char msg[300];
		snprintf(msg, sizeof msg, "%.40s: %.250s", e.cls, e.msg);
		rc = rule_set_stuck(db, rule_id, msg);
	}
out:
	free(ds);
	ctx_free(&x);
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
	if ((rc = step_done(db, st, "computing rule coverage")))
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
			rc = remove_lock(db, rule_id, account, batch[i].did, batch[i].rse, batch[i].state,
					 batch[i].bytes, purge, 1);
	} while (rc == DM_OK && n == LOCK_BATCH);
	free(batch);
	if (rc == DM_OK) {
		st = cat_stmt(db, "DELETE FROM dataset_locks WHERE rule_id=? AND NOT EXISTS"
				  " (SELECT 1 FROM judge_cover j WHERE j.id=dataset_locks.did_id)");
		if (!st)
			return db->err.code;
		sqldrv_bind_text(st, 1, rule_id, -1);
		rc = step_done(db, st, "deleting dataset locks");
	}
	if (rc == DM_OK)
		rc = rule_state_update(db, rule_id, NULL);
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
	collect_ids(db, st, limit, &upd);
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
		collect_ids(db, st, 10000, &rules);
		for (size_t k = 0; k < rules.n && rc == DM_OK; k++) {
			if (action == 'A')
				rc = evaluate_attach_rule(db, rules.ids[k], did, dtype);
			else if (action == 'D')
				rc = evaluate_detach_rule(db, rules.ids[k]);
		}
		id_list_free(&rules);
		if (rc == DM_OK && action == 'A') {
			st = cat_stmt(db, "UPDATE contents SET rule_evaluation=0 WHERE parent_id=? AND rule_evaluation=1");
			if (!st)
				rc = db->err.code;
			else {
				sqldrv_bind_int64(st, 1, did);
				rc = step_done(db, st, "clearing rule evaluation flags");
			}
		}
		if (rc == DM_OK) {
			st = cat_stmt(db, "DELETE FROM updated_dids WHERE id=?");
			if (!st)
				rc = db->err.code;
			else {
				sqldrv_bind_int64(st, 1, qid);
				rc = step_done(db, st, "dequeueing a DID update");
			}
		}
		rc = cat_tx_end(db, rc);
		if (rc)
			break;
		(*done)++;
	}
	id_list_free(&upd);
	return rc;
}

enum dm_status cat_judge_inject(struct cat_db *db, int limit, int worker, int nworkers, int *done)
{
	struct id_list l;
	enum dm_status rc;

	*done = 0;
	rc = judge_pick(db, "SELECT id FROM rules WHERE state='I' AND created_at<=?1 AND"
			    " (?2 <= 1 OR didfs_hash(id) % ?2 = ?3) ORDER BY created_at LIMIT ?4",
			now_s(), limit, worker, nworkers, &l);
	for (size_t i = 0; i < l.n && rc == DM_OK; i++) {
		struct rule_ctx x;
		rc = cat_tx_begin(db);
		if (rc)
			break;
		rc = ctx_load(db, l.ids[i], &x, 1);
		if (rc == DM_OK) {
			struct sqldrv_stmt *u = cat_stmt(db, "UPDATE rules SET state='R' WHERE id=? AND state='I'");
			if (u) {
				sqldrv_bind_text(u, 1, l.ids[i], -1);
				rc = step_done(db, u, "injecting a rule");
			}
			if (rc == DM_OK)
				rc = apply_rule(&x);
			if (rc == DM_OK)
				rc = rule_state_update(db, l.ids[i], NULL);
		}
		ctx_free(&x);
		if (placement_error(rc))
			rc = stuck_after_failure(db, l.ids[i], rc);
		else
			rc = cat_tx_end(db, rc);
		if (rc == DM_OK)
			(*done)++;
	}
	id_list_free(&l);
	return rc;
}

enum dm_status cat_judge_repair(struct cat_db *db, int limit, int64_t min_age, int64_t suspend_after,
				int worker, int nworkers, int *done)
{
	int64_t now = now_s();
	struct sqldrv_stmt *st;
	struct id_list l;
	enum dm_status rc;

	*done = 0;
	rc = judge_pick(db, "SELECT id FROM rules WHERE state='S' AND updated_at<=?1 AND"
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
				rc = step_done(db, st, "suspending a rule");
			}
			rc = cat_tx_end(db, rc);
			(*done)++;
			continue;
		}
		rc = ctx_load(db, l.ids[i], &x, 1);
		if (rc) {
			ctx_free(&x);
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
			int src = has_source(&x, batch[k].did, batch[k].rse);
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
			file_from_row(q, &f);
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
			if ((rc = step_done(db, q, "repairing a lock")))
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
			if ((rc = step_done(db, q, "repairing a replica")))
				break;
			rc = queue_request(&x, &f, batch[k].rse);
		}
		free(batch);
		/* missing locks (files attached while the rule could not be placed) */
		if (rc == DM_OK) {
			st = cat_stmt(db, "WITH RECURSIVE tree(id) AS (SELECT ?1 UNION SELECT c.child_id FROM contents c"
					  " JOIN tree t ON c.parent_id=t.id) SELECT count(*) FROM tree t JOIN dids d"
					  " ON d.id=t.id AND d.did_type='F'");
			if (st) {
				sqldrv_bind_int64(st, 1, x.did_id);
				query_i64(db, st, &files, NULL);
			}
			if (files * x.copies != total)
				rc = apply_rule(&x);
		}
		if (rc == DM_OK)
			rc = ctx_flush(&x);
		if (rc == DM_OK) {
			st = cat_stmt(db, "UPDATE rules SET updated_at=?, state='R' WHERE id=?");
			if (st) {
				sqldrv_bind_int64(st, 1, now);
				sqldrv_bind_text(st, 2, l.ids[i], -1);
				rc = step_done(db, st, "repairing a rule");
			}
		}
		if (rc == DM_OK)
			rc = rule_state_update(db, l.ids[i], NULL);
		ctx_free(&x);
		if (placement_error(rc))
			rc = stuck_after_failure(db, l.ids[i], rc);
		else
			rc = cat_tx_end(db, rc);
		if (rc == DM_OK)
			(*done)++;
	}
	id_list_free(&l);
	return rc;
}

enum dm_status cat_judge_clean(struct cat_db *db, int limit, int worker, int nworkers, int *done)
{
	struct id_list l;
	enum dm_status rc;

	*done = 0;
	/* a parent waiting for its child rule (child_rule_id) stays */
	rc = judge_pick(db, "SELECT id FROM rules WHERE expires_at < ?1 AND locked=0 AND child_rule_id IS NULL AND"
			    " (?2 <= 1 OR didfs_hash(id) % ?2 = ?3) ORDER BY expires_at LIMIT ?4",
			now_s(), limit, worker, nworkers, &l);
	for (size_t i = 0; i < l.n && rc == DM_OK; i++) {
		rc = cat_rule_delete_now(db, l.ids[i]);
		if (rc == DM_ENOENT)
			rc = DM_OK;
		else if (rc == DM_OK)
			(*done)++;
	}
	id_list_free(&l);
	return rc;
}

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
	r->state = (enum cat_req_state)code_index(req_codes, cat_col_text(st, 6));
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
	int64_t now = now_s();

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
	collect_ids(db, st, limit, &l);
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
	id_list_free(&l);
	return rc;
}

int cat_hb_is_live(struct cat_db *db, const char *executable, const char *worker_name, int64_t older_than,
		   cat_alive_cb alive, void *alive_ud)
{
	char host[256];
	const char *c1 = strchr(worker_name, ':'), *c2;
	int64_t pid, thread;
	struct sqldrv_stmt *st;
	int live;

	if (!c1 || !(c2 = strchr(c1 + 1, ':')) || (size_t)(c1 - worker_name) >= sizeof host)
		return 0;
	memcpy(host, worker_name, (size_t)(c1 - worker_name));
	host[c1 - worker_name] = 0;
	pid = strtoll(c1 + 1, NULL, 10);
	thread = strtoll(c2 + 1, NULL, 10);
	if (alive && pid > 0 && !alive(alive_ud, host, pid))
		return 0; /* a process its daemon knows is gone */
	st = cat_stmt(db, "SELECT 1 FROM heartbeats WHERE executable=? AND hostname=? AND pid=? AND"
			  " thread_id=? AND updated_at>=?");
	if (!st)
		return 1;
	sqldrv_bind_text(st, 1, executable, -1);
	sqldrv_bind_text(st, 2, host, -1);
	sqldrv_bind_int64(st, 3, pid);
	sqldrv_bind_int64(st, 4, thread);
	sqldrv_bind_int64(st, 5, now_s() - older_than);
	live = sqldrv_step(st) == SQLDRV_ROW;
	sqldrv_reset(st);
	return live;
}

enum dm_status cat_req_requeue_orphans(struct cat_db *db, const char *executable, int64_t max_age,
				       int64_t live_seconds, cat_alive_cb alive, void *alive_ud,
				       int *done)
{
	struct sqldrv_stmt *st;
	char **who = NULL;
	size_t n = 0;
	enum dm_status rc;
	int64_t now = now_s();

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
		rc = step_done(db, st, "requeueing requests");
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
			rc = step_done(db, st, "requeueing old requests");
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
	sqldrv_bind_int64(st, 4, now_s());
	if ((rc = step_done(db, st, "archiving a request")))
		return rc;
	st = cat_stmt(db, "DELETE FROM requests WHERE id=?");
	if (!st)
		return db->err.code;
	sqldrv_bind_text(st, 1, id, -1);
	return step_done(db, st, "archiving a request");
}

/* Move every lock on (did, rse) not in `to` into `to`, with rule counters and
 * states; error goes to rules that become STUCK. */
static enum dm_status locks_transition(struct cat_db *db, int64_t did, int64_t rse,
				       enum cat_lock_state to_state, const char *error)
{
	struct sqldrv_stmt *st = cat_stmt(db, "SELECT rule_id, state FROM locks WHERE did_id=? AND rse_num=? AND state!=?");
	const char to = lock_codes[to_state]; /* the row's letter */
	struct id_list rules;
	char *states;
	enum dm_status rc = DM_OK;
	int64_t now = now_s();

	if (!st)
		return db->err.code;
	sqldrv_bind_int64(st, 1, did);
	sqldrv_bind_int64(st, 2, rse);
	sqldrv_bind_text(st, 3, (char[]){ to, 0 }, 1);
	/* the state letter rides in nums via a second pass */
	collect_ids(db, st, 1000, &rules);
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
		if ((rc = step_done(db, st, "updating a lock")))
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
		if ((rc = step_done(db, st, "updating rule counters")))
			break;
		rc = rule_state_update(db, rules.ids[i], to_state == CAT_LOCK_STUCK ? error : NULL);
	}
out:
	free(states);
	id_list_free(&rules);
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
	int64_t did = 0, dest = 0, src = 0, now = now_s();
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
			      req_names[code_index(req_codes, (char[]){ cur, 0 })]);
		goto out;
	}
	if (source_rse && *source_rse && cat_rse_num(db, source_rse, &src) == DM_OK) {
		st = cat_stmt(db, "UPDATE requests SET source_rse_num=? WHERE id=?");
		if (st) {
			sqldrv_bind_int64(st, 1, src);
			sqldrv_bind_text(st, 2, id, -1);
			step_done(db, st, "recording the source");
		}
	}
	fate = cat_policy_request_fate(state, retry, max_retries);
	/* transfer-done / transfer-failed (outbox.c), before the request is archived */
	rc = cat_outbox_transfer(db, id, fate.fate == CAT_FATE_DONE ? "transfer-done" : "transfer-failed",
				 fate.fate == CAT_FATE_DONE ? NULL : (err_msg ? err_msg : "transfer failed"));
	if (rc)
		goto out;
	if (fate.fate == CAT_FATE_DONE) {
		rc = req_archive(db, id, req_codes[CAT_REQ_DONE], NULL);
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
		if ((rc = step_done(db, st, "making a replica available")))
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
		rc = step_done(db, st, "retrying a request");
		goto out;
	}
	/* given up: FAILED after the last retry, or NO_SOURCES */
	rc = req_archive(db, id, req_codes[fate.archived], err_msg);
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
	if ((rc = step_done(db, st, "marking a replica unavailable")))
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
			states[ns++] = req_codes[i];
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
	if (x.src_expr && load_source_set(&x) != DM_OK) {
		ctx_free(&x);
		return db->err.code;
	}
	if (!(st = sqldrv_prepare(db->sql, "SELECT s.num, s.rse, coalesce(dist.distance, 10) FROM replicas rp"
				       " JOIN rses s ON s.num=rp.rse_num LEFT JOIN distances dist ON"
				       " dist.src_rse_num=rp.rse_num AND dist.dest_rse_num=?2"
				       " WHERE rp.did_id=?1 AND rp.rse_num!=?2 AND rp.state='A' AND"
				       " s.availability_read=1 AND s.deleted=0"
				       " ORDER BY max(coalesce(dist.distance,10),0), s.rse"))) {
		ctx_free(&x);
		return cat_dberr(db, "listing sources");
	}
	sqldrv_bind_int64(st, 1, did);
	sqldrv_bind_int64(st, 2, dest);
	while ((r = sqldrv_step(st)) == SQLDRV_ROW) {
		if (!src_allowed(&x, sqldrv_col_int64(st, 0)))
			continue;
		if (cb(ud, cat_col_text(st, 1), (int)sqldrv_col_int64(st, 2)))
			break;
	}
	if (r != SQLDRV_ROW && r != SQLDRV_DONE)
		rc = cat_dberr(db, "listing sources");
	sqldrv_reset(st);
	ctx_free(&x);
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
	rc = step_done(db, st, "setting a distance");
out:
	return cat_tx_end(db, rc);
}

enum dm_status cat_replica_declare_bad(struct cat_db *db, const char *rse, const char *scope,
				       const char *name, const char *reason)
{
	int64_t did, num;
	enum dm_status rc = cat_tx_begin(db);
	struct sqldrv_stmt *st;

	if (rc)
		return rc;
	rc = cat_rse_num(db, rse, &num);
	if (rc == DM_OK)
		rc = cat_did_id(db, scope, name, &did, NULL);
	if (rc)
		goto out;
	st = cat_stmt(db, "UPDATE replicas SET state='D', updated_at=? WHERE did_id=? AND rse_num=?");
	if (!st) {
		rc = db->err.code;
		goto out;
	}
	sqldrv_bind_int64(st, 1, now_s());
	sqldrv_bind_int64(st, 2, did);
	sqldrv_bind_int64(st, 3, num);
	if ((rc = step_done(db, st, "declaring a bad replica")))
		goto out;
	if (sqldrv_changes(db->sql) == 0) {
		rc = cat_fail(db, DM_ENOENT, "ReplicaNotFound", "No replica of '%s:%s' on RSE '%s'", scope, name, rse);
		goto out;
	}
	st = cat_stmt(db, "INSERT INTO bad_replicas(did_id, rse_num, reason, state, account, created_at)"
			  " VALUES (?,?,?,'B',?,?)");
	if (!st) {
		rc = db->err.code;
		goto out;
	}
	sqldrv_bind_int64(st, 1, did);
	sqldrv_bind_int64(st, 2, num);
	sqldrv_bind_text(st, 3, reason, -1);
	sqldrv_bind_text(st, 4, cat_issuer(db), -1);
	sqldrv_bind_int64(st, 5, now_s());
	rc = step_done(db, st, "declaring a bad replica");
out:
	return cat_tx_end(db, rc);
}

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
	int64_t num, now = now_s();
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
	collect_ids(db, st, limit, &l);
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
	id_list_free(&l);
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
	query_i64(db, st, &bytes, &found);
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
	rc = judge_pick(db, "SELECT d.id, d.id FROM dids d WHERE d.expired_at < ?1 AND"
			    " NOT EXISTS (SELECT 1 FROM rules r WHERE r.did_id=d.id AND r.locked=1) AND"
			    " (?2 <= 1 OR d.id % ?2 = ?3) ORDER BY d.expired_at LIMIT ?4",
			now_s(), limit, worker, nworkers, &l);
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
			sqldrv_bind_int64(st, 2, now_s());
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
		collect_ids(db, st, 10000, &rules);
		for (size_t k = 0; k < rules.n && rc == DM_OK; k++) {
			struct sqldrv_stmt *u = cat_stmt(db, "UPDATE rules SET purge_replicas=1 WHERE id=?");
			if (u) {
				sqldrv_bind_text(u, 1, rules.ids[k], -1);
				step_done(db, u, "purging");
			}
			rc = delete_rule_locked(db, rules.ids[k]);
		}
		id_list_free(&rules);
		if (rc == DM_OK && type == 'F') {
			/* a file goes with its replicas: mark them for the reaper;
			 * the last replica deleted deletes the DID */
			st = cat_stmt(db, "UPDATE replicas SET tombstone=1 WHERE did_id=? AND lock_cnt=0");
			if (st) {
				sqldrv_bind_int64(st, 1, did);
				rc = step_done(db, st, "expiring replicas");
			}
			if (rc == DM_OK) {
				st = cat_stmt(db, "UPDATE dids SET expired_at=NULL WHERE id=?");
				if (st) {
					sqldrv_bind_int64(st, 1, did);
					rc = step_done(db, st, "expiring a file");
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
				rc = step_done(db, st, "deleting an expired DID");
			}
		}
		rc = cat_tx_end(db, rc);
		if (rc == DM_OK)
			(*done)++;
	}
	id_list_free(&l);
	return rc;
}

/* ------------------------------------------------------------------ */
/* heartbeats                                                          */

enum dm_status cat_hb_live(struct cat_db *db, const char *executable, const char *hostname,
			   int pid, int thread, int64_t older_than, cat_alive_cb alive,
			   void *alive_ud, int *index, int *total)
{
	enum dm_status rc = cat_tx_begin(db);
	int64_t now = now_s();
	struct sqldrv_stmt *st;
	int i = 0, r;

	if (rc)
		return rc;
	st = cat_stmt(db, "INSERT INTO heartbeats(executable, hostname, pid, thread_id, created_at, updated_at)"
			  " VALUES (?1,?2,?3,?4,?5,?5) ON CONFLICT(executable, hostname, pid, thread_id)"
			  " DO UPDATE SET updated_at=excluded.updated_at");
	if (!st)
		return cat_tx_end(db, db->err.code);
	sqldrv_bind_text(st, 1, executable, -1);
	sqldrv_bind_text(st, 2, hostname, -1);
	sqldrv_bind_int64(st, 3, pid);
	sqldrv_bind_int64(st, 4, thread);
	sqldrv_bind_int64(st, 5, now);
	if ((rc = step_done(db, st, "heartbeat")))
		return cat_tx_end(db, rc);
	/* sanity: rows of dead local processes and very old rows go */
	{
		struct sqldrv_stmt *q;
		struct { int64_t pid; } dead[64];
		int nd = 0;
		q = alive ? cat_stmt(db, "SELECT DISTINCT pid FROM heartbeats WHERE hostname=? AND pid!=?")
			  : NULL;
		if (q) {
			sqldrv_bind_text(q, 1, hostname, -1);
			sqldrv_bind_int64(q, 2, pid);
			while (nd < 64 && sqldrv_step(q) == SQLDRV_ROW) {
				int64_t p = sqldrv_col_int64(q, 0);
				if (p > 0 && !alive(alive_ud, hostname, p))
					dead[nd++].pid = p;
			}
			sqldrv_reset(q);
		}
		for (int k = 0; k < nd; k++) {
			q = cat_stmt(db, "DELETE FROM heartbeats WHERE hostname=? AND pid=?");
			if (q) {
				sqldrv_bind_text(q, 1, hostname, -1);
				sqldrv_bind_int64(q, 2, dead[k].pid);
				step_done(db, q, "heartbeat cleanup");
			}
		}
		q = cat_stmt(db, "DELETE FROM heartbeats WHERE updated_at < ?");
		if (q) {
			sqldrv_bind_int64(q, 1, now - 86400);
			step_done(db, q, "heartbeat cleanup");
		}
	}
	st = cat_stmt(db, "SELECT hostname, pid, thread_id FROM heartbeats WHERE executable=? AND updated_at>=?"
			  " ORDER BY hostname, pid, thread_id");
	if (!st)
		return cat_tx_end(db, db->err.code);
	sqldrv_bind_text(st, 1, executable, -1);
	sqldrv_bind_int64(st, 2, now - older_than);
	*index = 0;
	while ((r = sqldrv_step(st)) == SQLDRV_ROW) {
		if (!strcmp(cat_col_text(st, 0), hostname) && (int)sqldrv_col_int64(st, 1) == pid &&
		    (int)sqldrv_col_int64(st, 2) == thread)
			*index = i;
		i++;
	}
	sqldrv_reset(st);
	*total = i ? i : 1;
	return cat_tx_end(db, DM_OK);
}

enum dm_status cat_hb_die(struct cat_db *db, const char *executable, const char *hostname, int pid, int thread)
{
	struct sqldrv_stmt *st = cat_stmt(db, "DELETE FROM heartbeats WHERE executable=? AND hostname=? AND pid=? AND thread_id=?");

	if (!st)
		return db->err.code;
	sqldrv_bind_text(st, 1, executable, -1);
	sqldrv_bind_text(st, 2, hostname, -1);
	sqldrv_bind_int64(st, 3, pid);
	sqldrv_bind_int64(st, 4, thread);
	return step_done(db, st, "heartbeat");
}
