/* SPDX-License-Identifier: Apache-2.0 */
/*
 * xattr.c - extended attributes of the mount: catalog metadata to read and
 * replication rules, metadata and lifetimes to write (the user.rucio.
 * namespace of DESIGN.md), plus eos.url.xroot for ROOT's cross-protocol
 * redirect.
 *
 * On a DID (file, dataset, container):
 *   read   user.rucio.did       scope:name
 *          user.rucio.type      FILE / DATASET / CONTAINER
 *          user.rucio.bytes     size (a collection: sum over its files)
 *          user.rucio.adler32, user.rucio.md5 (files)
 *          user.rucio.replicas  files: "RSE STATE PFN" per line;
 *                               collections: "RSE STATE AVAILABLE/TOTAL BYTES"
 *                               per line, STATE AVAILABLE when complete there
 *          user.rucio.rules     "ID STATE COPIES EXPRESSION" per line: rules on
 *                               the DID (a file: also through its parents)
 *          user.rucio.rule.<id> "STATE COPIES EXPRESSION" of a rule on the DID
 *          user.rucio.state     OK / REPLICATING / STUCK / NOT_AVAILABLE
 *          user.rucio.meta.<k>  a metadata value
 *          user.rucio.lifetime  seconds left before the DID expires
 *          user.rucio.cache     bytes held in the local block cache
 *          user.rucio.error     why the caller's last write here was refused
 *                               (kept per uid), else why a read failed
 *          eos.url.xroot        files: the best root:// PFN
 *   write  user.rucio.rule      "<copies> <rse-expression> [key=value ...]"
 *                               (lifetime= grouping= weight= activity=
 *                               comment= source_replica_expression=
 *                               purge_replicas= asynchronous= locked=
 *                               priority=; a value may be "double quoted")
 *          user.rucio.meta.<k>  set; removing it deletes the key
 *          user.rucio.lifetime  seconds (0 or "none" clears); removing clears
 *          removing user.rucio.rule.<id> deletes that rule now
 *          removing user.rucio.error forgets the caller's own error (and
 *                               a read error, for root and the mount's owner)
 * On the root: user.rucio.cache (bytes cached; on a remote catalog followed
 * by "catalog_<name> value" lines: what the catalog's local cache holds,
 * how fresh, whether the server was reachable) and user.rucio.stats (the
 * block cache's and the mount's counters, "name value" per line, the
 * catalog cache's lines at the end).
 *
 * state (rucio-jupyterlab's words): a file is REPLICATING while a replica
 * of it is COPYING or a rule covering it waits for placement, STUCK when a
 * rule covering it is STUCK/SUSPENDED and it has a replica transfers gave up
 * on, else OK if it has an AVAILABLE replica on a readable RSE, else
 * NOT_AVAILABLE.  A collection is STUCK / REPLICATING after its own rules'
 * states, else OK when every file under it has an AVAILABLE replica.
 *
 * The kernel asks for security.* and system.posix_acl_* on every `ls -l`
 * entry.  Those are answered first, from memory, with no lock or
 * allocation: EOPNOTSUPP (the mount has no security labels or ACLs).
 * EOPNOTSUPP rather than ENODATA because GNU ls and libacl remember an
 * unsupported answer for the whole device and stop asking, which makes
 * `ls -l` of a large dataset an order of magnitude faster; with ENODATA they
 * ask again for every entry.
 *
 * Writes act as the calling uid's account (users.c: the mount's owner as
 * --account or its uid map entry, a mapped uid as its map entry, on a
 * remote catalog a uid with credentials of its own as its identity); any
 * other uid gets EACCES for every change.  Storage paths (PFNs in
 * user.rucio.replicas, eos.url.xroot, URLs in data-path errors) are shown
 * only to uids that may change things (fs_who_sees_pfns).  A refused write returns the errno of its cause (EINVAL syntax or
 * bad expression, EDQUOT quota, ENOSPC no room / not enough RSEs, EEXIST
 * duplicate rule, EACCES permission, EPERM a read-only attribute or a
 * locked rule, ENODATA nothing to remove) and leaves "<Exception>: <message>"
 * in user.rucio.error of that inode.  Values are computed on each call (the
 * kernel does not cache xattrs), so they are always current.
 */
#include "fs_i.h"
#include "dmcheck.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>


#define P "user.rucio."
#define PLEN (sizeof(P) - 1)
#define VALUE_MAX 65536

static int is_probe(const char *name)
{
	return strncmp(name, "security.", 9) == 0 || strncmp(name, "system.", 7) == 0;
}

/* errno for a refused catalog call. */
static int errno_for(const struct dm_err *e)
{
	static const struct { const char *cls; int err_no; } map[] = {
		{ "InvalidRSEExpression", EINVAL }, { "InvalidValueForKey", EINVAL },
		{ "InvalidRuleWeight", EINVAL }, { "InvalidSourceReplicaExpression", EINVAL },
		{ "InputValidationError", EINVAL }, { "InvalidObject", EINVAL },
		{ "InvalidMetadata", EINVAL }, { "InsufficientAccountLimit", EDQUOT },
		{ "RSEOverQuota", ENOSPC }, { "InsufficientTargetRSEs", ENOSPC },
		{ "RSEWriteBlocked", ENOSPC }, { "DuplicateRule", EEXIST },
		{ "AccessDenied", EACCES }, { "DataIdentifierNotFound", ENOENT },
		{ "RuleNotFound", ENODATA }, { "KeyNotFound", ENODATA },
		{ "UnsupportedOperation", EPERM }, { "UnsupportedKeyType", EPERM },
	};

	/* another writer held the catalog past the busy timeout: EBUSY, which
	 * tools print as "Device or resource busy" */
	if (e->code == DM_AGAIN && !strcmp(e->cls, "DatabaseException"))
		return EBUSY;
	if (!strcmp(e->cls, "ServerUnreachable"))
		return ENOTCONN; /* a remote catalog, offline: nothing was changed */
	for (size_t i = 0; i < DM_ARRAY_SIZE(map); i++)
		if (strcmp(e->cls, map[i].cls) == 0)
			return map[i].err_no;
	return e->code ? dm_status_to_errno(e->code) : EIO;
}

/* ------------------------------------------------------------------ */
/* reading                                                             */

struct rules_rows {
	struct dm_buf *out;
	int with_id;
	const char *only;      /* a rule id, or NULL */
	int stuck, pending, n; /* for state */
	int found;
};

static int keep_rule(void *ud, const struct cat_rule *r)
{
	struct rules_rows *rr = ud;

	rr->n++;
	if (r->state == CAT_RULE_STUCK || r->state == CAT_RULE_SUSPENDED)
		rr->stuck = 1;
	if (r->state == CAT_RULE_INJECT || r->state == CAT_RULE_WAITING_APPROVAL)
		rr->pending = 1;
	if (!rr->out)
		return 0;
	if (rr->only) {
		if (strcmp(rr->only, r->id))
			return 0;
		rr->found = 1;
		dm_buf_addf(rr->out, "%s %d %s", cat_rule_state_name(r->state), r->copies,
			    r->rse_expression);
		return 1;
	}
	dm_buf_addf(rr->out, "%s %s %d %s\n", r->id, cat_rule_state_name(r->state), r->copies,
		    r->rse_expression);
	return 0;
}

struct rep_info {
	char rse[CAT_RSE_MAX + 1];
	enum cat_replica_state state;
};

struct reps_rows {
	struct rep_info *v;
	size_t n;
};

static int keep_rep(void *ud, const struct cat_replica *r)
{
	struct reps_rows *rr = ud;

	if (rr->n >= 1024)
		return 1;
	rr->v = dm_xrealloc(rr->v, (rr->n + 1) * sizeof *rr->v);
	dm_strlcpy(rr->v[rr->n].rse, r->rse, sizeof rr->v[rr->n].rse);
	rr->v[rr->n].state = r->state;
	rr->n++;
	return 0;
}

struct rse_readable {
	char **names;
	size_t n;
};

static int keep_unreadable(void *ud, const struct cat_rse *r)
{
	struct rse_readable *u = ud;

	if (r->availability_read)
		return 0;
	u->names = dm_xrealloc(u->names, (u->n + 1) * sizeof *u->names);
	u->names[u->n++] = dm_xstrdup(r->rse);
	return 0;
}

static int in_list(char **v, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i], s) == 0)
			return 1;
	return 0;
}

static void free_list(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* Per-RSE summary of a collection's file replicas. */
struct ds_rse {
	char rse[CAT_RSE_MAX + 1];
	uint64_t files, bytes;
};

struct ds_sum {
	struct ds_rse *v;
	size_t n;
	char **unreadable;
	size_t nunread;
	/* files with at least one readable AVAILABLE replica */
	char last[CAT_SCOPE_MAX + CAT_NAME_MAX + 2];
	uint64_t avail_files;
};

static int sum_rep(void *ud, const struct cat_replica *r)
{
	struct ds_sum *s = ud;
	char did[CAT_SCOPE_MAX + CAT_NAME_MAX + 2];
	size_t i;

	for (i = 0; i < s->n && strcmp(s->v[i].rse, r->rse); i++)
		;
	if (i == s->n) {
		s->v = dm_xrealloc(s->v, (s->n + 1) * sizeof *s->v);
		memset(&s->v[s->n], 0, sizeof s->v[s->n]);
		dm_strlcpy(s->v[s->n].rse, r->rse, sizeof s->v[s->n].rse);
		s->n++;
	}
	s->v[i].files++;
	s->v[i].bytes += r->bytes;
	if (in_list(s->unreadable, s->nunread, r->rse))
		return 0;
	snprintf(did, sizeof did, "%s:%s", r->scope, r->name);
	if (strcmp(did, s->last)) { /* rows come ordered by (scope, name, rse) */
		s->avail_files++;
		dm_strlcpy(s->last, did, sizeof s->last);
	}
	return 0;
}

static int count_file(void *ud, const struct cat_did *d)
{
	(*(uint64_t *)ud)++;
	return 0;
}

struct cache_sum {
	struct fs *fs;
	uint64_t bytes;
};

static int sum_cache(void *ud, const struct cat_did *d)
{
	struct cache_sum *c = ud;
	char key[CAT_SCOPE_MAX + CAT_NAME_MAX + 16];

	snprintf(key, sizeof key, "%s:%s:%s", d->scope, d->name, d->adler32 ? d->adler32 : "");
	c->bytes += fs_bc_cached_bytes(c->fs->bc, key);
	return 0;
}

struct meta_find {
	const char *key;
	struct dm_buf *out;
	int found;
};

static int find_meta(void *ud, const char *key, const char *value)
{
	struct meta_find *m = ud;

	if (strcmp(key, m->key))
		return 0;
	dm_buf_adds(m->out, value ? value : "");
	m->found = 1;
	return 1;
}

struct list_meta {
	struct dm_buf *out;
};

static int list_meta_key(void *ud, const char *key, const char *value)
{
	struct list_meta *l = ud;

	dm_buf_addf(l->out, P "meta.%s", key);
	dm_buf_addc(l->out, '\0');
	return 0;
}

struct did_copy {
	char scope[CAT_SCOPE_MAX + 1];
	char name[CAT_NAME_MAX + 1];
	enum cat_did_type type;
	char adler32[9];
	char md5[33];
	uint64_t bytes;
	int64_t expired_at;
	int64_t did_id;
	char *error;
};

/* ---- user.rucio.error, per calling uid ----
 * A refused write leaves its reason for the uid that made it only: other
 * users of an --allow-other mount neither read nor clear it.  Errors of the
 * data path (no replica, storage failed) are about the file and kept in
 * n->error for everyone; a user's own refusal hides that while it lasts.
 * At most FS_UERR_MAX uids per node (the oldest is dropped). */
#define FS_UERR_MAX 16

/* Under ns_lock: unlink uid's entry from the list, returning it. */
static struct fs_uerr *uerr_take_locked(struct fs_node *n, uid_t uid)
{
	for (struct fs_uerr **pp = &n->uerrors; *pp; pp = &(*pp)->next) {
		if ((*pp)->uid == uid) {
			struct fs_uerr *e = *pp;
			*pp = e->next;
			return e;
		}
	}
	return NULL;
}

static void uerr_set(struct fs *fs, struct fs_node *n, uid_t uid, const char *text)
{
	size_t len = strlen(text);
	struct fs_uerr *e = dm_xmalloc(sizeof *e + len + 1), *old, **pp;
	int count = 0;

	e->uid = uid;
	memcpy(e->text, text, len + 1);
	pthread_mutex_lock(&fs->ns_lock);
	free(uerr_take_locked(n, uid));
	e->next = n->uerrors; /* newest first */
	n->uerrors = e;
	for (pp = &n->uerrors; *pp; pp = &(*pp)->next) {
		if (++count > FS_UERR_MAX) {
			old = *pp;
			*pp = NULL;
			fs_uerr_free(old);
			break;
		}
	}
	pthread_mutex_unlock(&fs->ns_lock);
}

static void uerr_clear(struct fs *fs, struct fs_node *n, uid_t uid)
{
	pthread_mutex_lock(&fs->ns_lock);
	free(uerr_take_locked(n, uid));
	pthread_mutex_unlock(&fs->ns_lock);
}

static uid_t req_uid(fuse_req_t req)
{
	return req ? fuse_req_ctx(req)->uid : 0;
}

static void copy_node(struct fs *fs, struct fs_node *n, struct did_copy *c, const struct fs_who *w)
{
	uid_t uid = w->uid;
	const char *data_err = NULL;

	pthread_mutex_lock(&fs->ns_lock);
	dm_strlcpy(c->scope, n->scope ? n->scope : "", sizeof c->scope);
	dm_strlcpy(c->name, n->name ? n->name : "", sizeof c->name);
	c->type = n->type;
	memcpy(c->adler32, n->adler32, sizeof c->adler32);
	memcpy(c->md5, n->md5, sizeof c->md5);
	c->bytes = n->bytes;
	c->expired_at = n->expired_at;
	c->did_id = n->did_id;
	c->error = NULL;
	for (struct fs_uerr *e = n->uerrors; e; e = e->next)
		if (e->uid == uid)
			c->error = dm_xstrdup(e->text);
	if (!c->error && n->error)
		data_err = c->error = dm_xstrdup(n->error);
	pthread_mutex_unlock(&fs->ns_lock);
	if (data_err && !fs_who_sees_pfns(fs, w)) {
		struct dm_buf b = DM_BUF_INIT;
		fs_redact_pfns(c->error, &b);
		free(c->error);
		c->error = dm_buf_detach(&b);
	}
}

/* The file's state from its covering rules and its replicas. */
static int file_state(struct cat_db *db, const struct did_copy *c, struct dm_buf *out)
{
	struct rules_rows rr = { 0 };
	struct reps_rows reps = { 0 };
	struct rse_readable u = { 0 };
	int copying = 0, gave_up = 0, available = 0;

	if (cat_rule_list_for_file(db, c->scope, c->name, keep_rule, &rr) ||
	    cat_replica_list(db, c->scope, c->name, NULL, ~0u, keep_rep, &reps) ||
	    cat_rse_list(db, keep_unreadable, &u)) {
		free(reps.v);
		free_list(u.names, u.n);
		return -1;
	}
	for (size_t i = 0; i < reps.n; i++) {
		copying |= reps.v[i].state == CAT_REPLICA_COPYING;
		gave_up |= reps.v[i].state == CAT_REPLICA_UNAVAILABLE ||
			   reps.v[i].state == CAT_REPLICA_BAD;
		available |= reps.v[i].state == CAT_REPLICA_AVAILABLE &&
			     !in_list(u.names, u.n, reps.v[i].rse);
	}
	if (rr.pending || copying)
		dm_buf_adds(out, "REPLICATING");
	else if (rr.stuck && (gave_up || !available))
		dm_buf_adds(out, "STUCK");
	else
		dm_buf_adds(out, available ? "OK" : "NOT_AVAILABLE");
	free(reps.v);
	free_list(u.names, u.n);
	return 0;
}

static int keep_rule_state(void *ud, const struct cat_rule *r)
{
	struct rules_rows *rr = ud;

	rr->n++;
	if (r->state == CAT_RULE_STUCK || r->state == CAT_RULE_SUSPENDED)
		rr->stuck = 1;
	else if (r->state != CAT_RULE_OK)
		rr->pending = 1;
	return 0;
}

static int collection_summary(struct cat_db *db, const struct did_copy *c, struct ds_sum *s,
			      uint64_t *nfiles)
{
	struct rse_readable u = { 0 };

	if (cat_rse_list(db, keep_unreadable, &u))
		return -1;
	s->unreadable = u.names;
	s->nunread = u.n;
	if (cat_replica_list(db, c->scope, c->name, NULL, 0, sum_rep, s) ||
	    cat_did_list_files(db, c->scope, c->name, count_file, nfiles))
		return -1;
	return 0;
}

static void ds_sum_free(struct ds_sum *s)
{
	free(s->v);
	free_list(s->unreadable, s->nunread);
}

static int collection_state(struct cat_db *db, const struct did_copy *c, struct dm_buf *out)
{
	struct rules_rows rr = { 0 };
	struct ds_sum s = { 0 };
	uint64_t nfiles = 0;

	if (cat_rule_list(db, c->scope, c->name, NULL, keep_rule_state, &rr))
		return -1;
	if (rr.stuck) {
		dm_buf_adds(out, "STUCK");
		return 0;
	}
	if (rr.pending) {
		dm_buf_adds(out, "REPLICATING");
		return 0;
	}
	if (collection_summary(db, c, &s, &nfiles)) {
		ds_sum_free(&s);
		return -1;
	}
	dm_buf_adds(out, s.avail_files >= nfiles ? "OK" : "NOT_AVAILABLE");
	ds_sum_free(&s);
	return 0;
}

static int file_replicas(struct cat_db *db, const struct did_copy *c, struct dm_buf *out,
			 int pfns)
{
	struct reps_rows reps = { 0 };

	if (cat_replica_list(db, c->scope, c->name, NULL, ~0u, keep_rep, &reps)) {
		free(reps.v);
		return -1;
	}
	for (size_t i = 0; i < reps.n; i++) {
		struct dm_buf pfn = DM_BUF_INIT;
		if (!pfns ||
		    cat_lfn2pfn(db, reps.v[i].rse, c->scope, c->name, NULL, CAT_OP_READ, &pfn))
			dm_buf_reset(&pfn);
		dm_buf_addf(out, "%s %s %s\n", reps.v[i].rse, cat_replica_state_name(reps.v[i].state),
			    pfn.len ? pfn.s : "-");
		dm_buf_release(&pfn);
	}
	free(reps.v);
	return 0;
}

static int collection_replicas(struct cat_db *db, const struct did_copy *c, struct dm_buf *out)
{
	struct ds_sum s = { 0 };
	uint64_t nfiles = 0;

	if (collection_summary(db, c, &s, &nfiles)) {
		ds_sum_free(&s);
		return -1;
	}
	for (size_t i = 0; i < s.n; i++)
		dm_buf_addf(out, "%s %s %llu/%llu %llu\n", s.v[i].rse,
			    s.v[i].files >= nfiles ? "AVAILABLE" : "UNAVAILABLE",
			    (unsigned long long)s.v[i].files, (unsigned long long)nfiles,
			    (unsigned long long)s.v[i].bytes);
	ds_sum_free(&s);
	return 0;
}

struct bytes_row {
	uint64_t bytes;
};

static int keep_bytes(void *ud, const struct cat_did *d)
{
	((struct bytes_row *)ud)->bytes = d->bytes;
	return 0;
}

/* What the catalog's own local cache holds (a REST catalog, catalog/rest/):
 * "catalog_<name> value" lines; nothing for a local catalog. */
static void catalog_cache_lines(struct fs *fs, struct dm_buf *out)
{
	struct cat_cache_stats cs;
	struct cat_db *db = fs_db(fs, NULL);
	int64_t now = dm_now();

	if (!db || cat_cache_stats(db, &cs) || !cs.remote)
		return;
	dm_buf_addf(out, "catalog_server %s\n", cs.server ? cs.server : "-");
	dm_buf_addf(out, "catalog_cache %s\n", cs.path ? cs.path : "-");
	dm_buf_addf(out, "catalog_reachable %d\n", cs.reachable);
	dm_buf_addf(out, "catalog_entries %llu\n", (unsigned long long)cs.entries);
	dm_buf_addf(out, "catalog_negative %llu\n", (unsigned long long)cs.negative);
	dm_buf_addf(out, "catalog_replicas %llu\n", (unsigned long long)cs.replicas);
	dm_buf_addf(out, "catalog_bytes %llu\n", (unsigned long long)cs.bytes);
	dm_buf_addf(out, "catalog_limit %llu\n", (unsigned long long)cs.limit);
	dm_buf_addf(out, "catalog_ttl %g\n", cs.ttl);
	dm_buf_addf(out, "catalog_oldest_fill_age %lld\n",
		    (long long)(cs.oldest_fill ? dm_time_sub(now, cs.oldest_fill) : -1));
	dm_buf_addf(out, "catalog_newest_fill_age %lld\n",
		    (long long)(cs.newest_fill ? dm_time_sub(now, cs.newest_fill) : -1));
	/* counters of the handle of the thread that answered */
	dm_buf_addf(out, "catalog_handle_requests %llu\n", (unsigned long long)cs.requests);
	dm_buf_addf(out, "catalog_handle_hits %llu\n", (unsigned long long)cs.hits);
	dm_buf_addf(out, "catalog_handle_misses %llu\n", (unsigned long long)cs.misses);
	if (cs.last_error.code)
		dm_buf_addf(out, "catalog_last_error %s\n", fs_errmsg(&cs.last_error));
}

static void root_stats(struct fs *fs, struct dm_buf *out)
{
	struct fs_bc_stats s;

	fs_bc_get_stats(fs->bc, &s);
#define S(x) dm_buf_addf(out, #x " %llu\n", (unsigned long long)s.x)
	S(max_bytes); S(bytes_cached); S(bytes_reserved); S(files); S(hits); S(misses);
	S(fetches); S(fetch_errors); S(prefetches); S(prefetch_wasted); S(prefetch_resets);
	S(evictions); S(passthrough); S(checksum_ok); S(checksum_failures);
	S(pages_dropped);
#undef S
#define M(x) dm_buf_addf(out, #x " %llu\n", (unsigned long long)__atomic_load_n(&fs->x, __ATOMIC_RELAXED))
	M(n_lookup); M(n_readdir); M(n_read); M(n_read_async); M(n_read_err); M(n_getxattr);
	M(n_probe);
#undef M
	pthread_mutex_lock(&fs->ns_lock);
	dm_buf_addf(out, "inodes %zu\n", fs->nino);
	dm_buf_addf(out, "inodes_evicted %zu\n", fs->nghost);
	dm_buf_addf(out, "evictions_inodes %llu\n", (unsigned long long)fs->n_evicted);
	dm_buf_addf(out, "reloads_inodes %llu\n",
		    (unsigned long long)__atomic_load_n(&fs->n_reloaded, __ATOMIC_RELAXED));
	pthread_mutex_unlock(&fs->ns_lock);
	catalog_cache_lines(fs, out);
}

static int xroot_url(struct fs *fs, struct fs_node *n, struct dm_buf *out)
{
	struct dm_err err = { 0 };
	struct fs_sources *s = fs_sources_get(fs, n, &err);
	int found = 0;

	if (!s)
		return -1;
	for (size_t i = 0; i < s->n && !found; i++) {
		const char *sc = s->v[i].scheme;
		if (!strcmp(sc, "root") || !strcmp(sc, "xroot") || !strcmp(sc, "roots") ||
		    !strcmp(sc, "xroots")) {
			dm_buf_adds(out, s->v[i].pfn);
			found = 1;
		}
	}
	fs_sources_put(fs, s);
	return found;
}

/* The value of name on node n into out; 0 or an errno. */
static int get_value(struct fs *fs, struct fs_node *n, const char *name, struct dm_buf *out,
		     const struct fs_who *w)
{
	struct did_copy c = { 0 };
	struct cat_db *db;
	const char *k;
	int err_no = ENODATA;

	if (n->kind == FS_ROOT) {
		if (!strcmp(name, P "cache")) {
			struct fs_bc_stats s;
			fs_bc_get_stats(fs->bc, &s);
			dm_buf_addf(out, "%llu", (unsigned long long)s.bytes_cached);
			if (fs->remote) { /* and what the catalog cache holds */
				dm_buf_addc(out, '\n');
				catalog_cache_lines(fs, out);
			}
			return 0;
		}
		if (!strcmp(name, P "stats")) {
			root_stats(fs, out);
			return 0;
		}
	}
	copy_node(fs, n, &c, w);
	if (!strcmp(name, P "error")) {
		if (c.error) {
			dm_buf_adds(out, c.error);
			err_no = 0;
		}
		goto out;
	}
	if (n->kind != FS_DID)
		goto out;
	if (strncmp(name, P, PLEN) && strcmp(name, "eos.url.xroot"))
		goto out;
	k = name + PLEN;
	err_no = 0;
	if (!strcmp(k, "did")) {
		dm_buf_addf(out, "%s:%s", c.scope, c.name);
	} else if (!strcmp(k, "type")) {
		dm_buf_adds(out, cat_did_type_name(c.type));
	} else if (!strcmp(k, "adler32") && c.type == CAT_DID_FILE && c.adler32[0]) {
		dm_buf_adds(out, c.adler32);
	} else if (!strcmp(k, "md5") && c.type == CAT_DID_FILE && c.md5[0]) {
		dm_buf_adds(out, c.md5);
	} else if (!strcmp(k, "lifetime") && c.expired_at) {
		int64_t left = dm_time_sub(c.expired_at, dm_now());
		dm_buf_addf(out, "%lld", (long long)(left > 0 ? left : 0));
	} else if (!strcmp(k, "cache") && c.type == CAT_DID_FILE) {
		char key[CAT_SCOPE_MAX + CAT_NAME_MAX + 16];
		fs_file_key(n, key, sizeof key);
		dm_buf_addf(out, "%llu", (unsigned long long)fs_bc_cached_bytes(fs->bc, key));
	} else if (!strcmp(name, "eos.url.xroot") && c.type == CAT_DID_FILE) {
		int r = fs_who_sees_pfns(fs, w) ? xroot_url(fs, n, out) : 0;
		err_no = r < 0 ? EIO : r == 0 ? ENODATA : 0;
	} else if (!strcmp(k, "bytes") || !strcmp(k, "cache") || !strcmp(k, "rules") ||
		   !strcmp(k, "state") || !strcmp(k, "replicas") || !strncmp(k, "meta.", 5) ||
		   !strncmp(k, "rule.", 5)) {
		struct dm_err err = { 0 };
		int r = 0;

		db = fs_db(fs, &err);
		if (!db) {
			err_no = EIO;
			goto out;
		}
		if (!strcmp(k, "bytes")) {
			struct bytes_row br = { c.bytes };
			if (c.type != CAT_DID_FILE)
				r = cat_did_get(db, c.scope, c.name, keep_bytes, &br) ? -1 : 0;
			dm_buf_addf(out, "%llu", (unsigned long long)br.bytes);
		} else if (!strcmp(k, "cache")) {
			struct cache_sum cs = { fs, 0 };
			r = cat_did_list_files(db, c.scope, c.name, sum_cache, &cs) ? -1 : 0;
			dm_buf_addf(out, "%llu", (unsigned long long)cs.bytes);
		} else if (!strcmp(k, "rules")) {
			struct rules_rows rr = { .out = out };
			r = (c.type == CAT_DID_FILE
				     ? cat_rule_list_for_file(db, c.scope, c.name, keep_rule, &rr)
				     : cat_rule_list(db, c.scope, c.name, NULL, keep_rule, &rr))
				    ? -1 : 0;
		} else if (!strncmp(k, "rule.", 5)) {
			struct rules_rows rr = { .out = out, .only = k + 5 };
			r = cat_rule_list(db, c.scope, c.name, NULL, keep_rule, &rr) ? -1 : 0;
			if (!r && !rr.found)
				err_no = ENODATA;
		} else if (!strcmp(k, "state")) {
			r = c.type == CAT_DID_FILE ? file_state(db, &c, out) : collection_state(db, &c, out);
		} else if (!strcmp(k, "replicas")) {
			r = c.type == CAT_DID_FILE ? file_replicas(db, &c, out, fs_who_sees_pfns(fs, w))
						   : collection_replicas(db, &c, out);
		} else {
			struct meta_find mf = { k + 5, out, 0 };
			r = cat_did_meta_list(db, c.scope, c.name, find_meta, &mf) ? -1 : 0;
			if (!r && !mf.found)
				err_no = ENODATA;
		}
		if (r) {
			const struct dm_err *e = cat_error(db);
			if (e->code == DM_ENOENT)
				err_no = ENODATA;
			else {
				dm_log(DM_LOG_ERROR, WHO_FS, "getxattr %s on %s:%s: %s", name, c.scope,
				       c.name, fs_errmsg(e));
				err_no = fs_cat_errno(e);
			}
		}
	} else {
		err_no = ENODATA;
	}
out:
	free(c.error);
	return err_no;
}

void fs_op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct fs *fs;
	struct fs_node *n;
	struct dm_buf v = DM_BUF_INIT;
	struct fs_who w;
	int err_no;

	fs = fuse_req_userdata(req);
	if (is_probe(name)) {
		/* ls -l asks this for every entry: answer before anything else */
		__atomic_add_fetch(&fs->n_probe, 1, __ATOMIC_RELAXED);
		fuse_reply_err(req, FS_SECURITY_ERRNO);
		return;
	}
	__atomic_add_fetch(&fs->n_getxattr, 1, __ATOMIC_RELAXED);
	n = fs_node_get(fs, ino);
	if (!n) {
		err_no = ENOENT;
		goto reply_err;
	}
	dm_buf_init(&v, 2 * VALUE_MAX); /* past VALUE_MAX: E2BIG */
	fs_who_get(fs, req, &w);
	err_no = get_value(fs, n, name, &v, &w);
	fs_node_put(fs, n);
	if (err_no)
		goto reply_err;
	if (v.len > VALUE_MAX) {
		err_no = E2BIG;
		goto reply_err;
	}
	if (size == 0)
		goto reply_size;
	if (size < v.len) {
		err_no = ERANGE;
		goto reply_err;
	}
	fuse_reply_buf(req, v.s, v.len);
	dm_buf_release(&v);
	return;
reply_size:
	fuse_reply_xattr(req, v.len);
	dm_buf_release(&v);
	return;
reply_err:
	fuse_reply_err(req, err_no);
	dm_buf_release(&v);
}

static void add_name(struct dm_buf *b, const char *name)
{
	dm_buf_adds(b, name);
	dm_buf_addc(b, '\0');
}

struct list_rules {
	struct dm_buf *out;
};

static int list_rule_name(void *ud, const struct cat_rule *r)
{
	struct list_rules *l = ud;

	dm_buf_addf(l->out, P "rule.%s", r->id);
	dm_buf_addc(l->out, '\0');
	return 0;
}

void fs_op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct fs *fs = fuse_req_userdata(req);
	struct fs_node *n = fs_node_get(fs, ino);
	struct dm_buf b = DM_BUF_INIT;
	struct did_copy c = { 0 };
	struct fs_who w;
	int err_no = 0;

	if (!n) {
		err_no = ENOENT;
		goto reply_err;
	}
	dm_buf_init(&b, 2 * VALUE_MAX);
	fs_who_get(fs, req, &w);
	copy_node(fs, n, &c, &w);
	if (n->kind == FS_ROOT) {
		add_name(&b, P "cache");
		add_name(&b, P "stats");
	} else if (n->kind == FS_DID) {
		struct cat_db *db = fs_db(fs, NULL);
		static const char *const common[] = { "did", "type", "bytes" };
		for (size_t i = 0; i < DM_ARRAY_SIZE(common); i++)
			dm_buf_addf(&b, P "%s%c", common[i], 0);
		if (c.type == CAT_DID_FILE && c.adler32[0])
			add_name(&b, P "adler32");
		if (c.type == CAT_DID_FILE && c.md5[0])
			add_name(&b, P "md5");
		add_name(&b, P "replicas");
		add_name(&b, P "rules");
		add_name(&b, P "state");
		add_name(&b, P "cache");
		if (c.expired_at)
			add_name(&b, P "lifetime");
		if (db) {
			struct list_meta lm = { &b };
			struct list_rules lr = { &b };
			cat_did_meta_list(db, c.scope, c.name, list_meta_key, &lm);
			cat_rule_list(db, c.scope, c.name, NULL, list_rule_name, &lr);
		}
		if (c.type == CAT_DID_FILE && fs_who_sees_pfns(fs, &w)) {
			struct dm_buf u = DM_BUF_INIT;
			if (xroot_url(fs, n, &u) > 0)
				add_name(&b, "eos.url.xroot");
			dm_buf_release(&u);
		}
	}
	if (c.error)
		add_name(&b, P "error");
	fs_node_put(fs, n);
	free(c.error);
	if (b.len > VALUE_MAX) {
		err_no = E2BIG;
		goto reply_err;
	}
	if (size == 0)
		goto reply_size;
	if (size < b.len) {
		err_no = ERANGE;
		goto reply_err;
	}
	fuse_reply_buf(req, b.s, b.len);
	dm_buf_release(&b);
	return;
reply_size:
	fuse_reply_xattr(req, b.len);
	dm_buf_release(&b);
	return;
reply_err:
	fuse_reply_err(req, err_no);
	dm_buf_release(&b);
}

/* ------------------------------------------------------------------ */
/* writing                                                             */

/* Split a rule value into tokens: whitespace separated, a value may be
 * "double quoted" (key="a b").  Tokens point into s, which is modified. */
static int tokenize(char *s, char **tok, int max)
{
	int n = 0;

	while (*s) {
		char *w;
		while (isspace((unsigned char)*s))
			s++;
		if (!*s)
			break;
		if (n == max)
			return -1;
		tok[n++] = w = s;
		while (*s && !isspace((unsigned char)*s)) {
			if (*s == '"') {
				s++;
				while (*s && *s != '"')
					*w++ = *s++;
				if (*s != '"')
					return -1;
				s++;
			} else {
				*w++ = *s++;
			}
		}
		if (*s)
			s++;
		*w = 0;
	}
	return n;
}

static int parse_bool(const char *v, int *out)
{
	if (!strcasecmp(v, "true") || !strcmp(v, "1") || !strcasecmp(v, "yes")) {
		*out = 1;
		return 0;
	}
	if (!strcasecmp(v, "false") || !strcmp(v, "0") || !strcasecmp(v, "no")) {
		*out = 0;
		return 0;
	}
	return -1;
}

/* Parse "<copies> <expr> [k=v ...]" into o; on error err says what. */
static int parse_rule(char *value, struct cat_rule_opts *o, struct dm_err *err)
{
	char *tok[32];
	int n = tokenize(value, tok, (int)DM_ARRAY_SIZE(tok));
	int64_t v;

	cat_rule_opts_init(o);
	if (n < 2) {
		dm_seterr(err, DM_EINVAL, "InputValidationError",
			  "a rule is \"<copies> <rse-expression> [key=value ...]\"%s",
			  n < 0 ? " (unbalanced quote or too many options)" : "");
		return -1;
	}
	if (dm_parse_i64(tok[0], &v) || v < 1 || v > 1000) {
		dm_seterr(err, DM_EINVAL, "InvalidValueForKey",
			  "copies must be a positive number, not '%s'", tok[0]);
		return -1;
	}
	o->copies = (int)v;
	o->rse_expression = tok[1];
	for (int i = 2; i < n; i++) {
		char *eq = strchr(tok[i], '=');
		const char *key = tok[i], *val;
		int b = 0, bad = 0;

		if (!eq || eq == tok[i]) {
			dm_seterr(err, DM_EINVAL, "InputValidationError",
				  "rule option '%s' is not key=value", tok[i]);
			return -1;
		}
		*eq = 0;
		val = eq + 1;
		if (!strcmp(key, "lifetime")) {
			bad = dm_parse_int(val, 0, DM_DURATION_MAX, &v) != 0;
			o->lifetime = bad ? 0 : v;
		} else if (!strcmp(key, "grouping")) {
			enum cat_grouping g;
			bad = cat_grouping_parse(val, &g);
			o->grouping = g;
		} else if (!strcmp(key, "weight")) {
			o->weight = val;
		} else if (!strcmp(key, "activity")) {
			o->activity = val;
		} else if (!strcmp(key, "comment")) {
			o->comment = val;
		} else if (!strcmp(key, "source_replica_expression")) {
			o->source_replica_expression = val;
		} else if (!strcmp(key, "purge_replicas")) {
			bad = parse_bool(val, &b);
			o->purge_replicas = b;
		} else if (!strcmp(key, "asynchronous")) {
			bad = parse_bool(val, &b);
			o->asynchronous = b;
		} else if (!strcmp(key, "locked")) {
			bad = parse_bool(val, &b);
			o->locked = b;
		} else if (!strcmp(key, "priority")) {
			bad = dm_parse_i64(val, &v) || v < 0 || v > 5;
			o->priority = (int)v;
		} else {
			dm_seterr(err, DM_EINVAL, "InputValidationError",
				  "unknown rule option '%s' (lifetime, grouping, weight, activity, "
				  "comment, source_replica_expression, purge_replicas, asynchronous, "
				  "locked, priority)", key);
			return -1;
		}
		if (bad) {
			dm_seterr(err, DM_EINVAL, "InvalidValueForKey",
				  "bad value '%s' for rule option '%s'", val, key);
			return -1;
		}
	}
	return 0;
}

static int parse_lifetime(const char *s, int64_t *out)
{
	if (!strcasecmp(s, "none") || !*s) {
		*out = 0;
		return 0;
	}
	return dm_parse_int(s, 0, DM_DURATION_MAX, out) ? -1 : 0;
}

/* A refused write: record why for the calling uid, return the errno. */
static int refuse_uid(struct fs *fs, struct fs_node *n, uid_t uid, int err_no,
		      const struct dm_err *e)
{
	char text[sizeof e->cls + sizeof e->msg + 4];

	snprintf(text, sizeof text, "%s: %s", e->cls[0] ? e->cls : "RucioException", e->msg);
	uerr_set(fs, n, uid, text);
	dm_log(DM_LOG_INFO, WHO_FS, "refused: %s: %s", e->cls, e->msg);
	return err_no;
}

struct rule_owner {
	char scope[CAT_SCOPE_MAX + 1];
	char name[CAT_NAME_MAX + 1];
	int found;
};

static int keep_rule_owner(void *ud, const struct cat_rule *r)
{
	struct rule_owner *o = ud;

	dm_strlcpy(o->scope, r->scope, sizeof o->scope);
	dm_strlcpy(o->name, r->name, sizeof o->name);
	o->found = 1;
	return 1;
}

static int do_set(struct fs *fs, fuse_req_t req, struct fs_node *n, const char *name,
		  const char *value, size_t size, int remove)
{
	struct did_copy c = { 0 };
	struct dm_err err = { 0 };
	struct fs_uhandle *uh = NULL;
	struct fs_who w;
	struct cat_db *db;
	char *val = NULL;
	const char *k;
	uid_t uid = req_uid(req);
	int err_no = 0;

	if (strncmp(name, P, PLEN))
		return EOPNOTSUPP; /* only user.rucio. */
	k = name + PLEN;
	fs_who_get(fs, req, &w);
	if (remove && !strcmp(k, "error")) {
		/* one's own refusal; the file's data-path error only by
		 * those who may change things here */
		uerr_clear(fs, n, uid);
		if (fs_who_may_change(fs, &w))
			fs_node_clear_error(fs, n);
		return 0;
	}
	if (!fs_who_may_change(fs, &w)) {
		fs_who_refusal(fs, &w, &err);
		return refuse_uid(fs, n, uid, EACCES, &err);
	}
	if (n->kind != FS_DID) {
		dm_seterr(&err, DM_ENOTSUP, "UnsupportedOperation",
			  "%s is not a DID: rules, metadata and lifetimes live on DIDs", name);
		return refuse_uid(fs, n, uid, EPERM, &err);
	}
	copy_node(fs, n, &c, &w);
	free(c.error);
	if (!remove) {
		if (size > 4000) {
			dm_seterr(&err, DM_EINVAL, "InputValidationError", "%s: value too long", name);
			return refuse_uid(fs, n, uid, EINVAL, &err);
		}
		val = dm_xmalloc(size + 1);
		memcpy(val, value, size);
		val[size] = 0;
		while (size && isspace((unsigned char)val[size - 1]))
			val[--size] = 0;
		if (strlen(val) != size) {
			dm_seterr(&err, DM_EINVAL, "InputValidationError", "%s: value holds a NUL", name);
			err_no = refuse_uid(fs, n, uid, EINVAL, &err);
			goto out;
		}
	}
	/* the caller's own handle: it acts as the caller's account */
	db = fs_user_db(fs, &w, &uh, &err);
	if (!db) {
		err_no = refuse_uid(fs, n, uid, errno_for(&err), &err);
		goto out;
	}
	if (!strcmp(k, "rule") && !remove) {
		struct cat_rule_opts o;
		char id[33];
		if (parse_rule(val, &o, &err)) {
			err_no = refuse_uid(fs, n, uid, EINVAL, &err);
			goto out;
		}
		if (cat_rule_add(db, c.scope, c.name, &o, id)) {
			err_no = refuse_uid(fs, n, uid, errno_for(cat_error(db)), cat_error(db));
			goto out;
		}
		dm_log(DM_LOG_INFO, WHO_FS, "rule %s: %d %s on %s:%s by uid %u as %s", id, o.copies,
		       o.rse_expression, c.scope, c.name, (unsigned)uid, cat_issuer(db));
	} else if (!strncmp(k, "rule.", 5) && remove) {
		struct rule_owner ro = { 0 };
		if (cat_rule_get(db, k + 5, keep_rule_owner, &ro) && cat_error(db)->code != DM_ENOENT) {
			err_no = refuse_uid(fs, n, uid, errno_for(cat_error(db)), cat_error(db));
			goto out;
		}
		if (!ro.found || strcmp(ro.scope, c.scope) || strcmp(ro.name, c.name)) {
			dm_seterr(&err, DM_ENOENT, "RuleNotFound", "no rule %s on %s:%s", k + 5, c.scope,
				  c.name);
			err_no = refuse_uid(fs, n, uid, ENODATA, &err);
			goto out;
		}
		if (cat_rule_delete(db, k + 5, -1, 0)) {
			err_no = refuse_uid(fs, n, uid, errno_for(cat_error(db)), cat_error(db));
			goto out;
		}
		dm_log(DM_LOG_INFO, WHO_FS, "rule %s deleted by uid %u as %s", k + 5, (unsigned)uid,
		       cat_issuer(db));
	} else if (!strncmp(k, "meta.", 5) && k[5]) {
		if (remove ? cat_did_meta_del(db, c.scope, c.name, k + 5)
			   : cat_did_meta_set(db, c.scope, c.name, k + 5, val)) {
			err_no = refuse_uid(fs, n, uid, errno_for(cat_error(db)), cat_error(db));
			goto out;
		}
	} else if (!strcmp(k, "lifetime")) {
		int64_t secs = 0;
		if (!remove && parse_lifetime(val, &secs)) {
			dm_seterr(&err, DM_EINVAL, "InvalidValueForKey",
				  "lifetime is a number of seconds from 0 to " DM_DURATION_MAX_STR
				  " (100 years), or none, not '%s'", val);
			err_no = refuse_uid(fs, n, uid, EINVAL, &err);
			goto out;
		}
		if (cat_did_set_lifetime(db, c.scope, c.name, secs)) {
			err_no = refuse_uid(fs, n, uid, errno_for(cat_error(db)), cat_error(db));
			goto out;
		}
	} else {
		dm_seterr(&err, DM_EPERM, "UnsupportedOperation",
			  "%s cannot be %s (writable: user.rucio.rule, user.rucio.meta.<key>, "
			  "user.rucio.lifetime; removable: user.rucio.rule.<id>)", name,
			  remove ? "removed" : "set");
		err_no = refuse_uid(fs, n, uid, remove && !strncmp(k, "rule", 4) ? ENODATA : EPERM, &err);
		goto out;
	}
	fs_user_db_put(fs, uh);
	uh = NULL;
	uerr_clear(fs, n, uid);
	fs_node_clear_error(fs, n);
	fs_node_refresh(fs, n);
	fs_inval_later(fs, n->ino, 0);
out:
	fs_user_db_put(fs, uh);
	free(val);
	return err_no;
}

void fs_op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
		    size_t size, int flags)
{
	struct fs *fs = fuse_req_userdata(req);
	struct fs_node *n;
	int err_no;

	if (is_probe(name)) {
		err_no = EOPNOTSUPP;
		goto reply;
	}
	n = fs_node_get(fs, ino);
	if (!n) {
		err_no = ENOENT;
		goto reply;
	}
	err_no = do_set(fs, req, n, name, value, size, 0);
	fs_node_put(fs, n);
reply:
	fuse_reply_err(req, err_no);
}

void fs_op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct fs *fs = fuse_req_userdata(req);
	struct fs_node *n;
	int err_no;

	if (is_probe(name)) {
		err_no = EOPNOTSUPP;
		goto reply;
	}
	n = fs_node_get(fs, ino);
	if (!n) {
		err_no = ENOENT;
		goto reply;
	}
	err_no = do_set(fs, req, n, name, NULL, 0, 1);
	fs_node_put(fs, n);
reply:
	fuse_reply_err(req, err_no);
}
