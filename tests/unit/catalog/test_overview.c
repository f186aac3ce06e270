/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for the web UI's catalog queries (catalog/overview.c) on a
 * real SQLite file: the transfer matrix from finished requests (done,
 * failed, the window), live requests, rules by state/account/scope with
 * keyset pages that neither skip nor repeat, per-RSE lock counts, stuck
 * locks with the transfer's error, RSE usage and quotas, heartbeats, DID
 * pages by prefix, and the refusal of a non-admin account by every call.
 */
#include "catalog.h"
#include "store_uri.h"
#include "engine.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char path[256];

static void rm_db(void)
{
	char p[300];

	unlink(path);
	snprintf(p, sizeof p, "%s-wal", path);
	unlink(p);
	snprintf(p, sizeof p, "%s-shm", path);
	unlink(p);
}

struct reqs { char ids[64][33]; int n; };

static int keep_req(void *ud, const struct cat_request *r)
{
	struct reqs *q = ud;

	if (q->n < 64)
		dm_strlcpy(q->ids[q->n], r->id, 33);
	q->n++;
	return 0;
}

struct tx { int n; char src[4][16], dst[4][16]; uint64_t files[4], bytes[4], fail[4], retries[4]; };

static int keep_tx(void *ud, const struct cat_ov_transfer *t)
{
	struct tx *x = ud;

	if (x->n < 4) {
		dm_strlcpy(x->src[x->n], t->source, 16);
		dm_strlcpy(x->dst[x->n], t->dest, 16);
		x->files[x->n] = t->files;
		x->bytes[x->n] = t->bytes;
		x->fail[x->n] = t->failures;
		x->retries[x->n] = t->retries;
	}
	x->n++;
	return 0;
}

struct q { int n; int64_t queued, submitted; char dest[16]; };

static int keep_q(void *ud, const char *dest, int64_t queued, int64_t submitted)
{
	struct q *x = ud;

	x->n++;
	dm_strlcpy(x->dest, dest, 16);
	x->queued = queued;
	x->submitted = submitted;
	return 0;
}

struct rules { int n; char ids[16][33]; int64_t cursor[16]; char state[16][16]; };

static int keep_rule(void *ud, const struct cat_ov_rule *r)
{
	struct rules *x = ud;

	if (x->n < 16) {
		dm_strlcpy(x->ids[x->n], r->id, 33);
		dm_strlcpy(x->state[x->n], cat_rule_state_name(r->state), 16);
		x->cursor[x->n] = r->cursor;
	}
	x->n++;
	return 0;
}

struct per_rse { int n; char rse[4][16]; int64_t ok[4], repl[4], stuck[4]; };

static int keep_rse(void *ud, const struct cat_ov_rule_rse *c)
{
	struct per_rse *x = ud;

	if (x->n < 4) {
		dm_strlcpy(x->rse[x->n], c->rse, 16);
		x->ok[x->n] = c->ok;
		x->repl[x->n] = c->replicating;
		x->stuck[x->n] = c->stuck;
	}
	x->n++;
	return 0;
}

struct stuck { int n; char reason[256]; char rse[16]; };

static int keep_stuck(void *ud, const struct cat_ov_stuck *s)
{
	struct stuck *x = ud;

	x->n++;
	dm_strlcpy(x->reason, s->reason ? s->reason : "", sizeof x->reason);
	dm_strlcpy(x->rse, s->rse, 16);
	return 0;
}

struct names { int n; char v[16][32]; int64_t used[16], max[16]; };

static int keep_did(void *ud, const struct cat_did *d)
{
	struct names *x = ud;

	if (x->n < 16)
		dm_strlcpy(x->v[x->n], d->name, 32);
	x->n++;
	return 0;
}

/* length into used, bytes into max */
static int keep_len(void *ud, const struct cat_did *d)
{
	struct names *x = ud;

	if (x->n < 16) {
		dm_strlcpy(x->v[x->n], d->name, 32);
		x->used[x->n] = (int64_t)d->length;
		x->max[x->n] = (int64_t)d->bytes;
	}
	x->n++;
	return 0;
}

static int keep_ov_rse(void *ud, const struct cat_ov_rse *r)
{
	struct names *x = ud;

	if (x->n < 16) {
		dm_strlcpy(x->v[x->n], r->rse, 32);
		x->used[x->n] = r->used;
		x->max[x->n] = r->max_space;
	}
	x->n++;
	return 0;
}

static int keep_usage(void *ud, const struct cat_usage *u)
{
	struct names *x = ud;

	if (x->n < 16) {
		dm_strlcpy(x->v[x->n], u->account, 32);
		x->used[x->n] = (int64_t)u->bytes;
		x->max[x->n] = u->limit_set ? u->limit : -2;
	}
	x->n++;
	return 0;
}

static int keep_hb(void *ud, const struct cat_ov_heartbeat *h)
{
	struct names *x = ud;

	if (x->n < 16)
		dm_strlcpy(x->v[x->n], h->executable, 32);
	x->n++;
	return 0;
}

static int alive(void *ud, const char *host, int64_t pid)
{
	return 1;
}

int main(void)
{
	struct cat_db *db = NULL;
	struct dm_err err = { 0 };
	struct cat_file_in f[10];
	char names[10][16], id[33], id2[33];
	struct cat_rule_opts o;
	struct reqs rq = { 0 };
	struct tx tx = { 0 };
	struct q qq = { 0 };
	struct rules rl = { 0 };
	struct per_rse pr = { 0 };
	struct stuck sk = { 0 };
	struct names nm = { 0 };
	struct cat_ov_rule_filter flt = { .state = -1, .limit = 2 };
	int capped = 1, idx, tot;
	int64_t now = dm_now();

	snprintf(path, sizeof path, "/tmp/didfs_overview_%d.db", (int)getpid());
	rm_db();
	CHECK(cat_open(test_catalog_uri(path), CAT_OPEN_CREATE, &db, &err) == DM_OK);
	CHECK(cat_bootstrap(db, NULL, NULL) == DM_OK);
	CHECK(cat_scope_add(db, "mock", "root") == DM_OK);
	CHECK(cat_rse_add(db, "A", NULL) == DM_OK);
	CHECK(cat_rse_add(db, "B", NULL) == DM_OK);
	CHECK(cat_rse_add(db, "C", NULL) == DM_OK);
	CHECK(cat_did_add(db, "mock", "ds", CAT_DID_DATASET, 0) == DM_OK);
	for (int i = 0; i < 10; i++) {
		snprintf(names[i], 16, "f%03d", i);
		f[i] = (struct cat_file_in){ "mock", names[i], 100, "0000abcd", NULL, NULL, -1 };
	}
	CHECK(cat_replicas_add(db, "A", f, 10, "mock", "ds", 0) == DM_OK);

	/* a rule of 10 files to B: 7 done from A, 1 given up, 2 in flight */
	cat_rule_opts_init(&o);
	o.copies = 1;
	o.rse_expression = "B";
	CHECK(cat_rule_add(db, "mock", "ds", &o, id) == DM_OK);
	CHECK(cat_ov_queued(db, keep_q, &qq, &capped) == DM_OK);
	CHECK(qq.n == 1 && !strcmp(qq.dest, "B") && qq.queued == 10 && qq.submitted == 0);
	CHECK(cat_req_claim(db, "h:1:0", 10, 0, 1, keep_req, &rq) == DM_OK && rq.n == 10);
	for (int i = 0; i < 7; i++)
		CHECK(cat_req_finish(db, rq.ids[i], NULL, CAT_REQ_DONE, "A", NULL, 3) == DM_OK);
	CHECK(cat_req_finish(db, rq.ids[7], NULL, CAT_REQ_FAILED, "A", "connection <reset>", 1) == DM_OK);
	CHECK(cat_ov_transfers(db, now - 3600, keep_tx, &tx) == DM_OK);
	CHECK(tx.n == 1);
	CHECK_STR(tx.src[0], "A");
	CHECK_STR(tx.dst[0], "B");
	CHECK(tx.files[0] == 7 && tx.bytes[0] == 700 && tx.fail[0] == 1 && tx.retries[0] == 0);
	memset(&tx, 0, sizeof tx);
	CHECK(cat_ov_transfers(db, now + 3600, keep_tx, &tx) == DM_OK && tx.n == 0); /* outside the window */
	memset(&qq, 0, sizeof qq);
	CHECK(cat_ov_queued(db, keep_q, &qq, &capped) == DM_OK && qq.queued == 0 && qq.submitted == 2);

	/* per-RSE counts and the stuck lock with the transfer's error */
	CHECK(cat_ov_rule_rses(db, id, 0, keep_rse, &pr, &capped) == DM_OK);
	CHECK(pr.n == 1 && !capped && !strcmp(pr.rse[0], "B"));
	CHECK(pr.ok[0] == 7 && pr.repl[0] == 2 && pr.stuck[0] == 1);
	memset(&pr, 0, sizeof pr);
	CHECK(cat_ov_rule_rses(db, id, 4, keep_rse, &pr, &capped) == DM_OK && capped); /* 4 of 10 counted */
	CHECK(pr.n == 1 && pr.ok[0] + pr.repl[0] + pr.stuck[0] == 4);
	CHECK(cat_ov_stuck_locks(db, id, 10, keep_stuck, &sk) == DM_OK && sk.n == 1);
	CHECK(strstr(sk.reason, "connection <reset>") != NULL);
	CHECK_STR(sk.rse, "B");

	/* more rules (one per file, to C), then pages of 2: all 6, newest
	 * first, cursors strictly decreasing, none twice */
	for (int i = 0; i < 5; i++) {
		o.rse_expression = "C";
		CHECK(cat_rule_add(db, "mock", names[i], &o, id2) == DM_OK);
	}
	{
		char seen[16][33];
		int nseen = 0, pages = 0;

		for (;;) {
			memset(&rl, 0, sizeof rl);
			CHECK(cat_ov_rules(db, &flt, keep_rule, &rl) == DM_OK);
			for (int i = 0; i < rl.n && i < 16; i++) {
				for (int j = 0; j < nseen; j++)
					CHECK(strcmp(seen[j], rl.ids[i]) != 0);
				if (nseen < 16)
					dm_strlcpy(seen[nseen++], rl.ids[i], 33);
				if (i)
					CHECK(rl.cursor[i] < rl.cursor[i - 1]);
			}
			pages++;
			if (rl.n < 2)
				break;
			flt.before = rl.cursor[rl.n - 1];
		}
		CHECK(nseen == 6 && pages == 4);
		CHECK_STR(seen[0], id2);   /* the newest first */
		CHECK_STR(seen[5], id);
	}
	memset(&rl, 0, sizeof rl);
	flt = (struct cat_ov_rule_filter){ .state = CAT_RULE_STUCK, .limit = 50 };
	CHECK(cat_ov_rules(db, &flt, keep_rule, &rl) == DM_OK && rl.n == 1 && !strcmp(rl.ids[0], id));
	memset(&rl, 0, sizeof rl);
	flt = (struct cat_ov_rule_filter){ .state = -1, .account = "nobody", .limit = 50 };
	CHECK(cat_ov_rules(db, &flt, keep_rule, &rl) == DM_OK && rl.n == 0);
	memset(&rl, 0, sizeof rl);
	flt = (struct cat_ov_rule_filter){ .state = -1, .scope = "mock", .account = "root", .limit = 50 };
	CHECK(cat_ov_rules(db, &flt, keep_rule, &rl) == DM_OK && rl.n == 6);
	memset(&rl, 0, sizeof rl);
	flt = (struct cat_ov_rule_filter){ .state = -1, .id = id2, .limit = 50 };
	CHECK(cat_ov_rules(db, &flt, keep_rule, &rl) == DM_OK && rl.n == 1);
	flt = (struct cat_ov_rule_filter){ .state = 99 };
	CHECK(cat_ov_rules(db, &flt, keep_rule, &rl) == DM_EINVAL);

	/* DIDs of a scope by prefix, in pages */
	CHECK(cat_ov_dids(db, "mock", "f00", NULL, 3, keep_did, &nm) == DM_OK);
	CHECK(nm.n == 3 && !strcmp(nm.v[0], "f000") && !strcmp(nm.v[2], "f002"));
	memset(&nm, 0, sizeof nm);
	CHECK(cat_ov_dids(db, "mock", "f00", "f002", 50, keep_did, &nm) == DM_OK);
	CHECK(nm.n == 7 && !strcmp(nm.v[0], "f003") && !strcmp(nm.v[6], "f009"));
	memset(&nm, 0, sizeof nm);
	CHECK(cat_ov_dids(db, "mock", NULL, NULL, 50, keep_did, &nm) == DM_OK && nm.n == 11);
	CHECK(cat_ov_dids(db, "nosuch", NULL, NULL, 50, keep_did, &nm) == DM_ENOENT);
	/* one DID: a dataset's children counted, a file's size */
	memset(&nm, 0, sizeof nm);
	CHECK(cat_ov_did(db, "mock", "ds", keep_len, &nm) == DM_OK && nm.n == 1 && nm.used[0] == 10);
	memset(&nm, 0, sizeof nm);
	CHECK(cat_ov_did(db, "mock", "f001", keep_len, &nm) == DM_OK && nm.n == 1 && nm.used[0] == 1);
	CHECK(nm.max[0] == 100);
	CHECK(cat_ov_did(db, "mock", "nope", keep_len, &nm) == DM_ENOENT);
	CHECK_STR(cat_error(db)->cls, "DataIdentifierNotFound");
	memset(&nm, 0, sizeof nm);
	CHECK(cat_ov_dids(db, "mock", "ds", NULL, 5, keep_len, &nm) == DM_OK && nm.n == 1 && nm.used[0] == 10);
	/* a prefix past the cursor, and one that matches nothing */
	memset(&nm, 0, sizeof nm);
	CHECK(cat_ov_dids(db, "mock", "f007", "a", 50, keep_did, &nm) == DM_OK);
	CHECK(nm.n == 1 && !strcmp(nm.v[0], "f007"));
	memset(&nm, 0, sizeof nm);
	CHECK(cat_ov_dids(db, "mock", "e", NULL, 50, keep_did, &nm) == DM_OK && nm.n == 0);
	memset(&nm, 0, sizeof nm);
	CHECK(cat_ov_dids(db, "mock", "d", NULL, 50, keep_did, &nm) == DM_OK && nm.n == 1 && !strcmp(nm.v[0], "ds"));

	/* RSEs with usage and quotas */
	CHECK(cat_account_limit_set(db, "root", "B", 5000) == DM_OK);
	memset(&nm, 0, sizeof nm);
	CHECK(cat_ov_rses(db, NULL, 50, keep_ov_rse, &nm) == DM_OK && nm.n == 3);
	CHECK(nm.used[0] == 0); /* not counted before the abacus */
	CHECK(cat_usage_refresh(db) == DM_OK);
	memset(&nm, 0, sizeof nm);
	CHECK(cat_ov_rses(db, NULL, 50, keep_ov_rse, &nm) == DM_OK && nm.n == 3);
	CHECK(!strcmp(nm.v[0], "A") && nm.used[0] == 1000 && nm.max[0] == -1);
	memset(&nm, 0, sizeof nm);
	CHECK(cat_ov_rses(db, "A", 1, keep_ov_rse, &nm) == DM_OK && nm.n == 1 && !strcmp(nm.v[0], "B"));
	memset(&nm, 0, sizeof nm);
	CHECK(cat_ov_rse_accounts(db, "B", 50, keep_usage, &nm) == DM_OK && nm.n == 1);
	CHECK(!strcmp(nm.v[0], "root") && nm.max[0] == 5000);

	/* heartbeats */
	CHECK(cat_hb_live(db, "conveyor", "hostx", 4242, 0, 30, alive, NULL, &idx, &tot) == DM_OK);
	memset(&nm, 0, sizeof nm);
	CHECK(cat_ov_heartbeats(db, 50, keep_hb, &nm) == DM_OK && nm.n == 1 && !strcmp(nm.v[0], "conveyor"));

	/* a non-admin account may not read any of it */
	CHECK(cat_account_add(db, "jdoe", CAT_ACCOUNT_USER, NULL) == DM_OK);
	CHECK(cat_set_issuer(db, "jdoe") == DM_OK);
	flt = (struct cat_ov_rule_filter){ .state = -1 };
	CHECK(cat_ov_rules(db, &flt, keep_rule, &rl) == DM_EPERM);
	CHECK_STR(cat_error(db)->cls, "AccessDenied");
	CHECK(cat_ov_rule_rses(db, id, 0, keep_rse, &pr, &capped) == DM_EPERM);
	CHECK(cat_ov_stuck_locks(db, id, 10, keep_stuck, &sk) == DM_EPERM);
	CHECK(cat_ov_transfers(db, 0, keep_tx, &tx) == DM_EPERM);
	CHECK(cat_ov_queued(db, keep_q, &qq, &capped) == DM_EPERM);
	CHECK(cat_ov_rses(db, NULL, 50, keep_ov_rse, &nm) == DM_EPERM);
	CHECK(cat_ov_rse_accounts(db, "B", 50, keep_usage, &nm) == DM_EPERM);
	CHECK(cat_ov_heartbeats(db, 50, keep_hb, &nm) == DM_EPERM);
	CHECK(cat_ov_dids(db, "mock", NULL, NULL, 50, keep_did, &nm) == DM_EPERM);
	CHECK(cat_ov_did(db, "mock", "ds", keep_did, &nm) == DM_EPERM);

	cat_close(db);
	rm_db();
	return tap_done();
}
