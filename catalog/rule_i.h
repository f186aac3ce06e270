/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rule_i.h - what the rule engine's files share (prefix rl_; not exported):
 * rule.c, placement.c, judge.c, request.c, reaper.c, heartbeat.c.  The rule
 * as the engine works with it (struct rule_ctx: the row, the placement
 * candidates, counter deltas to write once), the one-letter state codes of
 * the rows, and small SQL helpers.
 */
#ifndef CAT_RULE_I_H
#define CAT_RULE_I_H

#include "catalog_i.h"
#include "policy.h"

#define LOCK_BATCH 512

struct file_row {
	int64_t id;
	int64_t bytes;
	char adler32[9];
	char md5[33];
};

struct id_list {
	char (*ids)[33];
	int64_t *nums;
	size_t n;
};

struct lock_ref {
	int64_t did, rse, bytes;
	char state;
};

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

/* rule_codes.c: the rows' state codes, small SQL helpers */
extern const char rl_rule_codes[];
extern const char rl_grouping_codes[];
extern const char rl_lock_codes[];
extern const char rl_req_codes[];
extern const char *const rl_req_names[];
int rl_code_index(const char *codes, const char *c);
int64_t rl_now_s(void);
enum dm_status rl_query_i64(struct cat_db *db, struct sqldrv_stmt *st, int64_t *out,
			    int *found);
enum dm_status rl_step_done(struct cat_db *db, struct sqldrv_stmt *st, const char *what);

/* rule.c: the rule's state, lock removal, deletion */
enum dm_status rl_delete_rule_locked(struct cat_db *db, const char *id);
enum dm_status rl_remove_lock(struct cat_db *db, const char *rule_id, const char *account,
			      int64_t did, int64_t rse, char state, int64_t bytes, int purge,
			      int update_rule);
enum dm_status rl_rule_set_stuck(struct cat_db *db, const char *id, const char *error);
enum dm_status rl_rule_state_update(struct cat_db *db, const char *id, const char *error);

/* placement.c: loading a rule, RSE selection, locks and the requests they need */
enum dm_status rl_apply_dataset(struct rule_ctx *x, int64_t ds, int only_new,
				const int64_t *all_chosen);
enum dm_status rl_apply_rule(struct rule_ctx *x);
enum dm_status rl_build_selector(struct rule_ctx *x);
enum dm_status rl_choose_all(struct rule_ctx *x, const int64_t *ds, size_t nds, int only_new,
			     int64_t *chosen);
enum dm_status rl_ctx_flush(struct rule_ctx *x);
void rl_ctx_free(struct rule_ctx *x);
enum dm_status rl_ctx_load(struct cat_db *db, const char *id, struct rule_ctx *x,
			   int with_selector);
enum dm_status rl_datasets_under(struct cat_db *db, int64_t did, enum cat_did_type t,
				 int64_t **out, size_t *n);
void rl_file_from_row(struct sqldrv_stmt *st, struct file_row *f);
int rl_has_source(struct rule_ctx *x, int64_t did, int64_t dest);
enum dm_status rl_load_source_set(struct rule_ctx *x);
enum dm_status rl_queue_request(struct rule_ctx *x, const struct file_row *f, int64_t dest);
int rl_src_allowed(struct rule_ctx *x, int64_t num);

/* judge.c: the judge's picks (id lists, shared with request.c) */
enum dm_status rl_collect_ids(struct cat_db *db, struct sqldrv_stmt *st, int limit,
			      struct id_list *l);
void rl_id_list_free(struct id_list *l);
enum dm_status rl_judge_pick(struct cat_db *db, const char *sql, int64_t now, int limit,
			     int worker, int nworkers, struct id_list *l);

#endif
