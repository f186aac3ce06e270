/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ns.c - the namespace of the mount: the inode table, how catalog names
 * become paths, lookup, getattr and streamed readdirplus.
 *
 * Tree
 *   /                      the scopes
 *   /<scope>/              the scope's DIDs that have no parent; any DID of
 *                          the scope resolves here by name, listed or not
 *   <collection>/          a container's children, a dataset's files
 *   a prefix directory     names that share a leading part up to a '/'
 *
 * Names with '/' (the layout rule; every name round-trips)
 *   A Rucio name may hold '/' (NAME is ^[/A-Za-z0-9][/A-Za-z0-9.\-_]*$).  A
 *   '/' in a name acts as a directory separator when
 *     (a) it is neither the first nor the last character of the name,
 *     (b) neither neighbour is another '/', and
 *     (c) the part of the name before it is not itself the name of a DID of
 *         the same scope (a DID always wins over a prefix directory of the
 *         same name; its longer relatives then stay in one component).
 *   Every other '/' stays inside its path component written as %2F, and a
 *   component that would read "." or ".." is written %2E / %2E%2E.  '%'
 *   cannot occur in a name, so these escapes are unambiguous; lookups
 *   percent-decode every component (%2F, %2f, %2E, ...), so any spelling
 *   that decodes to the name finds it, and the path printed by a listing
 *   always decodes back to the exact name.  Examples (scope s):
 *     data/2024/run1.root  ->  /s/data/2024/run1.root
 *     /store/mc/x.root     ->  /s/%2Fstore/mc/x.root
 *     a//b, a/b/           ->  /s/a%2F%2Fb, /s/a/b%2F
 *     x and x/y, both DIDs ->  /s/x and /s/x%2Fy
 *   Inside a collection, a child of another scope appears as
 *   "<scope>:<name>" (':' cannot occur in a name either), laid out by the
 *   same rule with the scope on its first component.  Rule (c) looks at the
 *   whole scope (not the directory), so a name is laid out the same wherever
 *   it is listed; the "is this prefix a DID" answers are cached fs->ttl
 *   seconds, so a new DID named like an existing prefix directory takes that
 *   name over (and its relatives move into one component) within that time.
 *   A component longer than NAME_MAX (255 bytes) cannot be shown by the
 *   kernel: such an entry is left out of listings (logged) and stays
 *   reachable through its scope directory (a cross-scope child) or by a
 *   shorter spelling.
 *
 * Inodes
 *   A DID's inode number is its catalog id + FS_INO_DID_BASE, so a file
 *   attached to several datasets is one inode (a hard link) and numbers are
 *   stable across mounts.  Scopes and prefix directories get fresh numbers
 *   from FS_INO_VIRTUAL up, keyed by scope / (context, scope, prefix) while
 *   the kernel knows them.  Node lifetime: nlookup counts the kernel's
 *   references (one per lookup reply and per readdirplus entry that fitted
 *   in the reply, minus forgets), refs the mount's own; a node is freed when
 *   both are 0.  All of it under fs->ns_lock.  Memory: the kernel keeps
 *   the inodes of a listing until memory pressure, so the table does not
 *   hold all it holds: DID nodes with no reference of the mount sit on an
 *   LRU, and beyond FS_NODES_CACHED the oldest evictable one (nothing of it
 *   only in memory: no error texts, no RSE marked bad, not an open
 *   collection the poller watches) becomes a ghost of 24 bytes in an open
 *   addressing table: its inode number, the kernel's lookup count and how
 *   to find it again, i.e. the collection it was found in (the catalog's
 *   content cursor then returns exactly the child with its id) or, found
 *   in its scope, its scope:name.  A request for a ghost's inode loads the
 *   node again (fs_node_get); FORGET counts down ghosts as nodes and drops
 *   them at 0.  After `ls -lR` of N files: 8192 nodes (~330 bytes each, a
 *   DID node and its strings are one allocation) and N - 8192 ghosts.  A
 *   file detached from the collection it was found in after eviction is
 *   not found again under that inode (ENOENT) until looked up anew.  Once
 *   there are FS_GHOSTS_LISTED_MAX ghosts, listings hand the kernel DID
 *   names without inodes (readdirplus entries with nodeid 0, which the
 *   kernel lists but takes no reference for): listing a million names stays
 *   within a bounded table, and what is then looked at is looked up.
 *
 * Listing
 *   Streamed in batches of copied rows: a collection by the catalog's child
 *   id cursor (cat_did_list_content_from: entry offset = child id + 2,
 *   resumable, constant memory), a scope by position in its name-ordered
 *   roots (the catalog has no roots cursor yet; each batch re-reads the
 *   listing up to its position), the root by position among scopes.  A
 *   prefix directory is announced once per directory handle at the first
 *   name that makes it (a set of the prefix components seen, which is the
 *   only memory that grows with a listing; it holds prefixes, not names).
 *   Every entry is a readdirplus entry with attributes, so `ls -l` needs no
 *   lookups.
 *
 * Kernel caching
 *   Files are immutable in Rucio: their attributes are cached for a day and
 *   their pages kept across opens (data.c).  A closed collection's listing
 *   is immutable too: long timeouts and cache_readdir.  Open collections,
 *   scopes and prefix directories change: their entries and attributes
 *   expire after fs->ttl (--dir-ttl, 5 s), they are listed afresh on every
 *   opendir, and the background thread polls the updated_at of the open
 *   collections the kernel has listed recently, dropping the kernel's
 *   cached attributes when one changed.  A name that does not exist is
 *   remembered FS_TTL_NEG seconds.
 */
#include "fs_i.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define BATCH_CONTENT 256
#define BATCH_ORDINAL 8192 /* no roots cursor: each batch re-reads the listing */

void fs_didrow_from(struct fs_didrow *r, const struct cat_did *d)
{
	memset(r, 0, sizeof *r);
	r->id = d->id;
	r->type = d->type;
	dm_strlcpy(r->scope, d->scope ? d->scope : "", sizeof r->scope);
	dm_strlcpy(r->name, d->name ? d->name : "", sizeof r->name);
	r->bytes = d->bytes;
	r->length = d->length;
	dm_strlcpy(r->adler32, d->adler32 ? d->adler32 : "", sizeof r->adler32);
	dm_strlcpy(r->md5, d->md5 ? d->md5 : "", sizeof r->md5);
	r->created_at = d->created_at;
	r->updated_at = d->updated_at;
	r->expired_at = d->expired_at;
	r->is_open = d->is_open;
}

/* ------------------------------------------------------------------ */
/* inode table                                                         */

static uint64_t hash_u64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	return x;
}

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static void ino_rehash(struct fs *fs)
{
	size_t nb = fs->nino_buckets * 2;
	struct fs_node **t = dm_xcalloc(nb, sizeof *t);

	for (size_t i = 0; i < fs->nino_buckets; i++) {
		struct fs_node *n = fs->by_ino[i], *next;
		for (; n; n = next) {
			size_t b = hash_u64(n->ino) & (nb - 1);
			next = n->next_ino;
			n->next_ino = t[b];
			t[b] = n;
		}
	}
	free(fs->by_ino);
	fs->by_ino = t;
	fs->nino_buckets = nb;
}

static void key_rehash(struct fs *fs)
{
	size_t nb = fs->nkey_buckets * 2;
	struct fs_node **t = dm_xcalloc(nb, sizeof *t);

	for (size_t i = 0; i < fs->nkey_buckets; i++) {
		struct fs_node *n = fs->by_key[i], *next;
		for (; n; n = next) {
			size_t b = hash_str(n->key) & (nb - 1);
			next = n->next_key;
			n->next_key = t[b];
			t[b] = n;
		}
	}
	free(fs->by_key);
	fs->by_key = t;
	fs->nkey_buckets = nb;
}

/* Under ns_lock. */
static struct fs_node *find_ino(struct fs *fs, uint64_t ino)
{
	struct fs_node *n = fs->by_ino[hash_u64(ino) & (fs->nino_buckets - 1)];

	while (n && n->ino != ino)
		n = n->next_ino;
	return n;
}

static struct fs_node *find_key(struct fs *fs, const char *key)
{
	struct fs_node *n = fs->by_key[hash_str(key) & (fs->nkey_buckets - 1)];

	while (n && strcmp(n->key, key))
		n = n->next_key;
	return n;
}

static void insert_node(struct fs *fs, struct fs_node *n)
{
	size_t b;

	if (fs->nino >= fs->nino_buckets * 2)
		ino_rehash(fs);
	b = hash_u64(n->ino) & (fs->nino_buckets - 1);
	n->next_ino = fs->by_ino[b];
	fs->by_ino[b] = n;
	fs->nino++;
	if (n->key) {
		if (fs->nkey >= fs->nkey_buckets * 2)
			key_rehash(fs);
		b = hash_str(n->key) & (fs->nkey_buckets - 1);
		n->next_key = fs->by_key[b];
		fs->by_key[b] = n;
		fs->nkey++;
	}
}

static void sources_put_locked(struct fs_sources *s)
{
	if (!s || --s->refs)
		return;
	for (size_t i = 0; i < s->n; i++) {
		free(s->v[i].rse);
		free(s->v[i].pfn);
		free(s->v[i].scheme);
	}
	free(s->v);
	free(s);
}

void fs_uerr_free(struct fs_uerr *e)
{
	while (e) {
		struct fs_uerr *next = e->next;
		free(e);
		e = next;
	}
}

static void free_node(struct fs_node *n)
{
	sources_put_locked(n->src);
	for (size_t i = 0; i < n->nbad_rses; i++)
		free(n->bad_rses[i]);
	free(n->bad_rses);
	free(n->key);
	if (n->kind != FS_DID) { /* a DID's strings live in its node (node_did) */
		free(n->scope);
		free(n->name);
	}
	free(n->error);
	fs_uerr_free(n->uerrors);
	free(n);
}

/* ------------------------------------------------------------------ */
/* the inode cap: an LRU of DID nodes only the kernel holds, and ghosts  */

static void lru_unlink(struct fs *fs, struct fs_node *n)
{
	if (!n->lru_next)
		return;
	n->lru_prev->lru_next = n->lru_next;
	n->lru_next->lru_prev = n->lru_prev;
	n->lru_prev = n->lru_next = NULL;
	fs->nlru--;
}

static void lru_push(struct fs *fs, struct fs_node *n)
{
	n->lru_next = fs->lru.lru_next;
	n->lru_prev = &fs->lru;
	fs->lru.lru_next->lru_prev = n;
	fs->lru.lru_next = n;
	fs->nlru++;
}

/* Under ns_lock: the mount takes a reference. */
static void hold(struct fs *fs, struct fs_node *n)
{
	if (n->refs++ == 0)
		lru_unlink(fs, n);
}

/* A node that can be dropped and loaded again from the catalog by id:
 * nothing of it lives only in memory (no error texts, no RSE marked bad),
 * and it is not an open collection the poller watches. */
static int evictable(const struct fs_node *n)
{
	return n->kind == FS_DID && !n->refs && n->nlookup && !n->error && !n->uerrors &&
	       !n->nbad_rses && (n->type == CAT_DID_FILE || !n->is_open);
}

static struct fs_ghost *ghost_find(struct fs *fs, uint64_t ino)
{
	size_t mask = fs->nghost_slots - 1;

	if (!fs->nghost)
		return NULL;
	for (size_t i = hash_u64(ino) & mask;; i = (i + 1) & mask) {
		if (fs->ghosts[i].ino == ino)
			return &fs->ghosts[i];
		if (!fs->ghosts[i].ino)
			return NULL;
	}
}

static void ghost_insert_slot(struct fs_ghost *t, size_t nslots, const struct fs_ghost *g)
{
	size_t i = hash_u64(g->ino) & (nslots - 1);

	while (t[i].ino)
		i = (i + 1) & (nslots - 1);
	t[i] = *g;
}

static void ghost_add(struct fs *fs, const struct fs_ghost *g)
{
	if ((fs->nghost + 1) * 4 > fs->nghost_slots * 3) {
		size_t nslots = fs->nghost_slots ? fs->nghost_slots * 2 : 1024;
		struct fs_ghost *t = dm_xcalloc(nslots, sizeof *t);

		for (size_t i = 0; i < fs->nghost_slots; i++)
			if (fs->ghosts[i].ino)
				ghost_insert_slot(t, nslots, &fs->ghosts[i]);
		free(fs->ghosts);
		fs->ghosts = t;
		fs->nghost_slots = nslots;
	}
	ghost_insert_slot(fs->ghosts, fs->nghost_slots, g);
	fs->nghost++;
}

/* Remove a ghost (backward-shift deletion: no tombstones). */
static void ghost_del(struct fs *fs, struct fs_ghost *g)
{
	size_t mask = fs->nghost_slots - 1, i = (size_t)(g - fs->ghosts), j = i;

	if (g->named)
		free(g->u.sn);
	for (;;) {
		size_t k;

		j = (j + 1) & mask;
		if (!fs->ghosts[j].ino)
			break;
		k = hash_u64(fs->ghosts[j].ino) & mask;
		/* the entry at j may move to i unless its home k lies in (i, j] */
		if (i <= j ? (k <= i || k > j) : (k <= i && k > j)) {
			fs->ghosts[i] = fs->ghosts[j];
			i = j;
		}
	}
	memset(&fs->ghosts[i], 0, sizeof fs->ghosts[i]);
	fs->nghost--;
}

/* Under ns_lock: take n out of both tables (its memory is the caller's). */
static void unhash(struct fs *fs, struct fs_node *n)
{
	struct fs_node **pp;

	lru_unlink(fs, n);
	for (pp = &fs->by_ino[hash_u64(n->ino) & (fs->nino_buckets - 1)]; *pp != n;
	     pp = &(*pp)->next_ino)
		;
	*pp = n->next_ino;
	fs->nino--;
	if (n->key) {
		for (pp = &fs->by_key[hash_str(n->key) & (fs->nkey_buckets - 1)]; *pp != n;
		     pp = &(*pp)->next_key)
			;
		*pp = n->next_key;
		fs->nkey--;
	}
}

/* Under ns_lock: replace an evictable node by its ghost. */
static void evict(struct fs *fs, struct fs_node *n)
{
	struct fs_ghost g = { 0 };

	g.ino = n->ino;
	g.nlookup = n->nlookup >= UINT32_MAX ? UINT32_MAX : (uint32_t)n->nlookup;
	g.u.parent = n->ctx_parent;
	if (!n->ctx_parent) {
		size_t ls = strlen(n->scope) + 1, ln = strlen(n->name) + 1;

		g.named = 1;
		g.u.sn = dm_xmalloc(ls + ln);
		memcpy(g.u.sn, n->scope, ls);
		memcpy(g.u.sn + ls, n->name, ln);
	}
	unhash(fs, n);
	ghost_add(fs, &g);
	free_node(n);
	fs->n_evicted++;
}

/* Under ns_lock: n lost a reference (the mount's or the kernel's).  Freed
 * when nobody holds it; kept on the LRU when only the kernel does, and the
 * oldest such nodes beyond FS_NODES_CACHED become ghosts. */
static void maybe_free(struct fs *fs, struct fs_node *n)
{
	if (n == fs->root || n->refs)
		return;
	if (n->nlookup) {
		if (!evictable(n))
			return;
		lru_unlink(fs, n);
		lru_push(fs, n);
		while (fs->nlru > FS_NODES_CACHED) {
			struct fs_node *t = fs->lru.lru_prev;

			lru_unlink(fs, t);
			if (evictable(t))
				evict(fs, t);
		}
		return;
	}
	unhash(fs, n);
	free_node(n);
}

int fs_ns_init(struct fs *fs)
{
	struct fs_node *r;

	pthread_mutex_init(&fs->ns_lock, NULL);
	pthread_mutex_init(&fs->pdid_lock, NULL);
	fs->nino_buckets = 1024;
	fs->by_ino = dm_xcalloc(fs->nino_buckets, sizeof *fs->by_ino);
	fs->nkey_buckets = 256;
	fs->by_key = dm_xcalloc(fs->nkey_buckets, sizeof *fs->by_key);
	fs->next_virtual = FS_INO_VIRTUAL;
	fs->lru.lru_next = fs->lru.lru_prev = &fs->lru;
	r = dm_xcalloc(1, sizeof *r);
	r->ino = FUSE_ROOT_ID;
	r->kind = FS_ROOT;
	insert_node(fs, r);
	fs->root = r;
	return 0;
}

void fs_ns_destroy(struct fs *fs)
{
	for (size_t i = 0; i < fs->nino_buckets; i++) {
		struct fs_node *n = fs->by_ino[i], *next;
		for (; n; n = next) {
			next = n->next_ino;
			free_node(n);
		}
	}
	free(fs->by_ino);
	free(fs->by_key);
	fs->by_ino = fs->by_key = NULL;
	for (size_t i = 0; i < fs->nghost_slots; i++)
		if (fs->ghosts[i].ino && fs->ghosts[i].named)
			free(fs->ghosts[i].u.sn);
	free(fs->ghosts);
	fs->ghosts = NULL;
	fs->nghost = fs->nghost_slots = 0;
	for (size_t i = 0; i < FS_PDID_SLOTS; i++)
		free(fs->pdid[i].key);
	pthread_mutex_destroy(&fs->ns_lock);
	pthread_mutex_destroy(&fs->pdid_lock);
}

static struct fs_node *node_reload(struct fs *fs, uint64_t ino, int64_t parent,
				   const char *sn);

/* The node of ino with a ref, loaded again from the catalog if it was
 * evicted (NULL: unknown, or gone from the catalog). */
struct fs_node *fs_node_get(struct fs *fs, uint64_t ino)
{
	struct fs_node *n;
	struct fs_ghost *g;
	int64_t parent = 0;
	char *sn = NULL;
	int ghost = 0;

	pthread_mutex_lock(&fs->ns_lock);
	n = find_ino(fs, ino);
	if (n) {
		hold(fs, n);
	} else if ((g = ghost_find(fs, ino))) {
		ghost = 1;
		if (g->named) {
			size_t ls = strlen(g->u.sn) + 1, ln = strlen(g->u.sn + ls) + 1;

			sn = dm_xmalloc(ls + ln);
			memcpy(sn, g->u.sn, ls + ln);
		} else {
			parent = g->u.parent;
		}
	}
	pthread_mutex_unlock(&fs->ns_lock);
	if (ghost) {
		n = node_reload(fs, ino, parent, sn);
		free(sn);
	}
	return n;
}

void fs_node_ref(struct fs *fs, struct fs_node *n)
{
	pthread_mutex_lock(&fs->ns_lock);
	hold(fs, n);
	pthread_mutex_unlock(&fs->ns_lock);
}

void fs_node_put(struct fs *fs, struct fs_node *n)
{
	if (!n)
		return;
	pthread_mutex_lock(&fs->ns_lock);
	n->refs--;
	maybe_free(fs, n);
	pthread_mutex_unlock(&fs->ns_lock);
}

/* The kernel took a reference (a lookup reply or a readdirplus entry). */
static void node_commit_lookup(struct fs *fs, struct fs_node *n)
{
	pthread_mutex_lock(&fs->ns_lock);
	n->nlookup++;
	n->refs--;
	maybe_free(fs, n);
	pthread_mutex_unlock(&fs->ns_lock);
}

void fs_node_set_error(struct fs *fs, struct fs_node *n, const char *fmt, ...)
{
	struct dm_buf b = DM_BUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	dm_buf_vaddf(&b, fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&fs->ns_lock);
	free(n->error);
	n->error = dm_buf_detach(&b);
	pthread_mutex_unlock(&fs->ns_lock);
}

void fs_node_clear_error(struct fs *fs, struct fs_node *n)
{
	pthread_mutex_lock(&fs->ns_lock);
	free(n->error);
	n->error = NULL;
	pthread_mutex_unlock(&fs->ns_lock);
}

static void set_did_attrs(struct fs_node *n, const struct fs_didrow *r)
{
	n->did_id = r->id;
	n->type = r->type;
	n->bytes = r->bytes;
	n->length = r->length;
	memcpy(n->adler32, r->adler32, sizeof n->adler32);
	memcpy(n->md5, r->md5, sizeof n->md5);
	n->created_at = r->created_at;
	n->updated_at = r->updated_at;
	n->expired_at = r->expired_at;
	n->is_open = r->type != CAT_DID_FILE && r->is_open;
}

/* Find or make the node of a DID found in the collection ctx (0: in its
 * scope); returns it with a ref.  A node made for an evicted inode takes
 * over its ghost's lookup count. */
static struct fs_node *node_did(struct fs *fs, const struct fs_didrow *r, int64_t ctx)
{
	uint64_t ino = (uint64_t)r->id + FS_INO_DID_BASE;
	struct fs_node *n;
	struct fs_ghost *g;

	pthread_mutex_lock(&fs->ns_lock);
	n = find_ino(fs, ino);
	if (n && (strcmp(n->scope, r->scope) || strcmp(n->name, r->name))) {
		/* the catalog reused an id after a delete: the old inode is gone
		 * for good; the kernel will learn it through the new attributes */
		dm_log(DM_LOG_WARN, WHO_FS, "inode %llu was %s:%s and is now %s:%s",
		       (unsigned long long)ino, n->scope, n->name, r->scope, r->name);
	}
	if (!n) {
		/* one allocation for the node and its two strings: a listing of
		 * N files leaves N nodes the kernel holds until it forgets them */
		size_t ls = strlen(r->scope) + 1, ln = strlen(r->name) + 1;

		n = dm_xcalloc(1, sizeof *n + ls + ln);
		n->ino = ino;
		n->kind = FS_DID;
		n->scope = memcpy((char *)(n + 1), r->scope, ls);
		n->name = memcpy((char *)(n + 1) + ls, r->name, ln);
		insert_node(fs, n);
		if ((g = ghost_find(fs, ino))) {
			n->nlookup = g->nlookup == UINT32_MAX ? UINT64_MAX / 2 : g->nlookup;
			n->ctx_parent = g->named ? 0 : g->u.parent;
			ghost_del(fs, g);
		}
	}
	if (ctx || !n->ctx_parent)
		n->ctx_parent = ctx;
	set_did_attrs(n, r);
	hold(fs, n);
	pthread_mutex_unlock(&fs->ns_lock);
	return n;
}

static struct fs_node *node_virtual(struct fs *fs, const char *key, enum fs_kind kind,
				    const char *scope, const char *name, int64_t ctx_did,
				    int ctx_closed)
{
	struct fs_node *n;

	pthread_mutex_lock(&fs->ns_lock);
	n = find_key(fs, key);
	if (!n) {
		n = dm_xcalloc(1, sizeof *n);
		n->ino = fs->next_virtual++;
		n->kind = kind;
		n->key = dm_xstrdup(key);
		n->scope = dm_xstrdup(scope);
		n->name = name ? dm_xstrdup(name) : NULL;
		n->ctx_did = ctx_did;
		n->ctx_closed = ctx_closed;
		insert_node(fs, n);
	}
	hold(fs, n);
	pthread_mutex_unlock(&fs->ns_lock);
	return n;
}

static struct fs_node *node_scope(struct fs *fs, const char *scope)
{
	char key[CAT_SCOPE_MAX + 8];

	snprintf(key, sizeof key, "S:%s", scope);
	return node_virtual(fs, key, FS_SCOPE, scope, NULL, 0, 0);
}

static struct fs_node *node_prefix(struct fs *fs, int64_t ctx_did, int ctx_closed,
				   const char *scope, const char *prefix)
{
	struct dm_buf key = DM_BUF_INIT;
	struct fs_node *n;

	dm_buf_addf(&key, "P:%lld:%s:%s", (long long)ctx_did, scope, prefix);
	n = node_virtual(fs, key.s, FS_PREFIX, scope, prefix, ctx_did, ctx_closed);
	dm_buf_release(&key);
	return n;
}

/* Under ns_lock: the kernel dropped nl references to ino. */
static void forget_one(struct fs *fs, uint64_t ino, uint64_t nl)
{
	struct fs_node *n = find_ino(fs, ino);
	struct fs_ghost *g;

	if (n) {
		n->nlookup = nl > n->nlookup ? 0 : n->nlookup - nl;
		maybe_free(fs, n);
	} else if ((g = ghost_find(fs, ino)) && g->nlookup != UINT32_MAX) {
		g->nlookup = nl > g->nlookup ? 0 : g->nlookup - (uint32_t)nl;
		if (!g->nlookup)
			ghost_del(fs, g);
	}
}

void fs_op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct fs *fs = fuse_req_userdata(req);

	pthread_mutex_lock(&fs->ns_lock);
	forget_one(fs, ino, nlookup);
	pthread_mutex_unlock(&fs->ns_lock);
	fuse_reply_none(req);
}

void fs_op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct fs *fs = fuse_req_userdata(req);

	pthread_mutex_lock(&fs->ns_lock);
	for (size_t i = 0; i < count; i++)
		forget_one(fs, forgets[i].ino, forgets[i].nlookup);
	pthread_mutex_unlock(&fs->ns_lock);
	fuse_reply_none(req);
}

/* ------------------------------------------------------------------ */
/* catalog helpers (each one call, rows copied out)                    */

struct one_did {
	struct fs_didrow *row;
	int found;
};

static int keep_one_did(void *ud, const struct cat_did *d)
{
	struct one_did *o = ud;

	fs_didrow_from(o->row, d);
	o->found = 1;
	return 1;
}

/* A DID by exact name without collection totals (cat_did_get computes
 * those, which costs a scan of an open collection).  *found = 0 if absent;
 * an unknown scope is "absent" too. */
static enum dm_status did_lookup(struct fs *fs, struct cat_db *db, const char *scope,
				 const char *name, struct fs_didrow *row, int *found)
{
	struct one_did o = { row, 0 };
	enum dm_status rc;

	*found = 0;
	if (cat_validate_scope(scope, NULL) || cat_validate_name(name, NULL))
		return DM_OK;
	/* names hold no '*', '?', '[': the name is its own exact pattern.  A
	 * remote catalog answers the DID itself (GET /dids/<s>/<n>) from its
	 * local cache, negatives included; a search would go to the server
	 * every time and leave nothing cached. */
	rc = fs->remote ? cat_did_get(db, scope, name, keep_one_did, &o)
			: cat_did_list(db, scope, name, 0, keep_one_did, &o);
	if (rc == DM_ENOENT)
		return DM_OK;
	if (rc)
		return rc;
	*found = o.found;
	return DM_OK;
}

/* Load an evicted DID node again: from the content of the collection it was
 * found in (one indexed row: the child with exactly its id), or by scope
 * and name.  NULL if the catalog no longer has it there. */
static struct fs_node *node_reload(struct fs *fs, uint64_t ino, int64_t parent, const char *sn)
{
	struct cat_db *db = fs_db(fs, NULL);
	int64_t id = (int64_t)(ino - FS_INO_DID_BASE);
	struct fs_didrow row;
	struct fs_node *n;
	int found = 0;

	if (!db || ino < FS_INO_DID_BASE || ino >= FS_INO_VIRTUAL)
		return NULL;
	if (parent) {
		struct one_did o = { &row, 0 };

		found = cat_did_list_content_from(db, parent, id - 1, keep_one_did, &o) == DM_OK &&
			o.found && row.id == id;
	} else if (sn) {
		int there = 0;

		found = did_lookup(fs, db, sn, sn + strlen(sn) + 1, &row, &there) == DM_OK && there &&
			row.id == id;
	}
	if (!found) {
		dm_log(DM_LOG_DEBUG, WHO_FS, "inode %llu: evicted and no longer in the catalog",
		       (unsigned long long)ino);
		return NULL;
	}
	n = node_did(fs, &row, parent);
	__atomic_add_fetch(&fs->n_reloaded, 1, __ATOMIC_RELAXED);
	return n;
}

struct pfx_probe {
	size_t len; /* of the prefix */
	const char *prefix;
	const char *scope;
	int found;
};

/* A name continuing the prefix with a separator: prefix + '/' + non-'/'. */
static int continues_prefix(const char *name, const char *prefix, size_t len)
{
	return strncmp(name, prefix, len) == 0 && name[len] == '/' && name[len + 1] &&
	       name[len + 1] != '/';
}

static int probe_scope_prefix(void *ud, const struct cat_did *d)
{
	struct pfx_probe *p = ud;

	if (continues_prefix(d->name, p->prefix, p->len)) {
		p->found = 1;
		return 1;
	}
	return 0;
}

static int prefix_in_scope(struct cat_db *db, const char *scope, const char *prefix,
			   enum dm_status *rc)
{
	struct pfx_probe p = { strlen(prefix), prefix, scope, 0 };
	struct dm_buf pat = DM_BUF_INIT;

	dm_buf_addf(&pat, "%s/*", prefix);
	*rc = cat_did_list(db, scope, pat.s, 0, probe_scope_prefix, &p);
	if (*rc == DM_ENOENT)
		*rc = DM_OK;
	dm_buf_release(&pat);
	return p.found;
}

static int probe_coll_prefix(void *ud, const struct cat_did *d)
{
	struct pfx_probe *p = ud;

	if (strcmp(d->scope, p->scope) == 0 && continues_prefix(d->name, p->prefix, p->len)) {
		p->found = 1;
		return 1;
	}
	return 0;
}

/* Does a child of the collection continue the prefix?  Streams the
 * children until one does (a scan; the kernel usually learns prefix
 * directories from readdirplus, not from lookups). */
static int prefix_in_coll(struct cat_db *db, int64_t coll, const char *scope,
			  const char *prefix, enum dm_status *rc)
{
	struct pfx_probe p = { strlen(prefix), prefix, scope, 0 };

	*rc = cat_did_list_content_from(db, coll, 0, probe_coll_prefix, &p);
	return p.found;
}

struct parent_probe {
	int64_t want;
	int found;
};

static int probe_parent(void *ud, const struct cat_did *d)
{
	struct parent_probe *p = ud;

	if (d->id == p->want) {
		p->found = 1;
		return 1;
	}
	return 0;
}

static int is_child(struct cat_db *db, int64_t coll, const char *scope, const char *name,
		    enum dm_status *rc)
{
	struct parent_probe p = { coll, 0 };

	*rc = cat_did_list_parents(db, scope, name, probe_parent, &p);
	if (*rc == DM_ENOENT)
		*rc = DM_OK;
	return p.found;
}

struct scope_probe {
	const char *want;
	int found;
};

static int probe_scope(void *ud, const char *scope, const char *account)
{
	struct scope_probe *p = ud;

	if (strcmp(scope, p->want) == 0) {
		p->found = 1;
		return 1;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* name layout                                                         */

/* Is scope:prefix the name of a DID?  Cached for fs->ttl seconds. */
static int prefix_is_did(struct fs *fs, struct cat_db *db, const char *scope,
			 const char *name, size_t len)
{
	char key[CAT_SCOPE_MAX + CAT_NAME_MAX + 3];
	char pfx[CAT_NAME_MAX + 1];
	struct fs_didrow row;
	struct fs_pdid *slot;
	double now = dm_now_f();
	int found = 0;

	if (len > CAT_NAME_MAX)
		return 0;
	memcpy(pfx, name, len);
	pfx[len] = 0;
	snprintf(key, sizeof key, "%s:%s", scope, pfx);
	slot = &fs->pdid[hash_str(key) & (FS_PDID_SLOTS - 1)];
	pthread_mutex_lock(&fs->pdid_lock);
	if (slot->key && strcmp(slot->key, key) == 0 && now - slot->at < fs->ttl) {
		found = slot->is_did;
		pthread_mutex_unlock(&fs->pdid_lock);
		return found;
	}
	pthread_mutex_unlock(&fs->pdid_lock);
	if (did_lookup(fs, db, scope, pfx, &row, &found))
		found = 0; /* a failed probe: lay out as a directory, retry later */
	pthread_mutex_lock(&fs->pdid_lock);
	free(slot->key);
	slot->key = dm_xstrdup(key);
	slot->is_did = found;
	slot->at = now;
	pthread_mutex_unlock(&fs->pdid_lock);
	return found;
}

static void pdid_note(struct fs *fs, const char *scope, const char *prefix, int is_did)
{
	char key[CAT_SCOPE_MAX + CAT_NAME_MAX + 3];
	struct fs_pdid *slot;

	snprintf(key, sizeof key, "%s:%s", scope, prefix);
	slot = &fs->pdid[hash_str(key) & (FS_PDID_SLOTS - 1)];
	pthread_mutex_lock(&fs->pdid_lock);
	free(slot->key);
	slot->key = dm_xstrdup(key);
	slot->is_did = is_did;
	slot->at = dm_now_f();
	pthread_mutex_unlock(&fs->pdid_lock);
}

/* The first separator of name at or after `from` (rules a-c), or -1. */
static long next_sep(struct fs *fs, struct cat_db *db, const char *scope, const char *name,
		     size_t from)
{
	for (size_t i = from; name[i]; i++) {
		if (name[i] != '/' || i == 0 || name[i - 1] == '/' || !name[i + 1] ||
		    name[i + 1] == '/')
			continue;
		if (!prefix_is_did(fs, db, scope, name, i))
			return (long)i;
	}
	return -1;
}

/* Append the path component for name[0..n) (escapes) to out; returns the
 * length or -1 if it would pass size - 1. */
static long encode_seg(const char *s, size_t n, char *out, size_t size)
{
	size_t o = 0;
	int dots = (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.');

	for (size_t i = 0; i < n; i++) {
		const char *rep = NULL;
		if (s[i] == '/')
			rep = "%2F";
		else if (dots)
			rep = "%2E";
		if (rep) {
			if (o + 3 >= size)
				return -1;
			memcpy(out + o, rep, 3);
			o += 3;
		} else {
			if (o + 1 >= size)
				return -1;
			out[o++] = s[i];
		}
	}
	out[o] = 0;
	return (long)o;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decode a path component (percent escapes) into out; -1 if malformed or
 * too long.  The result still has to pass cat_validate_name as part of a
 * name. */
static int decode_comp(const char *c, char *out, size_t size)
{
	size_t o = 0;

	for (; *c; c++) {
		char ch = *c;
		if (ch == '%') {
			int h = hexval(c[1]), l = h < 0 ? -1 : hexval(c[2]);
			if (h < 0 || l < 0)
				return -1;
			ch = (char)(h * 16 + l);
			c += 2;
		}
		if (o + 1 >= size || ch == 0)
			return -1;
		out[o++] = ch;
	}
	out[o] = 0;
	return o ? 0 : -1;
}

/* ------------------------------------------------------------------ */
/* attributes and entries                                              */

static int node_is_dir(const struct fs_node *n)
{
	return n->kind != FS_DID || n->type != CAT_DID_FILE;
}

void fs_stat_node(struct fs *fs, const struct fs_node *n, struct stat *st)
{
	memset(st, 0, sizeof *st);
	st->st_ino = n->ino;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_blksize = FS_MAX_READ;
	if (!node_is_dir(n)) {
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		st->st_size = (off_t)n->bytes;
		st->st_blocks = (blkcnt_t)((n->bytes + 511) / 512);
	} else {
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 2;
		st->st_size = n->kind == FS_DID ? (off_t)n->length : 0;
	}
	if (n->kind == FS_DID) {
		st->st_mtim.tv_sec = st->st_atim.tv_sec = (time_t)n->created_at;
		st->st_ctim.tv_sec = (time_t)(n->updated_at ? n->updated_at : n->created_at);
	} else {
		st->st_mtim.tv_sec = st->st_atim.tv_sec = st->st_ctim.tv_sec = (time_t)fs->started;
	}
}

/* Under ns_lock. */
static double attr_ttl(struct fs *fs, const struct fs_node *n)
{
	if (n->kind == FS_DID && (n->type == CAT_DID_FILE || !n->is_open))
		return FS_TTL_LONG;
	return fs->ttl;
}

/* How long the kernel may keep names found in directory p. Under ns_lock. */
static double entry_ttl(struct fs *fs, const struct fs_node *p)
{
	if (p->kind == FS_DID && !p->is_open)
		return FS_TTL_LONG;
	if (p->kind == FS_PREFIX && p->ctx_did && p->ctx_closed)
		return FS_TTL_LONG;
	return fs->ttl;
}

static void fill_entry(struct fs *fs, struct fs_node *n, double ettl, struct fuse_entry_param *e)
{
	memset(e, 0, sizeof *e);
	pthread_mutex_lock(&fs->ns_lock);
	e->ino = n->ino;
	fs_stat_node(fs, n, &e->attr);
	e->attr_timeout = attr_ttl(fs, n);
	e->entry_timeout = ettl;
	pthread_mutex_unlock(&fs->ns_lock);
}

void fs_node_refresh(struct fs *fs, struct fs_node *n)
{
	struct fs_didrow row;
	struct cat_db *db;
	int found = 0;

	if (n->kind != FS_DID || !(db = fs_db(fs, NULL)))
		return;
	if (did_lookup(fs, db, n->scope, n->name, &row, &found) || !found)
		return;
	pthread_mutex_lock(&fs->ns_lock);
	if (row.id == n->did_id)
		set_did_attrs(n, &row);
	pthread_mutex_unlock(&fs->ns_lock);
}

/* ------------------------------------------------------------------ */
/* lookup                                                              */

/* Resolve a full name in a context: ctx_did 0 = the scope ps, else the
 * collection ctx_did.  On success *out has a ref; *err_no 0, ENOENT or EIO. */
static struct fs_node *resolve(struct fs *fs, struct cat_db *db, int64_t ctx_did,
			       int ctx_closed, const char *ps, const char *full, int *err_no)
{
	struct fs_didrow row;
	enum dm_status rc;
	int found = 0, exists;
	size_t len = strlen(full);

	*err_no = ENOENT;
	if (cat_validate_scope(ps, NULL) || cat_validate_name(full, NULL))
		return NULL;
	rc = did_lookup(fs, db, ps, full, &row, &found);
	if (rc)
		goto ioerr;
	if (found) {
		if (ctx_did) {
			int child = is_child(db, ctx_did, ps, full, &rc);
			if (rc)
				goto ioerr;
			if (!child)
				return NULL;
		}
		*err_no = 0;
		return node_did(fs, &row, ctx_did);
	}
	if (full[len - 1] == '/')
		return NULL;
	exists = ctx_did ? prefix_in_coll(db, ctx_did, ps, full, &rc)
			 : prefix_in_scope(db, ps, full, &rc);
	if (rc)
		goto ioerr;
	if (!exists)
		return NULL;
	pdid_note(fs, ps, full, 0);
	*err_no = 0;
	return node_prefix(fs, ctx_did, ctx_closed, ps, full);
ioerr:
	dm_log(DM_LOG_ERROR, WHO_FS, "looking up %s:%s: %s", ps, full, fs_errmsg(cat_error(db)));
	*err_no = fs_cat_errno(cat_error(db));
	if (*err_no == ENOENT)
		*err_no = EIO; /* a failed step of the lookup, not a negative answer */
	return NULL;
}

void fs_op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fuse_req_userdata(req);
	struct fs_node *p = fs_node_get(fs, parent), *n = NULL;
	struct fuse_entry_param e;
	struct cat_db *db;
	struct dm_err err = { 0 };
	char seg[CAT_NAME_MAX + 1], full[CAT_NAME_MAX + 1], ps[CAT_SCOPE_MAX + 1];
	int err_no = ENOENT;
	double ettl;

	__atomic_add_fetch(&fs->n_lookup, 1, __ATOMIC_RELAXED);
	fs_readahead_once(fs);
	if (!p)
		goto reply_err;
	db = fs_db(fs, &err);
	if (!db) {
		err_no = EIO;
		goto reply_err;
	}
	switch (p->kind) {
	case FS_ROOT: {
		struct scope_probe sp = { name, 0 };
		if (cat_validate_scope(name, NULL))
			goto reply_neg;
		if (cat_scope_list(db, NULL, probe_scope, &sp)) {
			err_no = fs_cat_errno(cat_error(db));
			goto reply_err;
		}
		if (!sp.found)
			goto reply_neg;
		n = node_scope(fs, name);
		break;
	}
	case FS_SCOPE:
		if (strchr(name, ':') || decode_comp(name, seg, sizeof seg))
			goto reply_neg;
		n = resolve(fs, db, 0, 0, p->scope, seg, &err_no);
		break;
	case FS_PREFIX:
		if (strchr(name, ':') || decode_comp(name, seg, sizeof seg))
			goto reply_neg;
		if ((size_t)snprintf(full, sizeof full, "%s/%s", p->name, seg) >= sizeof full)
			goto reply_neg;
		n = resolve(fs, db, p->ctx_did, p->ctx_closed, p->scope, full, &err_no);
		break;
	case FS_DID: {
		const char *colon = strchr(name, ':');
		int closed;
		if (p->type == CAT_DID_FILE) {
			err_no = ENOTDIR;
			goto reply_err;
		}
		if (colon) {
			size_t sl = (size_t)(colon - name);
			if (sl == 0 || sl > CAT_SCOPE_MAX)
				goto reply_neg;
			memcpy(ps, name, sl);
			ps[sl] = 0;
			name = colon + 1;
		} else {
			dm_strlcpy(ps, p->scope, sizeof ps);
		}
		if (decode_comp(name, seg, sizeof seg))
			goto reply_neg;
		pthread_mutex_lock(&fs->ns_lock);
		closed = !p->is_open;
		pthread_mutex_unlock(&fs->ns_lock);
		n = resolve(fs, db, p->did_id, closed, ps, seg, &err_no);
		break;
	}
	}
	if (!n) {
		if (err_no == ENOENT)
			goto reply_neg;
		goto reply_err;
	}
	pthread_mutex_lock(&fs->ns_lock);
	ettl = entry_ttl(fs, p);
	pthread_mutex_unlock(&fs->ns_lock);
	fill_entry(fs, n, ettl, &e);
	if (fuse_reply_entry(req, &e) == 0)
		node_commit_lookup(fs, n);
	else
		fs_node_put(fs, n);
	fs_node_put(fs, p);
	return;
reply_neg:
	memset(&e, 0, sizeof e);
	e.entry_timeout = FS_TTL_NEG;
	fuse_reply_entry(req, &e);
	fs_node_put(fs, p);
	return;
reply_err:
	fuse_reply_err(req, err_no);
	fs_node_put(fs, p);
}

void fs_op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fuse_req_userdata(req);
	struct fs_node *n = fs_node_get(fs, ino);
	struct stat st;
	double ttl;
	int refresh;

	fs_readahead_once(fs);
	if (!n)
		goto reply_err;
	pthread_mutex_lock(&fs->ns_lock);
	refresh = n->kind == FS_DID && n->is_open;
	pthread_mutex_unlock(&fs->ns_lock);
	if (refresh)
		fs_node_refresh(fs, n);
	pthread_mutex_lock(&fs->ns_lock);
	fs_stat_node(fs, n, &st);
	ttl = attr_ttl(fs, n);
	pthread_mutex_unlock(&fs->ns_lock);
	fuse_reply_attr(req, &st, ttl);
	fs_node_put(fs, n);
	return;
reply_err:
	fuse_reply_err(req, ENOENT);
}

/* ------------------------------------------------------------------ */
/* directory listing                                                   */

enum dsrc { DS_SCOPES, DS_ROOTS, DS_CONTENT };

struct dent {
	uint64_t pos;
	struct fs_didrow row; /* DS_SCOPES: row.scope only */
};

struct seen {
	struct seen *next;
	uint64_t pos;
	char comp[];
};

struct fs_dir {
	struct fs_node *node;  /* holds a ref */
	enum dsrc src;
	char scope[CAT_SCOPE_MAX + 1]; /* DS_ROOTS: the scope; DS_CONTENT: the collection's */
	int64_t coll;          /* DS_CONTENT: the collection */
	int closed;            /* the listing cannot change */
	char *prefix;          /* prefix directories: names start with prefix + '/' */
	char pscope[CAT_SCOPE_MAX + 1]; /* ... and are of this scope */
	struct dent *batch;
	size_t nbatch, batch_cap;
	uint64_t batch_after;
	int batch_valid, batch_eof;
	int ordinal;           /* DS_CONTENT of a remote catalog: positions are
				* ordinals, not ids (see dir_fetch) */
	uint64_t cur_ord;      /* ... the last batch ended at this ordinal */
	int64_t cur_id;        /* ... with the child of this id */
	struct seen **seen;
	size_t nseen_buckets, nseen;
};

/* The position a prefix component was first announced at, or 0; records
 * pos when new. */
static uint64_t seen_check(struct fs_dir *d, const char *comp, uint64_t pos)
{
	size_t b;
	struct seen *s;

	if (!d->seen) {
		d->nseen_buckets = 64;
		d->seen = dm_xcalloc(d->nseen_buckets, sizeof *d->seen);
	}
	b = hash_str(comp) & (d->nseen_buckets - 1);
	for (s = d->seen[b]; s; s = s->next)
		if (strcmp(s->comp, comp) == 0)
			return s->pos;
	if (d->nseen >= d->nseen_buckets * 2) {
		size_t nb = d->nseen_buckets * 2;
		struct seen **t = dm_xcalloc(nb, sizeof *t);
		for (size_t i = 0; i < d->nseen_buckets; i++) {
			struct seen *x = d->seen[i], *next;
			for (; x; x = next) {
				size_t bb = hash_str(x->comp) & (nb - 1);
				next = x->next;
				x->next = t[bb];
				t[bb] = x;
			}
		}
		free(d->seen);
		d->seen = t;
		d->nseen_buckets = nb;
		b = hash_str(comp) & (nb - 1);
	}
	s = dm_xmalloc(sizeof *s + strlen(comp) + 1);
	memcpy(s->comp, comp, strlen(comp) + 1);
	s->pos = pos;
	s->next = d->seen[b];
	d->seen[b] = s;
	d->nseen++;
	return 0;
}

static void dir_free(struct fs *fs, struct fs_dir *d)
{
	if (d->seen) {
		for (size_t i = 0; i < d->nseen_buckets; i++) {
			struct seen *s = d->seen[i], *next;
			for (; s; s = next) {
				next = s->next;
				free(s);
			}
		}
		free(d->seen);
	}
	free(d->batch);
	free(d->prefix);
	fs_node_put(fs, d->node);
	free(d);
}

void fs_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fuse_req_userdata(req);
	struct fs_node *n = fs_node_get(fs, ino);
	struct fs_dir *d;

	fs_readahead_once(fs);
	if (!n)
		goto reply_noent;
	if (!node_is_dir(n)) {
		fs_node_put(fs, n);
		goto reply_notdir;
	}
	d = dm_xcalloc(1, sizeof *d);
	d->node = n; /* keeps the ref */
	pthread_mutex_lock(&fs->ns_lock);
	switch (n->kind) {
	case FS_ROOT:
		d->src = DS_SCOPES;
		break;
	case FS_SCOPE:
		d->src = DS_ROOTS;
		dm_strlcpy(d->scope, n->scope, sizeof d->scope);
		break;
	case FS_PREFIX:
		d->prefix = dm_xstrdup(n->name);
		dm_strlcpy(d->pscope, n->scope, sizeof d->pscope);
		dm_strlcpy(d->scope, n->scope, sizeof d->scope);
		if (n->ctx_did) {
			d->src = DS_CONTENT;
			d->coll = n->ctx_did;
			d->closed = n->ctx_closed;
			d->ordinal = fs->remote;
		} else {
			d->src = DS_ROOTS;
		}
		break;
	case FS_DID:
		d->src = DS_CONTENT;
		d->coll = n->did_id;
		d->closed = !n->is_open;
		d->ordinal = fs->remote;
		dm_strlcpy(d->scope, n->scope, sizeof d->scope);
		n->listed_at = dm_now_f();
		break;
	}
	pthread_mutex_unlock(&fs->ns_lock);
	fi->fh = (uint64_t)(uintptr_t)d;
	if (d->closed) {
		/* an immutable listing: let the kernel keep it */
		fi->cache_readdir = 1;
		fi->keep_cache = 1;
	}
	fuse_reply_open(req, fi);
	return;
reply_notdir:
	fuse_reply_err(req, ENOTDIR);
	return;
reply_noent:
	fuse_reply_err(req, ENOENT);
}

void fs_op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fuse_req_userdata(req);

	dir_free(fs, (struct fs_dir *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

struct fetch {
	struct fs_dir *d;
	uint64_t after;
	uint64_t ordinal;
	size_t limit;
	size_t plen;
};

static struct dent *batch_add(struct fs_dir *d)
{
	if (d->nbatch == d->batch_cap) {
		d->batch_cap = d->batch_cap ? d->batch_cap * 2 : 64;
		d->batch = dm_xrealloc(d->batch, d->batch_cap * sizeof *d->batch);
	}
	return &d->batch[d->nbatch++];
}

static int fetch_scope(void *ud, const char *scope, const char *account)
{
	struct fetch *f = ud;
	uint64_t pos = ++f->ordinal;
	struct dent *e;

	if (pos <= f->after)
		return 0;
	if (f->d->nbatch >= f->limit)
		return 1;
	e = batch_add(f->d);
	memset(e, 0, sizeof *e);
	e->pos = pos;
	dm_strlcpy(e->row.scope, scope, sizeof e->row.scope);
	return 0;
}

static int fetch_root(void *ud, const struct cat_did *did)
{
	struct fetch *f = ud;
	uint64_t pos = ++f->ordinal;
	struct fs_dir *d = f->d;

	if (pos <= f->after)
		return 0;
	if (d->prefix) {
		int c = strncmp(did->name, d->prefix, f->plen);
		if (c > 0 || (c == 0 && did->name[f->plen] > '/')) {
			f->limit = 0; /* sorted by name: past the prefix, done */
			return 1;
		}
		if (c < 0 || did->name[f->plen] != '/')
			return 0;
	}
	if (d->nbatch >= f->limit)
		return 1;
	fs_didrow_from(&batch_add(d)->row, did);
	d->batch[d->nbatch - 1].pos = pos;
	return 0;
}

static int fetch_child(void *ud, const struct cat_did *did)
{
	struct fetch *f = ud;
	struct fs_dir *d = f->d;

	if (d->ordinal) { /* positions are ordinals in the listing's order */
		uint64_t pos = ++f->ordinal;
		if (pos <= f->after)
			return 0;
		if (d->nbatch >= f->limit)
			return 1;
		if (d->prefix && (strcmp(did->scope, d->pscope) ||
				  strncmp(did->name, d->prefix, f->plen) || did->name[f->plen] != '/'))
			return 0;
		fs_didrow_from(&batch_add(d)->row, did);
		d->batch[d->nbatch - 1].pos = pos;
		d->cur_ord = pos;
		d->cur_id = did->id;
		return 0;
	}
	if (d->nbatch >= f->limit)
		return 1;
	if (d->prefix && (strcmp(did->scope, d->pscope) ||
			  strncmp(did->name, d->prefix, f->plen) || did->name[f->plen] != '/'))
		return 0;
	fs_didrow_from(&batch_add(d)->row, did);
	d->batch[d->nbatch - 1].pos = (uint64_t)did->id;
	return 0;
}

/* Fill the handle's batch with entries at positions after `after`. */
static enum dm_status dir_fetch(struct fs_dir *d, struct cat_db *db, uint64_t after)
{
	struct fetch f = { d, after, 0, 0, d->prefix ? strlen(d->prefix) : 0 };
	enum dm_status rc = DM_OK;

	d->nbatch = 0;
	d->batch_valid = 0;
	switch (d->src) {
	case DS_SCOPES:
		f.limit = BATCH_ORDINAL;
		rc = cat_scope_list(db, NULL, fetch_scope, &f);
		break;
	case DS_ROOTS:
		f.limit = BATCH_ORDINAL;
		rc = cat_did_list_roots(db, d->scope, fetch_root, &f);
		if (rc == DM_ENOENT) /* the scope went away */
			rc = DM_OK;
		break;
	case DS_CONTENT:
		f.limit = BATCH_CONTENT;
		if (d->ordinal) {
			/* the REST store seeks to the cursor's child in its
			 * cache (rest_cache_list_after), so batches read each
			 * entry once */
			f.limit = BATCH_ORDINAL;
			/* A remote catalog's ids are hashes of the names, in no
			 * order: the cursor is "after the child with this id" in
			 * the listing's order, and positions count rows.  Going on
			 * from the last batch resumes after its last child; any
			 * other offset counts from the start. */
			int64_t from = 0;
			if (after && after == d->cur_ord && d->cur_id) {
				from = d->cur_id;
				f.ordinal = after;
			}
			rc = cat_did_list_content_from(db, d->coll, from, fetch_child, &f);
			break;
		}
		rc = cat_did_list_content_from(db, d->coll, (int64_t)after, fetch_child, &f);
		break;
	}
	if (rc)
		return rc;
	d->batch_after = after;
	d->batch_eof = d->nbatch < f.limit || f.limit == 0;
	d->batch_valid = 1;
	return DM_OK;
}

/* What a row shows as in a directory handle. */
struct disp {
	char comp[NAME_MAX + 1];
	int is_prefix;
	char prefix[CAT_NAME_MAX + 1];
};

/* 0: show it as disp; 1: not in this directory. */
static int layout_row(struct fs *fs, struct cat_db *db, struct fs_dir *d,
		      const struct fs_didrow *r, struct disp *out)
{
	const char *name = r->name;
	size_t start = 0, o = 0;
	long j;

	if (d->prefix) {
		size_t pl = strlen(d->prefix);
		if (strcmp(r->scope, d->pscope) || !continues_prefix(name, d->prefix, pl))
			return 1;
		start = pl + 1;
	}
	j = next_sep(fs, db, r->scope, name, start);
	if (!d->prefix && d->src == DS_CONTENT && strcmp(r->scope, d->scope)) {
		o = (size_t)snprintf(out->comp, sizeof out->comp, "%s:", r->scope);
		if (o >= sizeof out->comp)
			return 1;
	}
	if (encode_seg(name + start, (j < 0 ? strlen(name) : (size_t)j) - start, out->comp + o,
		       sizeof out->comp - o) < 0) {
		dm_log(DM_LOG_WARN, WHO_FS, "%s:%s: a path component would pass %d bytes; not listed",
		       r->scope, name, NAME_MAX);
		return 1;
	}
	out->is_prefix = j >= 0;
	if (j >= 0) {
		memcpy(out->prefix, name, (size_t)j);
		out->prefix[j] = 0;
	}
	return 0;
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi, int plus)
{
	struct fs *fs = fuse_req_userdata(req);
	struct fs_dir *d = (struct fs_dir *)(uintptr_t)fi->fh;
	struct dm_err err = { 0 };
	struct cat_db *db = fs_db(fs, &err);
	char *buf;
	size_t used = 0;
	uint64_t resume;
	double ettl;
	int err_no = 0;

	__atomic_add_fetch(&fs->n_readdir, 1, __ATOMIC_RELAXED);
	if (!db)
		goto reply_eio;
	if (size > 1u << 20)
		size = 1u << 20;
	buf = dm_xmalloc(size);
	pthread_mutex_lock(&fs->ns_lock);
	ettl = entry_ttl(fs, d->node);
	pthread_mutex_unlock(&fs->ns_lock);
	/* "." and "..": no attributes, so the kernel takes no reference */
	for (off_t dot = off; dot < 2; dot++) {
		struct stat st = { .st_ino = ino, .st_mode = S_IFDIR };
		const char *nm = dot == 0 ? "." : "..";
		size_t need;
		if (plus) {
			struct fuse_entry_param e = { .attr = st };
			need = fuse_add_direntry_plus(req, buf + used, size - used, nm, &e, dot + 1);
		} else {
			need = fuse_add_direntry(req, buf + used, size - used, nm, &st, dot + 1);
		}
		if (need > size - used)
			goto reply_buf;
		used += need;
	}
	resume = off <= 2 ? 0 : (uint64_t)off - 2;
	for (;;) {
		size_t i;
		if (!d->batch_valid || resume < d->batch_after ||
		    (!d->batch_eof && (!d->nbatch || resume >= d->batch[d->nbatch - 1].pos))) {
			if (dir_fetch(d, db, resume)) {
				dm_log(DM_LOG_ERROR, WHO_FS, "listing inode %llu: %s",
				       (unsigned long long)ino, fs_errmsg(cat_error(db)));
				err_no = fs_cat_errno(cat_error(db));
				goto reply_buf;
			}
		}
		for (i = 0; i < d->nbatch; i++) {
			struct dent *e = &d->batch[i];
			struct fs_node *n = NULL;
			struct fuse_entry_param ep;
			struct disp disp;
			const char *nm;
			size_t need;
			int hidden = 0;

			if (e->pos <= resume)
				continue;
			if (d->src == DS_SCOPES) {
				nm = e->row.scope;
				if (plus)
					n = node_scope(fs, e->row.scope);
			} else {
				hidden = layout_row(fs, db, d, &e->row, &disp);
				nm = disp.comp;
				if (!hidden && disp.is_prefix) {
					uint64_t first = seen_check(d, disp.comp, e->pos);
					hidden = first && first != e->pos;
					if (!hidden && plus)
						n = node_prefix(fs, d->src == DS_CONTENT ? d->coll : 0,
								d->closed, e->row.scope, disp.prefix);
				} else if (!hidden && plus &&
					   __atomic_load_n(&fs->nghost, __ATOMIC_RELAXED) <
						   FS_GHOSTS_LISTED_MAX) {
					n = node_did(fs, &e->row, d->src == DS_CONTENT ? d->coll : 0);
				}
			}
			if (hidden) {
				resume = e->pos;
				continue;
			}
			if (plus && n) {
				fill_entry(fs, n, ettl, &ep);
				need = fuse_add_direntry_plus(req, buf + used, size - used, nm, &ep,
							      (off_t)(e->pos + 2));
			} else if (plus) {
				/* past FS_GHOSTS_LISTED_MAX: the name without an inode */
				memset(&ep, 0, sizeof ep);
				ep.attr.st_ino = (uint64_t)e->row.id + FS_INO_DID_BASE;
				ep.attr.st_mode = e->row.type == CAT_DID_FILE ? S_IFREG : S_IFDIR;
				need = fuse_add_direntry_plus(req, buf + used, size - used, nm, &ep,
							      (off_t)(e->pos + 2));
			} else {
				struct stat st = { 0 };
				st.st_ino = d->src == DS_SCOPES || disp.is_prefix
						    ? 0xffffffffu
						    : (uint64_t)e->row.id + FS_INO_DID_BASE;
				st.st_mode = d->src == DS_SCOPES || disp.is_prefix ||
							     e->row.type != CAT_DID_FILE
						     ? S_IFDIR : S_IFREG;
				need = fuse_add_direntry(req, buf + used, size - used, nm, &st,
							 (off_t)(e->pos + 2));
			}
			if (need > size - used) {
				fs_node_put(fs, n); /* the kernel never saw it */
				goto reply_buf;
			}
			used += need;
			if (n)
				node_commit_lookup(fs, n);
			resume = e->pos;
		}
		if (d->batch_eof)
			break;
		/* the batch is used up: the next one starts after `resume` */
		if (d->nbatch)
			resume = d->batch[d->nbatch - 1].pos > resume ? d->batch[d->nbatch - 1].pos
								     : resume;
		d->batch_valid = 0;
	}
reply_buf:
	if (err_no && used == 0)
		fuse_reply_err(req, err_no);
	else
		fuse_reply_buf(req, buf, used);
	free(buf);
	return;
reply_eio:
	fuse_reply_err(req, EIO);
}

void fs_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		   struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, 0);
}

void fs_op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, 1);
}

/* ------------------------------------------------------------------ */
/* polling open collections                                            */

struct watch {
	uint64_t ino;
	char scope[CAT_SCOPE_MAX + 1];
	char name[CAT_NAME_MAX + 1];
	int64_t updated_at;
	int is_open;
};

void fs_ns_poll(struct fs *fs, double now, double min_interval, size_t max, fs_watch_fn fn,
		void *ud)
{
	struct watch *w = dm_xcalloc(max ? max : 1, sizeof *w);
	size_t n = 0;

	pthread_mutex_lock(&fs->ns_lock);
	for (size_t b = 0; b < fs->nino_buckets && n < max; b++) {
		for (struct fs_node *x = fs->by_ino[b]; x && n < max; x = x->next_ino) {
			if (x->kind != FS_DID || x->type == CAT_DID_FILE || !x->is_open ||
			    !x->nlookup || now - x->listed_at > 600 || now - x->polled_at < min_interval)
				continue;
			x->polled_at = now;
			w[n].ino = x->ino;
			dm_strlcpy(w[n].scope, x->scope, sizeof w[n].scope);
			dm_strlcpy(w[n].name, x->name, sizeof w[n].name);
			n++;
		}
	}
	pthread_mutex_unlock(&fs->ns_lock);
	for (size_t i = 0; i < n; i++) {
		struct cat_db *db = fs_db(fs, NULL);
		struct fs_didrow row;
		int found = 0, changed = 0;
		struct fs_node *x;

		if (!db || did_lookup(fs, db, w[i].scope, w[i].name, &row, &found))
			break;
		pthread_mutex_lock(&fs->ns_lock);
		x = find_ino(fs, w[i].ino);
		if (x && found && x->did_id == row.id &&
		    (x->updated_at != row.updated_at || x->is_open != row.is_open)) {
			set_did_attrs(x, &row);
			changed = 1;
		}
		pthread_mutex_unlock(&fs->ns_lock);
		if (changed || !found)
			fn(fs, w[i].ino, w[i].scope, w[i].name, found ? row.updated_at : 0,
			   found && row.is_open, ud);
	}
	free(w);
}
