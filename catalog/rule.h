/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rule.h - the rule engine's catalog calls (prefix cat_rule_, cat_req_,
 * cat_hb_, ...): replication rules, locks, transfer requests, heartbeats,
 * deletion candidates, expired DIDs.  Semantics and state machines are
 * Rucio's (shared/reference/rucio.md sections 5-8); the daemons in daemons/
 * drive them, the CLI and the mount create and inspect rules.
 *
 * States
 *   rule:    REPLICATING -> OK | STUCK;  STUCK -> REPLICATING (repairer)
 *            -> SUSPENDED (stuck 14 days);  INJECT -> REPLICATING (injector)
 *   lock:    REPLICATING -> OK | STUCK
 *   request: QUEUED -> SUBMITTED -> DONE | FAILED;  FAILED -> QUEUED (retry,
 *            retry_count+1) while retry_count < max, else the lock is STUCK;
 *            NO_SOURCES when no replica can serve as source.
 *   replica: COPYING while a lock is REPLICATING; AVAILABLE when its
 *            transfer is DONE; UNAVAILABLE when transfers gave up.
 * Every transition below is one transaction: a daemon killed at any point
 * and restarted finishes the work, nothing lost, nothing done twice.
 */
#ifndef CAT_RULE_H
#define CAT_RULE_H

#include "catalog.h"

enum cat_rule_state {
	CAT_RULE_REPLICATING, CAT_RULE_OK, CAT_RULE_STUCK, CAT_RULE_SUSPENDED,
	CAT_RULE_WAITING_APPROVAL, CAT_RULE_INJECT,
};
enum cat_lock_state { CAT_LOCK_REPLICATING, CAT_LOCK_OK, CAT_LOCK_STUCK };
enum cat_grouping { CAT_GROUPING_ALL, CAT_GROUPING_DATASET, CAT_GROUPING_NONE };
enum cat_req_state {
	CAT_REQ_QUEUED, CAT_REQ_SUBMITTED, CAT_REQ_DONE, CAT_REQ_FAILED, CAT_REQ_NO_SOURCES,
	CAT_REQ_LOST,
};

const char *cat_rule_state_name(enum cat_rule_state s);
const char *cat_lock_state_name(enum cat_lock_state s);
const char *cat_grouping_name(enum cat_grouping g);
int cat_grouping_parse(const char *s, enum cat_grouping *g);
const char *cat_req_state_name(enum cat_req_state s);

/* ---- rules ---- */
struct cat_rule_opts {
	int copies;
	const char *rse_expression;
	enum cat_grouping grouping;      /* default DATASET (REST default) */
	const char *weight;              /* RSE attribute name, or NULL */
	int64_t lifetime;                /* seconds, 0 = none */
	int locked;
	const char *source_replica_expression;
	const char *activity;            /* default "User Subscriptions" */
	int purge_replicas;
	int ignore_availability;
	int ignore_account_limit;
	const char *comment;
	const char *notification;        /* YES, NO, CLOSE, PROGRESS; default NO */
	int asynchronous;                /* state INJECT, placed by the injector */
	int priority;                    /* default 3 */
};
void cat_rule_opts_init(struct cat_rule_opts *o);

struct cat_rule {
	const char *id;
	const char *scope;
	const char *name;
	enum cat_did_type did_type;
	const char *account;
	enum cat_rule_state state;
	const char *error;
	const char *rse_expression;
	int copies;
	enum cat_grouping grouping;
	const char *weight;
	int locked;
	const char *source_replica_expression;
	const char *activity;
	int purge_replicas;
	int ignore_availability;
	const char *comment;
	const char *notification;
	int64_t locks_ok_cnt, locks_replicating_cnt, locks_stuck_cnt;
	int64_t expires_at, created_at, updated_at, stuck_at;
	int priority;
};
typedef int (*cat_rule_cb)(void *ud, const struct cat_rule *r);

/* Create a rule on a DID for the issuer's account and place it (unless
 * asynchronous): locks, replicas and transfer requests, as Rucio's add_rule.
 * Unlike Rucio, large rules (length * copies >= 10000) are not forced
 * asynchronous: placing 100,000 locks takes seconds here.
 * Errors: InvalidRSEExpression, InsufficientTargetRSEs,
 * InsufficientAccountLimit, RSEWriteBlocked, DuplicateRule, InvalidRuleWeight,
 * DataIdentifierNotFound, InvalidValueForKey, InvalidSourceReplicaExpression.
 * id_out: 33 bytes. */
enum dm_status cat_rule_add(struct cat_db *db, const char *scope, const char *name,
			    const struct cat_rule_opts *o, char *id_out);
enum dm_status cat_rule_get(struct cat_db *db, const char *id, cat_rule_cb cb, void *ud);
/* Rules on a DID (scope/name), or of an account (account != NULL), or all. */
enum dm_status cat_rule_list(struct cat_db *db, const char *scope, const char *name,
			     const char *account, cat_rule_cb cb, void *ud);
/* Rules that cover a file through its parents (and on the file itself). */
enum dm_status cat_rule_list_for_file(struct cat_db *db, const char *scope, const char *name,
				      cat_rule_cb cb, void *ud);
/* Soft delete as Rucio's REST: expires_at = min(now + delay, expires_at)
 * and the judge-cleaner deletes it then; delay <= 0 hard-deletes at once.
 * purge: -1 keep the rule's flag, 0/1 override.  Locked rule:
 * UnsupportedOperation. */
enum dm_status cat_rule_delete(struct cat_db *db, const char *id, int purge, int64_t delay);
/* Hard delete: locks, dataset locks, requests, counters; replicas whose last
 * lock goes get their tombstone (OBSOLETE with purge_replicas). */
enum dm_status cat_rule_delete_now(struct cat_db *db, const char *id);
/* update-rule options: lifetime, locked, comment, activity, priority,
 * purge_replicas, state (only "STUCK" -> repair or "SUSPENDED"),
 * source_replica_expression. */
enum dm_status cat_rule_update(struct cat_db *db, const char *id, const char *key,
			       const char *value);

/* Per-RSE lock counts of a rule (rule-info). */
struct cat_lock_count {
	const char *rse;
	int64_t ok, replicating, stuck;
};
typedef int (*cat_lock_count_cb)(void *ud, const struct cat_lock_count *c);
enum dm_status cat_rule_lock_counts(struct cat_db *db, const char *id, cat_lock_count_cb cb,
				    void *ud);
struct cat_lock {
	const char *scope;
	const char *name;
	const char *rse;
	const char *rule_id;
	enum cat_lock_state state;
	uint64_t bytes;
};
typedef int (*cat_lock_cb)(void *ud, const struct cat_lock *l);
enum dm_status cat_rule_list_locks(struct cat_db *db, const char *id, cat_lock_cb cb, void *ud);

/* ---- judge work units (each one transaction; return how many done) ---- */
/* judge-evaluator: process up to limit queued DID updates (attach/detach)
 * of this worker's partition. */
enum dm_status cat_judge_evaluate(struct cat_db *db, int limit, int worker, int nworkers,
				  int *done);
/* judge-injector: place INJECT rules whose time has come. */
enum dm_status cat_judge_inject(struct cat_db *db, int limit, int worker, int nworkers, int *done);
/* judge-repairer: STUCK rules not touched for min_age seconds (with a
 * back-off growing with the lock's repair count): requeue their stuck locks
 * (re-selecting the RSE if it is no longer eligible); SUSPENDED after
 * suspend_after seconds stuck. */
enum dm_status cat_judge_repair(struct cat_db *db, int limit, int64_t min_age,
				int64_t suspend_after, int worker, int nworkers, int *done);
/* judge-cleaner: hard-delete expired, unlocked rules. */
enum dm_status cat_judge_clean(struct cat_db *db, int limit, int worker, int nworkers, int *done);

/* ---- transfer requests (conveyor) ---- */
struct cat_request {
	const char *id;
	const char *scope;
	const char *name;
	const char *dest_rse;
	const char *rule_id;
	const char *activity;
	enum cat_req_state state;
	uint64_t bytes;
	const char *adler32;
	const char *md5;
	int retry_count;
	const char *err_msg;
	const char *source_rse;   /* chosen source, once known */
	const char *last_processed_by;
	int64_t requested_at, submitted_at, transferred_at, updated_at;
	const char *source_replica_expression;
};
typedef int (*cat_request_cb)(void *ud, const struct cat_request *r);
/* Claim up to limit QUEUED requests of this worker's partition: they become
 * SUBMITTED with last_processed_by = worker_name, atomically, so two
 * conveyors never take the same one.  The callback sees each claimed one. */
enum dm_status cat_req_claim(struct cat_db *db, const char *worker_name, int limit, int worker,
			     int nworkers, cat_request_cb cb, void *ud);
/* Requests SUBMITTED by a conveyor that is gone (no heartbeat of
 * `executable` within CAT_HB_LIVE_SECONDS, or a local pid that no longer
 * exists) or for longer than max_age seconds go back to QUEUED. */
#define CAT_HB_LIVE_SECONDS 120
enum dm_status cat_req_requeue_orphans(struct cat_db *db, const char *executable,
				       int64_t max_age, int *done);
/* Transfer outcome.  DONE: replica AVAILABLE, locks OK, rules updated.
 * FAILED: retried (QUEUED, retry_count+1) while retry_count+1 < max_retries,
 * else replica UNAVAILABLE, locks STUCK, rules STUCK with the error.
 * NO_SOURCES: never retried (locks STUCK).  worker: the claimant's name; a
 * request no longer SUBMITTED by it is RequestNotFound (NULL: no check). */
enum dm_status cat_req_finish(struct cat_db *db, const char *id, const char *worker,
			      enum cat_req_state st, const char *source_rse, const char *err_msg,
			      int max_retries);
/* Requests by state (mask of 1 << CAT_REQ_*; 0 = all), for list-transfers. */
enum dm_status cat_req_list(struct cat_db *db, unsigned state_mask, const char *rule_id,
			    cat_request_cb cb, void *ud);

/* Source candidates for a request, best first: AVAILABLE replicas on RSEs
 * readable (availability_read), inside the rule's source_replica_expression
 * if any, ordered by distance to the destination (distances table, unknown
 * = 10), then by RSE name.  cb gets the source RSE name. */
typedef int (*cat_source_cb)(void *ud, const char *rse, int distance);
enum dm_status cat_req_sources(struct cat_db *db, const char *request_id, cat_source_cb cb,
			       void *ud);
enum dm_status cat_distance_set(struct cat_db *db, const char *src, const char *dst,
				int distance);
/* A source replica proved corrupted (checksum mismatch): mark it BAD so it
 * is not used again. */
enum dm_status cat_replica_declare_bad(struct cat_db *db, const char *rse, const char *scope,
				       const char *name, const char *reason);

/* ---- protocols for a transfer ---- */
/* Best protocol of an RSE for an operation (lowest priority, wan first):
 * returns DM_ENOTSUP (RSEProtocolNotSupported) if none.  The strings in *p
 * are owned by the caller's buffer b (released with dm_buf_release). */
enum dm_status cat_rse_protocol_for(struct cat_db *db, const char *rse, enum cat_proto_op op,
				    const char *scheme, struct cat_protocol *p,
				    struct dm_buf *b);

/* ---- reaper ---- */
struct cat_deletion {
	const char *scope;
	const char *name;
	const char *rse;
	uint64_t bytes;
	const char *path; /* non-deterministic path or NULL */
};
typedef int (*cat_deletion_cb)(void *ud, const struct cat_deletion *d);
/* Mark up to limit deletable replicas of an RSE BEING_DELETED and list them:
 * lock_cnt = 0, tombstone passed (greedy) or OBSOLETE only (not greedy),
 * not a source of a queued/submitted request, not the last AVAILABLE copy of
 * a file that has a pending request. */
enum dm_status cat_reaper_claim(struct cat_db *db, const char *rse, int greedy, int limit,
				cat_deletion_cb cb, void *ud);
/* After the storage delete (or "not found" on storage): remove the replica
 * row; the last replica gone deletes the file DID (Rucio). */
enum dm_status cat_reaper_done(struct cat_db *db, const char *rse, const char *scope,
			       const char *name);
/* RSEs whose availability_delete is on. */
enum dm_status cat_reaper_rses(struct cat_db *db, cat_rse_cb cb, void *ud);

/* ---- undertaker ---- */
/* Delete up to limit expired DIDs (expired_at < now, no locked rule): their
 * rules (purging replicas), their attachments, metadata and the DID. */
enum dm_status cat_undertaker_run(struct cat_db *db, int limit, int worker, int nworkers,
				  int *done);

/* ---- heartbeats ---- */
/* Upsert this thread's heartbeat and return its index and the number of live
 * instances of `executable` (rows updated within older_than seconds). */
enum dm_status cat_hb_live(struct cat_db *db, const char *executable, const char *hostname,
			   int pid, int thread, int64_t older_than, int *index, int *total);
enum dm_status cat_hb_die(struct cat_db *db, const char *executable, const char *hostname,
			  int pid, int thread);
/* Whether a worker named "hostname:pid:thread" has a live heartbeat. */
int cat_hb_is_live(struct cat_db *db, const char *executable, const char *worker_name,
		   int64_t older_than);

#endif
