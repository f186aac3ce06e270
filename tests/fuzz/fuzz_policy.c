/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_policy.c - libFuzzer target for catalog/policy.c.  The input is read
 * as a stream of plain values (states out of range, counts and sizes at the
 * int64 limits, NaN and negative weights, up to 16 RSE candidates and 8
 * protocols) fed to every policy function.  Beside the sanitizers it traps
 * when a result leaves its enum, a new lock asks for a request without
 * being REPLICATING, a rule state other than the three the counts decide is
 * changed, NO_SOURCES is retried, the back-off is negative or shrinks with
 * more repairs, RSE selection returns OK with a duplicate, ineligible or
 * unknown RSE or fewer than `copies`, or the protocol pick is not the
 * lowest priority (the first of equals).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"

struct in {
	const uint8_t *p;
	size_t n;
};

static uint64_t take(struct in *in, size_t bytes)
{
	uint64_t v = 0;

	for (size_t i = 0; i < bytes; i++) {
		v = (v << 8) | (in->n ? *in->p : 0);
		if (in->n) {
			in->p++;
			in->n--;
		}
	}
	return v;
}

static int64_t take_i64(struct in *in)
{
	/* small values are common, the limits too */
	uint8_t k = (uint8_t)take(in, 1);

	switch (k & 7) {
	case 0: return INT64_MAX;
	case 1: return INT64_MIN;
	case 2: return -1;
	case 3: return (int64_t)(k >> 3);
	default: return (int64_t)take(in, 8);
	}
}

static double take_rnd(void *ud)
{
	struct in *in = ud;
	double r = (double)take(in, 2) / 65536.0;

	return r; /* [0, 1) */
}

static void check_lock(struct in *in)
{
	int exists = (int)take(in, 1) & 1, src = (int)take(in, 1) & 1;
	enum cat_replica_state st = (enum cat_replica_state)(take(in, 1) % 8);
	struct cat_policy_lock d = cat_policy_new_lock(exists, st, src);
	enum cat_lock_state to = (enum cat_lock_state)99;

	if ((unsigned)d.lock > CAT_LOCK_STUCK)
		abort();
	if (d.queue_request && (d.lock != CAT_LOCK_REPLICATING || !src))
		abort();
	if (d.set_replica && (unsigned)d.replica > CAT_REPLICA_TEMPORARY_UNAVAILABLE)
		abort();
	if (exists && st == CAT_REPLICA_AVAILABLE && d.lock != CAT_LOCK_OK)
		abort();
	if (!exists && !d.set_replica)
		abort(); /* a new lock needs a replica row */
	if (cat_policy_locks_after_replica(st, &to) && (unsigned)to > CAT_LOCK_STUCK)
		abort();
}

static void check_rule(struct in *in)
{
	enum cat_rule_state cur = (enum cat_rule_state)(take(in, 1) % 6);
	int64_t ok = take_i64(in), repl = take_i64(in), stuck = take_i64(in);
	enum cat_rule_state r = cat_policy_rule_state(cur, ok, repl, stuck);

	if ((unsigned)r > CAT_RULE_INJECT)
		abort();
	if (cur == CAT_RULE_SUSPENDED || cur == CAT_RULE_WAITING_APPROVAL || cur == CAT_RULE_INJECT) {
		if (r != cur)
			abort();
	} else if (r != CAT_RULE_OK && r != CAT_RULE_REPLICATING && r != CAT_RULE_STUCK) {
		abort();
	} else if ((stuck > 0) != (r == CAT_RULE_STUCK)) {
		abort();
	}
}

static void check_request(struct in *in)
{
	enum cat_req_state o = (enum cat_req_state)(take(in, 1) % 7);
	int retry = (int)(int32_t)take(in, 4), max = (int)(int32_t)take(in, 4);
	struct cat_policy_outcome f = cat_policy_request_fate(o, retry, max);
	int64_t a = take_i64(in), c1 = (int64_t)(take(in, 1) % 10), now = take_i64(in),
		upd = take_i64(in);
	int64_t b1 = cat_policy_repair_backoff(a, c1), b2 = cat_policy_repair_backoff(a, c1 + 1);

	if ((unsigned)f.fate > CAT_FATE_GIVE_UP)
		abort();
	if (o == CAT_REQ_NO_SOURCES && f.fate == CAT_FATE_RETRY)
		abort();
	if (o == CAT_REQ_DONE && f.fate != CAT_FATE_DONE)
		abort();
	if (f.fate == CAT_FATE_RETRY && !((int64_t)retry + 1 < (int64_t)max))
		abort();
	if (f.fate == CAT_FATE_GIVE_UP && f.archived != CAT_REQ_FAILED &&
	    f.archived != CAT_REQ_NO_SOURCES)
		abort();
	if (b1 < 0 || b2 < b1)
		abort();
	/* due at `now` implies due later */
	if (cat_policy_repair_due(now, upd, a, c1) && now < INT64_MAX &&
	    !cat_policy_repair_due(now + 1, upd, a, c1))
		abort();
}

static void check_select(struct in *in)
{
	struct cat_policy_rse c[16], before[16];
	int64_t out[16], pref[4];
	size_t n = take(in, 1) % 17, npref = take(in, 1) % 5;
	int copies = (int)(take(in, 1) % 18) - 1;
	int64_t size = take_i64(in);
	enum cat_policy_select r;

	for (size_t i = 0; i < n; i++) {
		uint8_t w = (uint8_t)take(in, 1);
		c[i].id = (int64_t)(take(in, 1) % 24);
		c[i].weight = w == 255 ? NAN : w == 254 ? -1.0 : (double)(w % 8);
		c[i].quota_left = take_i64(in);
		c[i].space_left = take_i64(in);
		c[i].chosen = (int)take(in, 1);
	}
	for (size_t i = 0; i < npref; i++)
		pref[i] = (int64_t)(take(in, 1) % 24);
	memcpy(before, c, sizeof c[0] * n);
	r = cat_policy_select_rses(c, n, copies, size, pref, npref, take_rnd, in, out);
	if ((unsigned)r > CAT_SELECT_TOO_FEW)
		abort();
	if (r != CAT_SELECT_OK)
		return;
	for (int k = 0; k < copies; k++) {
		int seen = 0;
		for (size_t i = 0; i < n; i++) {
			if (c[i].id != out[k] || c[i].chosen != 1)
				continue;
			seen = 1;
			if (!(before[i].quota_left < 0 || before[i].quota_left > size) ||
			    !(before[i].space_left < 0 || before[i].space_left >= size))
				abort(); /* chosen but not eligible */
		}
		if (!seen)
			abort();
	}
	{
		int chosen = 0;
		for (size_t i = 0; i < n; i++)
			chosen += c[i].chosen == 1;
		if (copies >= 0 && chosen != copies)
			abort();
	}
}

static void check_protocols(struct in *in)
{
	static const char *const schemes[] = { "root", "davs", "https", "file" };
	struct cat_protocol p[8];
	size_t n = take(in, 1) % 9;
	enum cat_proto_op op = (enum cat_proto_op)(take(in, 1) % (CAT_OP_COUNT + 1));
	enum cat_domain dom = (enum cat_domain)(take(in, 1) % (CAT_DOMAIN_COUNT + 1));
	const char *scheme = (take(in, 1) & 1) ? schemes[take(in, 1) % 4] : NULL;
	long best;
	int bp = -1;

	memset(p, 0, sizeof p);
	for (size_t i = 0; i < n; i++) {
		p[i].scheme = schemes[take(in, 1) % 4];
		for (int d = 0; d < CAT_DOMAIN_COUNT; d++)
			for (int o = 0; o < CAT_OP_COUNT; o++)
				p[i].prio[d][o] = (int)(int8_t)take(in, 1);
	}
	best = cat_policy_proto_pick(p, n, op, dom, scheme);
	if (best >= (long)n || best < -1)
		abort();
	if (best >= 0) {
		bp = cat_policy_proto_prio(&p[best], op, dom);
		if (bp < 0 || (scheme && strcmp(scheme, p[best].scheme)))
			abort();
	}
	for (size_t i = 0; i < n; i++) {
		int q = cat_policy_proto_prio(&p[i], op, dom);
		if (q < -1)
			abort();
		if (q < 0 || (scheme && strcmp(scheme, p[i].scheme)))
			continue;
		if (best < 0 || q < bp || (q == bp && (long)i < best))
			abort(); /* a better or earlier equal one was passed over */
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct in in = { data, size };

	while (in.n > 0) {
		switch (take(&in, 1) % 5) {
		case 0: check_lock(&in); break;
		case 1: check_rule(&in); break;
		case 2: check_request(&in); break;
		case 3: check_select(&in); break;
		default: check_protocols(&in); break;
		}
	}
	return 0;
}
