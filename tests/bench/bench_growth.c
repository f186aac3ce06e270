/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench_growth.c - how the cost of everyday catalog calls grows with the
 * catalog: a DID lookup, listing a 1,000-file dataset and placing a rule on
 * it, timed inside one process through the C API (no process start-up in
 * the figures), with BASE (1,000,000) and then MAX (10,000,000) files in
 * the catalog; prints each call's median at both sizes and the ratio
 * MAX/BASE per call (the aim is <= 1.2x).
 *
 * The catalog is filled through the bulk path (cat_bulk_*), in datasets of
 * 1,000,000 files (one transaction each; the fill rate of each chunk is
 * printed too: registration's own growth).  At each size PROBES (10) fresh
 * datasets of 1,000 files are registered on SRC, then:
 *   lookup:  LOOKUPS (5,000) cat_did_get() of files drawn at random from
 *            the whole catalog (after LOOKUPS/10 not counted);
 *   list:    cat_did_list_files() of each probe dataset, 4 rounds;
 *   rule:    cat_rule_add(probe, 1 copy, DST) once per probe dataset
 *            (locks, replicas and transfer requests for 1,000 files).
 * On PostgreSQL this is done twice at each size: as the bulk path leaves
 * the catalog (the planner's statistics are whatever autovacuum has got
 * to), then after an explicit ANALYZE (with new probe datasets).  The
 * MAX/BASE ratio is the analysed one's; the ratio as registered/analysed
 * at each size is what stale statistics cost.
 *
 *   bench_growth [--max N] [--base N] [--lookups N] [--probes N] [DIR|URI]
 *
 * DIR (default /tmp) holds a SQLite catalog bench_growth_PID.db, removed at
 * the end; a postgresql:// URI gets a schema bench_growth_PID in its
 * database, dropped at the end.  Figures only, no assertions.
 */
#include "catalog.h"
#include "bench_pgutil.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define CHUNK 1000000ULL
#define PROBE_FILES 1000

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void fill_name(uint64_t g, char *name, size_t n)
{
	snprintf(name, n, "run%04llu/raw/file_%08llu.h5", (unsigned long long)(g / CHUNK),
		 (unsigned long long)(g % CHUNK));
}

static void fake_sum(uint64_t i, char adler[9], uint64_t *bytes)
{
	snprintf(adler, 9, "%08llx", (unsigned long long)((i * 2654435761u) & 0xffffffffu));
	*bytes = 1000000 + (i % 4096);
}

static int fail(struct cat_db *db, const char *what)
{
	fprintf(stderr, "bench_growth: %s: %s: %s\n", what, cat_error(db)->cls, cat_error(db)->msg);
	return -1;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double quantile(double *v, size_t n, double q)
{
	qsort(v, n, sizeof *v, cmp_double);
	return v[(size_t)(q * (double)(n - 1) + 0.5)];
}

static uint64_t rnd(uint64_t *s)
{
	/* xorshift64*: the same draws every run */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ULL;
}

/* One dataset of files through the bulk path: name(i) for i in [from, to). */
static int bulk_dataset(struct cat_db *db, const char *ds, uint64_t from, uint64_t to, int probe)
{
	struct cat_bulk *b;
	char name[128], adler[9];
	uint64_t added = 0;

	if (cat_did_add(db, "bench", ds, CAT_DID_DATASET, 0))
		return fail(db, ds);
	if (cat_bulk_begin(db, "SRC", "bench", ds, 0, &b))
		return fail(db, "bulk begin");
	for (uint64_t i = from; i < to; i++) {
		struct cat_file_in f = { "bench", name, 0, adler, NULL, NULL, -1 };
		if (probe)
			snprintf(name, sizeof name, "%s/file_%04llu.h5", ds, (unsigned long long)i);
		else
			fill_name(i, name, sizeof name);
		fake_sum(i, adler, &f.bytes);
		if (cat_bulk_add(b, &f))
			return fail(db, "bulk add");
	}
	if (cat_bulk_commit(b, &added))
		return fail(db, "bulk commit");
	if (added != to - from) {
		fprintf(stderr, "bench_growth: %s: %llu files added, expected %llu\n", ds,
			(unsigned long long)added, (unsigned long long)(to - from));
		return -1;
	}
	return 0;
}

/* Fill the catalog from `have` to `want` files in chunks of CHUNK. */
static int fill(struct cat_db *db, uint64_t have, uint64_t want)
{
	double t0 = now(), first = 0, last = 0;
	uint64_t first_n = 0, last_n = 0;

	for (uint64_t g = have; g < want;) {
		uint64_t end = (g / CHUNK + 1) * CHUNK;
		char ds[64];
		double t;
		if (end > want)
			end = want;
		snprintf(ds, sizeof ds, "fill_%010llu", (unsigned long long)g);
		t = now();
		if (bulk_dataset(db, ds, g, end, 0))
			return -1;
		t = now() - t;
		if (!first_n) {
			first = t;
			first_n = end - g;
		}
		last = t;
		last_n = end - g;
		fprintf(stderr, "bench_growth: filled %llu files (%.0f files/s)\n",
			(unsigned long long)end, (double)(end - g) / t);
		g = end;
	}
	t0 = now() - t0;
	printf("  fill %llu -> %llu files: %.1f s, %.0f files/s (first chunk %.0f files/s, last"
	       " chunk %.0f files/s, chunks of up to %llu in one transaction each)\n",
	       (unsigned long long)have, (unsigned long long)want, t0, (double)(want - have) / t0,
	       (double)first_n / first, (double)last_n / last, (unsigned long long)CHUNK);
	fflush(stdout);
	return 0;
}

static int noop_did(void *ud, const struct cat_did *d)
{
	(void)d;
	(*(uint64_t *)ud)++;
	return 0;
}

struct point {
	uint64_t files;
	double lookup, lookup_p90, list, list_p90, rule, rule_p90;
};

static int measure(struct cat_db *db, uint64_t files, const char *tag, int lookups, int probes,
		   struct point *pt)
{
	char ds[64], name[128], id[33];
	double *lk = calloc((size_t)lookups, sizeof *lk), *ls = calloc((size_t)probes * 4, sizeof *ls),
	       *rl = calloc((size_t)probes, sizeof *rl);
	uint64_t seed = 0x9e3779b97f4a7c15ULL ^ files;
	int warm = lookups / 10, rc = -1;

	pt->files = files;
	for (int k = 0; k < probes; k++) {
		snprintf(ds, sizeof ds, "probe_%llu_%s_%d", (unsigned long long)files, tag, k);
		if (bulk_dataset(db, ds, 0, PROBE_FILES, 1))
			goto out;
	}
	for (int i = -warm; i < lookups; i++) {
		uint64_t seen = 0;
		double t;
		fill_name(rnd(&seed) % files, name, sizeof name);
		t = now();
		if (cat_did_get(db, "bench", name, noop_did, &seen) || seen != 1) {
			fail(db, name);
			goto out;
		}
		if (i >= 0)
			lk[i] = now() - t;
	}
	for (int r = 0; r < 4; r++)
		for (int k = 0; k < probes; k++) {
			uint64_t seen = 0;
			double t;
			snprintf(ds, sizeof ds, "probe_%llu_%s_%d", (unsigned long long)files, tag, k);
			t = now();
			if (cat_did_list_files(db, "bench", ds, noop_did, &seen) || seen != PROBE_FILES) {
				fprintf(stderr, "bench_growth: list-files %s: %llu files\n", ds,
					(unsigned long long)seen);
				goto out;
			}
			ls[r * probes + k] = now() - t;
		}
	for (int k = 0; k < probes; k++) {
		struct cat_rule_opts o;
		double t;
		cat_rule_opts_init(&o);
		o.copies = 1;
		o.rse_expression = "DST";
		snprintf(ds, sizeof ds, "probe_%llu_%s_%d", (unsigned long long)files, tag, k);
		t = now();
		if (cat_rule_add(db, "bench", ds, &o, id)) {
			fail(db, "add-rule");
			goto out;
		}
		rl[k] = now() - t;
	}
	pt->lookup = quantile(lk, (size_t)lookups, 0.5);
	pt->lookup_p90 = quantile(lk, (size_t)lookups, 0.9);
	pt->list = quantile(ls, (size_t)probes * 4, 0.5);
	pt->list_p90 = quantile(ls, (size_t)probes * 4, 0.9);
	pt->rule = quantile(rl, (size_t)probes, 0.5);
	pt->rule_p90 = quantile(rl, (size_t)probes, 0.9);
	printf("  at %10llu files%s: DID lookup %8.1f us (p90 %8.1f)   list-files 1,000 %8.2f ms"
	       " (p90 %8.2f)   add-rule 1,000 files %8.2f ms (p90 %8.2f)\n",
	       (unsigned long long)files, *tag == 'a' ? ", after ANALYZE" : "", pt->lookup * 1e6, pt->lookup_p90 * 1e6, pt->list * 1e3,
	       pt->list_p90 * 1e3, pt->rule * 1e3, pt->rule_p90 * 1e3);
	fflush(stdout);
	rc = 0;
out:
	free(lk);
	free(ls);
	free(rl);
	return rc;
}

static int setup(struct cat_db *db, const char *dir)
{
	const char *rses[] = { "SRC", "DST" };

	if (cat_bootstrap(db, NULL, NULL) || cat_scope_add(db, "bench", "root"))
		return fail(db, "setup");
	for (int i = 0; i < 2; i++) {
		struct cat_protocol p = { 0 };
		char prefix[600];
		cat_protocol_defaults(&p);
		snprintf(prefix, sizeof prefix, "%s/%s", dir, rses[i]);
		p.scheme = "file";
		p.hostname = "localhost";
		p.prefix = prefix;
		p.impl = "rucio.rse.protocols.posix.Default";
		if (cat_rse_add(db, rses[i], NULL) || cat_protocol_add(db, rses[i], &p))
			return fail(db, "setup");
	}
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: bench_growth [--max N] [--base N] [--lookups N] [--probes N]"
			" [DIR|postgresql://URI]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "max", required_argument, NULL, 'm' },
		{ "base", required_argument, NULL, 'b' },
		{ "lookups", required_argument, NULL, 'l' },
		{ "probes", required_argument, NULL, 'p' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t max = 10 * CHUNK, base = CHUNK, v;
	int lookups = 5000, probes = 10, opt, pg, rc = 1;
	const char *where = "/tmp";
	char path[2048], schema[64], shown[512];
	struct cat_db *db = NULL;
	struct dm_err err = { 0 };
	struct point pt[2][2];
	struct rusage ru;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (!optarg || dm_parse_u64(optarg, &v) || v == 0)
			usage();
		switch (opt) {
		case 'm': max = v; break;
		case 'b': base = v; break;
		case 'l': lookups = (int)v; break;
		case 'p': probes = (int)v; break;
		default: usage();
		}
	}
	if (optind < argc)
		where = argv[optind++];
	if (optind < argc || base > max)
		usage();
	pg = bench_is_pg_uri(where);
	snprintf(schema, sizeof schema, "bench_growth_%d", (int)getpid());
	if (pg) {
#ifdef DIDFS_HAVE_LIBPQ
		if (bench_pg_schema(where, schema, 1))
			return 1;
		bench_pg_schema_uri(where, schema, path, sizeof path);
		cat_uri_shown(where, shown, sizeof shown);
#else
		fprintf(stderr, "bench_growth: %s: this build has no libpq\n", where);
		return 1;
#endif
	} else {
		snprintf(path, sizeof path, "%s/bench_growth_%d.db", where, (int)getpid());
		dm_strlcpy(shown, path, sizeof shown);
		unlink(path);
	}
	if (cat_open(path, CAT_OPEN_CREATE, &db, &err)) {
		fprintf(stderr, "bench_growth: %s\n", err.msg);
		goto out;
	}
	if (setup(db, pg ? "/tmp/bench_growth" : where))
		goto out;
	printf("bench_growth: %s catalog %s: %d lookups, %d probe datasets of %d files\n",
	       pg ? "PostgreSQL" : "SQLite", shown, lookups, probes, PROBE_FILES);
	fflush(stdout);
	for (int i = 0; i < 2; i++) {
		uint64_t at = i ? max : base;
		if (i && max == base)
			break;
		if (fill(db, i ? base : 0, at) || measure(db, at, "fresh", lookups, probes, &pt[i][0]))
			goto out;
#ifdef DIDFS_HAVE_LIBPQ
		if (pg) {
			double t = now();
			if (bench_pg_exec(path, "ANALYZE"))
				goto out;
			printf("  ANALYZE: %.1f s\n", now() - t);
			if (measure(db, at, "analyzed", lookups, probes, &pt[i][1]))
				goto out;
		}
#endif
	}
	/* PostgreSQL: the ratio of the steady state (statistics current); the
	 * first measurement at BASE ran on a catalog never analysed, at MAX on
	 * statistics of an earlier size, so their ratio would mix two effects:
	 * what stale statistics cost is printed per size instead. */
	if (max > base)
		printf("  %s %llu/%llu ratio%s: DID lookup %.2fx   list-files %.2fx   add-rule %.2fx"
		       "   (aim <= 1.2x)\n", pg ? "PostgreSQL" : "SQLite",
		       (unsigned long long)max, (unsigned long long)base,
		       pg ? ", after ANALYZE" : "", pt[1][pg].lookup / pt[0][pg].lookup,
		       pt[1][pg].list / pt[0][pg].list, pt[1][pg].rule / pt[0][pg].rule);
	for (int i = 0; pg && i < (max > base ? 2 : 1); i++)
		printf("  PostgreSQL at %llu files, as registered/after ANALYZE: DID lookup %.2fx"
		       "   list-files %.2fx   add-rule %.2fx%s\n",
		       (unsigned long long)(i ? max : base), pt[i][0].lookup / pt[i][1].lookup,
		       pt[i][0].list / pt[i][1].list, pt[i][0].rule / pt[i][1].rule,
		       i ? "   (statistics of an earlier size or autovacuum's)"
			 : "   (no statistics yet)");
	getrusage(RUSAGE_SELF, &ru);
	printf("  peak RSS of the process (fill and measurements): %.1f MiB\n", ru.ru_maxrss / 1024.0);
	rc = 0;
out:
	if (db)
		cat_close(db);
	if (pg) {
#ifdef DIDFS_HAVE_LIBPQ
		bench_pg_schema(where, schema, 0);
#endif
	} else {
		char w[2100];
		unlink(path);
		snprintf(w, sizeof w, "%s-wal", path);
		unlink(w);
		snprintf(w, sizeof w, "%s-shm", path);
		unlink(w);
	}
	return rc;
}
