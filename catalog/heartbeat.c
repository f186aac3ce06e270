/* SPDX-License-Identifier: Apache-2.0 */
/*
 * heartbeat.c - the daemons' heartbeats (Rucio's heartbeat.py): each
 * worker thread beats under (executable, hostname, pid, thread); the live
 * beats of an executable give each worker its index and the total, which
 * partition the queues (didfs_hash(id) % total).  A beat older than the
 * caller's timeout is dead, as is a process the caller's cat_alive_cb says
 * is gone; liveness itself is judged in daemons/.
 */
#include "engine.h"
#include "catalog_i.h"
#include "policy.h"
#include "rule_i.h"
#include "dmcheck.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* heartbeats                                                          */

enum dm_status cat_hb_live(struct cat_db *db, const char *executable, const char *hostname,
			   int pid, int thread, int64_t older_than, cat_alive_cb alive,
			   void *alive_ud, int *index, int *total)
{
	enum dm_status rc = cat_tx_begin(db);
	int64_t now = rl_now_s();
	struct sqldrv_stmt *st;
	int i = 0, r;

	if (rc)
		return rc;
	st = cat_stmt(db, "INSERT INTO heartbeats(executable, hostname, pid, thread_id, created_at, updated_at)"
			  " VALUES (?1,?2,?3,?4,?5,?5) ON CONFLICT(executable, hostname, pid, thread_id)"
			  " DO UPDATE SET updated_at=excluded.updated_at");
	if (!st)
		return cat_tx_end(db, db->err.code);
	sqldrv_bind_text(st, 1, executable, -1);
	sqldrv_bind_text(st, 2, hostname, -1);
	sqldrv_bind_int64(st, 3, pid);
	sqldrv_bind_int64(st, 4, thread);
	sqldrv_bind_int64(st, 5, now);
	if ((rc = rl_step_done(db, st, "heartbeat")))
		return cat_tx_end(db, rc);
	/* sanity: rows of dead local processes and very old rows go */
	{
		struct sqldrv_stmt *q;
		struct { int64_t pid; } dead[64];
		int nd = 0;
		q = alive ? cat_stmt(db, "SELECT DISTINCT pid FROM heartbeats WHERE hostname=? AND pid!=?")
			  : NULL;
		if (q) {
			sqldrv_bind_text(q, 1, hostname, -1);
			sqldrv_bind_int64(q, 2, pid);
			while (nd < 64 && sqldrv_step(q) == SQLDRV_ROW) {
				int64_t p = sqldrv_col_int64(q, 0);
				if (p > 0 && !alive(alive_ud, hostname, p))
					dead[nd++].pid = p;
			}
			sqldrv_reset(q);
		}
		for (int k = 0; k < nd; k++) {
			q = cat_stmt(db, "DELETE FROM heartbeats WHERE hostname=? AND pid=?");
			if (q) {
				sqldrv_bind_text(q, 1, hostname, -1);
				sqldrv_bind_int64(q, 2, dead[k].pid);
				rl_step_done(db, q, "heartbeat cleanup");
			}
		}
		q = cat_stmt(db, "DELETE FROM heartbeats WHERE updated_at < ?");
		if (q) {
			sqldrv_bind_int64(q, 1, now - 86400);
			rl_step_done(db, q, "heartbeat cleanup");
		}
	}
	st = cat_stmt(db, "SELECT hostname, pid, thread_id FROM heartbeats WHERE executable=? AND updated_at>=?"
			  " ORDER BY hostname, pid, thread_id");
	if (!st)
		return cat_tx_end(db, db->err.code);
	sqldrv_bind_text(st, 1, executable, -1);
	sqldrv_bind_int64(st, 2, now - older_than);
	*index = 0;
	while ((r = sqldrv_step(st)) == SQLDRV_ROW) {
		if (!strcmp(cat_col_text(st, 0), hostname) && (int)sqldrv_col_int64(st, 1) == pid &&
		    (int)sqldrv_col_int64(st, 2) == thread)
			*index = i;
		i++;
	}
	sqldrv_reset(st);
	*total = i ? i : 1;
	return cat_tx_end(db, DM_OK);
}

enum dm_status cat_hb_die(struct cat_db *db, const char *executable, const char *hostname, int pid, int thread)
{
	struct sqldrv_stmt *st = cat_stmt(db, "DELETE FROM heartbeats WHERE executable=? AND hostname=? AND pid=? AND thread_id=?");

	if (!st)
		return db->err.code;
	sqldrv_bind_text(st, 1, executable, -1);
	sqldrv_bind_text(st, 2, hostname, -1);
	sqldrv_bind_int64(st, 3, pid);
	sqldrv_bind_int64(st, 4, thread);
	return rl_step_done(db, st, "heartbeat");
}

int cat_hb_is_live(struct cat_db *db, const char *executable, const char *worker_name, int64_t older_than,
		   cat_alive_cb alive, void *alive_ud)
{
	char host[256];
	const char *c1 = strchr(worker_name, ':'), *c2;
	int64_t pid, thread;
	struct sqldrv_stmt *st;
	int live;

	if (!c1 || !(c2 = strchr(c1 + 1, ':')) || (size_t)(c1 - worker_name) >= sizeof host)
		return 0;
	memcpy(host, worker_name, (size_t)(c1 - worker_name));
	host[c1 - worker_name] = 0;
	pid = strtoll(c1 + 1, NULL, 10);
	thread = strtoll(c2 + 1, NULL, 10);
	if (alive && pid > 0 && !alive(alive_ud, host, pid))
		return 0; /* a process its daemon knows is gone */
	st = cat_stmt(db, "SELECT 1 FROM heartbeats WHERE executable=? AND hostname=? AND pid=? AND"
			  " thread_id=? AND updated_at>=?");
	if (!st)
		return 1;
	sqldrv_bind_text(st, 1, executable, -1);
	sqldrv_bind_text(st, 2, host, -1);
	sqldrv_bind_int64(st, 3, pid);
	sqldrv_bind_int64(st, 4, thread);
	sqldrv_bind_int64(st, 5, rl_now_s() - older_than);
	live = sqldrv_step(st) == SQLDRV_ROW;
	sqldrv_reset(st);
	return live;
}
