/* SPDX-License-Identifier: Apache-2.0 */
/*
 * blockcache.h - the persistent block cache under the FUSE mount (prefix fs_bc_).
 *
 * A file is identified by a key string (the mount passes "scope:name:adler32";
 * Rucio file content never changes, so a key names immutable bytes) and its
 * size.  Its bytes are cached in fixed-size blocks (1-16 MiB, default 4 MiB,
 * the last block short) in one sparse data file per key, beside a small
 * metadata file holding the key, size, block size and one 8-byte slot per
 * block (presence and that block's adler32).  The cache survives restarts:
 * fs_bc_open() scans its directory, rebuilds the index and the size
 * accounting, and drops whatever is inconsistent.
 *
 * Guarantees the FUSE front-end can rely on:
 *  - Hard limit: bytes of stored blocks plus bytes reserved by fetches in
 *    progress never exceed max_bytes.  Eviction (LRU by block) happens at
 *    insertion time.  Blocks being read or fetched are pinned; when nothing
 *    evictable is left, a read is served straight from the source into the
 *    caller's buffer without caching ("pass-through").
 *  - Ranged: a read fetches only the blocks it touches (plus prefetch).
 *  - Single flight: concurrent readers of a missing block share one fetch; a
 *    failed fetch fails every waiter with the fetch's error.
 *  - Never waits forever: fetches carry the caller's timeout (the fetch
 *    callback must time out itself); waiters wake when the fetch ends, and
 *    give up with DM_ETIMEDOUT after wait_timeout_ms in any case.
 *  - Per-block checks are the fetch callback's (the mount verifies against
 *    per-piece manifests before it returns); a callback that did so hands
 *    the block's adler32 over with fs_bc_fetch_adler() and the cache does
 *    not hash the block again.
 *  - Whole-file adler32: once every block of a file has been stored at least
 *    once, the per-block adler32 values are combined and compared with the
 *    value given at fs_bc_file_open(); on mismatch the file's blocks are
 *    dropped and reads of every open handle of it fail once with DM_EIO,
 *    class "ChecksumMismatch".
 *
 * Threading: every function is thread-safe except that a handle must not be
 * used after (or concurrently with) fs_bc_file_close(), and the cache must
 * not be closed while handles are open.  The fetch callback is called from
 * reader threads and from the cache's prefetch threads, possibly
 * concurrently for different offsets of one handle.
 */
#ifndef FS_BLOCKCACHE_H
#define FS_BLOCKCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "dm.h"

#define FS_BC_BLOCK_MIN (1u << 20)
#define FS_BC_BLOCK_MAX (16u << 20)
#define FS_BC_BLOCK_DEFAULT (4u << 20)
#define FS_BC_KEY_MAX 4000

/*
 * Read up to len bytes of the file at off into buf; *got = bytes read (short
 * only at end of file).  Must end within its own timeout and fill err on
 * failure.  ud is the pointer given to fs_bc_file_open().
 */
typedef enum dm_status (*fs_bc_fetch_fn)(void *ud, uint64_t off, void *buf, size_t len,
					 size_t *got, struct dm_err *err);
/*
 * Called by a fetch callback, before it returns DM_OK with all len bytes,
 * that already knows their adler32 (it verified them against per-piece
 * checksums): the cache then does not hash the block again.  Per thread,
 * for the current callback only.
 */
void fs_bc_fetch_adler(uint32_t adler);

/* Zero means "default" for every field except dir and max_bytes. */
struct fs_bc_config {
	const char *dir;              /* cache directory, created if missing */
	uint64_t max_bytes;           /* hard limit on cached bytes (> 0) */
	uint32_t block_size;          /* new files: 1-16 MiB, multiple of 4 KiB (4 MiB) */
	unsigned prefetch_threads;    /* prefetch worker threads (2) */
	unsigned prefetch_max_blocks; /* largest prefetch window per handle (8) */
	int no_prefetch;              /* disable prefetch entirely */
	unsigned prefetch_queue;      /* bounded prefetch queue length (64) */
	uint64_t seq_tolerance;       /* bytes around the stream's high-water mark
				       * still counted as sequential (16 MiB) */
	unsigned wait_timeout_ms;     /* longest wait for another thread's fetch (600000) */
	int no_sync;                  /* skip fdatasync before marking blocks present
				       * and after unmarking them (the mount does:
				       * blocks found at open are verified against
				       * their adler32 before first use anyway) */
	int keep_pages;               /* keep the data files' pages in the kernel's
				       * page cache after sequential reads (by
				       * default they are dropped behind the
				       * stream: the reader's own page cache, the
				       * FUSE file's, already holds those bytes) */
};

struct fs_bc_stats {
	uint64_t max_bytes;
	uint64_t bytes_cached;      /* bytes of stored (present) blocks */
	uint64_t bytes_reserved;    /* bytes reserved by fetches in progress */
	uint64_t files;             /* files with an index entry */
	uint64_t hits;              /* block accesses served from stored data */
	uint64_t misses;            /* block accesses that fetched or waited for a fetch */
	uint64_t fetches;           /* block fetches started (readers, prefetch, pass-through) */
	uint64_t fetch_errors;
	uint64_t prefetches;        /* of fetches, started by prefetch */
	uint64_t prefetch_wasted;   /* prefetched blocks evicted before being read */
	uint64_t prefetch_resets;   /* sequential streams broken by a random jump */
	uint64_t prefetch_dropped;  /* prefetch requests refused: queue full */
	uint64_t prefetch_skipped;  /* prefetch jobs skipped: no room without evicting
				     * unread prefetched blocks */
	uint64_t prefetch_queued;   /* jobs waiting now */
	uint64_t prefetch_running;  /* jobs running now */
	uint64_t evictions;         /* blocks evicted (LRU, drops, damage) */
	uint64_t passthrough;       /* block reads served without caching */
	uint64_t checksum_ok;       /* whole-file adler32 verifications passed */
	uint64_t checksum_failures; /* whole-file or per-block mismatches */
	uint64_t pages_dropped;     /* blocks whose page-cache pages were dropped
				     * behind a sequential stream */
};

struct fs_bc;
struct fs_bc_file;

/**
 * Open (creating if needed) the cache in cfg->dir, rebuild the index from
 * what is on disk and start the prefetch threads.  The directory is locked
 * (flock on <dir>/LOCK): a second cache on the same directory fails with
 * DM_EEXIST.  OUT: *out, freed by fs_bc_close().
 */
enum dm_status fs_bc_open(const struct fs_bc_config *cfg, struct fs_bc **out,
			  struct dm_err *err);
/** Stop prefetching and free the cache; all handles must be closed. */
void fs_bc_close(struct fs_bc *bc);

/**
 * Open a handle on the file `key` of `size` bytes.  adler32 (8 hex digits,
 * or NULL) is the expected whole-file checksum.  fetch/ud read the file from
 * its source; ud must stay valid until fs_bc_file_close() returns.  A cached
 * entry of the same key but another size is discarded if unused, else
 * DM_ECONFLICT.  OUT: *out, freed by fs_bc_file_close().
 */
enum dm_status fs_bc_file_open(struct fs_bc *bc, const char *key, uint64_t size,
			       const char *adler32, fs_bc_fetch_fn fetch, void *ud,
			       struct fs_bc_file **out, struct dm_err *err);
/**
 * Close a handle: cancel its queued prefetches and wait for its running ones
 * (each bounded by the fetch callback's timeout).
 */
void fs_bc_file_close(struct fs_bc *bc, struct fs_bc_file *f);

/**
 * Read up to len bytes at off.  *got is len, or less at end of file only.
 * Fetches missing blocks (sharing fetches with other readers), stores them
 * if the limit allows, copies out, and feeds the handle's prefetcher.
 * Returns DM_OK, the fetch's error, DM_ETIMEDOUT, or DM_EIO
 * ("ChecksumMismatch") once per handle after a whole-file mismatch.
 */
enum dm_status fs_bc_read(struct fs_bc *bc, struct fs_bc_file *f, void *buf, size_t len,
			  uint64_t off, size_t *got, struct dm_err *err);

/** Count a mismatch the fetch callback found itself (per-piece manifests). */
void fs_bc_note_checksum_failure(struct fs_bc *bc);
/** Snapshot of the counters. OUT: *st. */
void fs_bc_get_stats(struct fs_bc *bc, struct fs_bc_stats *st);
/** Bytes of `key` held locally (the user.rucio.cache xattr); 0 if none. */
uint64_t fs_bc_cached_bytes(struct fs_bc *bc, const char *key);
/** Drop every cached block of `key` (pinned blocks go when unpinned). */
enum dm_status fs_bc_drop(struct fs_bc *bc, const char *key, struct dm_err *err);
/** Current prefetch window of a handle, in blocks (0: not sequential). */
unsigned fs_bc_file_prefetch_window(struct fs_bc *bc, struct fs_bc_file *f);
/**
 * Walk the whole index and check the accounting invariants (for tests and a
 * future fsck); DM_EINTERNAL with a description of the first violation.
 */
enum dm_status fs_bc_check(struct fs_bc *bc, struct dm_err *err);

#endif
