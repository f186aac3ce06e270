/* SPDX-License-Identifier: Apache-2.0 */
/*
 * runtime.c - `didfs daemon`: every selected daemon as --threads loops, each
 * loop a thread with its own catalog handle and heartbeat, all in one
 * process; signals; configuration reloads.
 *
 * Threads and signals.  SIGTERM, SIGINT and SIGHUP are blocked in every
 * thread; the main thread takes them with sigtimedwait():
 *   SIGTERM/SIGINT  set the stop flag and wake every sleeping loop; a loop
 *                   finishes its current cycle, runs its daemon's fini (the
 *                   conveyor waits for its transfers in flight), drops its
 *                   heartbeat and ends; dmn_run returns 0.
 *   SIGHUP          re-reads --config over the defaults (command-line
 *                   overrides still win), publishes it as a new generation
 *                   and logs so; loops pick it up before their next cycle.
 *                   A refused file is logged and the old configuration stays.
 * With --once each loop runs one cycle and ends; dmn_run returns when all
 * have (or on a signal).
 *
 * Shared state: the stop flag (atomic), the published configuration and its
 * generation (under rt.lock); a condition variable on a monotonic clock
 * wakes sleepers on stop.  Nothing else is shared between loops: each has
 * its own catalog handle, memory and (conveyor, reaper) transfer context.
 *
 * Waking up.  A loop with nothing to do sleeps its interval (--sleep or the
 * configuration's); on a catalog that notifies (PostgreSQL) the loops whose
 * work is queued in a table (wake_on below) listen to it and wake as soon
 * as any process or host commits an insert there, polling staying the
 * backstop.
 *
 * Liveness of processes is judged here, not in the catalog: the heartbeat
 * and orphan calls of catalog/engine.h ask dmn_process_alive() whether a
 * pid of this host still exists.  The threads open the catalog by
 * cat_location() of the URI they were given.
 */
#include "daemon_i.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const struct dmn_def *const defs[DMN_COUNT] = {
	[DMN_JUDGE_EVALUATOR] = &dmn_judge_evaluator_def,
	[DMN_JUDGE_INJECTOR] = &dmn_judge_injector_def,
	[DMN_JUDGE_REPAIRER] = &dmn_judge_repairer_def,
	[DMN_JUDGE_CLEANER] = &dmn_judge_cleaner_def,
	[DMN_CONVEYOR] = &dmn_conveyor_def,
	[DMN_REAPER] = &dmn_reaper_def,
	[DMN_UNDERTAKER] = &dmn_undertaker_def,
	[DMN_ABACUS] = &dmn_abacus_def,
	[DMN_TRANSMOGRIFIER] = &dmn_transmogrifier_def,
	[DMN_HERMES] = &dmn_hermes_def,
	[DMN_NECROMANCER] = &dmn_necromancer_def,
};

/* The queue table each daemon's work arrives in (catalog/engine.h,
 * cat_work_listen); the others find theirs by time and poll. */
static const char *const wake_on[DMN_COUNT] = {
	[DMN_CONVEYOR] = "requests",
	[DMN_JUDGE_EVALUATOR] = "updated_dids",
	[DMN_JUDGE_INJECTOR] = "rules",
	[DMN_HERMES] = "messages",
	[DMN_NECROMANCER] = "bad_replicas",
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	atomic_int stop;
	atomic_int finished;   /* loops that have ended */
	struct dmn_config cfg; /* published configuration */
	unsigned gen;
	const char *catalog_path;
} rt = { .lock = PTHREAD_MUTEX_INITIALIZER };

struct slot {
	pthread_t tid;
	int started;
	int failed; /* could not start, or a cycle failed in --once */
	const struct dmn_def *def;
	struct dmn_loop loop;
};

int dmn_stopping(void)
{
	return atomic_load(&rt.stop);
}

void dmn_sleep(double seconds)
{
	struct timespec ts;

	if (seconds <= 0)
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += (time_t)seconds;
	ts.tv_nsec += (long)((seconds - (double)(time_t)seconds) * 1e9);
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&rt.lock);
	while (!atomic_load(&rt.stop)) {
		if (pthread_cond_timedwait(&rt.wake, &rt.lock, &ts) == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&rt.lock);
}

static void request_stop(void)
{
	pthread_mutex_lock(&rt.lock);
	atomic_store(&rt.stop, 1);
	pthread_cond_broadcast(&rt.wake);
	pthread_mutex_unlock(&rt.lock);
}

int dmn_process_alive(void *loop, const char *hostname, int64_t pid)
{
	const struct dmn_loop *l = loop;

	if (pid <= 0 || pid > INT_MAX || strcmp(hostname, l->hostname) != 0)
		return 1;
	return !(kill((pid_t)pid, 0) != 0 && errno == ESRCH);
}

enum dm_status dmn_heartbeat(struct dmn_loop *l, int force)
{
	double now = dm_now_f();
	int index = 0, total = 1;
	enum dm_status rc;

	if (!force && l->last_beat > 0 && now - l->last_beat < l->cfg.heartbeat_interval)
		return DM_OK;
	rc = cat_hb_live(l->db, l->executable, l->hostname, l->pid, l->thread,
			 l->cfg.heartbeat_timeout, dmn_process_alive, l, &index, &total);
	if (rc != DM_OK)
		return rc;
	if (total < 1 || index < 0 || index >= total) {
		index = 0;
		total = 1;
	}
	if (l->total != total || l->index != index)
		dm_log(DM_LOG_DEBUG, l->name, "worker %s is %d of %d", l->worker_name, index + 1,
		       total);
	l->index = index;
	l->total = total;
	l->last_beat = now;
	dmn_metrics_heartbeat(l, now);
	return DM_OK;
}

/* Sleep up to seconds, returning early on a stop or, for a loop that
 * listens, when its queue table received work (in slices, so a stop is
 * seen within a quarter of a second). */
static void idle(struct dmn_loop *l, double seconds)
{
	double end = dm_now_f() + seconds;

	if (!l->listening) {
		dmn_sleep(seconds);
		return;
	}
	while (!dmn_stopping()) {
		double left = end - dm_now_f();
		int r;

		if (left <= 0)
			return;
		r = cat_work_wait(l->db, left > 0.25 ? 250 : (int)(left * 1000) + 1);
		if (r > 0)
			return;
		if (r < 0) { /* the connection is being made again: poll */
			dmn_sleep(left < 0.25 ? left : 0.25);
		}
	}
}

static void refresh_config(struct dmn_loop *l)
{
	pthread_mutex_lock(&rt.lock);
	if (l->cfg_gen != rt.gen) {
		l->cfg = rt.cfg;
		l->cfg_gen = rt.gen;
	}
	pthread_mutex_unlock(&rt.lock);
}

static void log_failure(struct dmn_loop *l, enum dm_status rc, const char *what)
{
	const struct dm_err *e = l->db ? cat_error(l->db) : NULL;

	if (e && e->code)
		dm_log(DM_LOG_ERROR, l->name, "%s failed: %s: %s", what, e->cls, e->msg);
	else
		dm_log(DM_LOG_ERROR, l->name, "%s failed: %s", what, dm_strerror(rc));
}

static void *loop_main(void *arg)
{
	struct slot *s = arg;
	struct dmn_loop *l = &s->loop;
	struct dm_err err = { 0 };
	enum dm_status rc;
	int inited = 0;

	refresh_config(l);
	rc = cat_open(rt.catalog_path, 0, &l->db, &err);
	if (rc != DM_OK) {
		dm_log(DM_LOG_ERROR, l->name, "cannot open the catalog: %s: %s", err.cls, err.msg);
		s->failed = 1;
		goto out;
	}
	if (s->def->init && (rc = s->def->init(l)) != DM_OK) {
		log_failure(l, rc, "start-up");
		s->failed = 1;
		goto out;
	}
	inited = 1;
	if (wake_on[l->kind] && !l->once && cat_work_listen(l->db, wake_on[l->kind]) == DM_OK)
		l->listening = 1;
	while (!dmn_stopping()) {
		int more = 0;
		double t0;

		refresh_config(l);
		rc = dmn_heartbeat(l, l->last_beat == 0);
		if (rc != DM_OK)
			log_failure(l, rc, "heartbeat");
		t0 = dm_now_f();
		rc = s->def->cycle(l, &more);
		dmn_metrics_cycle(l, dm_now_f() - t0, rc == DM_OK);
		dm_log_set_request_id(NULL); /* a rule's request id stays with its work */
		if (rc != DM_OK) {
			log_failure(l, rc, "cycle");
			if (l->once)
				s->failed = 1;
			if (cat_is_corrupt(l->db)) {
				/* the handle writes nothing more; stop every loop
				 * rather than work on around damaged pages */
				dm_log(DM_LOG_ERROR, l->name, "the catalog is damaged: stopping");
				s->failed = 1;
				request_stop();
				break;
			}
		}
		if (l->once)
			break;
		if (rc != DM_OK || !more) {
			int sl = l->cfg.sleep[l->kind];

			idle(l, sl > 0 ? sl : 0.2);
		}
	}
out:
	if (inited && s->def->fini)
		s->def->fini(l);
	if (l->db) {
		if (l->last_beat > 0 &&
		    cat_hb_die(l->db, l->executable, l->hostname, l->pid, l->thread) != DM_OK)
			log_failure(l, DM_EIO, "dropping the heartbeat");
		cat_close(l->db);
		l->db = NULL;
	}
	atomic_fetch_add(&rt.finished, 1);
	return NULL;
}

/* Defaults + file + command-line overrides. */
static enum dm_status build_config(const struct dmn_options *o, struct dmn_config *cfg,
				   struct dm_err *err)
{
	enum dm_status rc;

	dmn_config_defaults(cfg);
	if (o->config_path && (rc = dmn_config_load(cfg, o->config_path, err)) != DM_OK)
		return rc;
	if (o->sleep_override > 0)
		for (int i = 0; i < DMN_COUNT; i++)
			cfg->sleep[i] = o->sleep_override;
	if (o->log_level_set)
		cfg->log_level = o->log_level;
	return DM_OK;
}

static void reload(const struct dmn_options *o)
{
	struct dmn_config cfg;
	struct dm_err err = { 0 };
	unsigned gen;

	if (!o->config_path) {
		dm_log(DM_LOG_WARN, "daemon", "SIGHUP: no configuration file (--config) to reload");
		return;
	}
	if (build_config(o, &cfg, &err) != DM_OK) {
		dm_log(DM_LOG_ERROR, "daemon",
		       "SIGHUP: configuration %s refused, keeping the current one: %s", o->config_path,
		       err.msg);
		return;
	}
	pthread_mutex_lock(&rt.lock);
	rt.cfg = cfg;
	gen = ++rt.gen;
	pthread_mutex_unlock(&rt.lock);
	dm_log_set_level(cfg.log_level);
	dm_log(DM_LOG_INFO, "daemon", "SIGHUP: configuration reloaded from %s (generation %u)",
	       o->config_path, gen);
}

int dmn_run(const struct dmn_options *o, struct dm_err *err)
{
	struct dmn_config cfg;
	struct slot *slots = NULL;
	sigset_t set, old;
	unsigned mask = o->daemons ? o->daemons : (1u << DMN_COUNT) - 1;
	int threads = o->threads > 0 ? o->threads : 1;
	int nslots = 0, started = 0, status = 0, thread_no = 0;
	char hostname[256] = "localhost";
	struct dm_buf names = DM_BUF_INIT;
	pthread_condattr_t ca;
	struct cat_db *probe = NULL;
	struct dm_buf location = DM_BUF_INIT;

	if (build_config(o, &cfg, err) != DM_OK)
		return 1;
	/* Refuse a missing, foreign or damaged catalog before starting
	 * anything: SQLite's quick check reads every page once. */
	if (cat_open(o->catalog_path, 0, &probe, err) != DM_OK)
		return 1;
	if (cat_quick_check(probe) != DM_OK) {
		*err = *cat_error(probe);
		cat_close(probe);
		return 1;
	}
	/* the threads open the catalog by the location it gives (for a file:
	 * its absolute path), not by how the command line spelt it */
	cat_location(probe, &location);
	cat_close(probe);
	dm_log_set_level(cfg.log_level);
	if (gethostname(hostname, sizeof hostname) != 0)
		dm_strlcpy(hostname, "localhost", sizeof hostname);
	hostname[sizeof hostname - 1] = 0;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&rt.wake, &ca);
	pthread_condattr_destroy(&ca);
	atomic_store(&rt.stop, 0);
	atomic_store(&rt.finished, 0);
	rt.cfg = cfg;
	rt.gen = 1;
	rt.catalog_path = location.s;
	if (o->metrics && dmn_metrics_start(o->metrics, location.s, err) != DM_OK) {
		dm_buf_release(&location);
		pthread_cond_destroy(&rt.wake);
		return 1;
	}

	for (int k = 0; k < DMN_COUNT; k++)
		if (mask & (1u << k))
			nslots += threads;
	slots = dm_xcalloc((size_t)nslots, sizeof *slots);
	nslots = 0;
	for (int k = 0; k < DMN_COUNT; k++) {
		if (!(mask & (1u << k)))
			continue;
		dm_buf_addf(&names, "%s%s", names.len ? ", " : "", dmn_kind_name((enum dmn_kind)k));
		for (int t = 0; t < threads; t++) {
			struct slot *s = &slots[nslots++];
			struct dmn_loop *l = &s->loop;

			s->def = defs[k];
			l->kind = (enum dmn_kind)k;
			l->name = dmn_kind_name(l->kind);
			snprintf(l->executable, sizeof l->executable, "didfs-%s", l->name);
			dm_strlcpy(l->hostname, hostname, sizeof l->hostname);
			l->pid = (int)getpid();
			l->thread = ++thread_no;
			snprintf(l->worker_name, sizeof l->worker_name, "%s:%d:%d", l->hostname, l->pid,
				 l->thread);
			l->total = 1;
			l->once = o->once;
		}
	}

	/* Block the signals everywhere; this thread takes them synchronously. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, &old);
	signal(SIGPIPE, SIG_IGN);

	{
		char shown[1024];
		cat_uri_shown(o->catalog_path, shown, sizeof shown);
		dm_log(DM_LOG_INFO, "daemon", "starting %s (%d thread%s each) on %s, pid %d%s",
		       names.s, threads, threads == 1 ? "" : "s", shown, (int)getpid(),
		       o->once ? ", once" : "");
	}
	dm_buf_release(&names);
	for (int i = 0; i < nslots; i++) {
		if (pthread_create(&slots[i].tid, NULL, loop_main, &slots[i]) != 0) {
			dm_log(DM_LOG_ERROR, "daemon", "cannot start a thread for %s",
			       slots[i].loop.name);
			slots[i].failed = 1;
			request_stop();
			break;
		}
		slots[i].started = 1;
		started++;
	}

	while (atomic_load(&rt.finished) < started) {
		struct timespec ts = { 0, 200 * 1000000L };
		int sig = sigtimedwait(&set, NULL, &ts);

		if (sig == SIGTERM || sig == SIGINT) {
			if (!dmn_stopping())
				dm_log(DM_LOG_INFO, "daemon", "%s: stopping after the current work",
				       sig == SIGTERM ? "SIGTERM" : "SIGINT");
			request_stop();
		} else if (sig == SIGHUP) {
			reload(o);
		}
	}
	for (int i = 0; i < nslots; i++) {
		if (!slots[i].started)
			continue;
		pthread_join(slots[i].tid, NULL);
		if (slots[i].failed)
			status = 1;
	}
	free(slots);
	dmn_metrics_stop();
	rt.catalog_path = NULL;
	dm_buf_release(&location);
	pthread_cond_destroy(&rt.wake);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (status && !o->once)
		dm_seterr(err, DM_EINTERNAL, "RucioException", "a daemon could not start (see the log)");
	else if (status)
		dm_seterr(err, DM_EINTERNAL, "RucioException", "a daemon cycle failed (see the log)");
	dm_log(DM_LOG_INFO, "daemon", "stopped");
	return status;
}

/* ---- shared by the conveyor and the reaper ---- */

enum dm_status dmn_xfer_new(const struct dmn_config *c, struct xfer_ctx **out,
			    struct dm_err *err)
{
	struct xfer_config xc = { 0 };

	xc.ca_path = c->ca_path[0] ? c->ca_path : NULL;
	xc.ca_file = c->ca_file[0] ? c->ca_file : NULL;
	xc.client_cert = c->client_cert[0] ? c->client_cert : NULL;
	xc.client_key = c->client_key[0] ? c->client_key : NULL;
	xc.insecure = c->insecure;
	xc.timeout_s = c->timeout;
	xc.connect_timeout_s = c->connect_timeout;
	xc.stall_timeout_s = c->stall_timeout;
	xc.tpc_timeout_s = c->tpc_timeout;
	xc.parallel = c->parallel;
	xc.chunk_bytes = (size_t)c->chunk_bytes;
	xc.chunks_in_flight = c->chunks_in_flight;
	xc.no_md5 = 1;
	return xfer_ctx_new(&xc, out, err);
}

int dmn_xfer_config_differs(const struct dmn_config *a, const struct dmn_config *b)
{
	return strcmp(a->ca_path, b->ca_path) || strcmp(a->ca_file, b->ca_file) ||
	       strcmp(a->client_cert, b->client_cert) || strcmp(a->client_key, b->client_key) ||
	       a->insecure != b->insecure || a->timeout != b->timeout ||
	       a->connect_timeout != b->connect_timeout || a->stall_timeout != b->stall_timeout ||
	       a->tpc_timeout != b->tpc_timeout || a->chunk_bytes != b->chunk_bytes ||
	       a->chunks_in_flight != b->chunks_in_flight;
}

