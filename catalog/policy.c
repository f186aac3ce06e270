/* SPDX-License-Identifier: Apache-2.0 */
/*
 * policy.c - Rucio's decisions as pure functions (policy.h): locks from
 * replicas, rules from locks, a request's fate, the repair back-off, RSE
 * selection, protocol choice.  No SQL, no I/O, no clock: rule.c and rse.c
 * load the values, call these and store what they return.
 */
#include "policy.h"

#include <string.h>

struct cat_policy_lock cat_policy_new_lock(int replica_exists, enum cat_replica_state state,
					   int has_source)
{
	struct cat_policy_lock d = { CAT_LOCK_STUCK, 0, 0, CAT_REPLICA_UNAVAILABLE };

	if (replica_exists &&
	    (state == CAT_REPLICA_AVAILABLE || state == CAT_REPLICA_TEMPORARY_UNAVAILABLE)) {
		d.lock = CAT_LOCK_OK;
	} else if (replica_exists && state == CAT_REPLICA_COPYING) {
		/* an in-flight copy (a transfer or an upload) is reused, as
		 * Rucio does: the lock waits for the replica to be AVAILABLE */
		d.lock = CAT_LOCK_REPLICATING;
	} else if (has_source) {
		d.lock = CAT_LOCK_REPLICATING;
		d.queue_request = 1;
		d.set_replica = 1;
		d.replica = CAT_REPLICA_COPYING;
	} else {
		/* nothing to copy from: the lock is STUCK; a new replica row
		 * is UNAVAILABLE, an existing one keeps its state */
		d.lock = CAT_LOCK_STUCK;
		d.set_replica = !replica_exists;
		d.replica = CAT_REPLICA_UNAVAILABLE;
	}
	return d;
}

int cat_policy_locks_after_replica(enum cat_replica_state state, enum cat_lock_state *to)
{
	if (state == CAT_REPLICA_AVAILABLE) {
		*to = CAT_LOCK_OK;
		return 1;
	}
	if (state == CAT_REPLICA_UNAVAILABLE) {
		*to = CAT_LOCK_STUCK;
		return 1;
	}
	return 0;
}

enum cat_rule_state cat_policy_rule_state(enum cat_rule_state current, int64_t ok,
					  int64_t replicating, int64_t stuck)
{
	(void)ok;
	if (current == CAT_RULE_SUSPENDED || current == CAT_RULE_WAITING_APPROVAL ||
	    current == CAT_RULE_INJECT)
		return current;
	if (stuck > 0)
		return CAT_RULE_STUCK;
	if (replicating <= 0)
		return CAT_RULE_OK;
	return CAT_RULE_REPLICATING;
}

struct cat_policy_outcome cat_policy_request_fate(enum cat_req_state outcome, int retry_count,
						  int max_retries)
{
	struct cat_policy_outcome o;

	if (outcome == CAT_REQ_DONE) {
		o.fate = CAT_FATE_DONE;
		o.archived = CAT_REQ_DONE;
	} else if (outcome == CAT_REQ_NO_SOURCES) {
		o.fate = CAT_FATE_GIVE_UP;
		o.archived = CAT_REQ_NO_SOURCES;
	} else if ((int64_t)retry_count + 1 < (int64_t)max_retries) {
		o.fate = CAT_FATE_RETRY;
		o.archived = CAT_REQ_QUEUED;
	} else {
		o.fate = CAT_FATE_GIVE_UP;
		o.archived = CAT_REQ_FAILED;
	}
	return o;
}

int64_t cat_policy_repair_backoff(int64_t min_age, int64_t repair_count)
{
	int shift = repair_count < 0 ? 0 : repair_count > 6 ? 6 : (int)repair_count;

	if (min_age <= 0)
		return 0;
	if (min_age > (INT64_MAX >> shift))
		return INT64_MAX;
	return min_age << shift;
}

int cat_policy_repair_due(int64_t now, int64_t updated_at, int64_t min_age, int64_t repair_count)
{
	int64_t wait = cat_policy_repair_backoff(min_age, repair_count);

	/* updated_at <= now - wait, without overflowing (wait >= 0) */
	if (now < INT64_MIN + wait)
		return 0;
	return updated_at <= now - wait;
}

enum cat_policy_select cat_policy_select_rses(struct cat_policy_rse *c, size_t n, int copies,
					      int64_t size, const int64_t *preferred,
					      size_t npref, cat_policy_rand rnd, void *rnd_ud,
					      int64_t *out)
{
	size_t eligible = 0, quota_ok = 0;

	if (copies < 0)
		copies = 0;
	if (size < 0)
		size = 0; /* bytes */
	for (size_t i = 0; i < n; i++) {
		int q = c[i].quota_left < 0 || c[i].quota_left > size;
		int s = c[i].space_left < 0 || c[i].space_left >= size;
		c[i].chosen = !(q && s) ? -1 : 0;
		quota_ok += (size_t)q;
		eligible += (size_t)(q && s);
	}
	if (eligible < (size_t)copies)
		return quota_ok < (size_t)copies ? CAT_SELECT_NO_QUOTA : CAT_SELECT_NO_SPACE;
	for (int k = 0; k < copies; k++) {
		long pick = -1;
		double total = 0, r, acc = 0;

		for (size_t p = 0; p < npref && pick < 0; p++)
			for (size_t i = 0; i < n; i++)
				if (c[i].id == preferred[p] && c[i].chosen == 0) {
					pick = (long)i;
					break;
				}
		if (pick < 0) {
			for (size_t i = 0; i < n; i++)
				if (c[i].chosen == 0 && c[i].weight > 0)
					total += c[i].weight;
			r = total > 0 ? rnd(rnd_ud) * total : 0;
			for (size_t i = 0; i < n; i++) {
				if (c[i].chosen != 0)
					continue;
				acc += c[i].weight > 0 ? c[i].weight : 0;
				pick = (long)i;
				if (total > 0 && r < acc)
					break;
			}
		}
		if (pick < 0)
			return CAT_SELECT_TOO_FEW;
		c[pick].chosen = 1;
		if (c[pick].quota_left >= 0)
			c[pick].quota_left -= size;
		if (c[pick].space_left >= 0)
			c[pick].space_left -= size;
		out[k] = c[pick].id;
	}
	return CAT_SELECT_OK;
}

int cat_policy_proto_prio(const struct cat_protocol *p, enum cat_proto_op op, enum cat_domain dom)
{
	int prio, other = dom == CAT_LAN ? CAT_WAN : CAT_LAN;

	if ((unsigned)op >= CAT_OP_COUNT || (unsigned)dom >= CAT_DOMAIN_COUNT)
		return -1;
	prio = p->prio[dom][op];
	if (prio < 0 && op != CAT_OP_TPC_READ && op != CAT_OP_TPC_WRITE)
		prio = p->prio[other][op];
	return prio < 0 ? -1 : prio;
}

int cat_policy_proto_better(const struct cat_protocol *p, enum cat_proto_op op,
			    enum cat_domain dom, const char *scheme, int best_prio)
{
	int prio = cat_policy_proto_prio(p, op, dom);

	if (prio < 0 || (scheme && (!p->scheme || strcmp(scheme, p->scheme))))
		return -1;
	if (best_prio >= 0 && prio >= best_prio)
		return -1;
	return prio;
}

long cat_policy_proto_pick(const struct cat_protocol *p, size_t n, enum cat_proto_op op,
			   enum cat_domain dom, const char *scheme)
{
	long best = -1;
	int best_prio = -1;

	for (size_t i = 0; i < n; i++) {
		int prio = cat_policy_proto_better(&p[i], op, dom, scheme, best_prio);
		if (prio >= 0) {
			best = (long)i;
			best_prio = prio;
		}
	}
	return best;
}
