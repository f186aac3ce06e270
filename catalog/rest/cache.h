/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cache.h - the REST catalog's persistent local catalog cache
 * (catalog/rest/cache.c): one SQLite file per server URL holding what the
 * handle has seen, so that a mount lists and stats without asking the
 * server again, survives remounts, and keeps working while the server is
 * down.  catalog.h ("the REST catalog and its local cache") says where the
 * file is and which parameters it takes.
 *
 * What it holds: DIDs (details from GET /dids/<s>/<n>, or the row of a
 * listing; files are immutable, so a listing row answers a file's stat),
 * negative entries ("does not exist", from a 404), and complete listings
 * (a scope's roots, a collection's content) as ordered member lists.  A
 * listing is filled in one SQLite transaction: rest_fill_begin() opens it
 * and drops the old members, each parsed row goes in, rest_fill_commit()
 * commits only once the whole answer was read, rest_fill_abort() rolls it
 * back, so a failed fill leaves the previous good listing.
 *
 * Freshness: open collections, a scope's roots and negative entries are
 * fresh for ttl seconds ($DIDFS_REST_TTL, default 5: what `ls` of a dataset
 * being filled may lag), closed collections and files for a day (a closed
 * dataset cannot change but can be deleted or reopened by an admin).  A
 * stale entry is re-validated from the server; when the server is
 * unreachable the store asks again with stale_ok and serves it anyway.
 * Bounded: past the size limit the least recently used DIDs and listings
 * go (used_at is refreshed at most once a minute per entry).
 */
#ifndef CAT_REST_CACHE_H
#define CAT_REST_CACHE_H

#include "catalog.h"

struct rest_cache;
struct rest_fill;

enum rest_list_kind { REST_LIST_ROOTS = 1, REST_LIST_CONTENT = 2 };

/* The id of a DID over REST: 63 bits of FNV-1a of "scope:name" (cache.c). */
int64_t cat_rest_did_id(const char *scope, const char *name);

/* Open (create) the cache of a server; *out NULL when it is off or cannot
 * be used (a warning is logged: the catalog works without it). */
enum dm_status rest_cache_open(const char *server_url, struct rest_cache **out,
			       struct dm_err *err);
/* The same with everything given (tests): path, size bound, ttl. */
enum dm_status rest_cache_open_at(const char *path, const char *server_url, uint64_t limit,
				  double ttl, struct rest_cache **out, struct dm_err *err);
void rest_cache_close(struct rest_cache *c);
const char *rest_cache_path(const struct rest_cache *c);

/* 1 found (cb called), 0 a negative entry, -1 not cached or not fresh
 * (stale_ok: any age).  db is for nothing but keeping the signature of
 * the callers' handle. */
int rest_cache_did_get(struct rest_cache *c, struct cat_db *db, const char *scope,
		       const char *name, cat_did_cb cb, void *ud, int stale_ok);
void rest_cache_put_did(struct rest_cache *c, const struct cat_did *d);
void rest_cache_negative(struct rest_cache *c, const char *scope, const char *name);
/* Forget what a change to scope:name makes wrong: the DID, its listings,
 * the listings it is a member of and its scope's roots. */
void rest_cache_invalidate(struct rest_cache *c, const char *scope, const char *name, int unused);
static inline void rest_cache_invalidate_all_rules(struct rest_cache *c) { (void)c; }
/* 0 and cb called for each member in order; -1 not cached or not fresh. */
int rest_cache_list(struct rest_cache *c, const char *scope, const char *name, int kind,
		    int stale_ok, cat_did_cb cb, void *ud);
/* The same from the member after the child with id `after` (0: from the
 * start; a child not in the listing: no rows). */
int rest_cache_list_after(struct rest_cache *c, const char *scope, const char *name, int kind,
			  int stale_ok, int64_t after, cat_did_cb cb, void *ud);
/* 0 and the DID's scope and name (buffers CAT_*_MAX+1); -1 unknown id. */
int rest_cache_did_by_id(struct rest_cache *c, int64_t id, char *scope, char *name);

/* A listing fill (NULL-safe: c NULL gives NULL and the calls do nothing). */
struct rest_fill *rest_fill_begin(struct rest_cache *c, const char *scope, const char *name,
				  int kind);
void rest_fill_did(struct rest_fill *f, const struct cat_did *d);
void rest_fill_commit(struct rest_fill *f);
void rest_fill_abort(struct rest_fill *f);

/* Replicas (every state, with the server's best PFN per RSE), filled from
 * one POST /replicas/list in one transaction: for a file whose dataset is
 * in a cached listing, the whole dataset's replicas are fetched at once, so
 * opening the other files of the dataset asks the server nothing.  Fresh
 * for ttl seconds (the store uses 60 s, $DIDFS_REST_REPLICA_TTL: new copies
 * made by rules show up that late; a replica gone is found by the reader
 * falling over to the next one). */
struct rest_rep_fill;
struct rest_rep_fill *rest_rep_fill_begin(struct rest_cache *c);
void rest_rep_fill_row(struct rest_rep_fill *f, const struct cat_replica *r);
void rest_rep_fill_commit(struct rest_rep_fill *f, const char *scope, const char *name);
void rest_rep_fill_abort(struct rest_rep_fill *f);
/* 0 and cb for each cached replica of a file (mask as cat_replica_list,
 * rse NULL: all); -1 not cached or older than ttl (stale_ok: any age). */
int rest_cache_replicas(struct rest_cache *c, const char *scope, const char *name, double ttl,
			int stale_ok, unsigned mask, const char *rse, cat_replica_cb cb, void *ud);
/* 0 and a dataset that scope:name is listed in (cached content); -1 none. */
int rest_cache_parent_dataset(struct rest_cache *c, const char *scope, const char *name,
			      char *pscope, char *pname);

/* Fills entries, negative, replicas, bytes, limit, oldest/newest_fill, ttl, hits, misses. */
enum dm_status rest_cache_stats(struct rest_cache *c, struct cat_cache_stats *s);

#endif
