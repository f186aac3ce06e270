/* SPDX-License-Identifier: Apache-2.0 */
/*
 * outbox.c - Rucio's messages table as an outbox: the events of the
 * catalog (transfers, rules, deletions, new collections), each written in
 * the same transaction as the change it reports, so an event exists if and
 * only if its change committed; the hermes daemon (daemons/hermes.c)
 * delivers them at least once to every configured sink and deletes a
 * message only when all sinks have it.
 *
 * Event names and payload keys are Rucio's (core/request.py, rule.py,
 * did.py, the reaper):
 *   transfer-submitted, transfer-done, transfer-failed   per request attempt:
 *       request-id, activity, scope, name, file-size, bytes, checksum-adler,
 *       checksum-md5, src-rse, dst-rse, src-type, dst-type, reason,
 *       transfer-endpoint, transfer-id, tool-id "rucio-conveyor", account,
 *       rule-id (didfs), created_at, submitted_at, transferred_at, duration
 *   RULE_OK                     {scope, name, rule_id}, as Rucio: only for
 *                               rules with notify YES, or CLOSE/PROGRESS
 *                               once their DID is closed
 *   RULE_STUCK (didfs: Rucio has no message for it) {scope, name, rule_id,
 *                               error}, with the same notify condition
 *   deletion-done, deletion-failed  {scope, name, rse, file-size, bytes,
 *                               url, protocol, duration, reason}
 *   CREATE_DTS, CREATE_CNT      {account, scope, name, expired_at}
 * Payloads are JSON objects (jansson), created_at in seconds.
 *
 * Delivery bookkeeping (migration 7): message_deliveries(message_id, sink)
 * holds which sink already has which message; cat_messages_delivered()
 * records a batch for one sink and deletes the messages every sink of the
 * configured set now has, in one transaction.
 */
#include "catalog_i.h"
#include "engine.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static enum dm_status step_done(struct cat_db *db, struct sqldrv_stmt *st, const char *what)
{
	int r = sqldrv_step(st);

	sqldrv_reset(st);
	if (r != SQLDRV_DONE && r != SQLDRV_ROW)
		return cat_dberr(db, what);
	return DM_OK;
}

/* Takes the reference of payload. */
static enum dm_status add(struct cat_db *db, const char *event, json_t *payload)
{
	char *text = json_dumps(payload, JSON_COMPACT);
	struct sqldrv_stmt *st;
	enum dm_status rc;

	json_decref(payload);
	if (!text)
		return cat_fail(db, DM_ENOMEM, "DatabaseException", "cannot encode the %s message", event);
	st = cat_stmt(db, "INSERT INTO messages(event_type, payload, created_at) VALUES (?,?,?)");
	if (!st) {
		free(text);
		return db->err.code;
	}
	sqldrv_bind_text(st, 1, event, -1);
	sqldrv_bind_text(st, 2, text, -1);
	sqldrv_bind_int64(st, 3, dm_now());
	rc = step_done(db, st, "queueing a message");
	free(text);
	return rc;
}

enum dm_status cat_outbox_add(struct cat_db *db, const char *event, const char *payload_json)
{
	json_t *p = json_loads(payload_json, 0, NULL);

	if (!json_is_object(p)) {
		json_decref(p);
		return cat_fail(db, DM_EINVAL, "InvalidObject", "a message payload is a JSON object");
	}
	return add(db, event, p);
}

static json_t *str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

static json_t *time_or_null(int64_t t)
{
	return t ? json_integer(t) : json_null();
}

enum dm_status cat_outbox_transfer(struct cat_db *db, const char *request_id, const char *event,
				   const char *reason)
{
	struct sqldrv_stmt *st = cat_stmt(db,
		"SELECT d.scope, d.name, q.activity, coalesce(q.bytes, d.bytes), d.adler32, d.md5,"
		" src.rse, dst.rse, q.account, q.rule_id, q.created_at, q.submitted_at, q.retry_count,"
		" dst.rse_type, src.rse_type"
		" FROM requests q JOIN dids d ON d.id=q.did_id JOIN rses dst ON dst.num=q.dest_rse_num"
		" LEFT JOIN rses src ON src.num=q.source_rse_num WHERE q.id=?");
	json_t *p;
	int64_t now = dm_now(), submitted;
	int r;

	if (!st)
		return db->err.code;
	sqldrv_bind_text(st, 1, request_id, -1);
	r = sqldrv_step(st);
	if (r != SQLDRV_ROW) {
		sqldrv_reset(st);
		return r == SQLDRV_DONE ? DM_OK : cat_dberr(db, "reading a request for its message");
	}
	submitted = sqldrv_col_int64(st, 11);
	p = json_object();
	json_object_set_new(p, "request-id", json_string(request_id));
	json_object_set_new(p, "activity", str_or_null(cat_col_text(st, 2)));
	json_object_set_new(p, "scope", json_string(cat_col_text(st, 0)));
	json_object_set_new(p, "name", json_string(cat_col_text(st, 1)));
	json_object_set_new(p, "file-size", json_integer(sqldrv_col_int64(st, 3)));
	json_object_set_new(p, "bytes", json_integer(sqldrv_col_int64(st, 3)));
	json_object_set_new(p, "checksum-adler", str_or_null(cat_col_text(st, 4)));
	json_object_set_new(p, "checksum-md5", str_or_null(cat_col_text(st, 5)));
	json_object_set_new(p, "src-rse", str_or_null(cat_col_text(st, 6)));
	json_object_set_new(p, "dst-rse", json_string(cat_col_text(st, 7)));
	json_object_set_new(p, "src-type", str_or_null(cat_col_text(st, 14)));
	json_object_set_new(p, "dst-type", str_or_null(cat_col_text(st, 13)));
	json_object_set_new(p, "account", str_or_null(cat_col_text(st, 8)));
	json_object_set_new(p, "rule-id", str_or_null(cat_col_text(st, 9)));
	json_object_set_new(p, "retry-count", json_integer(sqldrv_col_int64(st, 12)));
	json_object_set_new(p, "reason", str_or_null(reason));
	json_object_set_new(p, "transfer-endpoint", json_string("didfs-conveyor"));
	json_object_set_new(p, "transfer-id", json_string(request_id));
	json_object_set_new(p, "tool-id", json_string("rucio-conveyor"));
	json_object_set_new(p, "previous-request-id", json_null());
	json_object_set_new(p, "created_at", time_or_null(sqldrv_col_int64(st, 10)));
	json_object_set_new(p, "submitted_at", time_or_null(strcmp(event, "transfer-submitted") ? submitted : now));
	if (!strcmp(event, "transfer-submitted")) {
		json_object_set_new(p, "transferred_at", json_null());
		json_object_set_new(p, "duration", json_null());
	} else {
		json_object_set_new(p, "transferred_at", json_integer(now));
		json_object_set_new(p, "duration", submitted ? json_integer(now - submitted) : json_null());
	}
	sqldrv_reset(st);
	return add(db, event, p);
}

enum dm_status cat_outbox_rule_state(struct cat_db *db, const char *rule_id, char state)
{
	struct sqldrv_stmt *st;
	json_t *p;
	char notif;
	int open, r;

	if (state != 'O' && state != 'S')
		return DM_OK;
	st = cat_stmt(db, "SELECT d.scope, d.name, r.notification, coalesce(d.is_open, 0), r.error"
			  " FROM rules r JOIN dids d ON d.id=r.did_id WHERE r.id=?");
	if (!st)
		return db->err.code;
	sqldrv_bind_text(st, 1, rule_id, -1);
	r = sqldrv_step(st);
	if (r != SQLDRV_ROW) {
		sqldrv_reset(st);
		return r == SQLDRV_DONE ? DM_OK : cat_dberr(db, "reading a rule for its message");
	}
	notif = cat_col_text(st, 2) ? cat_col_text(st, 2)[0] : 'N';
	open = (int)sqldrv_col_int64(st, 3);
	/* Rucio: YES always, CLOSE and PROGRESS once the DID is closed */
	if (notif == 'N' || ((notif == 'C' || notif == 'P') && open)) {
		sqldrv_reset(st);
		return DM_OK;
	}
	p = json_object();
	json_object_set_new(p, "scope", json_string(cat_col_text(st, 0)));
	json_object_set_new(p, "name", json_string(cat_col_text(st, 1)));
	json_object_set_new(p, "rule_id", json_string(rule_id));
	if (state == 'S')
		json_object_set_new(p, "error", str_or_null(cat_col_text(st, 4)));
	sqldrv_reset(st);
	return add(db, state == 'O' ? "RULE_OK" : "RULE_STUCK", p);
}

enum dm_status cat_outbox_did_created(struct cat_db *db, const char *scope, const char *name,
				      enum cat_did_type type, int64_t expired_at)
{
	json_t *p;
	char t[40];

	if (type == CAT_DID_FILE)
		return DM_OK;
	p = json_object();
	json_object_set_new(p, "account", json_string(cat_issuer(db)));
	json_object_set_new(p, "scope", json_string(scope));
	json_object_set_new(p, "name", json_string(name));
	if (expired_at) {
		dm_fmt_time(expired_at, t);
		json_object_set_new(p, "expired_at", json_string(t));
	} else
		json_object_set_new(p, "expired_at", json_null());
	return add(db, type == CAT_DID_DATASET ? "CREATE_DTS" : "CREATE_CNT", p);
}

enum dm_status cat_outbox_deletion(struct cat_db *db, const char *rse, const char *scope,
				   const char *name, int64_t bytes, const char *reason)
{
	json_t *p = json_object();

	json_object_set_new(p, "scope", json_string(scope));
	json_object_set_new(p, "name", json_string(name));
	json_object_set_new(p, "rse", json_string(rse));
	json_object_set_new(p, "file-size", json_integer(bytes));
	json_object_set_new(p, "bytes", json_integer(bytes));
	json_object_set_new(p, "url", json_null());
	json_object_set_new(p, "protocol", json_null());
	json_object_set_new(p, "duration", json_null());
	json_object_set_new(p, "reason", str_or_null(reason));
	return add(db, reason ? "deletion-failed" : "deletion-done", p);
}

enum dm_status cat_reaper_failed(struct cat_db *db, const char *rse, const char *scope,
				 const char *name, uint64_t bytes, const char *reason)
{
	enum dm_status rc = cat_tx_begin(db);

	if (rc)
		return rc;
	rc = cat_outbox_deletion(db, rse, scope, name, (int64_t)bytes,
				 reason && *reason ? reason : "deletion failed");
	return cat_tx_end(db, rc);
}

/* ---- hermes' side ---- */

enum dm_status cat_messages_pending(struct cat_db *db, const char *sink, int limit,
				    cat_message_cb cb, void *ud)
{
	struct sqldrv_stmt *st = cat_stmt(db, "SELECT m.id, m.event_type, m.payload, m.created_at FROM messages m"
				       " WHERE NOT EXISTS (SELECT 1 FROM message_deliveries d"
				       " WHERE d.message_id=m.id AND d.sink=?1) ORDER BY m.id LIMIT ?2");
	int r;

	if (!st)
		return db->err.code;
	sqldrv_bind_text(st, 1, sink, -1);
	sqldrv_bind_int64(st, 2, limit > 0 ? limit : 100);
	while ((r = sqldrv_step(st)) == SQLDRV_ROW) {
		struct cat_message m = {
			.id = sqldrv_col_int64(st, 0),
			.event_type = cat_col_text(st, 1),
			.payload = cat_col_text(st, 2),
			.created_at = sqldrv_col_int64(st, 3),
		};

		if (cb(ud, &m))
			break;
	}
	sqldrv_reset(st);
	if (r != SQLDRV_ROW && r != SQLDRV_DONE)
		return cat_dberr(db, "listing messages");
	return DM_OK;
}

enum dm_status cat_messages_delivered(struct cat_db *db, const char *sink, const int64_t *ids,
				      size_t n, const char *sinks_csv, int nsinks, int *deleted)
{
	enum dm_status rc = cat_tx_begin(db);
	struct sqldrv_stmt *ins, *del, *deld;
	int64_t now = dm_now();

	*deleted = 0;
	if (rc)
		return rc;
	for (size_t i = 0; i < n && rc == DM_OK && nsinks == 1; i++) {
		/* one sink: it has them all now */
		del = cat_stmt(db, "DELETE FROM messages WHERE id=?");
		if (!del) {
			rc = db->err.code;
			break;
		}
		sqldrv_bind_int64(del, 1, ids[i]);
		if ((rc = step_done(db, del, "deleting a delivered message")) == DM_OK)
			*deleted += sqldrv_changes(db->sql) > 0;
	}
	for (size_t i = 0; i < n && rc == DM_OK && nsinks > 1; i++) {
		ins = cat_stmt(db, "INSERT INTO message_deliveries(message_id, sink, delivered_at)"
				   " SELECT id, ?2, ?3 FROM messages WHERE id=?1 ON CONFLICT DO NOTHING");
		if (!ins) {
			rc = db->err.code;
			break;
		}
		sqldrv_bind_int64(ins, 1, ids[i]);
		sqldrv_bind_text(ins, 2, sink, -1);
		sqldrv_bind_int64(ins, 3, now);
		if ((rc = step_done(db, ins, "recording a delivery")))
			break;
		del = cat_stmt(db, "DELETE FROM messages WHERE id=?1 AND (SELECT count(*) FROM message_deliveries"
				   " WHERE message_id=?1 AND instr(?2, ',' || sink || ',') > 0) >= ?3");
		if (!del) {
			rc = db->err.code;
			break;
		}
		sqldrv_bind_int64(del, 1, ids[i]);
		sqldrv_bind_text(del, 2, sinks_csv, -1);
		sqldrv_bind_int64(del, 3, nsinks);
		if ((rc = step_done(db, del, "deleting a delivered message")))
			break;
		if (sqldrv_changes(db->sql) > 0) {
			(*deleted)++;
			deld = cat_stmt(db, "DELETE FROM message_deliveries WHERE message_id=?");
			if (!deld) {
				rc = db->err.code;
				break;
			}
			sqldrv_bind_int64(deld, 1, ids[i]);
			rc = step_done(db, deld, "forgetting deliveries");
		}
	}
	return cat_tx_end(db, rc);
}

enum dm_status cat_messages_count(struct cat_db *db, int64_t *n)
{
	struct sqldrv_stmt *st = cat_stmt(db, "SELECT count(*) FROM messages");
	int r;

	*n = 0;
	if (!st)
		return db->err.code;
	r = sqldrv_step(st);
	if (r == SQLDRV_ROW)
		*n = sqldrv_col_int64(st, 0);
	sqldrv_reset(st);
	return r == SQLDRV_ROW ? DM_OK : cat_dberr(db, "counting messages");
}
