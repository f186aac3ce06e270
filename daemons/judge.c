/* SPDX-License-Identifier: Apache-2.0 */
/*
 * judge.c - the daemons whose whole work is one catalog call per cycle:
 * judge-evaluator (re-evaluate rules after attach/detach), judge-injector
 * (place asynchronous rules), judge-repairer (requeue stuck locks, with the
 * catalog's back-off per lock, SUSPENDED after a long time), judge-cleaner
 * (hard-delete expired rules), undertaker (expired DIDs), abacus (fold the
 * usage counter deltas).
 *
 * Each cycle handles at most <daemon>.chunk_size units of this loop's
 * partition (heartbeat index/total) in one transaction and asks to run again
 * at once while it finds work; the catalog's transactions make a cycle
 * all-or-nothing, so a stop or a kill between cycles loses nothing.
 */
#include "daemon_i.h"

typedef enum dm_status (*unit_fn)(struct dmn_loop *l, int limit, int *done);

static enum dm_status run_unit(struct dmn_loop *l, unit_fn fn, const char *what, int *more)
{
	int limit = l->cfg.chunk[l->kind], done = 0;
	enum dm_status rc = fn(l, limit, &done);

	if (rc != DM_OK)
		return rc;
	dmn_metrics_work(l, done);
	if (done > 0)
		dm_log(DM_LOG_INFO, l->name, "%d %s", done, what);
	*more = done >= limit;
	return DM_OK;
}

static enum dm_status evaluate(struct dmn_loop *l, int limit, int *done)
{
	return cat_judge_evaluate(l->db, limit, l->index, l->total, done);
}

static enum dm_status evaluator_cycle(struct dmn_loop *l, int *more)
{
	return run_unit(l, evaluate, "DID update(s) evaluated", more);
}

static enum dm_status inject(struct dmn_loop *l, int limit, int *done)
{
	return cat_judge_inject(l->db, limit, l->index, l->total, done);
}

static enum dm_status injector_cycle(struct dmn_loop *l, int *more)
{
	return run_unit(l, inject, "rule(s) injected", more);
}

static enum dm_status repair(struct dmn_loop *l, int limit, int *done)
{
	return cat_judge_repair(l->db, limit, l->cfg.repair_min_age, l->cfg.suspend_after,
				l->index, l->total, done);
}

static enum dm_status repairer_cycle(struct dmn_loop *l, int *more)
{
	return run_unit(l, repair, "stuck rule(s) repaired", more);
}

static enum dm_status clean(struct dmn_loop *l, int limit, int *done)
{
	return cat_judge_clean(l->db, limit, l->index, l->total, done);
}

static enum dm_status cleaner_cycle(struct dmn_loop *l, int *more)
{
	return run_unit(l, clean, "expired rule(s) deleted", more);
}

static enum dm_status undertake(struct dmn_loop *l, int limit, int *done)
{
	return cat_undertaker_run(l->db, limit, l->index, l->total, done);
}

static enum dm_status undertaker_cycle(struct dmn_loop *l, int *more)
{
	return run_unit(l, undertake, "expired DID(s) deleted", more);
}

/* The deltas are folded in one transaction over all of them: one instance
 * (index 0) is enough, the others would only wait for the lock. */
static enum dm_status abacus_cycle(struct dmn_loop *l, int *more)
{
	*more = 0;
	if (l->index != 0)
		return DM_OK;
	return cat_usage_refresh(l->db);
}

const struct dmn_def dmn_judge_evaluator_def = { DMN_JUDGE_EVALUATOR, NULL, evaluator_cycle, NULL };
const struct dmn_def dmn_judge_injector_def = { DMN_JUDGE_INJECTOR, NULL, injector_cycle, NULL };
const struct dmn_def dmn_judge_repairer_def = { DMN_JUDGE_REPAIRER, NULL, repairer_cycle, NULL };
const struct dmn_def dmn_judge_cleaner_def = { DMN_JUDGE_CLEANER, NULL, cleaner_cycle, NULL };
const struct dmn_def dmn_undertaker_def = { DMN_UNDERTAKER, NULL, undertaker_cycle, NULL };
const struct dmn_def dmn_abacus_def = { DMN_ABACUS, NULL, abacus_cycle, NULL };
