/* SPDX-License-Identifier: Apache-2.0 */
/*
 * metrics.h - Prometheus metrics for every didfs process (prefix dm_m).
 *
 * One process-wide registry of metric families (counter, gauge, histogram),
 * each with a fixed list of label names; a family's series (one per set of
 * label values) are created on first use and live until the process ends.
 *
 * Hot paths: dm_m_series() looks a series up without a lock (an
 * append-only list published with release stores; only a miss takes the
 * family's mutex to add one), and dm_m_add() / dm_m_observe() are relaxed
 * atomic adds, so instrumented code pays a few atomics per event.  A caller
 * that knows its labels in advance keeps the series pointer.  Everything is
 * a no-op (NULL series) until dm_m_enable() is called: a process without
 * --metrics (or `didfs serve` with metrics_allow = off) records nothing.
 *
 * Exposition: dm_m_render() writes the Prometheus text format 0.0.4: HELP
 * (escaped \\ and \n), TYPE, one line per series with label values escaped
 * (\\, \", \n), histograms as cumulative _bucket{le=...} lines ending in
 * le="+Inf", then _sum and _count.  Before rendering, the registered
 * collectors run (gauges read at scrape time: process figures, queue depths
 * read from the catalog by the daemon).
 *
 * Exporter: dm_m_http_start("ADDR:PORT") serves GET /metrics from one
 * thread with plain sockets (no HTTP library: util/ must not depend on
 * libmicrohttpd, which only server/ uses).  One request per connection,
 * read with a 5 s timeout and at most 8 KiB of header;
 * dm_m_http_parse_request() is its request-line parser (fuzzed:
 * tests/fuzz/fuzz_metrics_req.c).  `didfs serve` answers /metrics on its
 * own port instead (server/http.c).
 */
#ifndef DM_METRICS_H
#define DM_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "dm.h"

#define DM_M_MAX_LABELS 4
#define DM_M_MAX_BUCKETS 24

enum dm_m_type { DM_M_COUNTER, DM_M_GAUGE, DM_M_HISTOGRAM };

struct dm_m_family;
struct dm_m_series;

/* Whether metrics are recorded (0 until dm_m_enable). */
int dm_m_enabled(void);
void dm_m_enable(void);

/* A family: name (didfs_..., base units, counters end in _total), help,
 * label names (NULL-terminated list, at most DM_M_MAX_LABELS).  For a
 * histogram, buckets are the upper bounds in increasing order (NULL: the
 * default latency buckets, 0.5 ms .. 60 s).  Registering the same name
 * again returns the existing family.  Never NULL. */
struct dm_m_family *dm_m_family(enum dm_m_type type, const char *name, const char *help,
				const char *const *labels, const double *buckets, int nbuckets);
/* The series for these label values (as many as the family has names);
 * NULL when metrics are off. */
struct dm_m_series *dm_m_series(struct dm_m_family *f, ...);
struct dm_m_series *dm_m_seriesv(struct dm_m_family *f, const char *const *values);

/* Counter or gauge += v; gauge = v; histogram observation (seconds, bytes).
 * All take NULL (metrics off) and do nothing then. */
void dm_m_add(struct dm_m_series *s, double v);
void dm_m_set(struct dm_m_series *s, double v);
void dm_m_observe(struct dm_m_series *s, double v);
double dm_m_get(const struct dm_m_series *s); /* counter/gauge value (tests) */

/* A collector runs before every rendering (under the registry lock, one at
 * a time): it sets gauges.  Removed with dm_m_collector_remove. */
typedef void (*dm_m_collector)(void *ud);
void dm_m_collector_add(dm_m_collector fn, void *ud);
void dm_m_collector_remove(dm_m_collector fn, void *ud);
/* didfs_process_resident_memory_bytes, _threads, _open_fds,
 * _start_time_seconds from /proc/self, as a collector. */
void dm_m_process_collector(void);

/* The exposition (collectors run first).  0, or -1 on a full buffer. */
int dm_m_render(struct dm_buf *out);
/* Pieces of the format, for the unit test. */
void dm_m_escape_label(struct dm_buf *out, const char *s);
void dm_m_escape_help(struct dm_buf *out, const char *s);
void dm_m_format_value(double v, char out[40]);
#define DM_M_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* The request line of the exporter: returns the HTTP status to answer
 * (200 for GET or HEAD /metrics (query ignored), 404 another path, 405
 * another method, 400 a malformed line, 505 not HTTP/1.x); *head = 1 for
 * HEAD.  buf holds the bytes up to the end of the header or up to n. */
int dm_m_http_parse_request(const char *buf, size_t n, int *head);
/* Start the exporter thread on ADDR:PORT (IPv4; port 0 picks one, see
 * dm_m_http_port).  Enables metrics.  DM_EINVAL naming a bad address,
 * DM_EIO when it cannot listen. */
enum dm_status dm_m_http_start(const char *addr_port, struct dm_err *err);
int dm_m_http_port(void);
void dm_m_http_stop(void);

/* Monotonic seconds, for latencies. */
double dm_m_now(void);

#endif
