/* SPDX-License-Identifier: Apache-2.0 */
/*
 * daemon_i.h - what the daemons of daemons/ share with the runtime
 * (runtime.c): the per-loop context and the daemon table.
 *
 * Life of one loop (runtime.c): open a catalog handle, init(), then until
 * told to stop: heartbeat (index/total of this daemon's live instances),
 * refresh the configuration snapshot, cycle(); a cycle that found work goes
 * again at once, an idle or failed one sleeps <daemon>.sleep seconds
 * (interrupted by a stop).  On the way out: fini(), drop the heartbeat,
 * close the handle.  A cycle is one bounded unit of work (one chunk of
 * rules, one batch of transfers, one chunk of deletions per RSE), so a stop
 * waits for at most that.
 */
#ifndef DMN_DAEMON_I_H
#define DMN_DAEMON_I_H

#include "catalog.h"
#include "engine.h"
#include "runtime.h"
#include "xfer.h"

struct dmn_loop {
	struct cat_db *db;
	enum dmn_kind kind;
	const char *name;         /* "conveyor" */
	char executable[64];      /* "didfs-conveyor" (heartbeat key) */
	char hostname[256];
	int pid;
	int thread;               /* heartbeat thread number, unique in the process */
	char worker_name[320];    /* "hostname:pid:thread" */
	int index, total;         /* this loop's partition, from the last beat */
	double last_beat;         /* dm_now_f() of the last beat, 0 = never */
	struct dmn_config cfg;    /* snapshot, refreshed before each cycle */
	unsigned cfg_gen;         /* generation of the snapshot */
	int once;
	int listening;            /* woken by the catalog's notifications (runtime.c) */
	void *state;              /* the daemon's own */
};

struct dmn_def {
	enum dmn_kind kind;
	enum dm_status (*init)(struct dmn_loop *l);
	/* One unit of work; *more = 1 when there may be more right away. */
	enum dm_status (*cycle)(struct dmn_loop *l, int *more);
	void (*fini)(struct dmn_loop *l);
};

extern const struct dmn_def dmn_judge_evaluator_def, dmn_judge_injector_def,
	dmn_judge_repairer_def, dmn_judge_cleaner_def, dmn_undertaker_def, dmn_abacus_def,
	dmn_conveyor_def, dmn_reaper_def, dmn_transmogrifier_def,
	dmn_hermes_def, dmn_necromancer_def;

/* Whether a stop was asked (SIGTERM/SIGINT). */
int dmn_stopping(void);
/* Sleep up to seconds, returning early on a stop. */
void dmn_sleep(double seconds);
/* Beat now if the last beat is older than the interval (force: always);
 * updates l->index and l->total. */
enum dm_status dmn_heartbeat(struct dmn_loop *l, int force);

/* Process liveness for the catalog's heartbeat calls (cat_alive_cb; ud: the
 * struct dmn_loop): a pid of this loop's host that no longer exists is
 * gone (kill(pid, 0) says ESRCH); a process of another host may run. */
int dmn_process_alive(void *loop, const char *hostname, int64_t pid);

/* A transfer context from the transfer.* settings (conveyor, reaper). */
enum dm_status dmn_xfer_new(const struct dmn_config *c, struct xfer_ctx **out,
			    struct dm_err *err);
/* Whether two configurations need different transfer contexts. */
int dmn_xfer_config_differs(const struct dmn_config *a, const struct dmn_config *b);

/* ---- metrics (dmetrics.c; no-ops without --metrics) ---- */
enum dm_status dmn_metrics_start(const char *addr, const char *catalog, struct dm_err *err);
void dmn_metrics_stop(void);
void dmn_metrics_cycle(struct dmn_loop *l, double seconds, int ok);
/* n units of work done (DID updates, rules, replicas deleted, ...). */
void dmn_metrics_work(struct dmn_loop *l, int n);
void dmn_metrics_heartbeat(struct dmn_loop *l, double when);
/* A transfer attempt recorded in the catalog (counts as one unit of work). */
void dmn_metrics_transfer(struct dmn_loop *l, const char *src, const char *dst,
			  enum cat_req_state outcome, uint64_t bytes, double seconds);

#endif
