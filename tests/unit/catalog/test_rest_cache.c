/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_rest_cache.c - the REST catalog's local cache (catalog/rest/cache.c)
 * on a real SQLite file: entries and negatives, listings filled in one
 * transaction (an aborted fill keeps the previous listing), freshness by
 * TTL and stale reads, surviving a reopen, ids back to names, the size
 * bound with LRU eviction, and the stats.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache.h"
#include "tap.h"

struct names { int n; char v[64][64]; };
static int collect(void *ud, const struct cat_did *d)
{
	struct names *s = ud;
	if (s->n < 64)
		snprintf(s->v[s->n], 64, "%s:%s", d->scope, d->name);
	s->n++;
	return 0;
}

static int got_file(void *ud, const struct cat_did *d)
{
	*(uint64_t *)ud = d->bytes;
	return 0;
}

static void fill(struct rest_cache *c, const char *prefix, int n, int commit)
{
	struct rest_fill *f = rest_fill_begin(c, "s", "ds", REST_LIST_CONTENT);
	char name[64];

	CHECK(f != NULL);
	for (int i = 0; i < n; i++) {
		struct cat_did d = { .scope = "s", .type = CAT_DID_FILE };
		snprintf(name, sizeof name, "%s%02d", prefix, i);
		d.name = name;
		d.bytes = (uint64_t)(100 + i);
		rest_fill_did(f, &d);
	}
	if (commit)
		rest_fill_commit(f);
	else
		rest_fill_abort(f);
}

int main(void)
{
	char dir[] = "/tmp/didfs-restcache-XXXXXX", path[256];
	struct rest_cache *c;
	struct dm_err e;
	struct names s;
	struct cat_did ds = { .scope = "s", .name = "ds", .type = CAT_DID_DATASET, .is_open = 0,
			      .account = "root", .length = 3 };
	uint64_t bytes = 0;
	char sc[CAT_SCOPE_MAX + 1], nm[CAT_NAME_MAX + 1];
	struct cat_cache_stats st;

	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof path, "%s/cache.db", dir);
	CHECK(rest_cache_open_at(path, "https://h:1", 0, 5, &c, &e) == DM_OK);

	/* nothing cached yet */
	memset(&s, 0, sizeof s);
	CHECK(rest_cache_list(c, "s", "ds", REST_LIST_CONTENT, 1, collect, &s) == -1);
	CHECK(rest_cache_did_get(c, NULL, "s", "ds", collect, &s, 1) == -1);

	/* a closed dataset and its content (names with '/') */
	rest_cache_put_did(c, &ds);
	fill(c, "a/b", 3, 1);
	memset(&s, 0, sizeof s);
	CHECK(rest_cache_list(c, "s", "ds", REST_LIST_CONTENT, 0, collect, &s) == 0);
	CHECK(s.n == 3);
	CHECK_STR(s.v[0], "s:a/b00");
	CHECK_STR(s.v[2], "s:a/b02");
	/* a cursor: the rows after a child, seeking to it; a child not in the
	 * listing gives none */
	memset(&s, 0, sizeof s);
	CHECK(rest_cache_list_after(c, "s", "ds", REST_LIST_CONTENT, 0, cat_rest_did_id("s", "a/b00"),
				    collect, &s) == 0);
	CHECK(s.n == 2);
	CHECK_STR(s.v[0], "s:a/b01");
	CHECK_STR(s.v[1], "s:a/b02");
	memset(&s, 0, sizeof s);
	CHECK(rest_cache_list_after(c, "s", "ds", REST_LIST_CONTENT, 0, cat_rest_did_id("s", "a/b02"),
				    collect, &s) == 0);
	CHECK(s.n == 0);
	CHECK(rest_cache_list_after(c, "s", "ds", REST_LIST_CONTENT, 0, cat_rest_did_id("s", "zz"),
				    collect, &s) == 0);
	CHECK(s.n == 0);
	/* a file's listing row answers its stat */
	CHECK(rest_cache_did_get(c, NULL, "s", "a/b01", got_file, &bytes, 0) == 1);
	CHECK(bytes == 101);

	/* an aborted fill leaves the previous listing */
	fill(c, "bad", 2, 0);
	memset(&s, 0, sizeof s);
	CHECK(rest_cache_list(c, "s", "ds", REST_LIST_CONTENT, 0, collect, &s) == 0);
	CHECK(s.n == 3 && !strcmp(s.v[0], "s:a/b00"));
	CHECK(rest_cache_did_get(c, NULL, "s", "bad00", got_file, &bytes, 1) == -1);

	/* a negative entry */
	rest_cache_negative(c, "s", "gone");
	CHECK(rest_cache_did_get(c, NULL, "s", "gone", collect, &s, 0) == 0);

	/* ids back to names (the readdir cursor) */
	CHECK(rest_cache_did_by_id(c, cat_rest_did_id("s", "ds"), sc, nm) == 0);
	CHECK_STR(sc, "s");
	CHECK_STR(nm, "ds");
	CHECK(rest_cache_did_by_id(c, 12345, sc, nm) == -1);

	/* stats */
	memset(&st, 0, sizeof st);
	CHECK(rest_cache_stats(c, &st) == DM_OK);
	CHECK(st.entries == 5); /* ds, 3 files, 1 negative */
	CHECK(st.negative == 1);
	CHECK(st.bytes > 0);
	CHECK(st.oldest_fill > 0 && st.newest_fill >= st.oldest_fill);
	CHECK(st.hits > 0 && st.misses > 0);
	rest_cache_close(c);

	/* reopen: everything is still there */
	CHECK(rest_cache_open_at(path, "https://h:1", 0, 0, &c, &e) == DM_OK);
	memset(&s, 0, sizeof s);
	CHECK(rest_cache_list(c, "s", "ds", REST_LIST_CONTENT, 1, collect, &s) == 0);
	CHECK(s.n == 3);
	/* ttl 0: the open scope roots and negatives are stale at once, but a
	 * stale read still answers (offline) */
	CHECK(rest_cache_did_get(c, NULL, "s", "gone", collect, &s, 0) == -1);
	CHECK(rest_cache_did_get(c, NULL, "s", "gone", collect, &s, 1) == 0);
	/* a closed dataset's listing stays fresh (long ttl) */
	memset(&s, 0, sizeof s);
	CHECK(rest_cache_list(c, "s", "ds", REST_LIST_CONTENT, 0, collect, &s) == 0);
	/* invalidation: the dataset and the listings it is in go */
	rest_cache_invalidate(c, "s", "ds", 0);
	CHECK(rest_cache_list(c, "s", "ds", REST_LIST_CONTENT, 1, collect, &s) == -1);
	CHECK(rest_cache_did_get(c, NULL, "s", "ds", collect, &s, 1) == -1);
	rest_cache_close(c);

	/* a small bound: filling far past it evicts, and the file stays near it */
	unlink(path);
	CHECK(rest_cache_open_at(path, "https://h:1", 256 * 1024, 5, &c, &e) == DM_OK);
	for (int round = 0; round < 40; round++) {
		char p[32];
		struct cat_did d = { .scope = "s", .type = CAT_DID_DATASET, .account = "root" };
		snprintf(p, sizeof p, "r%02d-", round);
		for (int i = 0; i < 50; i++) {
			char name[96];
			snprintf(name, sizeof name, "%s%s%040d", p, "padding-padding-padding-", i);
			d.name = name;
			rest_cache_put_did(c, &d);
		}
	}
	memset(&st, 0, sizeof st);
	rest_cache_stats(c, &st);
	CHECK(st.entries < 2000);          /* some went */
	CHECK(st.bytes <= 2 * 256 * 1024); /* within (about) the bound */
	/* the most recent survive */
	{
		char name[96];
		snprintf(name, sizeof name, "r39-padding-padding-padding-%040d", 49);
		CHECK(rest_cache_did_get(c, NULL, "s", name, collect, &s, 1) == 1);
	}
	rest_cache_close(c);
	unlink(path);
	snprintf(path, sizeof path, "%s/cache.db-wal", dir);
	unlink(path);
	snprintf(path, sizeof path, "%s/cache.db-shm", dir);
	unlink(path);
	rmdir(dir);
	return tap_done();
}
