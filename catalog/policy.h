/* SPDX-License-Identifier: Apache-2.0 */
/*
 * policy.h - Rucio's decisions as pure functions (prefix cat_policy_): the
 * state of a new lock from the replica it lands on, what a replica's new
 * state does to its locks, a rule's state from its lock counts, a
 * request's fate after a transfer outcome, the back-off before a stuck
 * lock is repaired, RSE selection for a rule, and the choice of a protocol
 * for an operation.  Plain values in, plain values out: no SQL, no I/O, no
 * clock, no global state (the random draw of RSE selection comes from the
 * caller).  The stores load the values, call these and save the result;
 * the storage letters of states ('A', 'O', 'S', ...) never reach here.
 * Unit tests: tests/unit/catalog/test_policy.c; fuzzed by
 * tests/fuzz/fuzz_policy.c.  Semantics: shared/reference/rucio.md 5-8.
 */
#ifndef CAT_POLICY_H
#define CAT_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "catalog.h"

/* ---- locks ---- */

/* What placing a lock on an RSE does (Rucio's __create_lock_and_replica). */
struct cat_policy_lock {
	enum cat_lock_state lock;
	int queue_request;  /* a transfer to the RSE is queued */
	int set_replica;    /* the replica's state becomes `replica` (created if missing) */
	enum cat_replica_state replica;
};
/* replica_exists: the RSE has a row for the file (in state `state`);
 * has_source: another allowed RSE holds an AVAILABLE copy to read from.
 * AVAILABLE and TEMPORARY_UNAVAILABLE replicas give an OK lock; a COPYING
 * one (a transfer or an upload in flight) a REPLICATING lock that waits for
 * it; otherwise a source gives a REPLICATING lock, a COPYING replica and a
 * request, and no source a STUCK lock (a new replica UNAVAILABLE). */
struct cat_policy_lock cat_policy_new_lock(int replica_exists, enum cat_replica_state state,
					   int has_source);

/* Rucio's update_replicas_states: a replica becoming AVAILABLE turns its
 * locks OK, UNAVAILABLE turns them STUCK; 1 and *to set when locks move,
 * 0 for any other state. */
int cat_policy_locks_after_replica(enum cat_replica_state state, enum cat_lock_state *to);

/* ---- rules ---- */

/* A rule's state from its lock counts: any stuck -> STUCK, none replicating
 * -> OK, else REPLICATING.  SUSPENDED, WAITING_APPROVAL and INJECT rules
 * keep their state (the counts do not decide those). */
enum cat_rule_state cat_policy_rule_state(enum cat_rule_state current, int64_t ok,
					  int64_t replicating, int64_t stuck);

/* ---- requests ---- */

enum cat_policy_fate {
	CAT_FATE_DONE,     /* archived DONE; the replica AVAILABLE, its locks OK */
	CAT_FATE_RETRY,    /* QUEUED again with retry_count + 1 */
	CAT_FATE_GIVE_UP,  /* archived as `archived`; the replica UNAVAILABLE (if
			    * COPYING), its locks STUCK, the rules STUCK */
};
struct cat_policy_outcome {
	enum cat_policy_fate fate;
	enum cat_req_state archived; /* DONE, FAILED or NO_SOURCES (not for RETRY) */
};
/* A transfer's outcome (DONE, FAILED, NO_SOURCES; anything else counts as
 * FAILED) after retry_count earlier retries: FAILED is retried while
 * retry_count + 1 < max_retries; NO_SOURCES is never retried. */
struct cat_policy_outcome cat_policy_request_fate(enum cat_req_state outcome, int retry_count,
						  int max_retries);

/* The judge-repairer's back-off: seconds a stuck lock waits after its last
 * change before the repair_count-th repair: min_age * 2^min(repair_count,
 * 6), saturating.  _due: whether a lock changed at updated_at is due at now. */
int64_t cat_policy_repair_backoff(int64_t min_age, int64_t repair_count);
int cat_policy_repair_due(int64_t now, int64_t updated_at, int64_t min_age, int64_t repair_count);

/* ---- RSE selection (Rucio's rse_selector) ---- */

struct cat_policy_rse {
	int64_t id;          /* the caller's key */
	double weight;       /* >= 0; the rule's weight attribute, else 1 */
	int64_t quota_left;  /* bytes the account may still use there, -1 unlimited */
	int64_t space_left;  /* bytes free under MaxSpaceAvailable, -1 unlimited */
	int chosen;          /* scratch: 1 chosen, -1 not eligible, 0 free */
};
enum cat_policy_select {
	CAT_SELECT_OK,
	CAT_SELECT_NO_QUOTA,   /* fewer than `copies` RSEs with quota for size */
	CAT_SELECT_NO_SPACE,   /* quota enough, but not space */
	CAT_SELECT_TOO_FEW,    /* fewer candidates than copies */
};
/* A uniform draw in [0, 1). */
typedef double (*cat_policy_rand)(void *ud);
/* Choose `copies` RSEs for `size` bytes into out[] (their ids): eligible
 * are candidates with quota_left > size (or unlimited) and space_left >=
 * size (or unlimited).  The preferred ids (RSEs that already hold the most
 * of the data) are taken first, in their order, if eligible; the rest are
 * drawn at random in proportion to weight (all-zero weights: the first
 * eligible).  The chosen candidates' quota_left/space_left are reduced by
 * size, so calling again for the next file of a group sees what is left. */
enum cat_policy_select cat_policy_select_rses(struct cat_policy_rse *c, size_t n, int copies,
					      int64_t size, const int64_t *preferred,
					      size_t npref, cat_policy_rand rnd, void *rnd_ud,
					      int64_t *out);

/* ---- protocols ---- */

/* A protocol's priority for an operation seen from a domain: prio[dom][op],
 * else (not for third-party copies) the other domain's; -1 if the
 * operation is disabled in both. */
int cat_policy_proto_prio(const struct cat_protocol *p, enum cat_proto_op op,
			  enum cat_domain dom);
/* Whether p beats the best so far (best_prio: its priority, -1 = none yet)
 * for op from dom, scheme (if not NULL) restricting: p's priority if it is
 * strictly lower (the first of equals stays), else -1.  For a store that
 * streams its protocols through a callback. */
int cat_policy_proto_better(const struct cat_protocol *p, enum cat_proto_op op,
			    enum cat_domain dom, const char *scheme, int best_prio);
/* The best of n protocols for op from dom: the lowest priority, the first
 * of equals; scheme (if not NULL) restricts.  Its index, or -1 if none. */
long cat_policy_proto_pick(const struct cat_protocol *p, size_t n, enum cat_proto_op op,
			   enum cat_domain dom, const char *scheme);

#endif
