/* SPDX-License-Identifier: Apache-2.0 */
/*
 * transmogrifier.c - Rucio's transmogrifier as a loop of `didfs daemon`:
 * each cycle hands up to transmogrifier.chunk_size new DIDs of this loop's
 * partition to cat_transmogrify() (catalog/subscription.c), which matches
 * them against the active subscriptions, creates their rules and clears the
 * DIDs' new flag in one transaction; it runs again at once while it finds
 * work.  A kill loses nothing and doubles nothing: the rules and the flag
 * commit together.
 */
#include "daemon_i.h"

static enum dm_status transmogrifier_cycle(struct dmn_loop *l, int *more)
{
	int limit = l->cfg.chunk[l->kind], done = 0, rules = 0;
	enum dm_status rc = cat_transmogrify(l->db, limit, l->index, l->total, &done, &rules);

	if (rc != DM_OK)
		return rc;
	if (done > 0)
		dm_log(DM_LOG_INFO, l->name, "%d new DID(s) matched, %d rule(s) created", done, rules);
	*more = done >= limit;
	return DM_OK;
}

const struct dmn_def dmn_transmogrifier_def = { DMN_TRANSMOGRIFIER, NULL, transmogrifier_cycle, NULL };
