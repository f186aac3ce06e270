/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench_pgutil.h - what the C benchmarks share for PostgreSQL: each run
 * works in schemas of its own in the database a URI names (created at the
 * start, dropped at the end), reached by adding
 * options=-csearch_path=SCHEMA to the URI, so a benchmark never writes
 * into a catalog that is already there.  Header-only (static functions):
 * the benchmarks are single files (inline: no warning where one is unused).
 */
#ifndef BENCH_PGUTIL_H
#define BENCH_PGUTIL_H

#include <stdio.h>
#include <string.h>

static inline int bench_is_pg_uri(const char *s)
{
	return s && (!strncmp(s, "postgresql://", 13) || !strncmp(s, "postgres://", 11));
}

/* The URI with search_path set to schema (a URI's own options= is
 * replaced: libpq takes the last one). */
static inline void bench_pg_schema_uri(const char *uri, const char *schema, char *out, size_t n)
{
	snprintf(out, n, "%s%coptions=-csearch_path%%3D%s", uri, strchr(uri, '?') ? '&' : '?',
		 schema);
}

#ifdef DIDFS_HAVE_LIBPQ
#include <libpq-fe.h>

static inline void bench_pg_quiet(void *ud, const char *msg)
{
	(void)ud;
	(void)msg;
}

/* Run SQL (several statements allowed) on a fresh connection; 0 on success. */
static inline int bench_pg_exec(const char *uri, const char *sql)
{
	PGconn *c = PQconnectdb(uri);
	PGresult *r;
	int ok;

	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "libpq: %s", PQerrorMessage(c));
		PQfinish(c);
		return -1;
	}
	PQsetNoticeProcessor(c, bench_pg_quiet, NULL);
	r = PQexec(c, sql);
	ok = r && (PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK);
	if (!ok)
		fprintf(stderr, "libpq: %s: %s", sql, PQerrorMessage(c));
	PQclear(r);
	PQfinish(c);
	return ok ? 0 : -1;
}

/* CREATE SCHEMA name (dropped first if it is there) / DROP SCHEMA name. */
static inline int bench_pg_schema(const char *uri, const char *schema, int create)
{
	char sql[256];

	snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS %s CASCADE%s%s", schema,
		 create ? "; CREATE SCHEMA " : "", create ? schema : "");
	return bench_pg_exec(uri, sql);
}
#endif

#endif
