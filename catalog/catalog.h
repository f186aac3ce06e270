/* SPDX-License-Identifier: Apache-2.0 */
/*
 * catalog.h - the catalog API (prefix cat_): accounts, scopes, DIDs, RSEs,
 * protocols, replicas, limits and usage, behind one opaque handle.
 *
 * This header is the seam of DESIGN.md: cat_open() takes a catalog URI (a
 * path, sqlite:PATH, postgresql://..., https://...) and picks the store from
 * a table of schemes (catalog/open.c): the SQLite store (store_sqlite.c),
 * the PostgreSQL store (store_pg.c; both run the same queries through the
 * SQL driver, catalog/sql/, over their shared core in store.c), and a Rucio
 * REST server (https://host[:port], catalog/rest/: the client calls it can
 * serve, with a local catalog cache; see the end of this header).  fs/,
 * daemons/, tools/ and server/ never know which one they hold: where the
 * catalog is comes from cat_location() and cat_describe(), never from
 * treating the URI as a file.  Names and semantics follow Rucio
 * (shared/reference/rucio.md).
 *
 * Two headers: this one holds the client calls (what users, the CLI, the
 * mount and the REST server need; a REST back-end can serve them all,
 * rules and list-transfers included).  The rule engine's calls (judge
 * units, request claims and outcomes, sources, declaring replicas bad,
 * reaper and undertaker queries, heartbeats) are in engine.h, included only
 * by daemons/: Rucio's daemons run next to the database, never over REST.
 *
 * Conventions
 *  - Every call returns enum dm_status; on failure the handle's error record
 *    (cat_error()) holds Rucio's exception class name and a message naming
 *    what was wrong.  Every change is one transaction: a failed call leaves
 *    the catalog exactly as it was.
 *  - Calls act as the handle's issuer account (cat_set_issuer(); "root" by
 *    default).  Admin-only calls check the `admin` account attribute.
 *  - Listings stream through a callback, row by row, in constant memory.  The
 *    row pointers are valid only during the callback.  A callback returning
 *    non-zero stops the listing (the call then returns DM_OK).
 *  - A handle is used by one thread at a time; open one per thread.
 */
#ifndef CAT_CATALOG_H
#define CAT_CATALOG_H

#include <stdint.h>

#include "dm.h"

struct cat_db;

/* ---- limits from Rucio's schemas ---- */
#define CAT_SCOPE_MAX 25
#define CAT_NAME_MAX 250
#define CAT_ACCOUNT_MAX 25
#define CAT_RSE_MAX 255

/* ---- open / bootstrap ---- */
enum cat_open_flags {
	CAT_OPEN_CREATE = 1 << 0, /* create the file and schema if missing */
	CAT_OPEN_READONLY = 1 << 1,
};
/* Open the catalog a URI names (catalog/open.c): a file path or
 * sqlite:PATH (the SQLite store); postgresql://... (a libpq URI: the
 * PostgreSQL store; CAT_OPEN_CREATE creates the schema in an existing
 * database; DatabaseException / CannotAuthenticate naming the URI without
 * its password when it cannot connect, or when this build has no libpq);
 * https://host[:port] (a Rucio REST server, catalog/rest/; CAT_OPEN_CREATE
 * is refused there).  An unknown "scheme://" is InputValidationError. */
enum dm_status cat_open(const char *uri, unsigned flags, struct cat_db **out,
			struct dm_err *err);
void cat_close(struct cat_db *db);
/* A URI that reopens the same catalog from any working directory or process
 * (for SQLite the file's absolute path): what a mount or a daemon hands its
 * threads after it changed directory.  OUT: replaces *out's content. */
enum dm_status cat_location(struct cat_db *db, struct dm_buf *out);
/* A catalog URI as it may be shown or logged: a password in it is replaced
 * by "***" (postgresql://user:***@host/db).  Writes at most n bytes. */
void cat_uri_shown(const char *uri, char *out, size_t n);
/* One line for people: the store, where it is, its schema version. */
void cat_describe(struct cat_db *db, struct dm_buf *out);
/* What `didfs info` reports: the store ("sqlite", "postgresql", "rest"),
 * where it is (cat_describe()), its schema version (-1 when the store has
 * none to tell) and, for the SQL stores, how much it holds (-1 otherwise). */
struct cat_info {
	char store[16];
	char where[1024];
	int schema_version;
	int64_t accounts, scopes, rses, files, collections, replicas, rules, requests;
};
enum dm_status cat_info(struct cat_db *db, struct cat_info *out);
/* Copy a whole SQL catalog into a new, empty one (catalog/migrate.c):
 * `didfs migrate FROM TO`, SQLite <-> PostgreSQL.  Streams table by table
 * in constant memory; the target is written in one transaction, so on any
 * failure it stays empty.  cb (may be NULL) is told the rows copied so far
 * of a table (done = 1 once it is complete); *rows the total.  err names
 * what failed (the target's URI without its password). */
typedef void (*cat_migrate_cb)(void *ud, const char *table, uint64_t rows, int done);
enum dm_status cat_migrate(const char *from, const char *to, cat_migrate_cb cb, void *ud,
			   uint64_t *rows, struct dm_err *err);
const struct dm_err *cat_error(const struct cat_db *db);
/* Create the schema (if needed) and the root account (Rucio's bootstrap:
 * root, SERVICE, attribute admin=true) with a userpass identity root_user
 * ("ddmlab" if NULL) / root_password; a NULL root_password creates no
 * identity: there is no default password. */
enum dm_status cat_bootstrap(struct cat_db *db, const char *root_user,
			     const char *root_password);
enum dm_status cat_set_issuer(struct cat_db *db, const char *account);
/* Who a handle acts as, with the caller's own credentials (the mount's
 * per-uid handles, issue 11).  A REST catalog (https://) authenticates with
 * them (an X.509 proxy, or a certificate and key, or a bearer token file
 * whose content is sent as Rucio's auth token) and acts as `account`, or as
 * the identity's default account when it is NULL; a local store uses only
 * `account` (cat_set_issuer's rules: who may act as whom).  NULL
 * credential fields keep what the handle was opened with (rucio.cfg,
 * flags); a NULL account keeps it too unless credentials are given (then it
 * is that identity's default account).  The strings are copied. */
struct cat_creds {
	const char *account;
	const char *x509_proxy;  /* RFC 3820 proxy: certificate chain and key */
	const char *client_cert; /* PEM certificate ... */
	const char *client_key;  /* ... and its key */
	const char *token_file;  /* a file holding a token */
};
enum dm_status cat_set_creds(struct cat_db *db, const struct cat_creds *c);
const char *cat_issuer(const struct cat_db *db);
int cat_issuer_is_admin(struct cat_db *db);

/* ---- validation (Rucio's patterns and lengths) ----
 * Each returns DM_OK or DM_EINVAL with the error filled (class
 * InputValidationError / InvalidObject naming the offending value). */
enum dm_status cat_validate_scope(const char *s, struct dm_err *err);
enum dm_status cat_validate_name(const char *s, struct dm_err *err);
enum dm_status cat_validate_account(const char *s, struct dm_err *err);
enum dm_status cat_validate_rse(const char *s, struct dm_err *err);
enum dm_status cat_validate_adler32(const char *s, struct dm_err *err);
enum dm_status cat_validate_md5(const char *s, struct dm_err *err);
/* Split "scope:name" into parts (buffers of CAT_SCOPE_MAX+1, CAT_NAME_MAX+1). */
enum dm_status cat_parse_did(const char *did, char *scope, char *name, struct dm_err *err);

/* ---- accounts ---- */
enum cat_account_type { CAT_ACCOUNT_USER, CAT_ACCOUNT_GROUP, CAT_ACCOUNT_SERVICE };
const char *cat_account_type_name(enum cat_account_type t);
int cat_account_type_parse(const char *s, enum cat_account_type *t);
struct cat_account {
	const char *account;
	enum cat_account_type type;
	const char *status; /* ACTIVE, SUSPENDED, DELETED */
	const char *email;
	int64_t created_at;
};
typedef int (*cat_account_cb)(void *ud, const struct cat_account *a);
enum dm_status cat_account_add(struct cat_db *db, const char *account,
			       enum cat_account_type type, const char *email);
enum dm_status cat_account_get(struct cat_db *db, const char *account,
			       cat_account_cb cb, void *ud);
enum dm_status cat_account_list(struct cat_db *db, cat_account_cb cb, void *ud);
enum dm_status cat_account_attr_set(struct cat_db *db, const char *account,
				    const char *key, const char *value);
enum dm_status cat_account_attr_del(struct cat_db *db, const char *account, const char *key);
typedef int (*cat_kv_cb)(void *ud, const char *key, const char *value);
enum dm_status cat_account_attr_list(struct cat_db *db, const char *account,
				     cat_kv_cb cb, void *ud);
/* 1 if the account has the attribute, 0 if not, <0 on error. */
int cat_account_has_attr(struct cat_db *db, const char *account, const char *key);
/* userpass identities: sha256(salt || password) with 255 random salt bytes. */
enum dm_status cat_identity_add_userpass(struct cat_db *db, const char *account,
					 const char *username, const char *password,
					 const char *email);
/* On success writes the account of the identity (buffer CAT_ACCOUNT_MAX+1). */
enum dm_status cat_identity_check_userpass(struct cat_db *db, const char *username,
					   const char *password, char *account);

/* LOCAL identities: the embedded mode's door.  The OS user who owns the
 * catalog file, and root, may act as any account; any other OS user acts
 * only as the accounts its user name is mapped to (the first mapping is its
 * default issuer), and an unmapped one may only read: every write is
 * AccessDenied naming the OS user.  Admin only. */
enum dm_status cat_identity_add_local(struct cat_db *db, const char *account,
				      const char *os_user);

/* ---- scopes ---- */
typedef int (*cat_scope_cb)(void *ud, const char *scope, const char *account);
enum dm_status cat_scope_add(struct cat_db *db, const char *scope, const char *account);
/* account NULL: all scopes. */
enum dm_status cat_scope_list(struct cat_db *db, const char *account, cat_scope_cb cb, void *ud);

/* ---- DIDs ---- */
enum cat_did_type { CAT_DID_FILE, CAT_DID_DATASET, CAT_DID_CONTAINER };
const char *cat_did_type_name(enum cat_did_type t);
int cat_did_type_parse(const char *s, enum cat_did_type *t);
struct cat_did {
	int64_t id;           /* catalog-local surrogate key, never reused (inode material) */
	const char *scope;
	const char *name;
	enum cat_did_type type;
	const char *account;
	int is_open;          /* collections */
	int monotonic;
	uint64_t bytes;       /* files: size; collections: sum over files (dynamic) */
	uint64_t length;      /* collections: number of direct children */
	const char *adler32;  /* files; NULL if unknown */
	const char *md5;      /* files; NULL if unknown */
	int64_t created_at;
	int64_t updated_at;
	int64_t expired_at;   /* 0 = no lifetime */
	int64_t closed_at;
	const char *availability; /* AVAILABLE, LOST, DELETED */
};
typedef int (*cat_did_cb)(void *ud, const struct cat_did *d);
/* Add a DATASET or CONTAINER (files come with replicas: cat_replicas_add).
 * lifetime in seconds, 0 = none. */
enum dm_status cat_did_add(struct cat_db *db, const char *scope, const char *name,
			   enum cat_did_type type, int64_t lifetime);
enum dm_status cat_did_get(struct cat_db *db, const char *scope, const char *name,
			   cat_did_cb cb, void *ud);
struct cat_did_ref {
	const char *scope;
	const char *name;
};
/* Attach children to a collection with Rucio's rules: DATASET takes FILEs,
 * CONTAINER takes DATASETs and CONTAINERs, never to a closed collection, no
 * cycles.  A child already attached is FileAlreadyExists/DuplicateContent
 * unless CAT_IGNORE_DUPLICATE. */
enum cat_attach_flags { CAT_IGNORE_DUPLICATE = 1 << 0 };
enum dm_status cat_did_attach(struct cat_db *db, const char *scope, const char *name,
			      const struct cat_did_ref *children, size_t n, unsigned flags);
enum dm_status cat_did_detach(struct cat_db *db, const char *scope, const char *name,
			      const struct cat_did_ref *children, size_t n);
enum dm_status cat_did_set_open(struct cat_db *db, const char *scope, const char *name,
				int open);
/* Lifetime in seconds from now; 0 clears it. */
enum dm_status cat_did_set_lifetime(struct cat_db *db, const char *scope, const char *name,
				    int64_t lifetime);
/* List DIDs of a scope whose name matches a wildcard pattern ('*'), of the
 * types in type_mask (1 << CAT_DID_*). */
enum dm_status cat_did_list(struct cat_db *db, const char *scope, const char *pattern,
			    unsigned type_mask, cat_did_cb cb, void *ud);
/* DIDs of a scope that have no parent (the top of the scope's tree). */
enum dm_status cat_did_list_roots(struct cat_db *db, const char *scope,
				  cat_did_cb cb, void *ud);
/* Direct children of a collection in attachment order (ascending id), in
 * constant memory; the _from variant resumes after the child with id
 * after_id (a readdir cursor). */
enum dm_status cat_did_list_content(struct cat_db *db, const char *scope, const char *name,
				    cat_did_cb cb, void *ud);
enum dm_status cat_did_list_content_from(struct cat_db *db, int64_t parent_id, int64_t after_id,
					 cat_did_cb cb, void *ud);
/* All files under a DID, recursively (a file lists itself). */
enum dm_status cat_did_list_files(struct cat_db *db, const char *scope, const char *name,
				  cat_did_cb cb, void *ud);
/* Direct parents of a DID. */
enum dm_status cat_did_list_parents(struct cat_db *db, const char *scope, const char *name,
				    cat_did_cb cb, void *ud);
/* Generic key/value metadata.  "lifetime" goes to cat_did_set_lifetime. */
enum dm_status cat_did_meta_set(struct cat_db *db, const char *scope, const char *name,
				const char *key, const char *value);
enum dm_status cat_did_meta_del(struct cat_db *db, const char *scope, const char *name,
				const char *key);
enum dm_status cat_did_meta_list(struct cat_db *db, const char *scope, const char *name,
				 cat_kv_cb cb, void *ud);

/* ---- RSEs ---- */
struct cat_rse {
	const char *id;   /* 32 hex */
	const char *rse;  /* name */
	const char *rse_type; /* DISK, TAPE */
	int deterministic;
	int volatile_;
	int staging_area;
	int availability_read;
	int availability_write;
	int availability_delete;
	const char *city;
	const char *country_name;
	const char *continent;
	const char *region_code;
	const char *time_zone;
	const char *isp;
	const char *asn;
	double latitude;
	double longitude;
	const char *qos_class;
};
typedef int (*cat_rse_cb)(void *ud, const struct cat_rse *r);
struct cat_rse_opts {
	const char *rse_type; /* NULL = DISK */
	int non_deterministic;
	int volatile_;
	int staging_area;
	const char *city, *country_name, *continent, *region_code, *time_zone, *isp, *asn;
};
enum dm_status cat_rse_add(struct cat_db *db, const char *rse, const struct cat_rse_opts *o);
enum dm_status cat_rse_get(struct cat_db *db, const char *rse, cat_rse_cb cb, void *ud);
enum dm_status cat_rse_list(struct cat_db *db, cat_rse_cb cb, void *ud);
/* Update a setting: availability_read/write/delete, deterministic, volatile,
 * staging_area, rse_type, city, ... (Rucio's update_rse keys). */
enum dm_status cat_rse_update(struct cat_db *db, const char *rse, const char *key,
			      const char *value);
enum dm_status cat_rse_attr_set(struct cat_db *db, const char *rse, const char *key,
				const char *value);
enum dm_status cat_rse_attr_del(struct cat_db *db, const char *rse, const char *key);
enum dm_status cat_rse_attr_list(struct cat_db *db, const char *rse, cat_kv_cb cb, void *ud);
/* Value of one attribute into out (size n); DM_ENOENT if the RSE lacks it. */
enum dm_status cat_rse_attr_get(struct cat_db *db, const char *rse, const char *key,
				char *out, size_t n);
/* Evaluate an RSE expression (catalog/rse_expr.h grammar) over the catalog's
 * RSEs; calls cb for each matching RSE in name order.  An empty result is
 * InvalidRSEExpression. */
enum dm_status cat_rse_expr_list(struct cat_db *db, const char *expression,
				 cat_rse_cb cb, void *ud);

/* Protocols.  Priorities: -1 = operation disabled (Rucio's null), 0 = best. */
enum cat_proto_op {
	CAT_OP_READ, CAT_OP_WRITE, CAT_OP_DELETE, CAT_OP_TPC_READ, CAT_OP_TPC_WRITE,
	CAT_OP_COUNT
};
enum cat_domain { CAT_LAN, CAT_WAN, CAT_DOMAIN_COUNT };
struct cat_protocol {
	const char *scheme;
	const char *hostname;
	int port;
	const char *prefix;
	const char *impl;
	int prio[CAT_DOMAIN_COUNT][CAT_OP_COUNT];
	const char *extended_attributes; /* JSON or NULL */
};
typedef int (*cat_protocol_cb)(void *ud, const struct cat_protocol *p);
/* Set every priority of *p to -1 except wan/lan read, write, delete and wan tpc = 1. */
void cat_protocol_defaults(struct cat_protocol *p);
enum dm_status cat_protocol_add(struct cat_db *db, const char *rse, const struct cat_protocol *p);
enum dm_status cat_protocol_del(struct cat_db *db, const char *rse, const char *scheme,
				const char *hostname, int port);
enum dm_status cat_protocol_list(struct cat_db *db, const char *rse, cat_protocol_cb cb, void *ud);

/* ---- LFN -> PFN ----
 * Deterministic path of scope:name on an RSE with the RSE's lfn2pfn_algorithm
 * attribute ("hash" by default, or "identity"), e.g. "mock/3c/26/file1". */
enum dm_status cat_lfn2path(const char *algorithm, const char *scope, const char *name,
			    struct dm_buf *out, struct dm_err *err);
/* Full PFN: scheme://host:port + prefix + path.  file:// has no port. */
void cat_pfn_join(const struct cat_protocol *p, const char *path, struct dm_buf *out);
/* PFN of scope:name on rse for an operation, with the best protocol for it
 * (lowest priority in the domain; scheme restricts when not NULL). */
enum dm_status cat_lfn2pfn(struct cat_db *db, const char *rse, const char *scope,
			   const char *name, const char *scheme, enum cat_proto_op op,
			   struct dm_buf *out);

/* ---- replicas ---- */
enum cat_replica_state {
	CAT_REPLICA_AVAILABLE, CAT_REPLICA_UNAVAILABLE, CAT_REPLICA_COPYING,
	CAT_REPLICA_BEING_DELETED, CAT_REPLICA_BAD, CAT_REPLICA_TEMPORARY_UNAVAILABLE,
};
const char *cat_replica_state_name(enum cat_replica_state s);
int cat_replica_state_parse(const char *s, enum cat_replica_state *st);
struct cat_replica {
	const char *scope;
	const char *name;
	const char *rse;
	const char *rse_id;
	uint64_t bytes;
	const char *adler32;
	const char *md5;
	const char *path;  /* non-deterministic RSEs, else NULL */
	enum cat_replica_state state;
	int64_t lock_cnt;
	int64_t tombstone; /* 0 = none (never eligible for deletion), 1 = OBSOLETE */
	int64_t created_at;
	int64_t accessed_at;
	const char *pfn;   /* a REST catalog: the server's best PFN for it; else NULL */
};
typedef int (*cat_replica_cb)(void *ud, const struct cat_replica *r);
struct cat_file_in {
	const char *scope;
	const char *name;
	uint64_t bytes;
	const char *adler32; /* required */
	const char *md5;     /* optional */
	const char *pfn;     /* optional; must match the deterministic PFN */
	int state;           /* enum cat_replica_state, or -1 for AVAILABLE */
};
enum cat_replica_flags {
	CAT_REPLICA_IGNORE_AVAILABILITY = 1 << 0,
};
/* Register replicas on an RSE, creating file DIDs that do not exist (an
 * existing file with other bytes/adler32 is FileConsistencyMismatch);
 * replicas that exist already are skipped.  If ds_scope/ds_name are given the
 * files are also attached to that dataset (duplicates ignored).  One
 * transaction. */
enum dm_status cat_replicas_add(struct cat_db *db, const char *rse, const struct cat_file_in *f,
				size_t n, const char *ds_scope, const char *ds_name,
				unsigned flags);
/* Bulk registration for millions of rows: begin, add row by row, commit.
 * Everything between begin and commit is one transaction; abort (or an
 * error from add) rolls it all back.  Memory stays constant. */
struct cat_bulk;
enum dm_status cat_bulk_begin(struct cat_db *db, const char *rse, const char *ds_scope,
			      const char *ds_name, unsigned flags, struct cat_bulk **out);
enum dm_status cat_bulk_add(struct cat_bulk *b, const struct cat_file_in *f);
enum dm_status cat_bulk_commit(struct cat_bulk *b, uint64_t *files_added);
void cat_bulk_abort(struct cat_bulk *b);
enum dm_status cat_replica_set_state(struct cat_db *db, const char *rse, const char *scope,
				     const char *name, enum cat_replica_state st);
enum dm_status cat_replica_del(struct cat_db *db, const char *rse, const char *scope,
			       const char *name);
/* Replicas of every file under a DID (rse NULL: all RSEs); states: mask of
 * 1 << CAT_REPLICA_*, 0 = AVAILABLE only. Ordered by (scope, name, rse). */
enum dm_status cat_replica_list(struct cat_db *db, const char *scope, const char *name,
				const char *rse, unsigned state_mask,
				cat_replica_cb cb, void *ud);

/* ---- limits and usage ---- */
/* bytes -1 = unlimited. */
enum dm_status cat_account_limit_set(struct cat_db *db, const char *account, const char *rse,
				     int64_t bytes);
enum dm_status cat_account_limit_get(struct cat_db *db, const char *account, const char *rse,
				     int64_t *bytes, int *is_set);
struct cat_usage {
	const char *account;
	const char *rse;
	uint64_t files;
	uint64_t bytes;
	int64_t limit;       /* -1 unlimited */
	int limit_set;
};
typedef int (*cat_usage_cb)(void *ud, const struct cat_usage *u);
enum dm_status cat_account_usage_list(struct cat_db *db, const char *account,
				      cat_usage_cb cb, void *ud);
/* Usage counters are applied asynchronously as in Rucio (abacus); this folds
 * pending deltas into account/RSE usage now. */
enum dm_status cat_usage_refresh(struct cat_db *db);
enum dm_status cat_rse_usage_list(struct cat_db *db, const char *rse, cat_usage_cb cb, void *ud);

/* ---- checking the catalog (catalog/check.c) ----
 * A damaged file (SQLite's CORRUPT / NOTADB) turns every call's error into
 * DatabaseException naming the file, and the handle refuses every write
 * from then on.  cat_quick_check() runs SQLite's quick check (one pass over
 * the file: for daemons at start-up); cat_check() runs the full integrity
 * check and the catalog's own invariants (catalog/check.c lists them),
 * calling cb once per finding with kind "integrity" or "invariant"; found
 * counts them.  Both only read. */
typedef int (*cat_check_cb)(void *ud, const char *kind, const char *text);
enum dm_status cat_check(struct cat_db *db, cat_check_cb cb, void *ud, uint64_t *found);
enum dm_status cat_quick_check(struct cat_db *db);
int cat_is_corrupt(const struct cat_db *db);

/* ---- X.509 identities (catalog/identity_x509.c; for didfs serve) ----
 * A DN mapped to an account (admin only; is_default picks the account when
 * the client names none).  _account: the account of a DN (want != NULL:
 * that one, if mapped), CannotAuthenticate if none. */
enum dm_status cat_identity_add_x509(struct cat_db *db, const char *account, const char *dn,
				     const char *email, int is_default);
enum dm_status cat_identity_x509_account(struct cat_db *db, const char *dn, const char *want,
					 char *account);

/* ==== per-block checksum manifests and suspicious replicas (manifest.c) ====
 * A manifest is the adler32 of every CAT_MANIFEST_CHUNK piece of a file (the
 * last one short); readers verify any range of whole pieces with it. */
#define CAT_MANIFEST_CHUNK (1u << 20)
struct cat_manifest {
	uint64_t bytes;  /* the file's size */
	uint32_t chunk;  /* CAT_MANIFEST_CHUNK */
	size_t n;        /* pieces: ceil(bytes / chunk) */
	uint32_t *sums;  /* adler32 per piece */
};
/* Build a manifest from a file's bytes fed in order. */
struct cat_manifest_builder {
	uint64_t bytes;
	size_t fill, n, cap;
	uint32_t cur;
	uint32_t *sums;
};
void cat_manifest_builder_init(struct cat_manifest_builder *b);
void cat_manifest_builder_add(struct cat_manifest_builder *b, const void *p, size_t len);
/* OUT: *out (free with cat_manifest_free); b is reset. */
void cat_manifest_builder_finish(struct cat_manifest_builder *b, struct cat_manifest *out);
void cat_manifest_free(struct cat_manifest *m);
size_t cat_manifest_count(uint64_t bytes);
/* adler32 of X||Y from adler32(X), adler32(Y) and |Y|. */
uint32_t cat_adler32_concat(uint32_t a1, uint32_t a2, uint64_t len2);
/* The whole file's adler32, combined from the pieces. */
uint32_t cat_manifest_adler32(const struct cat_manifest *m);
/* Whether [off, off+len) is made of whole pieces (the last may end at EOF). */
int cat_manifest_covers(const struct cat_manifest *m, uint64_t off, uint64_t len);
/* Verify buf = bytes [off, off+len): 0 all pieces match; 1 a mismatch (the
 * first bad piece's offset in *bad_off); -1 the range is not whole pieces. */
int cat_manifest_verify(const struct cat_manifest *m, uint64_t off, const void *buf, size_t len,
			uint64_t *bad_off);
/* Is m well formed and consistent with a file of `bytes` bytes and adler32
 * (NULL/"" skips that check)?  DM_EINVAL / DM_ECONFLICT (FileConsistencyMismatch). */
enum dm_status cat_manifest_check(const struct cat_manifest *m, uint64_t bytes, const char *adler32,
				  struct dm_err *err);
/* Record the manifest of a file: must match the DID's bytes and adler32
 * (FileConsistencyMismatch otherwise); an existing manifest is kept. */
enum dm_status cat_manifest_set(struct cat_db *db, const char *scope, const char *name,
				const struct cat_manifest *m);
/* *found = 0 when the file has none (or an unusable one). OUT: *out. */
enum dm_status cat_manifest_get(struct cat_db *db, const char *scope, const char *name,
				struct cat_manifest *out, int *found);
/* A reader found the replica's bytes differ from the file's checksums: a
 * SUSPICIOUS row in bad_replicas and the replica BAD (its locks STUCK, so
 * the repairer re-copies it from a good replica).  An already not-AVAILABLE
 * replica is left as it is (DM_OK); no replica there: ReplicaNotFound. */
enum dm_status cat_replica_declare_suspicious(struct cat_db *db, const char *rse,
					      const char *scope, const char *name,
					      const char *reason);
/* Declare a replica BAD (Rucio's declare_bad_file_replicas; admin only;
 * catalog/necromancer.c): a BAD row in bad_replicas with the reason, the
 * replica BAD, its locks STUCK (the repairer re-copies it from a good
 * replica; the necromancer marks the file LOST when none is left).
 * InvalidObject without a reason, ReplicaNotFound, AccessDenied. */
enum dm_status cat_replicas_declare_bad(struct cat_db *db, const char *rse, const char *scope,
					const char *name, const char *reason);
/* SUSPICIOUS declarations of a replica. */
enum dm_status cat_replica_suspicious_count(struct cat_db *db, const char *rse, const char *scope,
					    const char *name, int64_t *count);


/* ==== replication rules (catalog/rule.c) ====
 * Semantics and state machines are Rucio's (shared/reference/rucio.md
 * sections 5-8); the decisions themselves are pure functions in
 * catalog/policy.h.  The CLI, the mount and the REST server create and
 * inspect rules here; the daemons' side (judge units, request claims and
 * outcomes, reaper, undertaker, heartbeats) is catalog/engine.h.
 *
 * States
 *   rule:    REPLICATING -> OK | STUCK;  STUCK -> REPLICATING (repairer)
 *            -> SUSPENDED (stuck 14 days);  INJECT -> REPLICATING (injector)
 *   lock:    REPLICATING -> OK | STUCK
 *   request: QUEUED -> SUBMITTED -> DONE | FAILED;  FAILED -> QUEUED (retry,
 *            retry_count+1) while retry_count < max, else the lock is STUCK;
 *            NO_SOURCES when no replica can serve as source.
 *   replica: COPYING while a lock is REPLICATING; AVAILABLE when its
 *            transfer is DONE; UNAVAILABLE when transfers gave up.
 */
enum cat_rule_state {
	CAT_RULE_REPLICATING, CAT_RULE_OK, CAT_RULE_STUCK, CAT_RULE_SUSPENDED,
	CAT_RULE_WAITING_APPROVAL, CAT_RULE_INJECT,
};
enum cat_lock_state { CAT_LOCK_REPLICATING, CAT_LOCK_OK, CAT_LOCK_STUCK };
enum cat_grouping { CAT_GROUPING_ALL, CAT_GROUPING_DATASET, CAT_GROUPING_NONE };
enum cat_req_state {
	CAT_REQ_QUEUED, CAT_REQ_SUBMITTED, CAT_REQ_DONE, CAT_REQ_FAILED, CAT_REQ_NO_SOURCES,
	CAT_REQ_LOST,
};

const char *cat_rule_state_name(enum cat_rule_state s);
const char *cat_lock_state_name(enum cat_lock_state s);
const char *cat_grouping_name(enum cat_grouping g);
int cat_grouping_parse(const char *s, enum cat_grouping *g);
const char *cat_req_state_name(enum cat_req_state s);

/* ---- rules ---- */
struct cat_rule_opts {
	int copies;
	const char *rse_expression;
	enum cat_grouping grouping;      /* default DATASET (REST default) */
	const char *weight;              /* RSE attribute name, or NULL */
	int64_t lifetime;                /* seconds, 0 = none */
	int locked;
	const char *source_replica_expression;
	const char *activity;            /* default "User Subscriptions" */
	int purge_replicas;
	int ignore_availability;
	int ignore_account_limit;
	const char *comment;
	const char *notification;        /* YES, NO, CLOSE, PROGRESS; default NO */
	int asynchronous;                /* state INJECT, placed by the injector */
	int priority;                    /* default 3 */
};
void cat_rule_opts_init(struct cat_rule_opts *o);

struct cat_rule {
	const char *id;
	const char *scope;
	const char *name;
	enum cat_did_type did_type;
	const char *account;
	enum cat_rule_state state;
	const char *error;
	const char *rse_expression;
	int copies;
	enum cat_grouping grouping;
	const char *weight;
	int locked;
	const char *source_replica_expression;
	const char *activity;
	int purge_replicas;
	int ignore_availability;
	const char *comment;
	const char *notification;
	int64_t locks_ok_cnt, locks_replicating_cnt, locks_stuck_cnt;
	int64_t expires_at, created_at, updated_at, stuck_at;
	int priority;
};
typedef int (*cat_rule_cb)(void *ud, const struct cat_rule *r);

/* Create a rule on a DID for the issuer's account and place it (unless
 * asynchronous): locks, replicas and transfer requests, as Rucio's add_rule.
 * Unlike Rucio, large rules (length * copies >= 10000) are not forced
 * asynchronous: placing 100,000 locks takes seconds here.
 * Errors: InvalidRSEExpression, InsufficientTargetRSEs,
 * InsufficientAccountLimit, RSEWriteBlocked, DuplicateRule, InvalidRuleWeight,
 * DataIdentifierNotFound, InvalidValueForKey, InvalidSourceReplicaExpression.
 * id_out: 33 bytes. */
enum dm_status cat_rule_add(struct cat_db *db, const char *scope, const char *name,
			    const struct cat_rule_opts *o, char *id_out);
enum dm_status cat_rule_get(struct cat_db *db, const char *id, cat_rule_cb cb, void *ud);
/* Rules on a DID (scope/name), or of an account (account != NULL), or all. */
enum dm_status cat_rule_list(struct cat_db *db, const char *scope, const char *name,
			     const char *account, cat_rule_cb cb, void *ud);
/* Rules that cover a file through its parents (and on the file itself). */
enum dm_status cat_rule_list_for_file(struct cat_db *db, const char *scope, const char *name,
				      cat_rule_cb cb, void *ud);
/* Soft delete as Rucio's REST: expires_at = min(now + delay, expires_at)
 * and the judge-cleaner deletes it then; delay <= 0 hard-deletes at once.
 * purge: -1 keep the rule's flag, 0/1 override.  Locked rule:
 * UnsupportedOperation. */
enum dm_status cat_rule_delete(struct cat_db *db, const char *id, int purge, int64_t delay);
/* Hard delete: locks, dataset locks, requests, counters; replicas whose last
 * lock goes get their tombstone (OBSOLETE with purge_replicas). */
enum dm_status cat_rule_delete_now(struct cat_db *db, const char *id);
/* update-rule options: lifetime, locked, comment, activity, priority,
 * purge_replicas, state (only "STUCK" -> repair or "SUSPENDED"),
 * source_replica_expression. */
enum dm_status cat_rule_update(struct cat_db *db, const char *id, const char *key,
			       const char *value);

/* Per-RSE lock counts of a rule (rule-info). */
struct cat_lock_count {
	const char *rse;
	int64_t ok, replicating, stuck;
};
typedef int (*cat_lock_count_cb)(void *ud, const struct cat_lock_count *c);
enum dm_status cat_rule_lock_counts(struct cat_db *db, const char *id, cat_lock_count_cb cb,
				    void *ud);
struct cat_lock {
	const char *scope;
	const char *name;
	const char *rse;
	const char *rule_id;
	enum cat_lock_state state;
	uint64_t bytes;
};
typedef int (*cat_lock_cb)(void *ud, const struct cat_lock *l);
enum dm_status cat_rule_list_locks(struct cat_db *db, const char *id, cat_lock_cb cb, void *ud);

/* ---- transfer requests (list-transfers) and distances ---- */
struct cat_request {
	const char *id;
	const char *scope;
	const char *name;
	const char *dest_rse;
	const char *rule_id;
	const char *activity;
	enum cat_req_state state;
	uint64_t bytes;
	const char *adler32;
	const char *md5;
	int retry_count;
	const char *err_msg;
	const char *source_rse;   /* chosen source, once known */
	const char *last_processed_by;
	int64_t requested_at, submitted_at, transferred_at, updated_at;
	const char *source_replica_expression;
	const char *request_id;   /* of the REST request that added its rule, or NULL */
};
typedef int (*cat_request_cb)(void *ud, const struct cat_request *r);
/* Requests by state (mask of 1 << CAT_REQ_*; 0 = all), for list-transfers. */
enum dm_status cat_req_list(struct cat_db *db, unsigned state_mask, const char *rule_id,
			    cat_request_cb cb, void *ud);
/* Distance between two RSEs (source ranking; admin). */
enum dm_status cat_distance_set(struct cat_db *db, const char *src, const char *dst,
				int distance);

/* ---- the protocol for an operation ---- */
/* Best protocol of an RSE for an operation (lowest priority, wan first):
 * returns DM_ENOTSUP (RSEProtocolNotSupported) if none.  The strings in *p
 * are owned by the caller's buffer b (released with dm_buf_release). */
enum dm_status cat_rse_protocol_for(struct cat_db *db, const char *rse, enum cat_proto_op op,
				    const char *scheme, struct cat_protocol *p,
				    struct dm_buf *b);
/* ==== batches: several calls as one transaction (batch.c; for didfs serve) ====
 * cat_batch_begin opens a transaction that every following call on the
 * handle joins; cat_batch_end(db, rc) commits when rc is DM_OK (returning
 * the commit's status) and rolls all of it back otherwise (returning rc).
 * Batches nest (only the outermost end touches the store).  The caller must
 * stop at the first failed call: a failed call inside a batch is undone only
 * with the whole batch.  _depth: 0 when no transaction is open. */
enum dm_status cat_batch_begin(struct cat_db *db);
enum dm_status cat_batch_end(struct cat_db *db, enum dm_status rc);
int cat_batch_depth(const struct cat_db *db);

/* ==== serve listings (lists.c; for didfs serve) ====
 * An account's identities (AccountNotFound if it does not exist), and
 * dataset locks (Rucio's DatasetLock: one per rule, dataset and RSE) on an
 * RSE (rse != NULL; RSENotFound) or of a DID (rse NULL; an unknown DID
 * lists nothing, as Rucio).  length/bytes -1 when unknown. */
typedef int (*cat_identity_cb)(void *ud, const char *identity, const char *type, const char *email);
enum dm_status cat_identity_list(struct cat_db *db, const char *account, cat_identity_cb cb, void *ud);
struct cat_dataset_lock {
	const char *rse_id, *rse, *scope, *name, *rule_id, *account;
	const char *state; /* OK, REPLICATING, STUCK */
	int64_t length, bytes;
};
typedef int (*cat_dataset_lock_cb)(void *ud, const struct cat_dataset_lock *l);
enum dm_status cat_dataset_lock_list(struct cat_db *db, const char *rse, const char *scope,
				     const char *name, cat_dataset_lock_cb cb, void *ud);

/* DIDs of a scope as cat_did_list (name GLOB pattern, type_mask), each with
 * its metadata as a JSON object text {"key": "value", ...} when with_meta
 * (NULL when it has none, or without with_meta): for the REST search's
 * filters on metadata, evaluated row by row in constant memory. */
typedef int (*cat_did_meta_cb)(void *ud, const struct cat_did *d, const char *meta_json);
enum dm_status cat_did_search(struct cat_db *db, const char *scope, const char *pattern,
			      unsigned type_mask, int with_meta, cat_did_meta_cb cb, void *ud);

/* Ids of the rules that hold a lock on a file (Rucio's associated rules):
 * DataIdentifierNotFound for an unknown DID. */
typedef int (*cat_rule_id_cb)(void *ud, const char *rule_id);
enum dm_status cat_file_rule_ids(struct cat_db *db, const char *scope, const char *name,
				 cat_rule_id_cb cb, void *ud);

/* ==== monitoring overview (overview.c; for the web UI of didfs serve) ====
 * Admin only (AccessDenied otherwise).  Every call is bounded: limits are
 * clamped to CAT_OV_MAX_LIMIT and pages continue from a keyset cursor
 * (rules: the previous page's last cursor as `before`; DIDs, RSEs: the last
 * name as `after`). */
#define CAT_OV_MAX_LIMIT 500
#define CAT_OV_LOCK_SCAN 100000   /* locks of one rule counted per RSE at most */
#define CAT_OV_QUEUE_SCAN 10000   /* live requests counted at most */
struct cat_ov_rule_filter {
	int state;            /* enum cat_rule_state, or -1 for all */
	const char *account;  /* NULL/"" = all */
	const char *scope;    /* NULL/"" = all */
	const char *id;       /* one rule, or NULL */
	int64_t before;       /* cursor: rules older than this one; 0 = newest */
	int limit;
};
struct cat_ov_rule {
	int64_t cursor;
	const char *id, *scope, *name, *account, *error, *rse_expression;
	enum cat_did_type did_type;
	enum cat_rule_state state;
	int copies;
	int64_t locks_ok, locks_replicating, locks_stuck;
	int64_t created_at, updated_at, stuck_at, expires_at;
};
typedef int (*cat_ov_rule_cb)(void *ud, const struct cat_ov_rule *r);
/* Rules newest first. */
enum dm_status cat_ov_rules(struct cat_db *db, const struct cat_ov_rule_filter *f,
			    cat_ov_rule_cb cb, void *ud);
struct cat_ov_rule_rse {
	const char *rse;
	int64_t ok, replicating, stuck;
};
typedef int (*cat_ov_rule_rse_cb)(void *ud, const struct cat_ov_rule_rse *c);
/* Lock counts of a rule per RSE over its first `scan` locks (at most
 * CAT_OV_LOCK_SCAN; <= 0: that many); *capped = 1 when there were more. */
enum dm_status cat_ov_rule_rses(struct cat_db *db, const char *rule_id, int scan,
				cat_ov_rule_rse_cb cb, void *ud, int *capped);
struct cat_ov_stuck {
	const char *scope, *name, *rse;
	const char *reason;   /* the transfer's last error, or NULL */
	int repair_cnt;
	int64_t updated_at;
};
typedef int (*cat_ov_stuck_cb)(void *ud, const struct cat_ov_stuck *s);
enum dm_status cat_ov_stuck_locks(struct cat_db *db, const char *rule_id, int limit,
				  cat_ov_stuck_cb cb, void *ud);
/* Finished transfers since `since` per (source, destination): done files
 * and bytes, failures (FAILED, NO_SOURCES, LOST), retries, seconds spent in
 * successful transfers.  source "" when none was recorded. */
struct cat_ov_transfer {
	const char *source, *dest;
	uint64_t files, bytes, failures, retries;
	int64_t busy_seconds, last_at;
};
typedef int (*cat_ov_transfer_cb)(void *ud, const struct cat_ov_transfer *t);
enum dm_status cat_ov_transfers(struct cat_db *db, int64_t since, cat_ov_transfer_cb cb, void *ud);
/* Live requests (QUEUED, SUBMITTED) per destination RSE, counted over the
 * first CAT_OV_QUEUE_SCAN of them (*capped = 1 when there were more). */
typedef int (*cat_ov_queued_cb)(void *ud, const char *dest, int64_t queued, int64_t submitted);
enum dm_status cat_ov_queued(struct cat_db *db, cat_ov_queued_cb cb, void *ud, int *capped);
/* RSEs by name with usage as the abacus last counted it (at usage_at; the
 * pending counter rows are not summed: unbounded until the abacus runs) and
 * limits; -1 where a limit or the storage's free space is not known. */
struct cat_ov_rse {
	const char *rse, *rse_type;
	int availability_read, availability_write, availability_delete;
	int64_t used, files, max_space, min_free, storage_free, usage_at;
	int protocols;
};
typedef int (*cat_ov_rse_cb)(void *ud, const struct cat_ov_rse *r);
enum dm_status cat_ov_rses(struct cat_db *db, const char *after, int limit, cat_ov_rse_cb cb, void *ud);
/* Accounts with a quota or a usage on an RSE (limit_set 0: no quota). */
enum dm_status cat_ov_rse_accounts(struct cat_db *db, const char *rse, int limit,
				   cat_usage_cb cb, void *ud);
struct cat_ov_heartbeat {
	const char *executable, *hostname;
	int64_t pid;
	int thread;
	int64_t created_at, updated_at;
};
typedef int (*cat_ov_heartbeat_cb)(void *ud, const struct cat_ov_heartbeat *h);
enum dm_status cat_ov_heartbeats(struct cat_db *db, int limit, cat_ov_heartbeat_cb cb, void *ud);
/* DIDs of a scope by name, from prefix (NULL: all) and after the cursor,
 * and one DID (DataIdentifierNotFound): rows carry id, scope, name,
 * account, type, bytes (files only: a collection's would be a sum over all
 * its files), adler32, md5, is_open, created_at, expired_at, and length:
 * a collection's children counted up to CAT_OV_CHILD_COUNT_LIST + 1 (a
 * list) or CAT_OV_CHILD_COUNT + 1 (one DID), so "more than" shows as one
 * more than the cap. */
#define CAT_OV_CHILD_COUNT_LIST 1000
#define CAT_OV_CHILD_COUNT 100000
enum dm_status cat_ov_dids(struct cat_db *db, const char *scope, const char *prefix,
			   const char *after, int limit, cat_did_cb cb, void *ud);
enum dm_status cat_ov_did(struct cat_db *db, const char *scope, const char *name, cat_did_cb cb,
			  void *ud);
/* ==== subscriptions (catalog/subscription.c) ====
 * Rucio's subscriptions: a filter (JSON object: pattern, excluded_pattern,
 * scope, account, did_type, min/max_avg_file_size, metadata keys) and a
 * JSON list of rules ({copies, rse_expression, lifetime, activity,
 * grouping, ...}) that the transmogrifier applies once to every new DID that
 * matches.  Admin only (Rucio's generic policy).  Errors: InvalidObject
 * naming what did not parse, SubscriptionDuplicate, SubscriptionNotFound. */
struct cat_subscription {
	const char *id, *name, *account, *filter, *replication_rules, *comments;
	const char *state; /* ACTIVE, INACTIVE, NEW, UPDATED, BROKEN */
	int policyid, retroactive;
	int64_t last_processed, lifetime, expired_at, created_at, updated_at; /* 0: none */
};
typedef int (*cat_subscription_cb)(void *ud, const struct cat_subscription *s);
/* lifetime_days 0: none; priority 0: 3.  id_out: 33 bytes or NULL. */
enum dm_status cat_subscription_add(struct cat_db *db, const char *name, const char *account,
				    const char *filter_json, const char *rules_json,
				    const char *comments, int64_t lifetime_days, int priority,
				    char *id_out);
/* NULL / -1 fields are kept; state NULL sets UPDATED (Rucio), "INACTIVE"
 * (or "I") deactivates, "ACTIVE" reactivates. */
struct cat_subscription_update {
	const char *filter, *rules, *comments, *state;
	int64_t lifetime_days;
	int priority;
};
void cat_subscription_update_init(struct cat_subscription_update *u);
enum dm_status cat_subscription_update(struct cat_db *db, const char *name, const char *account,
				       const struct cat_subscription_update *u);
/* By name and/or account (NULL: any; account may hold Rucio's '*');
 * SubscriptionNotFound when none. */
enum dm_status cat_subscription_list(struct cat_db *db, const char *name, const char *account,
				     cat_subscription_cb cb, void *ud);
enum dm_status cat_subscription_get_id(struct cat_db *db, const char *id, cat_subscription_cb cb,
				       void *ud);
/* The ids of the rules a subscription made. */
enum dm_status cat_subscription_rule_ids(struct cat_db *db, const char *name, const char *account,
					 cat_rule_id_cb cb, void *ud);
/* Validate a filter and/or rules (NULL: not checked) without a catalog;
 * the normalized JSON (compact, sorted keys) into nfilter / nrules if not
 * NULL.  DM_EINVAL with err (InvalidObject) naming the key. */
enum dm_status cat_subscription_check(const char *filter_json, const char *rules_json,
				      struct dm_buf *nfilter, struct dm_buf *nrules,
				      struct dm_err *err);
/* One rule as JSON, or the short form "COPIES RSE_EXPRESSION [key=value...]",
 * validated and appended to out as JSON object(s), comma-separated. */
enum dm_status cat_subscription_rule_text(const char *text, struct dm_buf *out,
					  struct dm_err *err);
/* "ACTIVE" for "A", ... */
const char *cat_subscription_state_name(const char *code);
/* ==== the REST catalog (https://; catalog/rest/) and its local cache ====
 * cat_open("https://host[:port]") opens a Rucio REST server as the catalog:
 * the configuration is Rucio's rucio.cfg ([client]: $RUCIO_CONFIG, else
 * $RUCIO_HOME/etc/rucio.cfg, else /opt/rucio/etc/rucio.cfg), the URI gives
 * the host, $RUCIO_ACCOUNT / cat_set_issuer() / cat_set_creds() the account
 * and credentials, $DIDFS_TIMEOUT the seconds per call (default 60).  Calls
 * a REST server cannot serve fail with DM_ENOTSUP, class
 * UnsupportedOperation, "<call> is not available over a REST catalog
 * (https://host)".  Errors the server sends keep Rucio's class and message
 * (so texts match the local store's).
 *
 * Offline: when the server cannot be reached the call fails with DM_EIO and
 * class "ServerUnreachable" (the mount: ENOTCONN/EIO), within the timeout,
 * and while the server stays down further calls fail at once for a short
 * back-off (1 s doubling to 30 s) instead of waiting again; what the cache
 * holds is served meanwhile, even past its TTL, and a cached negative entry
 * is DM_ENOENT as online.
 *
 * The cache is one SQLite file per server URL: $DIDFS_REST_CACHE (a file
 * path, or "off"), else $DIDFS_CACHE_DIR/catalog-<hash>.db (the mount's
 * --cache-dir), else $XDG_CACHE_HOME/didfs/ (~/.cache/didfs/).  Its bound is
 * $DIDFS_REST_CACHE_SIZE (bytes, 10G-style; default 256M; least recently
 * used entries go first), open datasets/containers are re-validated after
 * $DIDFS_REST_TTL seconds (default 5), closed ones and files are kept
 * (re-validated after a day).  cat_cache_stats() tells what it holds (for
 * user.rucio.cache / user.rucio.stats on the mount's /).  A local store
 * answers remote = 0 and zeros.  Strings point into the handle, valid until
 * the next call on it.
 *
 * DID ids over REST (cat_did.id) are a 63-bit hash of "scope:name", the
 * same in every process; cat_did_list_content_from() finds the parent by
 * id in the handle's cache (a DID seen through it: listed or looked up),
 * DataIdentifierNotFound otherwise, and resumes after the child with
 * after_id in the server's order. */
struct cat_cache_stats {
	int remote;               /* 1: a REST catalog */
	const char *server;       /* https://host:port, or NULL */
	const char *path;         /* the cache file, or NULL (none / off) */
	uint64_t entries;         /* namespace entries (DIDs and scopes), incl. negatives */
	uint64_t negative;        /* of which "does not exist" */
	uint64_t replicas;        /* cached replica rows (with PFNs) */
	uint64_t bytes;           /* size of the cache file */
	uint64_t limit;           /* its bound */
	int64_t oldest_fill, newest_fill; /* epoch seconds of fills; 0 when empty */
	double ttl;               /* seconds before an open collection is re-validated */
	int reachable;            /* 0: the last call could not reach the server */
	uint64_t requests;        /* REST requests made by this handle */
	uint64_t hits, misses;    /* look-ups served from the cache / from the server */
	struct dm_err last_error; /* the last failed call's error (code 0: none) */
};
enum dm_status cat_cache_stats(struct cat_db *db, struct cat_cache_stats *out);
/* ==== the auditor's dump (audit.c; for didfs audit) ====
 * Every replica on an RSE, whatever its state (path set on
 * non-deterministic RSEs only), in no particular order, streamed in
 * constant memory.  RSENotFound for an unknown RSE. */
enum dm_status cat_rse_replica_dump(struct cat_db *db, const char *rse, cat_replica_cb cb,
				    void *ud);

#endif
