/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fs_i.h - internals shared by the files of the FUSE mount (prefix fs_):
 * the mount state, the inode table's nodes, open files, and the handler
 * entry points that fs/mount.c puts into the libfuse low-level ops table.
 *
 * Who owns what
 *   mount.c  the session, options, thread-local catalog handles, the
 *            background thread (polling open collections, readahead),
 *            process life cycle
 *   ns.c     inode table, name layout (names with '/'), lookup, getattr,
 *            readdirplus
 *   data.c   replica choice, the block cache's fetch callback, open/read/
 *            release and the pool of threads that wait on storage
 *   xattr.c  user.rucio.* (and eos.url.xroot) get/set/list/remove
 *   users.c  who a request comes from (uid map, credentials discovery),
 *            what it may do, and the per-uid catalog handles for changes
 *
 * Locks (never more than one at a time, none across a catalog call that
 * streams rows, a network fetch or a FUSE reply):
 *   fs->ns_lock     the inode table and every mutable field of a node
 *   fs->db_lock     the registry of thread-local catalog handles
 *   fs->rse_lock    the RSE cache (site, availability, failures)
 *   fs->pdid_lock   the "is this prefix a DID" cache of the name layout
 *   fs->pool_lock   the read job queue
 *   fs->bg_lock     the background thread's wake-up and inval queue
 *   fs->users_lock  the who-cache and the per-uid handle pool (users.c)
 *
 * Catalog rule: a catalog call must never be made from inside another
 * catalog call's row callback (the store reuses prepared statements), so
 * callbacks here only copy rows out; follow-up calls come afterwards.
 */
#ifndef FS_I_H
#define FS_I_H

#define FUSE_USE_VERSION 314

#include <fuse_lowlevel.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>

#include "blockcache.h"
#include "catalog.h"
#include "dm.h"
#include "fs.h"
#include "uidmap.h"
#include "xfer.h"

#define WHO_FS "mount"

/* Inode numbers: 1 is the root; a DID is its catalog id + FS_INO_DID_BASE
 * (stable across mounts); scopes and prefix directories get numbers from
 * FS_INO_VIRTUAL upwards, never reused during a mount. */
#define FS_INO_DID_BASE 16u
#define FS_INO_VIRTUAL (1ull << 56)

#define FS_TTL_LONG 86400.0 /* immutable: files, closed collections */
#define FS_TTL_NEG 1.0      /* a name that does not exist (yet) */
#define FS_MAX_READ (1u << 20)
/* The answer to the kernel's security.* / system.posix_acl_* probes (see
 * xattr.c); -DFS_SECURITY_ERRNO=ENODATA builds the alternative to compare. */
#ifndef FS_SECURITY_ERRNO
#define FS_SECURITY_ERRNO EOPNOTSUPP
#endif

enum fs_kind { FS_ROOT, FS_SCOPE, FS_DID, FS_PREFIX };

/* A copied catalog row (cat_did pointers die with the callback). */
struct fs_didrow {
	int64_t id;
	enum cat_did_type type;
	char scope[CAT_SCOPE_MAX + 1];
	char name[CAT_NAME_MAX + 1];
	uint64_t bytes;
	uint64_t length;
	char adler32[9];
	char md5[33];
	int64_t created_at;
	int64_t updated_at;
	int64_t expired_at;
	int is_open;
};
void fs_didrow_from(struct fs_didrow *r, const struct cat_did *d);

/*
 * A node: what one inode number stands for.  Lifetime: nlookup counts the
 * kernel's references (lookup, readdirplus entries, minus forget), refs the
 * mount's own (open files, directory handles, a handler in progress).  The
 * node leaves the table and is freed when both reach 0; the root never is.
 * Every field is read and written under fs->ns_lock, except ino, kind and
 * the strings set at creation (scope, name, ctx_*), which never change.
 */
struct fs_node {
	uint64_t ino;
	enum fs_kind kind;
	uint64_t nlookup;
	unsigned refs;
	struct fs_node *next_ino;
	struct fs_node *next_key;
	struct fs_node *lru_prev, *lru_next; /* DID nodes only the kernel holds (ns.c) */
	int64_t ctx_parent;     /* DID: a collection it was found in (0: its scope), to
				 * load it again by id after eviction */
	char *key;              /* SCOPE and PREFIX: the key-table key */
	char *scope;            /* SCOPE: the scope; DID: its scope; PREFIX: scope of its names */
	char *name;             /* DID: its name; PREFIX: the name prefix (no trailing '/') */
	/* PREFIX: the context its names come from */
	int64_t ctx_did;        /* the collection's DID id, or 0: the scope `scope` */
	int ctx_closed;         /* the collection was closed when the node was made */
	/* DID attributes (refreshed by every lookup / listing) */
	int64_t did_id;
	enum cat_did_type type;
	uint64_t bytes;
	uint64_t length;
	char adler32[9];
	char md5[33];
	int64_t created_at;
	int64_t updated_at;
	int64_t expired_at;
	int is_open;
	/* mount state */
	char *error;            /* user.rucio.error of the data path (all users) */
	struct fs_uerr *uerrors; /* refused writes, per calling uid (xattr.c) */
	double listed_at;       /* last readdir of this collection (poller) */
	double polled_at;
	struct fs_sources *src; /* files: replica sources, cached briefly */
	double src_at;
	char **bad_rses;        /* files: RSEs whose copy failed the adler32 check */
	size_t nbad_rses;
};

/* Replica sources of a file, best first (data.c). Shared, refcounted. */
struct fs_source {
	char *rse;
	char *pfn;
	char *scheme;
	int local;   /* RSE attribute site == --site */
	int prio;    /* protocol read priority (lower is better) */
};
struct fs_sources {
	unsigned refs;       /* under fs->ns_lock */
	size_t n;
	struct fs_source *v;
};

/* An open file (fi->fh). */
struct fs_file {
	struct fs *fs;
	struct fs_node *node;       /* holds a ref */
	char *key;                  /* block cache key "scope:name:adler32" */
	uint64_t size;
	struct fs_sources *src;     /* holds a ref */
	int cur;                    /* source that served last (atomic) */
	struct fs_bc_file *bcf;
	int whole;                  /* every byte is in the cache (atomic hint) */
	int bad;                    /* failed its adler32 check: every read is EIO */
	struct fs_file *next, *prev; /* fs->files, under fs->ns_lock */
	/* integrity and deadlines (data.c) */
	unsigned refs;              /* the kernel's handle + read jobs (atomic) */
	struct cat_manifest *man;   /* per-piece adler32s; NULL: whole-file check only */
	pthread_mutex_t mlock;      /* the pieces below, and src swaps */
	uint32_t *piece_sums;       /* no manifest yet: pieces fetched, to record one */
	uint8_t *piece_seen;
	size_t npieces, pieces_seen;
	uint64_t used_mask;         /* bit i: source i served a fetch (atomic) */
	int64_t fail_until_ms;      /* a read of this handle just failed: the kernel's
				     * retry of its pages fails at once (atomic) */
};

/* An evicted DID node the kernel still holds (ns.c): enough to load it
 * again from the catalog, and the kernel's lookup count. */
struct fs_ghost {
	uint64_t ino;           /* 0: empty slot */
	uint32_t nlookup;       /* UINT32_MAX: saturated, kept for good */
	uint32_t named;         /* u.sn, else u.parent */
	union {
		int64_t parent; /* a collection's DID id: reload from its content */
		char *sn;       /* "scope\0name\0" */
	} u;
};

/* DID nodes with no reference of the mount's kept in full; beyond this the
 * least recently used become ghosts (ns.c). */
#ifndef FS_NODES_CACHED
#define FS_NODES_CACHED 8192
#endif

/* Beyond this many ghosts a listing's DID entries go to the kernel without
 * an inode (nodeid 0: a name only, no reference to remember until FORGET):
 * listing millions of names keeps the ghost table bounded (~6 MiB); a
 * stat of such an entry is an ordinary LOOKUP (ns.c). */
#ifndef FS_GHOSTS_LISTED_MAX
#define FS_GHOSTS_LISTED_MAX 131072
#endif

/* The "is scope:prefix a DID" cache of the name layout (ns.c). */
#define FS_PDID_SLOTS 4096
struct fs_pdid {
	char *key;
	int is_did;
	double at;
};

struct fs_rse {
	char *rse;
	char *site;
	int readable;
	double failed_at; /* last fetch failure from this RSE (sorts it last for a while) */
};

struct fs_job;

/* Who a request comes from (users.c). */
enum fs_role { FS_ROLE_NONE, FS_ROLE_OWNER, FS_ROLE_MAPPED, FS_ROLE_CREDS };
struct fs_who {
	uid_t uid;
	enum fs_role role;
	char account[CAT_ACCOUNT_MAX + 1]; /* from the map; "" OWNER: --account,
					    * CREDS: the identity's default */
	char proxy[PATH_MAX];   /* credentials to authenticate with (remote only) */
	char token[PATH_MAX];
	char found[PATH_MAX];   /* the last credential file accepted, for messages */
	uint64_t cred_gen;      /* changes with the credentials' content */
	char why[768];          /* candidates refused, for the refusal text */
};
struct fs_whoslot;
struct fs_uhandle;

struct fs_inval {
	uint64_t ino;
	int data; /* also the page cache / cached listing, not only attributes */
};

struct fs {
	struct fs_opts o;
	char *catalog;              /* absolute */
	char *mountpoint;           /* absolute */
	char *cache_dir;
	struct fuse_session *se;
	struct fs_bc *bc;
	struct xfer_ctx *xfer;
	uid_t uid;
	gid_t gid;
	double started;
	double ttl;                 /* kernel cache time of changing things */

	/* inode table */
	pthread_mutex_t ns_lock;
	struct fs_node **by_ino;
	size_t nino_buckets, nino;
	struct fs_node **by_key;
	size_t nkey_buckets, nkey;
	uint64_t next_virtual;
	struct fs_node *root;
	struct fs_node lru;         /* sentinel: lru.lru_next is the most recent */
	size_t nlru;
	struct fs_ghost *ghosts;    /* open addressing, linear probing */
	size_t nghost_slots, nghost;
	uint64_t n_evicted, n_reloaded;
	struct fs_file *files;      /* open files, closed at unmount if the kernel did not */

	/* thread-local catalog handles */
	pthread_key_t db_key;
	pthread_mutex_t db_lock;
	struct fs_dbslot *dbs;

	/* RSEs */
	pthread_mutex_t rse_lock;
	struct fs_rse *rses;
	size_t nrses;
	double rses_at;

	/* name layout cache */
	pthread_mutex_t pdid_lock;
	struct fs_pdid pdid[FS_PDID_SLOTS];

	/* read pool */
	pthread_mutex_t pool_lock;
	pthread_cond_t pool_cond;
	struct fs_job *jobs_head, *jobs_tail;
	pthread_t *pool;
	int npool;
	int pool_stop;
	struct fs_job *live;        /* jobs queued or running, for the deadline watchdog */
	pthread_t wd;
	pthread_cond_t wd_cond;     /* wakes the watchdog at stop */
	int wd_started;
	int pool_stuck;             /* an I/O thread did not stop: leave its state alone */
	int no_verify;              /* DIDFS_NO_VERIFY=1: no per-piece checks (benchmark) */

	/* background thread */
	pthread_mutex_t bg_lock;
	pthread_cond_t bg_cond;
	pthread_t bg;
	int bg_started;
	int bg_stop;
	int init_done;
	struct fs_inval *inval;     /* kernel caches to drop (fs_inval_later) */
	size_t ninval, inval_cap;
	char bdi[64];               /* "major:minor" of the mount */
	int ra_state;               /* readahead: 0 not yet, 1 being set, 2 done */

	/* who is asking (users.c) */
	int remote;                 /* the catalog is reached over the network */
	struct fs_uidmap umap;      /* --uid-map */
	pthread_mutex_t users_lock;
	struct fs_whoslot *whos;
	struct fs_uhandle *uhandles;

	/* counters (atomic) */
	uint64_t n_lookup, n_readdir, n_read, n_read_async, n_read_err, n_getxattr, n_probe;
};

/* ---- session.c ---- */
/* The registry of the threads' catalog handles: set up, and close them all. */
void fs_db_init(struct fs *fs);
void fs_db_close_all(struct fs *fs);
/* This thread's catalog handle (opened on first use, issuer set). */
struct cat_db *fs_db(struct fs *fs, struct dm_err *err);
/* Ask the background thread to drop the kernel's cached attributes of ino
 * (and its cached pages or listing if data). */
void fs_inval_later(struct fs *fs, uint64_t ino, int data);
/* Raise the mount's bdi readahead once, from the first requests after INIT. */
void fs_readahead_once(struct fs *fs);
/* The "major:minor" of the FUSE mount at mountpoint (/proc/self/mountinfo);
 * 0, or -1 when nothing is mounted there. */
int fs_find_bdi(const char *mountpoint, char *out, size_t size);
/* The errno of a failed catalog read (lookup, listing, xattr): ENOTCONN
 * for a remote catalog that cannot be reached (class ServerUnreachable),
 * ENOENT for a (cached) negative answer, ETIMEDOUT, else EIO. */
int fs_cat_errno(const struct dm_err *e);
/* A short log line for a catalog or transfer error. */
const char *fs_errmsg(const struct dm_err *e);

/* ---- ns.c ---- */
/* Fill st for a node (under ns_lock or with a private copy). */
void fs_stat_node(struct fs *fs, const struct fs_node *n, struct stat *st);
int fs_ns_init(struct fs *fs);
void fs_ns_destroy(struct fs *fs);
struct fs_node *fs_node_get(struct fs *fs, uint64_t ino);
void fs_node_ref(struct fs *fs, struct fs_node *n);
void fs_node_put(struct fs *fs, struct fs_node *n);
void fs_node_set_error(struct fs *fs, struct fs_node *n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void fs_node_clear_error(struct fs *fs, struct fs_node *n);
/* A node's refusals of writes, one per calling uid (set and read by
 * xattr.c, freed with the node). */
struct fs_uerr {
	struct fs_uerr *next;
	uid_t uid;
	char text[];
};
void fs_uerr_free(struct fs_uerr *e);
/* Refresh a DID node's attributes from the catalog (after a write). */
void fs_node_refresh(struct fs *fs, struct fs_node *n);
/* Open collections the kernel has looked at recently, for the poller:
 * calls fn for up to max of them (ino, scope, name, updated_at, is_open). */
typedef void (*fs_watch_fn)(struct fs *fs, uint64_t ino, const char *scope, const char *name,
			    int64_t updated_at, int is_open, void *ud);
void fs_ns_poll(struct fs *fs, double now, double min_interval, size_t max, fs_watch_fn fn,
		void *ud);
void fs_op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name);
void fs_op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup);
void fs_op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets);
void fs_op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		   struct fuse_file_info *fi);
void fs_op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi);
void fs_op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);

/* ---- data.c ---- */
int fs_data_init(struct fs *fs);
void fs_data_stop(struct fs *fs);
/* Sources of a file node (cached on the node); NULL with err on failure. */
struct fs_sources *fs_sources_get(struct fs *fs, struct fs_node *n, struct dm_err *err);
void fs_sources_put(struct fs *fs, struct fs_sources *s);
/* Block cache key of a file node into out. */
void fs_file_key(const struct fs_node *n, char *out, size_t size);
void fs_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		struct fuse_file_info *fi);
void fs_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);

/* ---- users.c ---- */
enum dm_status fs_users_init(struct fs *fs, struct dm_err *err);
void fs_users_destroy(struct fs *fs);
const char *fs_role_name(enum fs_role r);
/* Who req comes from (req NULL: the owner); cached per uid briefly. */
void fs_who_get(struct fs *fs, fuse_req_t req, struct fs_who *w);
int fs_who_may_change(const struct fs *fs, const struct fs_who *w);
int fs_who_sees_pfns(const struct fs *fs, const struct fs_who *w);
/* The AccessDenied refusal of a change by w (role NONE) into err. */
void fs_who_refusal(const struct fs *fs, const struct fs_who *w, struct dm_err *err);
/* in with every "scheme://..." replaced by "<storage URL>" */
void fs_redact_pfns(const char *in, struct dm_buf *out);
/* A catalog handle acting as w, for one change; give it back with
 * fs_user_db_put(*h) (h NULL: the thread's own handle, nothing to give
 * back).  NULL with err on failure. */
struct cat_db *fs_user_db(struct fs *fs, const struct fs_who *w, struct fs_uhandle **h,
			  struct dm_err *err);
void fs_user_db_put(struct fs *fs, struct fs_uhandle *h);

/* ---- xattr.c ---- */
void fs_op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size);
void fs_op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
void fs_op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
		    size_t size, int flags);
void fs_op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name);

/* ---- fsmetrics.c (--metrics; every call a no-op without it) ---- */
enum dm_status fs_metrics_start(struct fs *fs, const char *addr, struct dm_err *err);
void fs_metrics_stop(void);
/* The session's table: ops itself, or a timed copy when metrics are on. */
const struct fuse_lowlevel_ops *fs_metrics_ops(const struct fuse_lowlevel_ops *ops);
/* A read's arrival (0 with metrics off) and its reply. */
double fs_metrics_t0(void);
void fs_metrics_read(double t0);
void fs_metrics_fallover(void);

#endif
