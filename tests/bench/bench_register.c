/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench_register.c - registering N files (file DID, replica, attachment to
 * one dataset) through the catalog's bulk path, against plain SQLite inserts
 * of the same rows into the same schema in the same run; then streaming the
 * listing of that dataset.  Each phase runs in its own child process so its
 * peak RSS is its own.
 *
 * On PostgreSQL (a postgresql:// URI as DIR, or $DIDFS_TEST_PG_URI) the
 * same three phases run against that database: the didfs bulk path (COPY
 * into a temporary table, set-based statements at commit), and as the
 * floor a raw libpq COPY of the same rows (DID ids given by the client)
 * straight into the same catalog tables (keys, indexes, foreign keys) in a
 * schema of its own.  Each store's catalog is made by cat_open() in a
 * schema created for the run (bench_register_didfs_PID, _raw_PID) and
 * dropped at the end, so the database may hold a catalog already.
 *
 *   bench_register [N] [DIR]      (N default 1000000, DIR default /tmp):
 *                                 SQLite, then PostgreSQL if
 *                                 $DIDFS_TEST_PG_URI is set
 *   bench_register [N] URI        PostgreSQL only
 *   tests/env/pgfixture.py run -- build-rel/tests/bench/bench_register 1000000
 *
 * Prints files per second, the ratio didfs/raw, and peak RSS per phase
 * (the client's; the PostgreSQL server's own memory is not counted).
 */
#include "catalog.h"
#include "bench_pgutil.h"

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

	if (!bench_is_pg_uri(path))
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

#ifdef DIDFS_HAVE_LIBPQ
/* ---- PostgreSQL: the floor is a raw COPY ---- */

struct raw_ids {
	int64_t ds, base, rse, now;
};

typedef int (*copy_fmt)(char *buf, uint64_t i, const struct raw_ids *ids);

static int fmt_did(char *buf, uint64_t i, const struct raw_ids *ids)
{
	char name[64], adler[9];
	uint64_t bytes;

	fake_file(i, name, sizeof name, adler, &bytes);
	return snprintf(buf, 256, "%lld\tkm3net\t%s\troot\tF\t%llu\t1\t%s\t%lld\t%lld\n",
			(long long)(ids->base + 1 + (int64_t)i), name, (unsigned long long)bytes,
			adler, (long long)ids->now, (long long)ids->now);
}

static int fmt_replica(char *buf, uint64_t i, const struct raw_ids *ids)
{
	char name[64], adler[9];
	uint64_t bytes;

	fake_file(i, name, sizeof name, adler, &bytes);
	return snprintf(buf, 256, "%lld\t%lld\t%llu\tA\t%lld\t%lld\n",
			(long long)(ids->base + 1 + (int64_t)i), (long long)ids->rse,
			(unsigned long long)bytes, (long long)ids->now, (long long)ids->now);
}

static int fmt_content(char *buf, uint64_t i, const struct raw_ids *ids)
{
	return snprintf(buf, 256, "%lld\t%lld\t%lld\n", (long long)ids->ds,
			(long long)(ids->base + 1 + (int64_t)i), (long long)ids->now);
}

static int pg_ok(PGconn *c, PGresult *r, ExecStatusType want)
{
	int ok = r && PQresultStatus(r) == want;
	if (!ok)
		fprintf(stderr, "raw libpq: %s", PQerrorMessage(c));
	PQclear(r);
	return ok;
}

/* COPY text in 256 KiB chunks, as the SQL driver sends it */
static int copy_rows(PGconn *c, const char *sql, uint64_t n, copy_fmt fmt,
		     const struct raw_ids *ids)
{
	static char buf[256 * 1024 + 512];
	size_t len = 0;

	if (!pg_ok(c, PQexec(c, sql), PGRES_COPY_IN))
		return -1;
	for (uint64_t i = 0; i < n; i++) {
		len += (size_t)fmt(buf + len, i, ids);
		if (len >= 256 * 1024) {
			if (PQputCopyData(c, buf, (int)len) != 1)
				break;
			len = 0;
		}
	}
	if (len && PQputCopyData(c, buf, (int)len) != 1)
		fprintf(stderr, "raw libpq: %s", PQerrorMessage(c));
	if (PQputCopyEnd(c, NULL) != 1)
		return -1;
	return pg_ok(c, PQgetResult(c), PGRES_COMMAND_OK) ? 0 : -1;
}

/* The same three rows per file as the didfs path writes, COPYed into the
 * same tables of a catalog in one transaction: no validation, no checks,
 * no counters; DID ids chosen by the client. */
static int phase_raw_pg(const char *uri, uint64_t n)
{
	PGconn *c = PQconnectdb(uri);
	PGresult *r;
	struct raw_ids ids = { .now = dm_now() };

	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "raw libpq: %s", PQerrorMessage(c));
		return 1;
	}
	PQsetNoticeProcessor(c, bench_pg_quiet, NULL);
	r = PQexec(c, "SELECT (SELECT id FROM dids WHERE scope='km3net' AND name='run42'),"
		      " (SELECT max(id) FROM dids), (SELECT num FROM rses WHERE rse='XRD1')");
	if (!r || PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
		fprintf(stderr, "raw libpq: %s", PQerrorMessage(c));
		return 1;
	}
	ids.ds = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	ids.base = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
	ids.rse = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
	PQclear(r);
	if (!pg_ok(c, PQexec(c, "BEGIN"), PGRES_COMMAND_OK) ||
	    copy_rows(c, "COPY dids(id, scope, name, account, did_type, bytes, length, adler32,"
			 " created_at, updated_at) FROM STDIN", n, fmt_did, &ids) ||
	    copy_rows(c, "COPY replicas(did_id, rse_num, bytes, state, created_at, updated_at)"
			 " FROM STDIN", n, fmt_replica, &ids) ||
	    copy_rows(c, "COPY contents(parent_id, child_id, created_at) FROM STDIN", n,
		      fmt_content, &ids) ||
	    !pg_ok(c, PQexec(c, "COMMIT"), PGRES_COMMAND_OK)) {
		PQfinish(c);
		return 1;
	}
	PQfinish(c);
	return 0;
}
#endif

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

static void report(const char *raw_name, uint64_t n, const struct result *rr,
		   const struct result *rd, const struct result *rl, int pg)
{
	printf("  %-19s %10.0f files/s  %6.2f s  peak RSS %6.1f MiB\n", raw_name,
	       (double)n / rr->seconds, rr->seconds, (double)rr->rss_kib / 1024);
	printf("  didfs bulk path:    %10.0f files/s  %6.2f s  peak RSS %6.1f MiB\n",
	       (double)n / rd->seconds, rd->seconds, (double)rd->rss_kib / 1024);
	printf("  ratio didfs/raw: %.2f   (target >= 100000 files/s,%s RSS < 64 MiB)\n",
	       rr->seconds / rd->seconds, pg ? " ratio >= 0.5," : "");
	printf("list-files of the %llu-file dataset: %.2f s (%.0f files/s), peak RSS %.1f MiB\n",
	       (unsigned long long)n, rl->seconds, (double)n / rl->seconds,
	       (double)rl->rss_kib / 1024);
	fflush(stdout);
}

static int bench_sqlite(const char *dir, uint64_t n)
{
	char p1[512], p2[512];
	struct result rd, rr, rl;

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
	report("raw sqlite inserts:", n, &rr, &rd, &rl, 0);
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

static int bench_pg(const char *uri, uint64_t n)
{
#ifdef DIDFS_HAVE_LIBPQ
	char s1[64], s2[64], u1[2048], u2[2048], shown[512];
	struct result rd, rr, rl;
	int rc = 1;

	snprintf(s1, sizeof s1, "bench_register_didfs_%d", (int)getpid());
	snprintf(s2, sizeof s2, "bench_register_raw_%d", (int)getpid());
	bench_pg_schema_uri(uri, s1, u1, sizeof u1);
	bench_pg_schema_uri(uri, s2, u2, sizeof u2);
	cat_uri_shown(uri, shown, sizeof shown);
	if (bench_pg_schema(uri, s1, 1) || bench_pg_schema(uri, s2, 1))
		goto out;
	if (setup(u1) || setup(u2))
		goto out;
	if (run(phase_raw_pg, u2, n, &rr) || run(phase_didfs, u1, n, &rd) ||
	    run(phase_list, u1, n, &rl)) {
		fprintf(stderr, "bench_register: a PostgreSQL phase failed\n");
		goto out;
	}
	printf("register %llu files (file DID + replica + attachment) on PostgreSQL %s,"
	       " one transaction:\n", (unsigned long long)n, shown);
	report("raw libpq COPY:", n, &rr, &rd, &rl, 1);
	rc = 0;
out:
	bench_pg_schema(uri, s1, 0);
	bench_pg_schema(uri, s2, 0);
	return rc;
#else
	(void)n;
	fprintf(stderr, "bench_register: %s: this build has no libpq\n", uri);
	return 1;
#endif
}

int main(int argc, char **argv)
{
	uint64_t n = 1000000;
	const char *dir = argc > 2 ? argv[2] : "/tmp";
	const char *uri = getenv("DIDFS_TEST_PG_URI");
	int rc = 0;

	if ((argc > 1 && dm_parse_u64(argv[1], &n)) || n == 0) {
		fprintf(stderr, "usage: bench_register [N] [DIR|postgresql://URI]\n");
		return 2;
	}
	if (bench_is_pg_uri(dir))
		return bench_pg(dir, n);
	rc = bench_sqlite(dir, n);
	if (uri && *uri)
		rc |= bench_pg(uri, n);
	return rc;
}
