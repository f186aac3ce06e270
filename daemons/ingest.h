/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ingest.h - watch-folder ingest (prefix ing_): files dropped into an
 * interface directory of an RSE's storage are verified, described and
 * registered (`didfs ingest`, tools/cli_ingest.c; the engine is
 * daemons/ingest.c, the parsers of outside input daemons/ingest_parse.c).
 *
 * The parsers here are pure (no catalog, no I/O) so that unit tests and the
 * fuzz target (tests/fuzz/fuzz_ingest.c) drive them directly:
 *   - a trigger file: key=value lines ('#' comments) or one JSON object;
 *     adler32, md5 and bytes (also "size"/"filesize") are the file's
 *     checksums, every other key is metadata (JSON: a "meta" or "metadata"
 *     object, or other top-level scalars);
 *   - an extractor's output: key=value lines;
 *   - a dataset name pattern: text with {KEY} placeholders.
 * Errors are InputValidationError (InvalidMetadata for a key Rucio would
 * refuse) naming the line and what was wrong.
 */
#ifndef DMN_INGEST_H
#define DMN_INGEST_H

#include <stddef.h>
#include <stdint.h>

#include "dm.h"

/* Limits of outside input. */
#define ING_TRIGGER_MAX (64 * 1024)   /* bytes of one trigger file */
#define ING_EXTRACT_MAX (1024 * 1024) /* bytes of an extractor's output */
#define ING_META_MAX 256              /* metadata keys per file */
#define ING_KEY_MAX 255
#define ING_VALUE_MAX 3999

struct ing_meta {
	size_t n;
	char *key[ING_META_MAX];
	char *value[ING_META_MAX];
};
void ing_meta_free(struct ing_meta *m);
/* The value of key, NULL if absent. */
const char *ing_meta_get(const struct ing_meta *m, const char *key);
/* Set key (replacing an existing value); DM_EINVAL when the key or value
 * is not one Rucio takes, or there are too many. */
enum dm_status ing_meta_set(struct ing_meta *m, const char *key, const char *value,
			    struct dm_err *err);

struct ing_trigger {
	int has_bytes;
	uint64_t bytes;
	char adler32[9]; /* "" when not given */
	char md5[33];    /* "" when not given */
	struct ing_meta meta;
};
/* Parse a trigger file's text (not NUL-terminated, len bytes).  On error t
 * holds nothing (freed) and err names the line. */
enum dm_status ing_trigger_parse(const char *text, size_t len, struct ing_trigger *t,
				 struct dm_err *err);
void ing_trigger_free(struct ing_trigger *t);

/* Parse key=value lines (an extractor's output) into m (added to what it
 * holds; a key given twice is an error).  origin names the source. */
enum dm_status ing_kv_parse(const char *text, size_t len, const char *origin,
			    struct ing_meta *m, struct dm_err *err);

/* Expand {KEY} in pattern by lookup (NULL: the key is missing, an error
 * naming it); "{{" and "}}" are literal braces.  OUT: appended to *out. */
typedef const char *(*ing_lookup_fn)(void *ud, const char *key);
enum dm_status ing_pattern_expand(const char *pattern, ing_lookup_fn lookup, void *ud,
				  struct dm_buf *out, struct dm_err *err);

/* ---- the engine (ingest.c) ---- */
struct cat_db;
struct ing_config;
struct ing_stats {
	uint64_t registered;   /* files registered by this run */
	uint64_t already;      /* seen again, already registered: left as they were */
	uint64_t failed;       /* set aside into .failed/ with a .reason */
	uint64_t waiting;      /* not taken yet (no trigger, not quiet, data missing) */
	uint64_t bytes;
	uint64_t datasets;     /* datasets created (with their rules) */
};
/* Parse an ingest configuration file (see ingest.c for the keys); NULL on
 * error (err names FILE:LINE). */
struct ing_config *ing_config_load(const char *path, struct dm_err *err);
void ing_config_free(struct ing_config *c);
/* The catalog URI the file names ("catalog = ..."), or NULL. */
const char *ing_config_catalog(const struct ing_config *c);
/* Run: once = one full scan, then return; else watch (inotify) and rescan
 * until *stop becomes non-zero.  DM_OK unless the catalog or the
 * directories cannot be used (err says why). */
enum dm_status ing_run(struct cat_db *db, struct ing_config *c, int once, volatile int *stop,
		       struct ing_stats *st, struct dm_err *err);

/* The extractor's key=value command, run with a timeout (ingest.c); also
 * used by the unit test.  argv[0] is the program; the file's path is in
 * argv already.  DM_ETIMEDOUT after timeout seconds (the process group is
 * killed), DM_EIO when it fails (err holds its exit status and the first
 * line of its stderr). */
enum dm_status ing_run_extractor(char *const argv[], double timeout, struct ing_meta *m,
				 struct dm_err *err);

#endif
