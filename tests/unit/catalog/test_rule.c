/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for the rule engine's catalog side (catalog/rule.c) on real
 * SQLite files, without storage: placement and grouping, quotas and the
 * creation errors, the request state machine (claim, done, retry, give up),
 * re-evaluation on attach and detach, rule deletion and tombstones, the
 * reaper's candidates, the repairer, heartbeats.
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

/* RSEs A (source, tier 2), T1a/T1b/T1c (tier 1); dataset mock:ds with n files on A. */
static struct cat_db *setup(int nfiles)
{
	struct cat_db *db = NULL;
	struct dm_err err = { 0 };
	const char *rses[] = { "A", "T1A", "T1B", "T1C" };

	rm_db();
	CHECK(cat_open(test_catalog_uri(path), CAT_OPEN_CREATE, &db, &err) == DM_OK);
	CHECK(cat_bootstrap(db, NULL, NULL) == DM_OK);
	CHECK(cat_scope_add(db, "mock", "root") == DM_OK);
	for (int i = 0; i < 4; i++) {
		CHECK(cat_rse_add(db, rses[i], NULL) == DM_OK);
		CHECK(cat_rse_attr_set(db, rses[i], "tier", i ? "1" : "2") == DM_OK);
	}
	CHECK(cat_did_add(db, "mock", "ds", CAT_DID_DATASET, 0) == DM_OK);
	if (nfiles) {
		struct cat_file_in *f = calloc((size_t)nfiles, sizeof *f);
		char (*names)[16] = calloc((size_t)nfiles, 16);
		for (int i = 0; i < nfiles; i++) {
			snprintf(names[i], 16, "f%03d", i);
			f[i] = (struct cat_file_in){ "mock", names[i], 100, "0000abcd", NULL, NULL, -1 };
		}
		CHECK(cat_replicas_add(db, "A", f, (size_t)nfiles, "mock", "ds", 0) == DM_OK);
		free(f);
		free(names);
	}
	return db;
}

struct rinfo {
	char state[32];
	int64_t ok, repl, stuck;
	char error[256];
};

static int keep_rule(void *ud, const struct cat_rule *r)
{
	struct rinfo *i = ud;

	dm_strlcpy(i->state, cat_rule_state_name(r->state), sizeof i->state);
	i->ok = r->locks_ok_cnt;
	i->repl = r->locks_replicating_cnt;
	i->stuck = r->locks_stuck_cnt;
	dm_strlcpy(i->error, r->error ? r->error : "", sizeof i->error);
	return 0;
}

static struct rinfo rule_info(struct cat_db *db, const char *id)
{
	struct rinfo i = { 0 };

	CHECK(cat_rule_get(db, id, keep_rule, &i) == DM_OK);
	return i;
}

struct counts {
	int rses;
	int64_t per_rse[8];
	char names[8][16];
};

static int count_locks(void *ud, const struct cat_lock_count *c)
{
	struct counts *k = ud;

	if (k->rses < 8) {
		dm_strlcpy(k->names[k->rses], c->rse, 16);
		k->per_rse[k->rses] = c->ok + c->replicating + c->stuck;
	}
	k->rses++;
	return 0;
}

struct reqs {
	char ids[256][33];
	char dest[256][16];
	int n;
};

static int keep_req(void *ud, const struct cat_request *r)
{
	struct reqs *q = ud;

	if (q->n < 256) {
		dm_strlcpy(q->ids[q->n], r->id, 33);
		dm_strlcpy(q->dest[q->n], r->dest_rse, 16);
	}
	q->n++;
	return 0;
}

static int first_source(void *ud, const char *rse, int distance)
{
	dm_strlcpy(ud, rse, 16);
	return 1;
}

static void test_dataset_rule_and_transfers(void)
{
	struct cat_db *db = setup(10);
	struct cat_rule_opts o;
	char id[33];
	struct counts k = { 0 };
	struct reqs q = { 0 };
	struct rinfo i;
	char src[16] = "";
	int done = 0;

	cat_rule_opts_init(&o);
	o.copies = 2;
	o.rse_expression = "tier=1";
	CHECK(cat_rule_add(db, "mock", "ds", &o, id) == DM_OK);
	i = rule_info(db, id);
	CHECK_STR(i.state, "REPLICATING");
	CHECK(i.repl == 20 && i.ok == 0 && i.stuck == 0);
	/* DATASET grouping: all files on the same two RSEs */
	CHECK(cat_rule_lock_counts(db, id, count_locks, &k) == DM_OK);
	CHECK(k.rses == 2 && k.per_rse[0] == 10 && k.per_rse[1] == 10);
	CHECK(strncmp(k.names[0], "T1", 2) == 0 && strncmp(k.names[1], "T1", 2) == 0);
	/* the same rule again is a duplicate */
	CHECK(cat_rule_add(db, "mock", "ds", &o, NULL) == DM_EEXIST);
	CHECK_STR(cat_error(db)->cls, "DuplicateRule");
	/* 20 queued requests; two conveyors never claim the same */
	CHECK(cat_req_claim(db, "h:1:0", 15, 0, 1, keep_req, &q) == DM_OK && q.n == 15);
	{
		struct reqs q2 = { 0 };
		CHECK(cat_req_claim(db, "h:2:0", 100, 0, 1, keep_req, &q2) == DM_OK && q2.n == 5);
		for (int a = 0; a < q.n; a++)
			for (int b = 0; b < q2.n; b++)
				CHECK(strcmp(q.ids[a], q2.ids[b]) != 0);
		for (int b = 0; b < q2.n; b++) {
			dm_strlcpy(q.ids[q.n], q2.ids[b], 33);
			dm_strlcpy(q.dest[q.n], q2.dest[b], 16);
			q.n++;
		}
	}
	CHECK(cat_req_sources(db, q.ids[0], first_source, src) == DM_OK);
	CHECK_STR(src, "A");
	/* all done but one, which fails until it gives up */
	for (int a = 1; a < q.n; a++)
		CHECK(cat_req_finish(db, q.ids[a], NULL, CAT_REQ_DONE, "A", NULL, 3) == DM_OK);
	i = rule_info(db, id);
	CHECK(i.ok == 19 && i.repl == 1);
	CHECK_STR(i.state, "REPLICATING");
	CHECK(cat_req_finish(db, q.ids[0], NULL, CAT_REQ_FAILED, "A", "connection reset", 3) == DM_OK);
	{
		struct reqs again = { 0 };
		CHECK(cat_req_claim(db, "h:1:0", 10, 0, 1, keep_req, &again) == DM_OK && again.n == 1);
		CHECK_STR(again.ids[0], q.ids[0]);
	}
	CHECK(cat_req_finish(db, q.ids[0], NULL, CAT_REQ_FAILED, "A", "connection reset", 3) == DM_OK);
	CHECK(cat_req_claim(db, "h:1:0", 10, 0, 1, keep_req, &(struct reqs){ 0 }) == DM_OK);
	CHECK(cat_req_finish(db, q.ids[0], NULL, CAT_REQ_FAILED, "A", "checksum mismatch", 3) == DM_OK);
	i = rule_info(db, id);
	CHECK_STR(i.state, "STUCK");
	CHECK(i.stuck == 1 && i.ok == 19);
	CHECK(strstr(i.error, "checksum mismatch") != NULL);
	/* finishing an unknown request is an error, not a crash */
	CHECK(cat_req_finish(db, "0123", NULL, CAT_REQ_DONE, NULL, NULL, 3) == DM_ENOENT);
	/* the repairer requeues the stuck lock; this time it works */
	CHECK(cat_judge_repair(db, 10, 0, 14 * 86400, 0, 1, &done) == DM_OK && done == 1);
	i = rule_info(db, id);
	CHECK_STR(i.state, "REPLICATING");
	q.n = 0;
	CHECK(cat_req_claim(db, "h:1:0", 10, 0, 1, keep_req, &q) == DM_OK && q.n == 1);
	CHECK(cat_req_finish(db, q.ids[0], NULL, CAT_REQ_DONE, "A", NULL, 3) == DM_OK);
	i = rule_info(db, id);
	CHECK_STR(i.state, "OK");
	CHECK(i.ok == 20 && i.error[0] == 0);

	/* attach a new file: the evaluator places it where the dataset is */
	{
		struct cat_file_in f = { "mock", "late", 100, "0000abcd", NULL, NULL, -1 };
		struct counts k2 = { 0 };
		CHECK(cat_replicas_add(db, "A", &f, 1, "mock", "ds", 0) == DM_OK);
		/* two queued updates: the first registration's and this one */
		CHECK(cat_judge_evaluate(db, 100, 0, 1, &done) == DM_OK && done == 2);
		i = rule_info(db, id);
		CHECK(i.repl == 2 && i.ok == 20);
		CHECK(cat_rule_lock_counts(db, id, count_locks, &k2) == DM_OK);
		CHECK(k2.rses == 2 && k2.per_rse[0] == 11 && k2.per_rse[1] == 11);
		CHECK_STR(k2.names[0], k.names[0]);
		CHECK_STR(k2.names[1], k.names[1]);
		/* detach it again: its locks go, the queued transfers are cancelled */
		struct cat_did_ref r = { "mock", "late" };
		CHECK(cat_did_detach(db, "mock", "ds", &r, 1) == DM_OK);
		{
			enum dm_status erc = cat_judge_evaluate(db, 100, 0, 1, &done);
			if (erc || done != 1)
				fprintf(stderr, "evaluate: %d done %d: %s: %s\n", erc, done,
					cat_error(db)->cls, cat_error(db)->msg);
			CHECK(erc == DM_OK && done == 1);
		}
		i = rule_info(db, id);
		CHECK(i.repl == 0 && i.ok == 20);
		CHECK_STR(i.state, "OK");
		q.n = 0;
		CHECK(cat_req_claim(db, "h:1:0", 10, 0, 1, keep_req, &q) == DM_OK && q.n == 0);
	}
	cat_close(db);
}

static int count_del(void *ud, const struct cat_deletion *d)
{
	(*(int *)ud)++;
	return 0;
}

struct dels {
	char names[64][32];
	char rse[16];
	int n;
};

static int keep_del(void *ud, const struct cat_deletion *d)
{
	struct dels *x = ud;

	if (x->n < 64)
		dm_strlcpy(x->names[x->n], d->name, 32);
	dm_strlcpy(x->rse, d->rse, 16);
	x->n++;
	return 0;
}

static void test_delete_and_reaper(void)
{
	struct cat_db *db = setup(5);
	struct cat_rule_opts o;
	char id[33];
	struct reqs q = { 0 };
	int n = 0;
	struct dels d = { 0 };

	cat_rule_opts_init(&o);
	o.rse_expression = "T1A";
	CHECK(cat_rule_add(db, "mock", "ds", &o, id) == DM_OK);
	CHECK(cat_req_claim(db, "h:1:0", 10, 0, 1, keep_req, &q) == DM_OK && q.n == 5);
	for (int a = 0; a < 5; a++)
		CHECK(cat_req_finish(db, q.ids[a], NULL, CAT_REQ_DONE, "A", NULL, 3) == DM_OK);
	/* locked replicas are never candidates */
	CHECK(cat_reaper_claim(db, "T1A", 1, 100, count_del, &n) == DM_OK && n == 0);
	/* a locked rule cannot be deleted */
	CHECK(cat_rule_update(db, id, "locked", "true") == DM_OK);
	CHECK(cat_rule_delete(db, id, -1, 0) == DM_ECONFLICT);
	CHECK(cat_rule_update(db, id, "locked", "false") == DM_OK);
	CHECK(cat_rule_delete(db, id, -1, 3600) == DM_OK); /* soft: expires in an hour */
	CHECK(cat_rule_get(db, id, keep_rule, &(struct rinfo){ 0 }) == DM_OK);
	CHECK(cat_rule_delete(db, id, 1, 0) == DM_OK); /* now, purging */
	CHECK(cat_rule_get(db, id, keep_rule, &(struct rinfo){ 0 }) == DM_ENOENT);
	/* non-greedy: OBSOLETE tombstones only (purge_replicas gives those) */
	CHECK(cat_reaper_claim(db, "T1A", 0, 3, keep_del, &d) == DM_OK && d.n == 3);
	CHECK(cat_reaper_claim(db, "T1A", 0, 100, keep_del, &d) == DM_OK && d.n == 5);
	/* the source replicas on A have no tombstone: never taken */
	n = 0;
	CHECK(cat_reaper_claim(db, "A", 1, 100, count_del, &n) == DM_OK && n == 0);
	for (int a = 0; a < d.n; a++)
		CHECK(cat_reaper_done(db, "T1A", "mock", d.names[a]) == DM_OK);
	{
		int nrep = 0;
		struct cat_replica;
		CHECK(cat_reaper_claim(db, "T1A", 1, 100, count_del, &nrep) == DM_OK && nrep == 0);
	}
	cat_close(db);
}

static void test_errors(void)
{
	struct cat_db *db = setup(3);
	struct cat_rule_opts o;
	char id[33];
	struct rinfo i;

	cat_rule_opts_init(&o);
	o.rse_expression = "tier=3";
	CHECK(cat_rule_add(db, "mock", "ds", &o, id) == DM_EINVAL);
	CHECK_STR(cat_error(db)->cls, "InvalidRSEExpression");
	o.rse_expression = "tier=1";
	o.copies = 4;
	CHECK(cat_rule_add(db, "mock", "ds", &o, id) == DM_EINVAL);
	CHECK_STR(cat_error(db)->cls, "InsufficientTargetRSEs");
	o.copies = 0;
	CHECK(cat_rule_add(db, "mock", "ds", &o, id) == DM_EINVAL);
	CHECK_STR(cat_error(db)->cls, "InvalidValueForKey");
	o.copies = 1;
	CHECK(cat_rule_add(db, "mock", "nope", &o, id) == DM_ENOENT);
	CHECK_STR(cat_error(db)->cls, "DataIdentifierNotFound");
	o.source_replica_expression = "(A";
	CHECK(cat_rule_add(db, "mock", "ds", &o, id) == DM_EINVAL);
	CHECK_STR(cat_error(db)->cls, "InvalidSourceReplicaExpression");
	o.source_replica_expression = "tier=9";
	CHECK(cat_rule_add(db, "mock", "ds", &o, id) == DM_EINVAL);
	CHECK_STR(cat_error(db)->cls, "InvalidSourceReplicaExpression");
	o.source_replica_expression = NULL;
	/* nothing writable */
	CHECK(cat_rse_update(db, "T1A", "availability_write", "false") == DM_OK);
	CHECK(cat_rse_update(db, "T1B", "availability_write", "false") == DM_OK);
	CHECK(cat_rse_update(db, "T1C", "availability_write", "false") == DM_OK);
	CHECK(cat_rule_add(db, "mock", "ds", &o, id) == DM_EPERM);
	CHECK_STR(cat_error(db)->cls, "RSEWriteBlocked");
	CHECK(cat_rse_update(db, "T1C", "availability_write", "true") == DM_OK);
	/* quotas: a user without limits has no quota */
	CHECK(cat_account_add(db, "jdoe", CAT_ACCOUNT_USER, NULL) == DM_OK);
	CHECK(cat_set_issuer(db, "jdoe") == DM_OK);
	CHECK(cat_rule_add(db, "mock", "ds", &o, id) == DM_EQUOTA);
	CHECK_STR(cat_error(db)->cls, "InsufficientAccountLimit");
	CHECK(cat_set_issuer(db, "root") == DM_OK);
	CHECK(cat_account_limit_set(db, "jdoe", "T1C", 250) == DM_OK);
	CHECK(cat_set_issuer(db, "jdoe") == DM_OK);
	CHECK(cat_rule_add(db, "mock", "ds", &o, id) == DM_EQUOTA); /* 300 bytes > 250 */
	CHECK(cat_set_issuer(db, "root") == DM_OK);
	CHECK(cat_account_limit_set(db, "jdoe", "T1C", 1000) == DM_OK);
	CHECK(cat_set_issuer(db, "jdoe") == DM_OK);
	CHECK(cat_rule_add(db, "mock", "ds", &o, id) == DM_OK);
	i = rule_info(db, id);
	CHECK(i.repl == 3);
	/* usage counts the locked bytes */
	CHECK(cat_usage_refresh(db) == DM_OK);
	o.copies = 1;
	o.rse_expression = "T1C|T1B";
	o.grouping = CAT_GROUPING_NONE;
	/* 300 of 1000 used on T1C, no limit on T1B: every file goes to T1C */
	CHECK(cat_rule_add(db, "mock", "ds", &o, id) == DM_OK);
	{
		struct counts k = { 0 };
		CHECK(cat_rule_lock_counts(db, id, count_locks, &k) == DM_OK);
		CHECK(k.rses == 1 && k.per_rse[0] == 3);
		CHECK_STR(k.names[0], "T1C");
	}
	/* ...and now T1C is full for another 800-byte placement */
	CHECK(cat_usage_refresh(db) == DM_OK);
	o.rse_expression = "T1C";
	o.grouping = CAT_GROUPING_DATASET;
	CHECK(cat_set_issuer(db, "root") == DM_OK);
	CHECK(cat_did_add(db, "mock", "big", CAT_DID_DATASET, 0) == DM_OK);
	{
		struct cat_file_in f = { "mock", "big1", 800, "0000abcd", NULL, NULL, -1 };
		CHECK(cat_replicas_add(db, "A", &f, 1, "mock", "big", 0) == DM_OK);
	}
	CHECK(cat_set_issuer(db, "jdoe") == DM_OK);
	CHECK(cat_rule_add(db, "mock", "big", &o, id) == DM_EQUOTA); /* 600 of 1000 used */
	CHECK_STR(cat_error(db)->cls, "InsufficientAccountLimit");
	/* an admin ignores quotas */
	CHECK(cat_set_issuer(db, "root") == DM_OK);
	CHECK(cat_rule_add(db, "mock", "big", &o, id) == DM_OK);
	cat_close(db);
}

static void test_grouping_none_and_file_rules(void)
{
	struct cat_db *db = setup(30);
	struct cat_rule_opts o;
	char id[33];
	struct counts k = { 0 };

	cat_rule_opts_init(&o);
	o.rse_expression = "tier=1";
	o.grouping = CAT_GROUPING_NONE;
	CHECK(cat_rule_add(db, "mock", "ds", &o, id) == DM_OK);
	CHECK(cat_rule_lock_counts(db, id, count_locks, &k) == DM_OK);
	/* 30 files spread at random over three RSEs: more than one is used */
	CHECK(k.rses >= 2);
	/* a rule on a file that exists only on A, asked on A: OK at once */
	o.grouping = CAT_GROUPING_DATASET;
	o.rse_expression = "A";
	CHECK(cat_rule_add(db, "mock", "f001", &o, id) == DM_OK);
	CHECK_STR(rule_info(db, id).state, "OK");
	/* a container rule with ALL grouping puts every dataset together */
	CHECK(cat_did_add(db, "mock", "c", CAT_DID_CONTAINER, 0) == DM_OK);
	CHECK(cat_did_add(db, "mock", "ds2", CAT_DID_DATASET, 0) == DM_OK);
	{
		struct cat_file_in f = { "mock", "g1", 100, "0000abcd", NULL, NULL, -1 };
		struct cat_did_ref kids[2] = { { "mock", "ds" }, { "mock", "ds2" } };
		struct counts k2 = { 0 };
		CHECK(cat_replicas_add(db, "A", &f, 1, "mock", "ds2", 0) == DM_OK);
		CHECK(cat_did_attach(db, "mock", "c", kids, 2, 0) == DM_OK);
		o.rse_expression = "tier=1";
		o.grouping = CAT_GROUPING_ALL;
		o.copies = 1;
		CHECK(cat_rule_add(db, "mock", "c", &o, id) == DM_OK);
		CHECK(cat_rule_lock_counts(db, id, count_locks, &k2) == DM_OK);
		CHECK(k2.rses == 1 && k2.per_rse[0] == 31);
	}
	/* a file with no replica anywhere gives a STUCK rule */
	{
		struct cat_file_in f = { "mock", "lonely", 1, "00000001", NULL, NULL, CAT_REPLICA_UNAVAILABLE };
		CHECK(cat_replicas_add(db, "T1A", &f, 1, NULL, NULL, 0) == DM_OK);
		o.rse_expression = "T1B";
		CHECK(cat_rule_add(db, "mock", "lonely", &o, id) == DM_OK);
		CHECK_STR(rule_info(db, id).state, "STUCK");
	}
	cat_close(db);
}

/* The daemons judge liveness (daemons/runtime.c); here a stand-in that
 * knows pid 4242 is gone and counts how often it was asked. */
static int alive_unless_4242(void *ud, const char *host, int64_t pid)
{
	(*(int *)ud)++;
	return pid != 4242;
}

static void test_heartbeats_and_orphans(void)
{
	struct cat_db *db = setup(2);
	struct cat_rule_opts o;
	struct reqs q = { 0 };
	int idx = -1, total = 0, done = 0;
	char id[33], me[300];

	CHECK(cat_hb_live(db, "didfs-conveyor", "hostA", 1, 0, 60, NULL, NULL, &idx, &total) == DM_OK);
	CHECK(cat_hb_live(db, "didfs-conveyor", "hostB", 2, 0, 60, NULL, NULL, &idx, &total) == DM_OK);
	CHECK(idx == 1 && total == 2);
	CHECK(cat_hb_live(db, "didfs-conveyor", "hostA", 1, 0, 60, NULL, NULL, &idx, &total) == DM_OK);
	CHECK(idx == 0 && total == 2);
	CHECK(cat_hb_die(db, "didfs-conveyor", "hostB", 2, 0) == DM_OK);
	CHECK(cat_hb_live(db, "didfs-conveyor", "hostA", 1, 0, 60, NULL, NULL, &idx, &total) == DM_OK);
	CHECK(idx == 0 && total == 1);
	/* partitions split the queue without overlap */
	cat_rule_opts_init(&o);
	o.rse_expression = "T1A";
	CHECK(cat_rule_add(db, "mock", "ds", &o, id) == DM_OK);
	{
		struct reqs p0 = { 0 }, p1 = { 0 };
		CHECK(cat_req_claim(db, "x:1:0", 10, 0, 2, keep_req, &p0) == DM_OK);
		CHECK(cat_req_claim(db, "x:1:1", 10, 1, 2, keep_req, &p1) == DM_OK);
		CHECK(p0.n + p1.n == 2);
	}
	/* a claimant that is gone: its requests come back */
	CHECK(cat_req_requeue_orphans(db, "didfs-conveyor", 3600, 120, NULL, NULL, &done) == DM_OK && done == 2);
	{
		char host[200] = "";
		gethostname(host, sizeof host - 1);
		snprintf(me, sizeof me, "%s:%d:0", host, (int)getpid());
		CHECK(cat_hb_live(db, "didfs-conveyor", host, (int)getpid(), 0, 60, NULL, NULL, &idx, &total) == DM_OK);
	}
	CHECK(cat_req_claim(db, me, 10, 0, 1, keep_req, &q) == DM_OK && q.n == 2);
	/* only the claimant may record the outcome */
	CHECK(cat_req_finish(db, q.ids[0], "other:1:0", CAT_REQ_DONE, "A", NULL, 3) == DM_ENOENT);
	CHECK_STR(cat_error(db)->cls, "RequestNotFound");
	CHECK(cat_req_requeue_orphans(db, "didfs-conveyor", 3600, 120, NULL, NULL, &done) == DM_OK && done == 0);
	CHECK(cat_hb_is_live(db, "didfs-conveyor", me, 60, NULL, NULL));
	CHECK(!cat_hb_is_live(db, "didfs-conveyor", "nohost:1:0", 60, NULL, NULL));
	/* liveness comes from the caller: a beating worker whose process the
	 * callback knows is gone is not live, and its requests come back */
	{
		int calls = 0;
		char gone[300];
		snprintf(gone, sizeof gone, "hostC:4242:0");
		CHECK(cat_hb_live(db, "didfs-conveyor", "hostC", 4242, 0, 60, NULL, NULL, &idx,
				  &total) == DM_OK);
		CHECK(cat_hb_is_live(db, "didfs-conveyor", gone, 60, NULL, NULL));
		CHECK(!cat_hb_is_live(db, "didfs-conveyor", gone, 60, alive_unless_4242, &calls));
		CHECK(calls == 1);
		/* another process of hostC beating drops the gone one's rows */
		CHECK(cat_hb_live(db, "didfs-conveyor", "hostC", 7, 0, 60, alive_unless_4242, &calls,
				  &idx, &total) == DM_OK);
		CHECK(calls >= 2);
		CHECK(!cat_hb_is_live(db, "didfs-conveyor", gone, 60, NULL, NULL));
		CHECK(cat_hb_is_live(db, "didfs-conveyor", "hostC:7:0", 60, alive_unless_4242, &calls));
	}
	cat_close(db);
}

int main(void)
{
	srandom(42);
	snprintf(path, sizeof path, "/tmp/didfs_rule_%d.db", (int)getpid());
	test_dataset_rule_and_transfers();
	test_delete_and_reaper();
	test_errors();
	test_grouping_none_and_file_rules();
	test_heartbeats_and_orphans();
	rm_db();
	return tap_done();
}
