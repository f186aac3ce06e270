/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for catalog/manifest.c on a real SQLite file: building a
 * manifest in pieces of any size gives the same sums, the pieces combine to
 * the whole-file adler32, verification finds the corrupted piece, a manifest
 * that disagrees with the DID is refused and leaves nothing, an existing one
 * is kept, and a suspicious declaration turns the replica BAD once.
 */
#include "catalog.h"
#include "store_uri.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char path[256];

static void fill(unsigned char *p, size_t n)
{
	uint32_t x = 12345;

	for (size_t i = 0; i < n; i++) {
		x = x * 1103515245u + 12345u;
		p[i] = (unsigned char)(x >> 16);
	}
}

static void test_build_and_verify(void)
{
	size_t n = 3 * CAT_MANIFEST_CHUNK + 12345;
	unsigned char *buf = malloc(n);
	struct cat_manifest_builder b;
	struct cat_manifest m1, m2;
	uint64_t bad = 0;

	fill(buf, n);
	cat_manifest_builder_init(&b);
	cat_manifest_builder_add(&b, buf, n);
	cat_manifest_builder_finish(&b, &m1);
	cat_manifest_builder_init(&b);
	for (size_t off = 0; off < n; off += 7777)
		cat_manifest_builder_add(&b, buf + off, n - off < 7777 ? n - off : 7777);
	cat_manifest_builder_finish(&b, &m2);
	CHECK(m1.n == 4 && m2.n == 4 && m1.bytes == n);
	CHECK(memcmp(m1.sums, m2.sums, 4 * sizeof *m1.sums) == 0);
	CHECK(cat_manifest_adler32(&m1) == dm_adler32_update(DM_ADLER32_INIT, buf, n));
	CHECK(cat_manifest_count(0) == 0 && cat_manifest_count(1) == 1 &&
	      cat_manifest_count(CAT_MANIFEST_CHUNK) == 1 && cat_manifest_count(CAT_MANIFEST_CHUNK + 1) == 2);
	/* ranges: whole pieces only */
	CHECK(cat_manifest_covers(&m1, 0, n));
	CHECK(cat_manifest_covers(&m1, CAT_MANIFEST_CHUNK, 2 * CAT_MANIFEST_CHUNK));
	CHECK(cat_manifest_covers(&m1, 3 * CAT_MANIFEST_CHUNK, 12345));
	CHECK(!cat_manifest_covers(&m1, 4096, CAT_MANIFEST_CHUNK));
	CHECK(!cat_manifest_covers(&m1, 0, 4096));
	CHECK(!cat_manifest_covers(&m1, 0, n + 1));
	CHECK(cat_manifest_verify(&m1, 0, buf, n, &bad) == 0);
	CHECK(cat_manifest_verify(&m1, 4096, buf + 4096, 4096, &bad) == -1);
	/* 4 KiB corrupted in the third piece */
	memset(buf + 2 * CAT_MANIFEST_CHUNK + 8192, 0x5a, 4096);
	CHECK(cat_manifest_verify(&m1, 0, buf, n, &bad) == 1 && bad == 2 * CAT_MANIFEST_CHUNK);
	CHECK(cat_manifest_verify(&m1, 2 * CAT_MANIFEST_CHUNK, buf + 2 * CAT_MANIFEST_CHUNK,
				  CAT_MANIFEST_CHUNK, &bad) == 1);
	CHECK(cat_manifest_verify(&m1, 0, buf, 2 * CAT_MANIFEST_CHUNK, &bad) == 0);
	/* concatenation of adler32s */
	CHECK(cat_adler32_concat(dm_adler32_update(DM_ADLER32_INIT, buf, 1000),
				 dm_adler32_update(DM_ADLER32_INIT, buf + 1000, 5000), 5000) ==
	      dm_adler32_update(DM_ADLER32_INIT, buf, 6000));
	cat_manifest_free(&m1);
	cat_manifest_free(&m2);
	free(buf);
}

static int count_state(void *ud, const struct cat_replica *r)
{
	int *v = ud;

	if (r->state == CAT_REPLICA_BAD)
		v[0]++;
	else if (r->state == CAT_REPLICA_AVAILABLE)
		v[1]++;
	return 0;
}

static void test_store(void)
{
	struct cat_db *db = NULL;
	struct dm_err err = { 0 };
	size_t n = 2 * CAT_MANIFEST_CHUNK + 5;
	unsigned char *buf = malloc(n);
	struct cat_manifest_builder b;
	struct cat_manifest m, got, wrong;
	char adler[9], p[300];
	int found = -1, states[2] = { 0, 0 };
	int64_t cnt = -1;

	unlink(path);
	snprintf(p, sizeof p, "%s-wal", path);
	unlink(p);
	snprintf(p, sizeof p, "%s-shm", path);
	unlink(p);
	CHECK(cat_open(test_catalog_uri(path), CAT_OPEN_CREATE, &db, &err) == DM_OK);
	CHECK(cat_bootstrap(db, "ddmlab", "secret") == DM_OK);
	CHECK(cat_scope_add(db, "mock", "root") == DM_OK);
	CHECK(cat_rse_add(db, "XRD1", NULL) == DM_OK);
	CHECK(cat_rse_add(db, "XRD2", NULL) == DM_OK);
	fill(buf, n);
	dm_adler32_hex(dm_adler32_update(DM_ADLER32_INIT, buf, n), adler);
	{
		struct cat_file_in f = { "mock", "f1", n, adler, NULL, NULL, -1 };
		CHECK(cat_replicas_add(db, "XRD1", &f, 1, NULL, NULL, 0) == DM_OK);
		CHECK(cat_replicas_add(db, "XRD2", &f, 1, NULL, NULL, 0) == DM_OK);
	}
	cat_manifest_builder_init(&b);
	cat_manifest_builder_add(&b, buf, n);
	cat_manifest_builder_finish(&b, &m);

	CHECK(cat_manifest_get(db, "mock", "f1", &got, &found) == DM_OK && found == 0);
	/* a manifest that does not combine to the DID's adler32 is refused */
	wrong = m;
	wrong.sums = malloc(m.n * sizeof *m.sums);
	memcpy(wrong.sums, m.sums, m.n * sizeof *m.sums);
	wrong.sums[1] ^= 1;
	CHECK(cat_manifest_set(db, "mock", "f1", &wrong) == DM_ECONFLICT);
	CHECK_STR(cat_error(db)->cls, "FileConsistencyMismatch");
	CHECK(cat_manifest_get(db, "mock", "f1", &got, &found) == DM_OK && found == 0);
	wrong.bytes = n - 1;
	CHECK(cat_manifest_set(db, "mock", "f1", &wrong) != DM_OK);
	CHECK(cat_manifest_set(db, "mock", "nosuch", &m) == DM_ENOENT);
	/* the right one is stored and read back */
	CHECK(cat_manifest_set(db, "mock", "f1", &m) == DM_OK);
	CHECK(cat_manifest_get(db, "mock", "f1", &got, &found) == DM_OK && found == 1);
	CHECK(got.n == m.n && got.bytes == n && memcmp(got.sums, m.sums, m.n * 4) == 0);
	cat_manifest_free(&got);
	/* setting it again is harmless */
	CHECK(cat_manifest_set(db, "mock", "f1", &m) == DM_OK);

	/* suspicious: the replica becomes BAD, the other stays */
	CHECK(cat_replica_declare_suspicious(db, "XRD1", "mock", "f1", "adler32 mismatch") == DM_OK);
	CHECK(cat_replica_suspicious_count(db, "XRD1", "mock", "f1", &cnt) == DM_OK && cnt == 1);
	CHECK(cat_replica_list(db, "mock", "f1", NULL, ~0u, count_state, states) == DM_OK);
	CHECK(states[0] == 1 && states[1] == 1);
	/* a second declaration of a BAD replica changes nothing */
	CHECK(cat_replica_declare_suspicious(db, "XRD1", "mock", "f1", "again") == DM_OK);
	CHECK(cat_replica_suspicious_count(db, "XRD1", "mock", "f1", &cnt) == DM_OK && cnt == 1);
	CHECK(cat_replica_declare_suspicious(db, "NOPE", "mock", "f1", "x") == DM_ENOENT);

	cat_manifest_free(&m);
	cat_manifest_free(&wrong);
	free(buf);
	cat_close(db);
}

int main(void)
{
	snprintf(path, sizeof path, "/tmp/didfs-test-manifest-%d.db", (int)getpid());
	test_build_and_verify();
	test_store();
	unlink(path);
	return tap_done();
}
