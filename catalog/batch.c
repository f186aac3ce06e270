/* SPDX-License-Identifier: Apache-2.0 */
/*
 * batch.c - several catalog calls as one transaction (cat_batch_begin /
 * cat_batch_end, declared at the end of catalog.h).
 *
 * A batch is the catalog's own transaction nesting (catalog_i.h): begin
 * opens the outermost transaction (or nests inside one already open), every
 * public call made meanwhile joins it, and end commits on DM_OK or rolls
 * everything back otherwise.  didfs serve wraps each REST request that makes
 * several changing calls in one, so a request that fails on its last item
 * leaves the catalog as it was.
 */
#include "catalog_i.h"

enum dm_status cat_batch_begin(struct cat_db *db)
{
	return cat_tx_begin(db);
}

enum dm_status cat_batch_end(struct cat_db *db, enum dm_status rc)
{
	return cat_tx_end(db, rc);
}

int cat_batch_depth(const struct cat_db *db)
{
	return db->tx_depth;
}
