/* SPDX-License-Identifier: Apache-2.0 */
/*
 * engine.h - the rule engine's catalog calls, for the daemons (daemons/)
 * only: the judge's units of work, claiming transfer requests and recording
 * their outcomes, source candidates, declaring replicas bad, the reaper's
 * and the undertaker's queries, heartbeats.  Rucio's daemons run next to
 * the database, never over REST, so a remote catalog need not offer these;
 * the client calls (rules, locks, list-transfers) are in catalog.h.  Only
 * daemons/, catalog/ itself and the unit tests include this header.
 *
 * Every transition below is one transaction: a daemon killed at any point
 * and restarted finishes the work, nothing lost, nothing done twice.
 * Process liveness is the daemons' to judge (daemons/runtime.c): calls that
 * need it take a cat_alive_cb.
 */
#ifndef CAT_ENGINE_H
#define CAT_ENGINE_H

#include "catalog.h"

/* Whether the process `pid` on `hostname` may still run: 0 only when it is
 * known to be gone (a pid of this host that no longer exists), else 1.
 * NULL where a call takes one: only heartbeats count. */
typedef int (*cat_alive_cb)(void *ud, const char *hostname, int64_t pid);

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
/* Claim up to limit QUEUED requests of this worker's partition: they become
 * SUBMITTED with last_processed_by = worker_name, atomically, so two
 * conveyors never take the same one.  The callback sees each claimed one. */
enum dm_status cat_req_claim(struct cat_db *db, const char *worker_name, int limit, int worker,
			     int nworkers, cat_request_cb cb, void *ud);
/* Requests SUBMITTED by a conveyor that is gone (no heartbeat of
 * `executable` within live_seconds: the daemons' heartbeat.timeout, which
 * is how a conveyor on another host is known to be gone; or alive() says
 * its process on this host is gone) or for longer than max_age seconds go
 * back to QUEUED. */
enum dm_status cat_req_requeue_orphans(struct cat_db *db, const char *executable,
				       int64_t max_age, int64_t live_seconds, cat_alive_cb alive,
				       void *alive_ud, int *done);
/* Transfer outcome.  DONE: replica AVAILABLE, locks OK, rules updated.
 * FAILED: retried (QUEUED, retry_count+1) while retry_count+1 < max_retries,
 * else replica UNAVAILABLE, locks STUCK, rules STUCK with the error.
 * NO_SOURCES: never retried (locks STUCK).  worker: the claimant's name; a
 * request no longer SUBMITTED by it is RequestNotFound (NULL: no check). */
enum dm_status cat_req_finish(struct cat_db *db, const char *id, const char *worker,
			      enum cat_req_state st, const char *source_rse, const char *err_msg,
			      int max_retries);

/* Source candidates for a request, best first: AVAILABLE replicas on RSEs
 * readable (availability_read), inside the rule's source_replica_expression
 * if any, ordered by distance to the destination (distances table, unknown
 * = 10), then by RSE name.  cb gets the source RSE name. */
typedef int (*cat_source_cb)(void *ud, const char *rse, int distance);
enum dm_status cat_req_sources(struct cat_db *db, const char *request_id, cat_source_cb cb,
			       void *ud);
/* A source replica proved corrupted (checksum mismatch): mark it BAD so it
 * is not used again. */
enum dm_status cat_replica_declare_bad(struct cat_db *db, const char *rse, const char *scope,
				       const char *name, const char *reason);

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
 * instances of `executable` (rows updated within older_than seconds).  Rows
 * of other processes of this host that alive() says are gone, and rows a
 * day old, are removed first. */
enum dm_status cat_hb_live(struct cat_db *db, const char *executable, const char *hostname,
			   int pid, int thread, int64_t older_than, cat_alive_cb alive,
			   void *alive_ud, int *index, int *total);
enum dm_status cat_hb_die(struct cat_db *db, const char *executable, const char *hostname,
			  int pid, int thread);
/* Whether a worker named "hostname:pid:thread" has a live heartbeat (and
 * alive(), if given, does not say its process is gone). */
int cat_hb_is_live(struct cat_db *db, const char *executable, const char *worker_name,
		   int64_t older_than, cat_alive_cb alive, void *alive_ud);

/* ---- queue depths for monitoring (stats.c) ---- */
/* One snapshot: cb(ud, what, state, n) for requests and rules by state
 * (every state, zeros included), judge_updates, inject_due, expired_dids,
 * deletion (state obsolete, expired, being_deleted) and counter_updates
 * (state ""); stats.c says what each counts. */
typedef void (*cat_stat_cb)(void *ud, const char *what, const char *state, int64_t n);
enum dm_status cat_queue_stats(struct cat_db *db, cat_stat_cb cb, void *ud);
/* The transmogrifier (catalog/subscription.c): up to limit new DIDs of
 * this worker's partition matched against the active subscriptions, their
 * rules created (owner: the subscription's account) and each DID's new flag
 * cleared, in one transaction.  *done: DIDs handled; *rules: rules made. */
enum dm_status cat_transmogrify(struct cat_db *db, int limit, int worker, int nworkers, int *done,
				int *rules);

/* ---- hermes: the outbox of catalog/outbox.c ---- */
struct cat_message {
	int64_t id;
	const char *event_type;
	const char *payload; /* a JSON object */
	int64_t created_at;
};
typedef int (*cat_message_cb)(void *ud, const struct cat_message *m);
/* The oldest (up to limit) messages not yet delivered to sink. */
enum dm_status cat_messages_pending(struct cat_db *db, const char *sink, int limit,
				    cat_message_cb cb, void *ud);
/* Record that sink has ids[0..n), and delete those of them that every sink
 * of sinks_csv (",a,b," with nsinks names) now has; one transaction. */
enum dm_status cat_messages_delivered(struct cat_db *db, const char *sink, const int64_t *ids,
				      size_t n, const char *sinks_csv, int nsinks, int *deleted);
enum dm_status cat_messages_count(struct cat_db *db, int64_t *n);
/* The reaper could not delete a replica from storage: deletion-failed. */
enum dm_status cat_reaper_failed(struct cat_db *db, const char *rse, const char *scope,
				 const char *name, uint64_t bytes, const char *reason);

/* The necromancer (catalog/necromancer.c): settle up to limit declared
 * (BAD/SUSPICIOUS) replicas: RECOVERED once AVAILABLE again, LOST (file
 * availability LOST, LOST messages) when no AVAILABLE replica is left.
 * *done: settled; *lost: of those, lost. */
enum dm_status cat_necromancer_run(struct cat_db *db, int limit, int worker, int nworkers,
				   int *done, int *lost);

/* ---- wake-ups ----
 * On a store that notifies (PostgreSQL: LISTEN/NOTIFY, sent by triggers at
 * the commit of any insert into a queue table, from any process or host) a
 * daemon listens to the table its work is queued in (requests,
 * updated_dids, rules, messages, bad_replicas) and waits for an insert there
 * rather than sleeping out its interval; polling stays the backstop.
 * cat_work_listen: DM_ENOTSUP where the store has none (SQLite). */
enum dm_status cat_work_listen(struct cat_db *db, const char *table);
/* 1: work may have arrived (an insert was committed, or the connection was
 * made again and notifications may have been missed), 0: none within
 * timeout_ms, -1: error (cat_error). */
int cat_work_wait(struct cat_db *db, int timeout_ms);

#endif
