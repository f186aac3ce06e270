/* SPDX-License-Identifier: Apache-2.0 */
/*
 * reaper.c - the reaper: deletes replicas that no rule needs any more from
 * storage, then from the catalog.
 *
 * A cycle visits every RSE with availability_delete (cat_reaper_rses).  Per
 * RSE it claims up to reaper.chunk_size deletable replicas
 * (cat_reaper_claim marks them BEING_DELETED in one transaction; greedy
 * takes every expired tombstone and comes from reaper.greedy or the RSE
 * attribute greedyDeletion, otherwise only OBSOLETE ones), deletes them on
 * storage with the RSE's delete protocol, reaper.parallel at a time, and
 * removes the rows of those that are gone (cat_reaper_done).  "Not found"
 * on storage counts as deleted (Rucio's deletion-not-found).  A failed
 * delete leaves the replica BEING_DELETED for a later cycle and is logged;
 * a kill between the storage delete and cat_reaper_done is harmless for the
 * same reason (the next delete finds nothing and completes it).
 *
 * Memory: one chunk of deletions at a time, whatever the catalog's size.
 */
#include "daemon_i.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct reaper {
	struct xfer_ctx *xfer;
	struct dmn_config xcfg;
};

struct rse_list {
	char (*names)[CAT_RSE_MAX + 1];
	size_t n, cap;
};

static int rse_cb(void *ud, const struct cat_rse *r)
{
	struct rse_list *rl = ud;

	if (rl->n == rl->cap) {
		rl->cap = rl->cap ? 2 * rl->cap : 16;
		rl->names = dm_xrealloc(rl->names, rl->cap * sizeof *rl->names);
	}
	dm_strlcpy(rl->names[rl->n++], r->rse, CAT_RSE_MAX + 1);
	return 0;
}

struct victim {
	char scope[CAT_SCOPE_MAX + 1];
	char name[CAT_NAME_MAX + 1];
	uint64_t bytes;
	char *url;
};

struct victims {
	struct victim *v;
	int n, cap;
};

static int deletion_cb(void *ud, const struct cat_deletion *d)
{
	struct victims *vs = ud;
	struct victim *v;

	if (vs->n == vs->cap)
		return 1; /* never more than asked for */
	v = &vs->v[vs->n++];
	memset(v, 0, sizeof *v);
	dm_strlcpy(v->scope, d->scope, sizeof v->scope);
	dm_strlcpy(v->name, d->name, sizeof v->name);
	v->bytes = d->bytes;
	return 0;
}

static int is_greedy(struct dmn_loop *l, const char *rse)
{
	char v[32];

	if (l->cfg.greedy)
		return 1;
	if (cat_rse_attr_get(l->db, rse, "greedyDeletion", v, sizeof v) != DM_OK)
		return 0;
	return !strcasecmp(v, "true") || !strcmp(v, "1") || !strcasecmp(v, "yes");
}

/* One chunk on one RSE; returns how many replicas were removed, -1 when the
 * catalog failed. */
static int reap_rse(struct dmn_loop *l, struct reaper *rp, const char *rse, int *claimed_out)
{
	int limit = l->cfg.chunk[l->kind];
	struct victims vs = { dm_xcalloc((size_t)limit, sizeof *vs.v), 0, limit };
	struct xfer_job *jobs = NULL;
	int *job_of = NULL, njobs = 0, removed = 0, failed = 0;
	uint64_t bytes = 0;
	char hb[32];

	*claimed_out = 0;
	if (cat_reaper_claim(l->db, rse, is_greedy(l, rse), limit, deletion_cb, &vs) != DM_OK) {
		dm_log(DM_LOG_ERROR, l->name, "%s: selecting replicas to delete failed: %s", rse,
		       cat_error(l->db)->msg);
		free(vs.v);
		return -1;
	}
	*claimed_out = vs.n;
	if (vs.n == 0) {
		free(vs.v);
		return 0;
	}
	jobs = dm_xcalloc((size_t)vs.n, sizeof *jobs);
	job_of = dm_xcalloc((size_t)vs.n, sizeof *job_of);
	for (int i = 0; i < vs.n; i++) {
		struct victim *v = &vs.v[i];
		struct dm_buf b = DM_BUF_INIT;

		if (cat_lfn2pfn(l->db, rse, v->scope, v->name, NULL, CAT_OP_DELETE, &b) != DM_OK) {
			dm_log(DM_LOG_ERROR, l->name, "%s: no PFN to delete %s:%s: %s", rse, v->scope,
			       v->name, cat_error(l->db)->msg);
			dm_buf_release(&b);
			failed++;
			continue;
		}
		v->url = dm_buf_detach(&b);
		jobs[njobs].kind = XFER_JOB_DELETE;
		jobs[njobs].src = v->url;
		job_of[njobs++] = i;
	}
	xfer_run_jobs(rp->xfer, jobs, (size_t)njobs, l->cfg.reaper_parallel);
	for (int k = 0; k < njobs; k++) {
		struct victim *v = &vs.v[job_of[k]];
		struct xfer_job *j = &jobs[k];
		int gone = j->status == DM_OK || j->status == DM_ENOENT;

		if (!gone) {
			dm_log(DM_LOG_WARN, l->name, "%s: deleting %s:%s (%s) failed, left for later: %s",
			       rse, v->scope, v->name, v->url, j->err.msg);
			failed++;
			/* deletion-failed (catalog/outbox.c) */
			if (cat_reaper_failed(l->db, rse, v->scope, v->name, v->bytes, j->err.msg) != DM_OK)
				dm_log(DM_LOG_ERROR, l->name, "%s: queueing deletion-failed: %s", rse,
				       cat_error(l->db)->msg);
			continue;
		}
		if (cat_reaper_done(l->db, rse, v->scope, v->name) != DM_OK) {
			dm_log(DM_LOG_ERROR, l->name, "%s: removing the replica %s:%s failed: %s", rse,
			       v->scope, v->name, cat_error(l->db)->msg);
			failed++;
			continue;
		}
		removed++;
		bytes += v->bytes;
		dm_log(DM_LOG_DEBUG, l->name, "%s: deleted %s:%s %s%s", rse, v->scope, v->name,
		       v->url, j->status == DM_ENOENT ? " (was not on storage)" : "");
	}
	dmn_metrics_work(l, removed);
	if (removed || failed)
		dm_log(removed ? DM_LOG_INFO : DM_LOG_WARN, l->name,
		       "%s: %d replica(s) deleted (%s), %d failed", rse, removed,
		       dm_human_bytes(bytes, 1, hb), failed);
	for (int i = 0; i < vs.n; i++)
		free(vs.v[i].url);
	free(vs.v);
	free(jobs);
	free(job_of);
	return removed;
}

static enum dm_status reaper_init(struct dmn_loop *l)
{
	struct reaper *rp = dm_xcalloc(1, sizeof *rp);
	struct dm_err e = { 0 };

	l->state = rp;
	if (dmn_xfer_new(&l->cfg, &rp->xfer, &e) != DM_OK) {
		dm_log(DM_LOG_ERROR, l->name, "transfer settings refused: %s", e.msg);
		return e.code ? e.code : DM_EINVAL;
	}
	rp->xcfg = l->cfg;
	return DM_OK;
}

static enum dm_status reaper_cycle(struct dmn_loop *l, int *more)
{
	struct reaper *rp = l->state;
	struct rse_list rl = { 0 };
	enum dm_status rc;

	if (dmn_xfer_config_differs(&rp->xcfg, &l->cfg)) {
		struct xfer_ctx *x = NULL;
		struct dm_err e = { 0 };

		if (dmn_xfer_new(&l->cfg, &x, &e) != DM_OK) {
			dm_log(DM_LOG_ERROR, l->name, "new transfer settings refused: %s", e.msg);
		} else {
			xfer_ctx_free(rp->xfer);
			rp->xfer = x;
		}
		rp->xcfg = l->cfg;
	}
	rc = cat_reaper_rses(l->db, rse_cb, &rl);
	if (rc != DM_OK) {
		free(rl.names);
		return rc;
	}
	*more = 0;
	for (size_t i = 0; i < rl.n && !dmn_stopping(); i++) {
		int claimed = 0;

		if (reap_rse(l, rp, rl.names[i], &claimed) < 0)
			continue;
		if (claimed >= l->cfg.chunk[l->kind])
			*more = 1;
	}
	free(rl.names);
	return DM_OK;
}

static void reaper_fini(struct dmn_loop *l)
{
	struct reaper *rp = l->state;

	if (!rp)
		return;
	xfer_ctx_free(rp->xfer);
	free(rp);
	l->state = NULL;
}

const struct dmn_def dmn_reaper_def = { DMN_REAPER, reaper_init, reaper_cycle, reaper_fini };
