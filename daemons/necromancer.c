/* SPDX-License-Identifier: Apache-2.0 */
/*
 * necromancer.c - Rucio's necromancer as a loop of `didfs daemon`: each
 * cycle settles up to necromancer.chunk_size declared bad replicas of this
 * loop's partition in one transaction (cat_necromancer_run,
 * catalog/necromancer.c): RECOVERED once the repairer and the conveyor have
 * re-copied them, LOST (with a LOST message) when no good replica is left.
 */
#include "daemon_i.h"

static enum dm_status necromancer_cycle(struct dmn_loop *l, int *more)
{
	int limit = l->cfg.chunk[l->kind], done = 0, lost = 0;
	enum dm_status rc = cat_necromancer_run(l->db, limit, l->index, l->total, &done, &lost);

	if (rc != DM_OK)
		return rc;
	if (done > 0)
		dm_log(DM_LOG_INFO, l->name, "%d bad replica(s) settled: %d recovered, %d lost", done,
		       done - lost, lost);
	*more = done >= limit;
	return DM_OK;
}

const struct dmn_def dmn_necromancer_def = { DMN_NECROMANCER, NULL, necromancer_cycle, NULL };
