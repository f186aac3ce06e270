/* SPDX-License-Identifier: Apache-2.0 */
/*
 * audit.c - every replica of one RSE, for the auditor (`didfs audit`,
 * tools/cli_audit.c): a streamed dump, one row at a time, in constant
 * memory (declared at the end of catalog.h).  The auditor sorts it by path
 * itself, so the order here is the table's.
 */
#include "catalog_i.h"

#include <string.h>

static const char *const dump_states[] = { "A", "U", "C", "B", "D", "T" };

enum dm_status cat_rse_replica_dump(struct cat_db *db, const char *rse, cat_replica_cb cb,
				    void *ud)
{
	int64_t num;
	enum dm_status rc = cat_rse_num(db, rse, &num);
	struct sqldrv_stmt *st;
	int r;

	if (rc)
		return rc;
	st = cat_stmt(db, "SELECT d.scope, d.name, rp.bytes, d.adler32, d.md5, rp.path, rp.state"
			  " FROM replicas rp JOIN dids d ON d.id=rp.did_id WHERE rp.rse_num=?");
	if (!st)
		return db->err.code;
	sqldrv_bind_int64(st, 1, num);
	while ((r = sqldrv_step(st)) == SQLDRV_ROW) {
		struct cat_replica x = { 0 };
		const char *s = cat_col_text(st, 6);
		x.scope = cat_col_text(st, 0);
		x.name = cat_col_text(st, 1);
		x.rse = rse;
		x.bytes = (uint64_t)sqldrv_col_int64(st, 2);
		x.adler32 = cat_col_text(st, 3);
		x.md5 = cat_col_text(st, 4);
		x.path = cat_col_text(st, 5);
		x.state = CAT_REPLICA_UNAVAILABLE;
		for (unsigned i = 0; s && i < DM_ARRAY_SIZE(dump_states); i++)
			if (!strcmp(s, dump_states[i]))
				x.state = (enum cat_replica_state)i;
		if (cb(ud, &x))
			break;
	}
	sqldrv_reset(st);
	if (r != SQLDRV_ROW && r != SQLDRV_DONE)
		return cat_dberr(db, "listing the replicas of an RSE");
	return DM_OK;
}
