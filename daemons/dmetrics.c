/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dmetrics.c - the metrics of `didfs daemon --metrics ADDR:PORT`
 * (util/metrics.h is the registry and the exporter thread).
 *
 * Recorded where the work happens, by one-line calls (daemon_i.h):
 *   didfs_daemon_cycle_duration_seconds{daemon}   histogram of cycle times
 *   didfs_daemon_cycles_total{daemon,outcome}     ok / failed
 *   didfs_daemon_work_total{daemon}               units done (DID updates
 *                                                 evaluated, rules injected,
 *                                                 transfers recorded, replicas
 *                                                 deleted, ...)
 *   didfs_daemon_heartbeat_age_seconds{daemon,thread}  seconds since the
 *                                                 loop's last heartbeat
 *   didfs_transfers_total{src_rse,dst_rse,outcome}     recorded transfer
 *                                                 attempts (done, failed,
 *                                                 no_sources)
 *   didfs_transfer_bytes_total{src_rse,dst_rse}   bytes of the done ones
 *   didfs_transfer_duration_seconds{outcome}      time per transfer attempt
 * Read from the catalog at every scrape (cat_queue_stats, on a handle of
 * the exporter's own, in the exporter thread):
 *   didfs_requests{state}, didfs_rules{state}, didfs_judge_pending_updates,
 *   didfs_judge_inject_due, didfs_expired_dids,
 *   didfs_replicas_awaiting_deletion{kind}, didfs_abacus_pending_updates,
 *   didfs_catalog_scrape_errors_total (a failed read keeps the last values)
 * and the process figures.  Without --metrics every call is a no-op.
 */
#include "daemon_i.h"
#include "metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#define MAX_LOOPS 1024

static struct {
	struct dm_m_family *cycle, *cycles, *work, *hb_age, *xfers, *xbytes, *xdur;
	struct dm_m_family *requests, *rules, *judge, *inject, *expired, *deletion, *abacus, *scrape_err;
	struct cat_db *db;
	struct {
		const char *name;
		int thread;
		_Atomic double beat;
	} loops[MAX_LOOPS];
	atomic_int nloops;
} dm;

static void stat_cb(void *ud, const char *what, const char *state, int64_t n)
{
	double v = (double)n;

	if (!strcmp(what, "requests"))
		dm_m_set(dm_m_series(dm.requests, state), v);
	else if (!strcmp(what, "rules"))
		dm_m_set(dm_m_series(dm.rules, state), v);
	else if (!strcmp(what, "judge_updates"))
		dm_m_set(dm_m_series(dm.judge), v);
	else if (!strcmp(what, "inject_due"))
		dm_m_set(dm_m_series(dm.inject), v);
	else if (!strcmp(what, "expired_dids"))
		dm_m_set(dm_m_series(dm.expired), v);
	else if (!strcmp(what, "deletion"))
		dm_m_set(dm_m_series(dm.deletion, state), v);
	else if (!strcmp(what, "counter_updates"))
		dm_m_set(dm_m_series(dm.abacus), v);
}

static void collect(void *ud)
{
	double now = dm_now_f();
	int n = atomic_load(&dm.nloops);

	for (int i = 0; i < n && i < MAX_LOOPS; i++) {
		double b = atomic_load(&dm.loops[i].beat);
		char th[16];

		if (b <= 0)
			continue;
		snprintf(th, sizeof th, "%d", dm.loops[i].thread);
		dm_m_set(dm_m_series(dm.hb_age, dm.loops[i].name, th), now - b);
	}
	if (dm.db && cat_queue_stats(dm.db, stat_cb, NULL) != DM_OK) {
		dm_m_add(dm_m_series(dm.scrape_err), 1);
		dm_log(DM_LOG_WARN, "metrics", "reading queue depths failed: %s",
		       cat_error(dm.db)->msg);
	}
}

enum dm_status dmn_metrics_start(const char *addr, const char *catalog, struct dm_err *err)
{
	static const char *const ld[] = { "daemon", NULL };
	static const char *const ldo[] = { "daemon", "outcome", NULL };
	static const char *const ldt[] = { "daemon", "thread", NULL };
	static const char *const lsdo[] = { "src_rse", "dst_rse", "outcome", NULL };
	static const char *const lsd[] = { "src_rse", "dst_rse", NULL };
	static const char *const lo[] = { "outcome", NULL };
	static const char *const ls[] = { "state", NULL };
	static const char *const lk[] = { "kind", NULL };
	static const double xb[] = { 0.01, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600 };
	enum dm_status rc;

	dm.cycle = dm_m_family(DM_M_HISTOGRAM, "didfs_daemon_cycle_duration_seconds",
			       "Time of one daemon cycle (one unit of work or an idle look).", ld, NULL, 0);
	dm.cycles = dm_m_family(DM_M_COUNTER, "didfs_daemon_cycles_total",
				"Daemon cycles by outcome (ok, failed).", ldo, NULL, 0);
	dm.work = dm_m_family(DM_M_COUNTER, "didfs_daemon_work_total",
			      "Units of work done: DID updates, rules, transfers recorded, replicas deleted.",
			      ld, NULL, 0);
	dm.hb_age = dm_m_family(DM_M_GAUGE, "didfs_daemon_heartbeat_age_seconds",
				"Seconds since the loop's last heartbeat in the catalog.", ldt, NULL, 0);
	dm.xfers = dm_m_family(DM_M_COUNTER, "didfs_transfers_total",
			       "Transfer attempts recorded, by source RSE, destination RSE and outcome.",
			       lsdo, NULL, 0);
	dm.xbytes = dm_m_family(DM_M_COUNTER, "didfs_transfer_bytes_total",
				"Bytes of done transfers, by source RSE and destination RSE.", lsd, NULL, 0);
	dm.xdur = dm_m_family(DM_M_HISTOGRAM, "didfs_transfer_duration_seconds",
			      "Time of one transfer attempt, by outcome.", lo, xb, (int)DM_ARRAY_SIZE(xb));
	dm.requests = dm_m_family(DM_M_GAUGE, "didfs_requests",
				  "Live transfer requests in the catalog, by state.", ls, NULL, 0);
	dm.rules = dm_m_family(DM_M_GAUGE, "didfs_rules", "Replication rules in the catalog, by state.",
			       ls, NULL, 0);
	dm.judge = dm_m_family(DM_M_GAUGE, "didfs_judge_pending_updates",
			       "DID updates queued for judge-evaluator (updated_dids).", NULL, NULL, 0);
	dm.inject = dm_m_family(DM_M_GAUGE, "didfs_judge_inject_due",
				"INJECT rules due for judge-injector.", NULL, NULL, 0);
	dm.expired = dm_m_family(DM_M_GAUGE, "didfs_expired_dids",
				 "DIDs past their expiry, for the undertaker.", NULL, NULL, 0);
	dm.deletion = dm_m_family(DM_M_GAUGE, "didfs_replicas_awaiting_deletion",
				  "Unlocked replicas awaiting the reaper: obsolete, expired, being_deleted.",
				  lk, NULL, 0);
	dm.abacus = dm_m_family(DM_M_GAUGE, "didfs_abacus_pending_updates",
				"Usage counter deltas waiting for abacus.", NULL, NULL, 0);
	dm.scrape_err = dm_m_family(DM_M_COUNTER, "didfs_catalog_scrape_errors_total",
				    "Scrapes whose catalog read failed.", NULL, NULL, 0);
	rc = cat_open(catalog, 0, &dm.db, err);
	if (rc != DM_OK)
		return rc;
	rc = dm_m_http_start(addr, err);
	if (rc != DM_OK) {
		cat_close(dm.db);
		dm.db = NULL;
		return rc;
	}
	dm_m_collector_add(collect, NULL);
	return DM_OK;
}

void dmn_metrics_stop(void)
{
	if (!dm.db)
		return;
	dm_m_http_stop();
	dm_m_collector_remove(collect, NULL);
	cat_close(dm.db);
	dm.db = NULL;
}

void dmn_metrics_cycle(struct dmn_loop *l, double seconds, int ok)
{
	if (!dm_m_enabled())
		return;
	dm_m_observe(dm_m_series(dm.cycle, l->name), seconds);
	dm_m_add(dm_m_series(dm.cycles, l->name, ok ? "ok" : "failed"), 1);
}

void dmn_metrics_work(struct dmn_loop *l, int n)
{
	if (n > 0)
		dm_m_add(dm_m_series(dm.work, l->name), n);
}

void dmn_metrics_heartbeat(struct dmn_loop *l, double when)
{
	int n = atomic_load(&dm.nloops);

	if (!dm_m_enabled())
		return;
	for (int i = 0; i < n && i < MAX_LOOPS; i++)
		if (dm.loops[i].thread == l->thread) {
			atomic_store(&dm.loops[i].beat, when);
			return;
		}
	n = atomic_fetch_add(&dm.nloops, 1);
	if (n >= MAX_LOOPS)
		return;
	dm.loops[n].name = l->name;
	dm.loops[n].thread = l->thread;
	atomic_store(&dm.loops[n].beat, when);
}

void dmn_metrics_transfer(struct dmn_loop *l, const char *src, const char *dst,
			  enum cat_req_state outcome, uint64_t bytes, double seconds)
{
	const char *o = outcome == CAT_REQ_DONE ? "done" : outcome == CAT_REQ_NO_SOURCES ? "no_sources"
						      : "failed";

	if (!dm_m_enabled())
		return;
	dm_m_add(dm_m_series(dm.xfers, src ? src : "", dst, o), 1);
	if (outcome == CAT_REQ_DONE)
		dm_m_add(dm_m_series(dm.xbytes, src ? src : "", dst), (double)bytes);
	dm_m_observe(dm_m_series(dm.xdur, o), seconds);
	dmn_metrics_work(l, 1);
}
