/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench_register.c - registering N files (file DID, replica, attachment to
 * one dataset) through the catalog's bulk path, against plain SQLite inserts
 * of the same rows into the same schema in the same run; then streaming the
 * listing of that dataset.  Each phase runs in its own child process so its
 * peak RSS is its own.
 *
 *   bench_register [N] [DIR]      (N default 1000000, DIR default /tmp)
 *
 * Prints files per second, the ratio didfs/raw, and peak RSS per phase.
 */
#include "catalog.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

struct result {
	double seconds;
	long rss_kib;
	uint64_t count;
};

static void fake_file(uint64_t i, char *name, size_t n, char adler[9], uint64_t *bytes)
{
	snprintf(name, n, "run42/raw/file_%08llu.h5", (unsigned long long)i);
	snprintf(adler, 9, "%08llx", (unsigned long long)((i * 2654435761u) & 0xffffffffu));
	*bytes = 1000000 + (i % 4096);
}

static int setup(const char *path)
{
	struct cat_db *db;
	struct dm_err err = { 0 };

	unlink(path);
	if (cat_open(path, CAT_OPEN_CREATE, &db, &err) || cat_bootstrap(db, NULL, NULL) ||
	    cat_scope_add(db, "km3net", "root") || cat_rse_add(db, "XRD1", NULL) ||
	    cat_did_add(db, "km3net", "run42", CAT_DID_DATASET, 0)) {
		fprintf(stderr, "setup: %s\n", err.code ? err.msg : cat_error(db)->msg);
		return -1;
	}
	cat_close(db);
	return 0;
}

static int phase_didfs(const char *path, uint64_t n)
{
	struct cat_db *db;
	struct cat_bulk *b;
	struct dm_err err = { 0 };
	char name[64], adler[9];
	uint64_t added = 0;

	if (cat_open(path, 0, &db, &err) || cat_bulk_begin(db, "XRD1", "km3net", "run42", 0, &b)) {
		fprintf(stderr, "didfs: %s\n", err.code ? err.msg : cat_error(db)->msg);
		return 1;
	}
	for (uint64_t i = 0; i < n; i++) {
		struct cat_file_in f = { "km3net", name, 0, adler, NULL, NULL, -1 };
		fake_file(i, name, sizeof name, adler, &f.bytes);
		if (cat_bulk_add(b, &f)) {
			fprintf(stderr, "didfs: %s\n", cat_error(db)->msg);
			return 1;
		}
	}
	if (cat_bulk_commit(b, &added) || added != n) {
		fprintf(stderr, "didfs commit: %s (%llu added)\n", cat_error(db)->msg,
			(unsigned long long)added);
		return 1;
	}
	cat_close(db);
	return 0;
}

static int step_ok(sqlite3_stmt *st)
{
	int r = sqlite3_step(st);
	sqlite3_reset(st);
	return r == SQLITE_DONE;
}

/* The floor: the same three rows per file, prepared statements, one
 * transaction, no validation, no checks, no counters. */
static int phase_raw(const char *path, uint64_t n)
{
	sqlite3 *db;
	sqlite3_stmt *d, *r, *c;
	char name[64], adler[9];
	int64_t now = dm_now();

	if (sqlite3_open(path, &db) != SQLITE_OK)
		return 1;
	sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-16384;"
			 "BEGIN", NULL, NULL, NULL);
	if (sqlite3_prepare_v2(db, "INSERT INTO dids(scope, name, account, did_type, bytes, length,"
				   " adler32, created_at, updated_at) VALUES ('km3net',?,'root','F',?,1,?,?,?)",
			       -1, &d, NULL) ||
	    sqlite3_prepare_v2(db, "INSERT INTO replicas(did_id, rse_num, bytes, state, created_at,"
				   " updated_at) VALUES (?,1,?,'A',?,?)", -1, &r, NULL) ||
	    sqlite3_prepare_v2(db, "INSERT INTO contents(parent_id, child_id, created_at) VALUES (1,?,?)",
			       -1, &c, NULL)) {
		fprintf(stderr, "raw: %s\n", sqlite3_errmsg(db));
		return 1;
	}
	for (uint64_t i = 0; i < n; i++) {
		uint64_t bytes;
		int64_t id;
		fake_file(i, name, sizeof name, adler, &bytes);
		sqlite3_bind_text(d, 1, name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(d, 2, (int64_t)bytes);
		sqlite3_bind_text(d, 3, adler, 8, SQLITE_STATIC);
		sqlite3_bind_int64(d, 4, now);
		sqlite3_bind_int64(d, 5, now);
		if (!step_ok(d))
			goto fail;
		id = sqlite3_last_insert_rowid(db);
		sqlite3_bind_int64(r, 1, id);
		sqlite3_bind_int64(r, 2, (int64_t)bytes);
		sqlite3_bind_int64(r, 3, now);
		sqlite3_bind_int64(r, 4, now);
		if (!step_ok(r))
			goto fail;
		sqlite3_bind_int64(c, 1, id);
		sqlite3_bind_int64(c, 2, now);
		if (!step_ok(c))
			goto fail;
	}
	if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	sqlite3_finalize(d);
	sqlite3_finalize(r);
	sqlite3_finalize(c);
	sqlite3_close(db);
	return 0;
fail:
	fprintf(stderr, "raw: %s\n", sqlite3_errmsg(db));
	return 1;
}

static int count_file(void *ud, const struct cat_did *d)
{
	(*(uint64_t *)ud)++;
	return 0;
}

static int phase_list(const char *path, uint64_t n)
{
	struct cat_db *db;
	struct dm_err err = { 0 };
	uint64_t count = 0;

	if (cat_open(path, CAT_OPEN_READONLY, &db, &err) ||
	    cat_did_list_files(db, "km3net", "run42", count_file, &count))
		return 1;
	cat_close(db);
	if (count != n) {
		fprintf(stderr, "list: %llu files, expected %llu\n", (unsigned long long)count,
			(unsigned long long)n);
		return 1;
	}
	return 0;
}

static int run(int (*fn)(const char *, uint64_t), const char *path, uint64_t n, struct result *res)
{
	double t0 = dm_now_f();
	pid_t pid = fork();
	int status;
	struct rusage ru;

	if (pid == 0)
		_exit(fn(path, n));
	if (wait4(pid, &status, 0, &ru) < 0 || !WIFEXITED(status) || WEXITSTATUS(status))
		return -1;
	res->seconds = dm_now_f() - t0;
	res->rss_kib = ru.ru_maxrss;
	res->count = n;
	return 0;
}

int main(int argc, char **argv)
{
	uint64_t n = 1000000;
	const char *dir = argc > 2 ? argv[2] : "/tmp";
	char p1[512], p2[512];
	struct result rd, rr, rl;

	if (argc > 1 && dm_parse_u64(argv[1], &n)) {
		fprintf(stderr, "usage: bench_register [N] [DIR]\n");
		return 2;
	}
	snprintf(p1, sizeof p1, "%s/bench_register_didfs_%d.db", dir, (int)getpid());
	snprintf(p2, sizeof p2, "%s/bench_register_raw_%d.db", dir, (int)getpid());
	if (setup(p1) || setup(p2))
		return 1;
	if (run(phase_raw, p2, n, &rr) || run(phase_didfs, p1, n, &rd) || run(phase_list, p1, n, &rl)) {
		fprintf(stderr, "bench_register: a phase failed\n");
		return 1;
	}
	printf("register %llu files (file DID + replica + attachment), one transaction:\n",
	       (unsigned long long)n);
	printf("  raw sqlite inserts: %10.0f files/s  %6.2f s  peak RSS %6.1f MiB\n",
	       (double)n / rr.seconds, rr.seconds, (double)rr.rss_kib / 1024);
	printf("  didfs bulk path:    %10.0f files/s  %6.2f s  peak RSS %6.1f MiB\n",
	       (double)n / rd.seconds, rd.seconds, (double)rd.rss_kib / 1024);
	printf("  ratio didfs/raw: %.2f   (target >= 100000 files/s, RSS < 64 MiB)\n",
	       rr.seconds / rd.seconds);
	printf("list-files of the %llu-file dataset: %.2f s (%.0f files/s), peak RSS %.1f MiB\n",
	       (unsigned long long)n, rl.seconds, (double)n / rl.seconds, (double)rl.rss_kib / 1024);
	for (int i = 0; i < 2; i++) {
		const char *p = i ? p2 : p1;
		char w[600];
		unlink(p);
		snprintf(w, sizeof w, "%s-wal", p);
		unlink(w);
		snprintf(w, sizeof w, "%s-shm", p);
		unlink(w);
	}
	return 0;
}
