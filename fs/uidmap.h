/* SPDX-License-Identifier: Apache-2.0 */
/*
 * uidmap.h - the pure parts of "each local user acts as themselves" (issue
 * 11, item 5), kept apart from FUSE so that unit tests and the fuzz target
 * (tests/fuzz/fuzz_uidmap.c) reach them: the --uid-map file (which account a
 * local uid acts as), its safety check, and reading one variable out of a
 * process's environment block (/proc/<pid>/environ).  fs/users.c uses them
 * to decide who a FUSE request comes from and what it may do.
 *
 * The map file: one entry a line, "<uid-or-user> <account>", fields
 * separated by blanks; '#' starts a comment; blank lines are skipped; LF
 * and CRLF line ends.  A user name is resolved to its uid when the map is
 * loaded (an unknown name is an error).  A uid may appear once.  Accounts
 * follow Rucio's pattern (^[a-z0-9-_]+$, at most 25 characters).  Any line
 * that does not parse is an error naming the file and line; nothing of a
 * bad map is used.
 */
#ifndef FS_UIDMAP_H
#define FS_UIDMAP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "catalog.h"
#include "dm.h"

#define FS_UIDMAP_MAX_BYTES (1u << 20) /* a larger map file is refused */
#define FS_UIDMAP_MAX_LINE 4096

struct fs_uidmap_ent {
	uint32_t uid;
	unsigned line; /* where it was given */
	char account[CAT_ACCOUNT_MAX + 1];
};

struct fs_uidmap {
	struct fs_uidmap_ent *v; /* sorted by uid */
	size_t n;
};

/* Resolve a user name to its uid: 0 when found. */
typedef int (*fs_uidmap_resolve_fn)(const char *user, uint32_t *uid, void *ud);

/* Parse the text of a map file (len bytes, need not be NUL-terminated);
 * origin names it in errors.  resolve may be NULL (then names are errors). */
enum dm_status fs_uidmap_parse(const char *text, size_t len, const char *origin,
			       fs_uidmap_resolve_fn resolve, void *ud, struct fs_uidmap *out,
			       struct dm_err *err);
/* Open, check and parse a map file: a regular file of at most
 * FS_UIDMAP_MAX_BYTES, owned by root or by `owner`, not writable by group or
 * others (a map anyone else can change would let them choose accounts).
 * Names are resolved with getpwnam_r. */
enum dm_status fs_uidmap_load(const char *path, uid_t owner, struct fs_uidmap *out,
			      struct dm_err *err);
/* The account of uid, or NULL. */
const char *fs_uidmap_find(const struct fs_uidmap *m, uint32_t uid);
void fs_uidmap_free(struct fs_uidmap *m);

/* In an environment block (NUL-separated KEY=VALUE strings, len bytes, the
 * last one possibly unterminated), the value of key: a pointer into buf and
 * its length in *vlen, or NULL.  The first definition wins, as getenv()
 * does. */
const char *fs_environ_find(const char *buf, size_t len, const char *key, size_t *vlen);

#endif
