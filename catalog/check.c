/* SPDX-License-Identifier: Apache-2.0 */
/*
 * check.c - cat_check(): is the catalog whole and consistent?
 *
 * Two kinds of findings, each reported through a callback as (kind, text):
 *   integrity  SQLite's own PRAGMA integrity_check (b-tree pages, indexes,
 *              free list): a file with damaged bytes.
 *   invariant  the catalog's own bookkeeping, as the rule engine keeps it:
 *              - a replica's lock_cnt equals the locks on (file, RSE);
 *              - a rule's locks_{ok,replicating,stuck}_cnt equal its locks
 *                by state;
 *              - a rule's state agrees with its locks (OK: none replicating
 *                or stuck; STUCK: some stuck; REPLICATING: some not OK);
 *              - RSE usage (folded counters plus pending deltas) equals the
 *                replicas on the RSE; account usage equals the account's
 *                locks per RSE;
 *              - every live request (QUEUED, SUBMITTED) belongs to an
 *                existing rule with a REPLICATING lock on its destination.
 * Read-only: one read transaction, no writes, so it runs on a catalog one
 * may not write and on one that is corrupt.  The queries here are SQLite's;
 * the PostgreSQL store will carry its own set.
 */
#include "catalog_i.h"

#include <string.h>


struct check_query {
	const char *kind;
	const char *sql; /* rows of one text column: one finding each */
};

static const struct check_query checks[] = {
	{ "invariant",
	  "SELECT format('replica %s:%s on %s has lock_cnt %s but %s locks', d.scope, d.name, s.rse,"
	  " r.lock_cnt, (SELECT count(*) FROM locks l WHERE l.did_id=r.did_id AND l.rse_num=r.rse_num))"
	  " FROM replicas r JOIN dids d ON d.id=r.did_id JOIN rses s ON s.num=r.rse_num"
	  " WHERE r.lock_cnt != (SELECT count(*) FROM locks l WHERE l.did_id=r.did_id"
	  " AND l.rse_num=r.rse_num)" },
	{ "invariant",
	  "SELECT format('rule %s counts ok/replicating/stuck %s/%s/%s but its locks are %s/%s/%s',"
	  " u.id, u.locks_ok_cnt, u.locks_replicating_cnt, u.locks_stuck_cnt, u.o, u.r, u.s) FROM"
	  " (SELECT ru.id, ru.locks_ok_cnt, ru.locks_replicating_cnt, ru.locks_stuck_cnt,"
	  "  coalesce(sum(l.state='O'),0) o, coalesce(sum(l.state='R'),0) r,"
	  "  coalesce(sum(l.state='S'),0) s FROM rules ru LEFT JOIN locks l ON l.rule_id=ru.id"
	  "  GROUP BY ru.id) u"
	  " WHERE u.locks_ok_cnt!=u.o OR u.locks_replicating_cnt!=u.r OR u.locks_stuck_cnt!=u.s" },
	{ "invariant",
	  "SELECT format('rule %s is %s but has %s replicating and %s stuck locks of %s', u.id,"
	  " CASE u.state WHEN 'O' THEN 'OK' WHEN 'S' THEN 'STUCK' ELSE 'REPLICATING' END,"
	  " u.r, u.s, u.n) FROM"
	  " (SELECT ru.id, ru.state, count(l.rule_id) n, coalesce(sum(l.state='R'),0) r,"
	  "  coalesce(sum(l.state='S'),0) s FROM rules ru LEFT JOIN locks l ON l.rule_id=ru.id"
	  "  WHERE ru.state IN ('O','S','R') GROUP BY ru.id) u"
	  " WHERE (u.state='O' AND (u.r>0 OR u.s>0)) OR (u.state='S' AND u.s=0 AND u.r=0)"
	  " OR (u.state='R' AND u.n>0 AND u.r=0 AND u.s=0)" },
	{ "invariant",
	  "SELECT format('RSE %s usage says %s files / %s bytes but it holds %s replicas / %s bytes',"
	  " s.rse, v.files, v.bytes, v.rfiles, v.rbytes) FROM"
	  " (SELECT n.num,"
	  "  coalesce((SELECT files FROM rse_usage WHERE rse_num=n.num AND source='rucio'),0)"
	  "  + coalesce((SELECT sum(files) FROM updated_rse_counters WHERE rse_num=n.num),0) files,"
	  "  coalesce((SELECT used FROM rse_usage WHERE rse_num=n.num AND source='rucio'),0)"
	  "  + coalesce((SELECT sum(bytes) FROM updated_rse_counters WHERE rse_num=n.num),0) bytes,"
	  "  (SELECT count(*) FROM replicas WHERE rse_num=n.num) rfiles,"
	  "  coalesce((SELECT sum(bytes) FROM replicas WHERE rse_num=n.num),0) rbytes"
	  "  FROM rses n) v JOIN rses s ON s.num=v.num"
	  " WHERE v.files!=v.rfiles OR v.bytes!=v.rbytes" },
	{ "invariant",
	  "SELECT format('account %s usage on %s says %s files / %s bytes but it holds %s locks / %s"
	  " bytes', x.account, s.rse, x.files, x.bytes, x.lfiles, x.lbytes) FROM"
	  " (SELECT k.account, k.rse_num,"
	  "  coalesce((SELECT files FROM account_usage u WHERE u.account=k.account"
	  "   AND u.rse_num=k.rse_num),0) + coalesce((SELECT sum(files) FROM updated_account_counters c"
	  "   WHERE c.account=k.account AND c.rse_num=k.rse_num),0) files,"
	  "  coalesce((SELECT bytes FROM account_usage u WHERE u.account=k.account"
	  "   AND u.rse_num=k.rse_num),0) + coalesce((SELECT sum(bytes) FROM updated_account_counters c"
	  "   WHERE c.account=k.account AND c.rse_num=k.rse_num),0) bytes,"
	  "  (SELECT count(*) FROM locks l WHERE l.account=k.account AND l.rse_num=k.rse_num) lfiles,"
	  "  coalesce((SELECT sum(l.bytes) FROM locks l WHERE l.account=k.account"
	  "   AND l.rse_num=k.rse_num),0) lbytes"
	  "  FROM (SELECT account, rse_num FROM account_usage UNION"
	  "   SELECT account, rse_num FROM updated_account_counters UNION"
	  "   SELECT account, rse_num FROM locks) k) x JOIN rses s ON s.num=x.rse_num"
	  " WHERE x.files!=x.lfiles OR x.bytes!=x.lbytes" },
	{ "invariant",
	  "SELECT format('request %s (%s) for %s:%s to %s belongs to rule %s, which does not exist',"
	  " q.id, CASE q.state WHEN 'Q' THEN 'QUEUED' ELSE 'SUBMITTED' END, d.scope, d.name, s.rse,"
	  " coalesce(q.rule_id,'(none)'))"
	  " FROM requests q JOIN dids d ON d.id=q.did_id JOIN rses s ON s.num=q.dest_rse_num"
	  " WHERE q.state IN ('Q','S') AND NOT EXISTS (SELECT 1 FROM rules r WHERE r.id=q.rule_id)" },
	{ "invariant",
	  "SELECT format('request %s (%s) for %s:%s to %s has no REPLICATING lock of rule %s there',"
	  " q.id, CASE q.state WHEN 'Q' THEN 'QUEUED' ELSE 'SUBMITTED' END, d.scope, d.name, s.rse,"
	  " q.rule_id)"
	  " FROM requests q JOIN dids d ON d.id=q.did_id JOIN rses s ON s.num=q.dest_rse_num"
	  " WHERE q.state IN ('Q','S') AND EXISTS (SELECT 1 FROM rules r WHERE r.id=q.rule_id)"
	  " AND NOT EXISTS (SELECT 1 FROM locks l WHERE l.did_id=q.did_id"
	  " AND l.rse_num=q.dest_rse_num AND l.state='R')" },
};

/* Step a one-column query, one finding per row. */
static enum dm_status run_query(struct cat_db *db, const char *kind, const char *sql,
				cat_check_cb cb, void *ud, uint64_t *found, int *stop)
{
	struct sqldrv_stmt *st = NULL;
	int r;

	if (!(st = sqldrv_prepare(db->sql, sql)))
		return cat_dberr(db, "checking the catalog");
	while (!*stop && (r = sqldrv_step(st)) == SQLDRV_ROW) {
		const char *text = cat_col_text(st, 0);

		/* integrity_check prints a single "ok" when all is well */
		if (!strcmp(kind, "integrity") && text && !strcmp(text, "ok"))
			continue;
		(*found)++;
		if (cb(ud, kind, text ? text : "(null)"))
			*stop = 1;
	}
	if (!*stop && r != SQLDRV_DONE) {
		/* a damaged file may fail the invariant queries themselves:
		 * that is a finding, not the end of the check */
		(*found)++;
		char msg[512];
		snprintf(msg, sizeof msg, "query failed: %.400s", sqldrv_error(db->sql)->msg);
		if (cb(ud, kind, msg))
			*stop = 1;
	}
	sqldrv_reset(st);
	return DM_OK;
}

enum dm_status cat_check(struct cat_db *db, cat_check_cb cb, void *ud, uint64_t *found)
{
	enum dm_status rc;
	int stop = 0;

	*found = 0;
	if (db->tx_depth)
		return cat_fail(db, DM_EINTERNAL, "RucioException", "cat_check inside a transaction");
	/* one read snapshot for every query: findings are about one state */
	if (sqldrv_exec(db->sql, cat_is_pg(db) ? "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
						 : "BEGIN") != DM_OK)
		return cat_dberr(db, "starting the check");
	/* SQLite checks its pages; a PostgreSQL server checks its own */
	if (!cat_is_pg(db))
		rc = run_query(db, "integrity", "PRAGMA integrity_check(100)", cb, ud, found, &stop);
	else
		rc = DM_OK;
	for (size_t i = 0; !rc && !stop && i < sizeof checks / sizeof checks[0]; i++)
		rc = run_query(db, checks[i].kind, checks[i].sql, cb, ud, found, &stop);
	sqldrv_exec(db->sql, "ROLLBACK");
	return rc;
}
