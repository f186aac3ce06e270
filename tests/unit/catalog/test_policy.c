/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for catalog/policy.c, Rucio's decisions as pure functions:
 * lock state from replica state, locks after a replica state change, rule
 * state from lock counts, a request's fate, the repair back-off, RSE
 * selection, protocol choice.  No catalog is opened: plain values only.
 */
#include "policy.h"
#include "tap.h"

#include <stdint.h>
#include <string.h>

static void test_new_lock(void)
{
	struct cat_policy_lock d;

	/* AVAILABLE and TEMPORARY_UNAVAILABLE: OK, nothing else to do */
	d = cat_policy_new_lock(1, CAT_REPLICA_AVAILABLE, 1);
	CHECK(d.lock == CAT_LOCK_OK && !d.queue_request && !d.set_replica);
	d = cat_policy_new_lock(1, CAT_REPLICA_TEMPORARY_UNAVAILABLE, 0);
	CHECK(d.lock == CAT_LOCK_OK && !d.queue_request && !d.set_replica);
	/* a copy in flight is waited for, not requested again */
	d = cat_policy_new_lock(1, CAT_REPLICA_COPYING, 1);
	CHECK(d.lock == CAT_LOCK_REPLICATING && !d.queue_request && !d.set_replica);
	d = cat_policy_new_lock(1, CAT_REPLICA_COPYING, 0);
	CHECK(d.lock == CAT_LOCK_REPLICATING && !d.queue_request);
	/* no replica (or an unusable one) and a source: copy it */
	d = cat_policy_new_lock(0, CAT_REPLICA_AVAILABLE, 1);
	CHECK(d.lock == CAT_LOCK_REPLICATING && d.queue_request && d.set_replica &&
	      d.replica == CAT_REPLICA_COPYING);
	d = cat_policy_new_lock(1, CAT_REPLICA_BAD, 1);
	CHECK(d.lock == CAT_LOCK_REPLICATING && d.queue_request && d.set_replica &&
	      d.replica == CAT_REPLICA_COPYING);
	d = cat_policy_new_lock(1, CAT_REPLICA_UNAVAILABLE, 1);
	CHECK(d.lock == CAT_LOCK_REPLICATING && d.queue_request && d.replica == CAT_REPLICA_COPYING);
	/* no source: STUCK; a new replica row is UNAVAILABLE, an old one kept */
	d = cat_policy_new_lock(0, CAT_REPLICA_AVAILABLE, 0);
	CHECK(d.lock == CAT_LOCK_STUCK && !d.queue_request && d.set_replica &&
	      d.replica == CAT_REPLICA_UNAVAILABLE);
	d = cat_policy_new_lock(1, CAT_REPLICA_BEING_DELETED, 0);
	CHECK(d.lock == CAT_LOCK_STUCK && !d.queue_request && !d.set_replica);
}

static void test_locks_after_replica(void)
{
	enum cat_lock_state to = CAT_LOCK_REPLICATING;

	CHECK(cat_policy_locks_after_replica(CAT_REPLICA_AVAILABLE, &to) == 1 && to == CAT_LOCK_OK);
	CHECK(cat_policy_locks_after_replica(CAT_REPLICA_UNAVAILABLE, &to) == 1 &&
	      to == CAT_LOCK_STUCK);
	to = CAT_LOCK_REPLICATING;
	CHECK(cat_policy_locks_after_replica(CAT_REPLICA_COPYING, &to) == 0);
	CHECK(cat_policy_locks_after_replica(CAT_REPLICA_BAD, &to) == 0);
	CHECK(cat_policy_locks_after_replica(CAT_REPLICA_BEING_DELETED, &to) == 0);
	CHECK(cat_policy_locks_after_replica(CAT_REPLICA_TEMPORARY_UNAVAILABLE, &to) == 0);
	CHECK(to == CAT_LOCK_REPLICATING); /* untouched when nothing moves */
}

static void test_rule_state(void)
{
	CHECK(cat_policy_rule_state(CAT_RULE_REPLICATING, 3, 0, 0) == CAT_RULE_OK);
	CHECK(cat_policy_rule_state(CAT_RULE_REPLICATING, 0, 0, 0) == CAT_RULE_OK);
	CHECK(cat_policy_rule_state(CAT_RULE_OK, 2, 1, 0) == CAT_RULE_REPLICATING);
	CHECK(cat_policy_rule_state(CAT_RULE_REPLICATING, 2, 5, 1) == CAT_RULE_STUCK);
	CHECK(cat_policy_rule_state(CAT_RULE_STUCK, 2, 1, 0) == CAT_RULE_REPLICATING);
	CHECK(cat_policy_rule_state(CAT_RULE_STUCK, 4, 0, 0) == CAT_RULE_OK);
	/* states the counts do not decide */
	CHECK(cat_policy_rule_state(CAT_RULE_SUSPENDED, 0, 0, 9) == CAT_RULE_SUSPENDED);
	CHECK(cat_policy_rule_state(CAT_RULE_WAITING_APPROVAL, 9, 0, 0) ==
	      CAT_RULE_WAITING_APPROVAL);
	CHECK(cat_policy_rule_state(CAT_RULE_INJECT, 0, 0, 0) == CAT_RULE_INJECT);
}

static void test_request_fate(void)
{
	struct cat_policy_outcome o;

	o = cat_policy_request_fate(CAT_REQ_DONE, 2, 3);
	CHECK(o.fate == CAT_FATE_DONE && o.archived == CAT_REQ_DONE);
	/* FAILED retried while retry_count + 1 < max_retries */
	o = cat_policy_request_fate(CAT_REQ_FAILED, 0, 3);
	CHECK(o.fate == CAT_FATE_RETRY);
	o = cat_policy_request_fate(CAT_REQ_FAILED, 1, 3);
	CHECK(o.fate == CAT_FATE_RETRY);
	o = cat_policy_request_fate(CAT_REQ_FAILED, 2, 3);
	CHECK(o.fate == CAT_FATE_GIVE_UP && o.archived == CAT_REQ_FAILED);
	o = cat_policy_request_fate(CAT_REQ_FAILED, 0, 1);
	CHECK(o.fate == CAT_FATE_GIVE_UP && o.archived == CAT_REQ_FAILED);
	o = cat_policy_request_fate(CAT_REQ_FAILED, 0, 0);
	CHECK(o.fate == CAT_FATE_GIVE_UP);
	o = cat_policy_request_fate(CAT_REQ_FAILED, INT32_MAX, INT32_MAX);
	CHECK(o.fate == CAT_FATE_GIVE_UP);
	/* NO_SOURCES is never retried */
	o = cat_policy_request_fate(CAT_REQ_NO_SOURCES, 0, 100);
	CHECK(o.fate == CAT_FATE_GIVE_UP && o.archived == CAT_REQ_NO_SOURCES);
	/* anything else counts as a failure */
	o = cat_policy_request_fate(CAT_REQ_LOST, 5, 3);
	CHECK(o.fate == CAT_FATE_GIVE_UP && o.archived == CAT_REQ_FAILED);
}

static void test_repair_backoff(void)
{
	CHECK(cat_policy_repair_backoff(60, 0) == 60);
	CHECK(cat_policy_repair_backoff(60, 1) == 120);
	CHECK(cat_policy_repair_backoff(60, 3) == 480);
	CHECK(cat_policy_repair_backoff(60, 6) == 3840);
	CHECK(cat_policy_repair_backoff(60, 1000) == 3840); /* capped at 2^6 */
	CHECK(cat_policy_repair_backoff(60, -5) == 60);
	CHECK(cat_policy_repair_backoff(0, 4) == 0);
	CHECK(cat_policy_repair_backoff(INT64_MAX / 2, 6) == INT64_MAX); /* saturates */
	CHECK(cat_policy_repair_due(1000, 940, 60, 0));
	CHECK(!cat_policy_repair_due(1000, 941, 60, 0));
	CHECK(!cat_policy_repair_due(1000, 940, 60, 1)); /* needs 120 s now */
	CHECK(cat_policy_repair_due(1000, 880, 60, 1));
	CHECK(cat_policy_repair_due(1000, 1000, 0, 3));
	CHECK(!cat_policy_repair_due(1000, 1001, 0, 3));
	CHECK(!cat_policy_repair_due(INT64_MIN + 5, 0, 60, 0)); /* no overflow */
}

/* A draw from a fixed list, cycling. */
struct draws {
	const double *v;
	size_t n, i;
};

static double next_draw(void *ud)
{
	struct draws *d = ud;
	double x = d->v[d->i % d->n];

	d->i++;
	return x;
}

static void test_select_rses(void)
{
	struct cat_policy_rse c[4];
	int64_t out[4] = { 0 };
	static const double low[] = { 0.0 }, high[] = { 0.999 };
	struct draws dl = { low, 1, 0 }, dh = { high, 1, 0 };
	const int64_t pref[] = { 30, 10 }, pref2[] = { 20, 10 };

	memset(c, 0, sizeof c);
	for (int i = 0; i < 4; i++) {
		c[i].id = (i + 1) * 10;
		c[i].weight = 1;
		c[i].quota_left = -1;
		c[i].space_left = -1;
	}
	/* a low draw takes the first, a high one the last, of equal weights */
	CHECK(cat_policy_select_rses(c, 4, 1, 100, NULL, 0, next_draw, &dl, out) == CAT_SELECT_OK);
	CHECK(out[0] == 10);
	CHECK(cat_policy_select_rses(c, 4, 1, 100, NULL, 0, next_draw, &dh, out) == CAT_SELECT_OK);
	CHECK(out[0] == 40);
	/* weights: the draw lands in proportion; weight 0 is never drawn
	 * while others have weight */
	c[0].weight = 0;
	c[1].weight = 3;
	c[2].weight = 1;
	c[3].weight = 0;
	{
		static const double mid[] = { 0.7 };
		struct draws dm = { mid, 1, 0 };
		CHECK(cat_policy_select_rses(c, 4, 1, 1, NULL, 0, next_draw, &dm, out) ==
		      CAT_SELECT_OK);
		CHECK(out[0] == 20); /* 0.7 * 4 = 2.8 < 3 */
		dm.i = 0;
		CHECK(cat_policy_select_rses(c, 4, 2, 1, NULL, 0, next_draw, &dm, out) ==
		      CAT_SELECT_OK);
		CHECK(out[0] == 20 && out[1] == 30); /* the second draw is over {30} */
	}
	/* preferred RSEs (those holding the data) come first, in their order */
	for (int i = 0; i < 4; i++)
		c[i].weight = 1;
	CHECK(cat_policy_select_rses(c, 4, 3, 5, pref, 2, next_draw, &dh, out) == CAT_SELECT_OK);
	CHECK(out[0] == 30 && out[1] == 10 && out[2] == 40);
	/* quota: strictly more than the size is needed; used quota is taken off */
	c[0].quota_left = 100;
	c[1].quota_left = 99;
	c[2].quota_left = 0;
	c[3].quota_left = 0;
	CHECK(cat_policy_select_rses(c, 4, 1, 99, NULL, 0, next_draw, &dl, out) == CAT_SELECT_OK);
	CHECK(out[0] == 10 && c[0].quota_left == 1 && c[1].quota_left == 99);
	CHECK(cat_policy_select_rses(c, 4, 1, 99, NULL, 0, next_draw, &dl, out) ==
	      CAT_SELECT_NO_QUOTA);
	CHECK(cat_policy_select_rses(c, 4, 2, 10, NULL, 0, next_draw, &dl, out) ==
	      CAT_SELECT_NO_QUOTA);
	/* space: the size must fit (equal is enough) */
	for (int i = 0; i < 4; i++)
		c[i].quota_left = -1;
	c[0].space_left = 50;
	c[1].space_left = 49;
	c[2].space_left = 0;
	c[3].space_left = 0;
	CHECK(cat_policy_select_rses(c, 4, 1, 50, NULL, 0, next_draw, &dh, out) == CAT_SELECT_OK);
	CHECK(out[0] == 10 && c[0].space_left == 0);
	CHECK(cat_policy_select_rses(c, 4, 1, 50, NULL, 0, next_draw, &dh, out) ==
	      CAT_SELECT_NO_SPACE);
	/* not eligible preferred RSEs are skipped */
	c[0].space_left = -1;
	c[2].space_left = -1;
	CHECK(cat_policy_select_rses(c, 4, 2, 60, pref2, 2, next_draw, &dl, out) ==
	      CAT_SELECT_OK);
	CHECK(out[0] == 10 && out[1] == 30);
	/* more copies than candidates */
	CHECK(cat_policy_select_rses(c, 4, 5, 1, NULL, 0, next_draw, &dl, out) != CAT_SELECT_OK);
	CHECK(cat_policy_select_rses(c, 0, 1, 1, NULL, 0, next_draw, &dl, out) != CAT_SELECT_OK);
	CHECK(cat_policy_select_rses(c, 0, 0, 1, NULL, 0, next_draw, &dl, out) == CAT_SELECT_OK);
}

static void proto(struct cat_protocol *p, const char *scheme)
{
	memset(p, 0, sizeof *p);
	p->scheme = scheme;
	for (int d = 0; d < CAT_DOMAIN_COUNT; d++)
		for (int o = 0; o < CAT_OP_COUNT; o++)
			p->prio[d][o] = -1;
}

static void test_protocols(void)
{
	struct cat_protocol p[3];

	proto(&p[0], "root");
	proto(&p[1], "davs");
	proto(&p[2], "file");
	/* WAN first, then LAN for reads/writes/deletes, never for TPC */
	p[0].prio[CAT_WAN][CAT_OP_READ] = 2;
	p[0].prio[CAT_LAN][CAT_OP_READ] = 0;
	p[1].prio[CAT_LAN][CAT_OP_READ] = 1;
	p[1].prio[CAT_LAN][CAT_OP_TPC_READ] = 0;
	p[2].prio[CAT_WAN][CAT_OP_TPC_READ] = 3;
	CHECK(cat_policy_proto_prio(&p[0], CAT_OP_READ, CAT_WAN) == 2);
	CHECK(cat_policy_proto_prio(&p[0], CAT_OP_READ, CAT_LAN) == 0);
	CHECK(cat_policy_proto_prio(&p[1], CAT_OP_READ, CAT_WAN) == 1);
	CHECK(cat_policy_proto_prio(&p[1], CAT_OP_TPC_READ, CAT_WAN) == -1);
	CHECK(cat_policy_proto_prio(&p[1], CAT_OP_TPC_READ, CAT_LAN) == 0);
	CHECK(cat_policy_proto_prio(&p[2], CAT_OP_WRITE, CAT_WAN) == -1);
	CHECK(cat_policy_proto_prio(&p[0], CAT_OP_COUNT, CAT_WAN) == -1);
	/* the pick: lowest priority from the domain */
	CHECK(cat_policy_proto_pick(p, 3, CAT_OP_READ, CAT_WAN, NULL) == 1);
	CHECK(cat_policy_proto_pick(p, 3, CAT_OP_READ, CAT_LAN, NULL) == 0);
	CHECK(cat_policy_proto_pick(p, 3, CAT_OP_TPC_READ, CAT_WAN, NULL) == 2);
	CHECK(cat_policy_proto_pick(p, 3, CAT_OP_WRITE, CAT_WAN, NULL) == -1);
	/* a scheme restricts */
	CHECK(cat_policy_proto_pick(p, 3, CAT_OP_READ, CAT_WAN, "root") == 0);
	CHECK(cat_policy_proto_pick(p, 3, CAT_OP_READ, CAT_WAN, "https") == -1);
	/* ties: the first stays */
	p[2].prio[CAT_WAN][CAT_OP_READ] = 1;
	CHECK(cat_policy_proto_pick(p, 3, CAT_OP_READ, CAT_WAN, NULL) == 1);
	CHECK(cat_policy_proto_better(&p[2], CAT_OP_READ, CAT_WAN, NULL, 1) == -1);
	CHECK(cat_policy_proto_better(&p[2], CAT_OP_READ, CAT_WAN, NULL, 2) == 1);
	CHECK(cat_policy_proto_better(&p[2], CAT_OP_READ, CAT_WAN, NULL, -1) == 1);
	/* priority 0 is valid and best */
	p[2].prio[CAT_WAN][CAT_OP_READ] = 0;
	CHECK(cat_policy_proto_pick(p, 3, CAT_OP_READ, CAT_WAN, NULL) == 2);
	CHECK(cat_policy_proto_pick(p, 0, CAT_OP_READ, CAT_WAN, NULL) == -1);
}

int main(void)
{
	test_new_lock();
	test_locks_after_replica();
	test_rule_state();
	test_request_fate();
	test_repair_backoff();
	test_select_rses();
	test_protocols();
	return tap_done();
}
