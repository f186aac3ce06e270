/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench_sqldrv.c - the SQL driver's bulk path (catalog/sql/sqldrv.h) against
 * the raw client library loading the same rows in the same run:
 *   PostgreSQL: sqldrv_bulk_* (COPY FROM STDIN) vs a hand-written libpq COPY;
 *   SQLite:     sqldrv_bulk_* (prepared INSERT loop) vs raw sqlite3 inserts.
 * Rows look like file registrations (scope, name, bytes, adler32, time).
 * Each load goes into a fresh table; each pair runs twice, alternating which
 * goes first, and the faster of the two runs counts.
 *
 *   bench_sqldrv [N] [DIR]    (N default 1000000 rows; DIR for the SQLite
 *                              files, default /tmp)
 *
 * PostgreSQL is used when $DIDFS_TEST_PG_URI is set, e.g.
 *   tests/env/pgfixture.py run -- build-rel/tests/bench/bench_sqldrv
 * Prints rows/s for each, the ratio driver/raw and the client's peak RSS;
 * no assertions.
 */
#include "sqldrv.h"

#ifdef DIDFS_HAVE_LIBPQ
#include <libpq-fe.h>
#endif
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static const char *const cols[] = { "scope", "name", "bytes", "adler32", "created_at" };

static void row(uint64_t i, char *name, size_t n, char adler[9], int64_t *bytes)
{
	snprintf(name, n, "run42/raw/file_%08llu.h5", (unsigned long long)i);
	snprintf(adler, 9, "%08llx", (unsigned long long)((i * 2654435761u) & 0xffffffffu));
	*bytes = 1000000 + (int64_t)(i % 4096);
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* the driver's bulk path, on any store; returns seconds or -1 */
static double drv_load(struct sqldrv *db, const char *table, uint64_t n)
{
	struct sqldrv_bulk *b;
	char name[64], adler[9];
	int64_t bytes;
	double t0 = now();
	enum dm_status rc = DM_OK;

	b = sqldrv_bulk_begin(db, table, cols, 5);
	for (uint64_t i = 0; i < n && rc == DM_OK; i++) {
		row(i, name, sizeof name, adler, &bytes);
		sqldrv_bulk_text(b, "user.bench", 10);
		sqldrv_bulk_text(b, name, -1);
		sqldrv_bulk_int64(b, bytes);
		sqldrv_bulk_text(b, adler, 8);
		sqldrv_bulk_int64(b, 1764633600);
		rc = sqldrv_bulk_row(b);
	}
	rc = sqldrv_bulk_end(b, rc);
	if (rc) {
		fprintf(stderr, "driver bulk: %s\n", sqldrv_error(db)->msg);
		return -1;
	}
	return now() - t0;
}

static void report(const char *store, uint64_t n, double drv, double raw)
{
	printf("%-10s driver bulk: %10.0f rows/s   raw: %10.0f rows/s   ratio driver/raw: %.2f\n",
	       store, n / drv, n / raw, raw / drv);
}

/* ---- SQLite ---- */

static const char sq_table[] =
	"CREATE TABLE t(id INTEGER PRIMARY KEY, scope TEXT NOT NULL, name TEXT NOT NULL,"
	" bytes INTEGER, adler32 TEXT, created_at INTEGER, UNIQUE(scope, name))";

static double sq_raw(const char *path, uint64_t n)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	char name[64], adler[9];
	int64_t bytes;
	double t0;

	unlink(path);
	if (sqlite3_open(path, &db) != SQLITE_OK)
		return -1;
	sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL", NULL, NULL, NULL);
	sqlite3_exec(db, sq_table, NULL, NULL, NULL);
	t0 = now();
	sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	sqlite3_prepare_v2(db, "INSERT INTO t(scope, name, bytes, adler32, created_at)"
			   " VALUES(?, ?, ?, ?, ?)", -1, &st, NULL);
	for (uint64_t i = 0; i < n; i++) {
		row(i, name, sizeof name, adler, &bytes);
		sqlite3_bind_text(st, 1, "user.bench", 10, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, bytes);
		sqlite3_bind_text(st, 4, adler, 8, SQLITE_STATIC);
		sqlite3_bind_int64(st, 5, 1764633600);
		if (sqlite3_step(st) != SQLITE_DONE) {
			fprintf(stderr, "raw sqlite: %s\n", sqlite3_errmsg(db));
			return -1;
		}
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	t0 = now() - t0;
	sqlite3_close(db);
	return t0;
}

static double sq_drv(const char *path, uint64_t n)
{
	struct sqldrv *db;
	struct dm_err err;
	double t;

	unlink(path);
	if (sqldrv_open(path, SQLDRV_OPEN_CREATE, &db, &err)) {
		fprintf(stderr, "%s\n", err.msg);
		return -1;
	}
	sqldrv_exec(db, sq_table);
	t = drv_load(db, "t", n);
	sqldrv_close(db);
	return t;
}

static void bench_sqlite(const char *dir, uint64_t n)
{
	char path[512], tail[600];
	double drv = 1e30, raw = 1e30, t;

	snprintf(path, sizeof path, "%s/bench_sqldrv.%d.db", dir, (int)getpid());
	for (int round = 0; round < 2; round++) {
		if (round == 0) {
			t = sq_raw(path, n);
			raw = t >= 0 && t < raw ? t : raw;
			t = sq_drv(path, n);
			drv = t >= 0 && t < drv ? t : drv;
		} else {
			t = sq_drv(path, n);
			drv = t >= 0 && t < drv ? t : drv;
			t = sq_raw(path, n);
			raw = t >= 0 && t < raw ? t : raw;
		}
	}
	unlink(path);
	snprintf(tail, sizeof tail, "%s-wal", path);
	unlink(tail);
	snprintf(tail, sizeof tail, "%s-shm", path);
	unlink(tail);
	if (drv < 1e30 && raw < 1e30)
		report("SQLite", n, drv, raw);
}

/* ---- PostgreSQL ---- */

#ifdef DIDFS_HAVE_LIBPQ
static const char pg_table[] =
	"DROP TABLE IF EXISTS bench_t; CREATE TABLE bench_t(id BIGINT GENERATED BY DEFAULT AS"
	" IDENTITY PRIMARY KEY, scope TEXT NOT NULL, name TEXT NOT NULL, bytes BIGINT,"
	" adler32 TEXT, created_at BIGINT, UNIQUE(scope, name))";

static void quiet(void *ud, const char *msg)
{
}

static int pg_ok(PGconn *c, PGresult *r, ExecStatusType want)
{
	int ok = r && PQresultStatus(r) == want;
	if (!ok)
		fprintf(stderr, "raw libpq: %s", PQerrorMessage(c));
	PQclear(r);
	return ok;
}

/* the same rows through libpq directly: COPY text, 256 KiB chunks */
static double pg_raw(const char *uri, uint64_t n)
{
	PGconn *c = PQconnectdb(uri);
	char *buf = malloc(300 * 1024), name[64], adler[9];
	size_t len = 0;
	int64_t bytes;
	double t0 = -1;

	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "raw libpq: %s", PQerrorMessage(c));
		goto out;
	}
	PQsetNoticeProcessor(c, quiet, NULL);
	if (!pg_ok(c, PQexec(c, pg_table), PGRES_COMMAND_OK))
		goto out;
	t0 = now();
	if (!pg_ok(c, PQexec(c, "BEGIN"), PGRES_COMMAND_OK) ||
	    !pg_ok(c, PQexec(c, "COPY bench_t(scope, name, bytes, adler32, created_at) FROM STDIN"),
		   PGRES_COPY_IN)) {
		t0 = -1;
		goto out;
	}
	for (uint64_t i = 0; i < n; i++) {
		row(i, name, sizeof name, adler, &bytes);
		len += (size_t)snprintf(buf + len, 200, "user.bench\t%s\t%lld\t%s\t1764633600\n",
					name, (long long)bytes, adler);
		if (len >= 256 * 1024) {
			PQputCopyData(c, buf, (int)len);
			len = 0;
		}
	}
	if (len)
		PQputCopyData(c, buf, (int)len);
	PQputCopyEnd(c, NULL);
	if (!pg_ok(c, PQgetResult(c), PGRES_COMMAND_OK) ||
	    !pg_ok(c, PQexec(c, "COMMIT"), PGRES_COMMAND_OK))
		t0 = -1;
	else
		t0 = now() - t0;
out:
	free(buf);
	PQfinish(c);
	return t0;
}

static double pg_drv(const char *uri, uint64_t n)
{
	struct sqldrv *db;
	struct dm_err err;
	double t = -1;

	if (sqldrv_open(uri, 0, &db, &err)) {
		fprintf(stderr, "%s\n", err.msg);
		return -1;
	}
	if (sqldrv_exec(db, pg_table) == DM_OK)
		t = drv_load(db, "bench_t", n);
	sqldrv_exec(db, "DROP TABLE bench_t");
	sqldrv_close(db);
	return t;
}

static void bench_pg(const char *uri, uint64_t n)
{
	double drv = 1e30, raw = 1e30, t;

	for (int round = 0; round < 2; round++) {
		if (round == 0) {
			t = pg_raw(uri, n);
			raw = t >= 0 && t < raw ? t : raw;
			t = pg_drv(uri, n);
			drv = t >= 0 && t < drv ? t : drv;
		} else {
			t = pg_drv(uri, n);
			drv = t >= 0 && t < drv ? t : drv;
			t = pg_raw(uri, n);
			raw = t >= 0 && t < raw ? t : raw;
		}
	}
	if (drv < 1e30 && raw < 1e30)
		report("PostgreSQL", n, drv, raw);
}
#endif

int main(int argc, char **argv)
{
	uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
	const char *dir = argc > 2 ? argv[2] : "/tmp";
	const char *uri = getenv("DIDFS_TEST_PG_URI");

	if (n == 0)
		n = 1000000;
	printf("bench_sqldrv: %llu rows per load (best of 2)\n", (unsigned long long)n);
#ifdef DIDFS_HAVE_LIBPQ
	if (uri && *uri)
		bench_pg(uri, n);
	else
		printf("PostgreSQL: skipped ($DIDFS_TEST_PG_URI unset; run through"
		       " tests/env/pgfixture.py run --)\n");
#else
	(void)uri;
	printf("PostgreSQL: skipped (built without libpq)\n");
#endif
	bench_sqlite(dir, n);
	{
		struct rusage ru;
		getrusage(RUSAGE_SELF, &ru);
		printf("peak RSS of the client process (all loads): %.1f MiB\n", ru.ru_maxrss / 1024.0);
	}
	return 0;
}
