/* SPDX-License-Identifier: Apache-2.0 */
/*
 * progress.h - a one-line progress display for long commands (walk, bulk
 * registration, upload, download), as xrdcp and rclone show it:
 *
 *   walk: 12/40 files, 3.1 GiB/24.0 GiB, 210.4 MiB/s, ETA 1m51s
 *
 * redrawn in place on stderr at most 5 times a second, and only when stderr
 * is a terminal: when it is a pipe or a file (scripts, tests, logs) nothing
 * is printed at all, so output stays machine-readable.  Totals may be 0
 * (unknown), then the line shows counts and rate without an ETA.  All calls
 * take NULL (what dm_progress_new returns off a TTY) and are thread-safe.
 */
#ifndef DM_PROGRESS_H
#define DM_PROGRESS_H

#include <stddef.h>
#include <stdint.h>

struct dm_progress;

/* NULL when stderr is not a terminal. what is copied. */
struct dm_progress *dm_progress_new(const char *what, uint64_t total_files, uint64_t total_bytes);
/* Add to the counts done so far (and redraw if due). */
void dm_progress_add(struct dm_progress *p, uint64_t files, uint64_t bytes);
/* Change the totals or the label (e.g. from "hashing" to "registering"). */
void dm_progress_reset(struct dm_progress *p, const char *what, uint64_t total_files,
		       uint64_t total_bytes);
/* Draw the final state, end the line, free p. */
void dm_progress_done(struct dm_progress *p);

/* The line itself, for tests: what, done/total counts, elapsed seconds. */
void dm_progress_format(char *out, size_t size, const char *what, uint64_t files,
			uint64_t total_files, uint64_t bytes, uint64_t total_bytes, double secs);

#endif
