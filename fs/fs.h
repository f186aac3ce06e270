/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fs.h - the FUSE mount of didfs (prefix fs_), as tools/ sees it: one call
 * that mounts a catalog on a directory and serves it until unmounted.
 *
 * The mount shows scopes, containers, datasets and files as a directory
 * tree (fs/ns.c), reads file bytes on demand from the best replica through
 * the persistent block cache (fs/data.c, fs/blockcache.c), exposes catalog
 * metadata and takes replication rules through extended attributes
 * (fs/xattr.c), and lets each local user act as themselves: changes act as
 * the calling uid's account from the --uid-map file or its own credentials
 * (fs/users.c, fs/uidmap.c).  The catalog is a local file or a REST server
 * (--server, catalog/rest/).  fs/mount.c holds the session, the options and
 * the process life cycle.  Everything else of fs/ is internal (fs_i.h).
 */
#ifndef FS_H
#define FS_H

#include <stdint.h>

#include "dm.h"

struct fs_opts {
	const char *catalog;      /* catalog URI or path (cat_open; threads reopen cat_location) */
	const char *account;      /* issuer for rules and metadata; NULL = root */
	const char *mountpoint;
	const char *cache_dir;    /* NULL: $DIDFS_CACHE_DIR, $XDG_CACHE_HOME/didfs, ~/.cache/didfs */
	uint64_t cache_size;      /* hard limit of the block cache (0: 10 GiB) */
	uint32_t block_size;      /* block cache block size (0: 4 MiB) */
	int timeout_s;            /* a storage request ends within this (0: 60) */
	int threads;              /* FUSE worker threads (0: 2 per CPU, 2..16) */
	int io_threads;           /* threads waiting on storage for reads (0: 8) */
	int foreground;           /* do not detach */
	const char *site;         /* replicas on RSEs whose `site` attribute matches go first */
	int allow_other;          /* let other users see the mount */
	const char *ca_path;      /* CA directory for https/roots (NULL: $X509_CERT_DIR) */
	int debug;                /* debug logging (and libfuse's request trace) */
	const char *log_file;     /* NULL: stderr in the foreground, <cache_dir>/mount.log else */
	unsigned read_ahead_kb;   /* kernel readahead of the mount (0: 16384) */
	double dir_ttl;           /* kernel cache time of changing things (0: 5 s) */
	const char *metrics;      /* --metrics ADDR:PORT: Prometheus /metrics (fsmetrics.c) */
	const char *uid_map;      /* uid -> account map file (fs/uidmap.h), NULL: none */
};

/*
 * Mount o->mountpoint and serve it until it is unmounted (fusermount3 -u,
 * umount, SIGTERM, SIGINT).  Unless o->foreground, the process forks: the
 * parent returns 0 once the mount is ready (or fails with the child's error)
 * and the child serves; fs_mount() returns in both.  *is_child tells which.
 * Returns DM_OK after a clean unmount (or in the parent after a successful
 * start); on failure err names what went wrong.
 */
enum dm_status fs_mount(const struct fs_opts *o, int *is_child, struct dm_err *err);

#endif
