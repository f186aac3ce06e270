/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ep_subscription.c - /subscriptions, as Rucio's REST API and its
 * SubscriptionClient call it:
 *   GET  /subscriptions/[<account>[/<name>]]     stream of subscriptions
 *   GET  /subscriptions/name/<name>              stream, any account (1.31: /Name/)
 *   GET  /subscriptions/id/<id>                  one JSON object
 *   POST /subscriptions/<account>/<name>         {"options": {filter,
 *        replication_rules, comments, lifetime (days | false), retroactive,
 *        dry_run, priority}} -> 201, the id as text
 *   PUT  /subscriptions/<account>/<name>         {"options": {..., state}}
 *        -> 201 "Created" (state "I": Rucio's deactivate_subscription)
 *   GET  /subscriptions/<account>/<name>/rules   the rules it made (stream)
 * Filters and rules arrive as JSON values and are stored as JSON text (the
 * listings return them as strings, as Rucio does).  Status codes are
 * Rucio's: 400 InvalidObject for what does not validate, 401 AccessDenied
 * (admin only), 404 SubscriptionNotFound, 409 SubscriptionDuplicate.  The
 * catalog does the validation (catalog/subscription.c), for the CLI too.
 */
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SEG_MAX 256

static int is(const struct srv_req *r, const char *m) { return !strcmp(r->method, m); }

/* Split rest into up to 4 decoded '/'-separated segments; -1 on a bad escape. */
static int segments(const char *rest, char seg[4][SEG_MAX], int *n)
{
	*n = 0;
	while (*rest) {
		const char *e = strchr(rest, '/');
		size_t len = e ? (size_t)(e - rest) : strlen(rest);

		if (*n == 4)
			return -1;
		if (len == 0 && !e)
			break;
		if (srv_pct_decode(rest, len, 0, seg[*n], SEG_MAX))
			return -1;
		(*n)++;
		rest += len;
		if (*rest == '/')
			rest++;
	}
	/* a trailing empty segment ("/subscriptions/root/") is no segment */
	while (*n > 0 && !seg[*n - 1][0])
		(*n)--;
	return 0;
}

static void sub_json(struct dm_buf *b, const struct cat_subscription *s, int old)
{
	dm_buf_adds(b, "{");
	jw_ks(b, "id", s->id);
	jw_ks(b, "name", s->name);
	jw_ks(b, "filter", s->filter);
	jw_ks(b, "replication_rules", s->replication_rules);
	jw_ki(b, "policyid", s->policyid);
	jw_kenum(b, "state", "SubscriptionState", s->state, old);
	jw_kt(b, "last_processed", s->last_processed);
	jw_ks(b, "account", s->account);
	jw_kt(b, "lifetime", s->lifetime);
	jw_ks(b, "comments", s->comments);
	jw_kb(b, "retroactive", s->retroactive);
	jw_kt(b, "expired_at", s->expired_at);
	jw_kt(b, "created_at", s->created_at);
	jw_kt(b, "updated_at", s->updated_at);
	dm_buf_adds(b, "}");
}

/* ---- listings ---- */

struct list_ctx {
	char name[SEG_MAX], account[SEG_MAX];
	struct srv_stream *s;
	struct dm_buf b;
	/* rules of a subscription */
	char (*ids)[33];
	size_t nids;
	char sub_id[33];
};

static int sub_row(void *ud, const struct cat_subscription *x)
{
	struct list_ctx *c = ud;

	sub_json(&c->b, x, srv_stream_old_enums(c->s));
	dm_buf_addc(&c->b, '\n');
	return srv_stream_buf(c->s, &c->b);
}

static enum dm_status list_stream(struct srv_stream *s, struct cat_db *db, void *ud)
{
	struct list_ctx *c = ud;

	c->s = s;
	return cat_subscription_list(db, c->name[0] ? c->name : NULL,
				     c->account[0] ? c->account : NULL, sub_row, c);
}

static void list_free(void *p)
{
	struct list_ctx *c = p;

	dm_buf_release(&c->b);
	free(c->ids);
	free(c);
}

static int collect_id(void *ud, const char *id)
{
	struct list_ctx *c = ud;

	c->ids = dm_xrealloc(c->ids, (c->nids + 1) * sizeof *c->ids);
	dm_strlcpy(c->ids[c->nids++], id, 33);
	return 0;
}

static int keep_sub_id(void *ud, const struct cat_subscription *x)
{
	dm_strlcpy(((struct list_ctx *)ud)->sub_id, x->id, 33);
	return 1;
}

static int rule_row(void *ud, const struct cat_rule *x)
{
	struct list_ctx *c = ud;
	struct dm_buf t = DM_BUF_INIT;
	static const char nul[] = "\"subscription_id\": null";
	const char *p;

	srv_rule_json(&t, x, 0);
	p = strstr(t.s, nul);
	if (p) {
		dm_buf_add(&c->b, t.s, (size_t)(p - t.s));
		dm_buf_addf(&c->b, "\"subscription_id\": \"%s\"", c->sub_id);
		dm_buf_adds(&c->b, p + sizeof nul - 1);
	} else
		dm_buf_adds(&c->b, t.s);
	dm_buf_release(&t);
	dm_buf_addc(&c->b, '\n');
	return 0;
}

static enum dm_status rules_stream(struct srv_stream *s, struct cat_db *db, void *ud)
{
	struct list_ctx *c = ud;
	enum dm_status rc;

	c->s = s;
	/* ids first: no catalog call inside a row callback */
	if ((rc = cat_subscription_list(db, c->name, c->account, keep_sub_id, c)) ||
	    (rc = cat_subscription_rule_ids(db, c->name, c->account, collect_id, c)))
		return rc;
	for (size_t i = 0; i < c->nids; i++) {
		rc = cat_rule_get(db, c->ids[i], rule_row, c);
		if (rc == DM_ENOENT)
			continue; /* deleted since */
		if (rc)
			return rc;
		if (srv_stream_buf(s, &c->b))
			break;
	}
	return DM_OK;
}

static int stream(struct srv_req *r, const char *name, const char *account, int rules)
{
	struct list_ctx *c = dm_xcalloc(1, sizeof(*c));

	dm_buf_init(&c->b, 0);
	snprintf(c->name, sizeof c->name, "%s", name ? name : "");
	snprintf(c->account, sizeof c->account, "%s", account ? account : "");
	return srv_stream(r, "application/x-json-stream", rules ? rules_stream : list_stream, c,
			  list_free);
}

static int get_one(void *ud, const struct cat_subscription *x)
{
	sub_json(ud, x, 0);
	return 1;
}

static int by_id(struct srv_req *r, const char *id)
{
	struct cat_db *db = srv_db(r);
	struct dm_buf b = DM_BUF_INIT;
	int rc;

	if (!db)
		return 0;
	if (cat_subscription_get_id(db, id, get_one, &b)) {
		dm_buf_release(&b);
		return srv_cat_error(r, db);
	}
	rc = srv_reply_json(r, 200, &b);
	dm_buf_release(&b);
	return rc;
}

/* ---- add and update ---- */

/* The catalog's refusal with Rucio's codes for this endpoint. */
static int sub_error(struct srv_req *r, struct cat_db *db)
{
	const struct dm_err *e = cat_error(db);

	if (e->code == DM_EINVAL)
		return srv_error_status(r, 400, e->cls, "%s", e->msg);
	return srv_cat_error(r, db);
}

/* A JSON member as text: strings as they are, other values dumped. */
static char *member_text(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);

	if (!v || json_is_null(v))
		return NULL;
	return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
}

static int write_sub(struct srv_req *r, const char *account, const char *name, int update)
{
	json_t *j = srv_body_json(r), *o, *v;
	struct cat_db *db;
	char *filter = NULL, *rules = NULL, id[33];
	const char *comments = NULL, *state = NULL;
	int64_t lifetime = update ? -1 : 0;
	int priority = update ? -1 : 3, rc = 0;

	if (!j)
		return 0;
	o = json_is_object(j) ? json_object_get(j, "options") : NULL;
	if (!json_is_object(o)) {
		rc = srv_error(r, "KeyError", "'options' not defined");
		goto out;
	}
	v = json_object_get(o, "filter");
	if (v && !json_is_null(v) && !json_is_object(v)) {
		rc = srv_error_status(r, 400, "InvalidObject", "filter should be a dict");
		goto out;
	}
	v = json_object_get(o, "replication_rules");
	if (v && !json_is_null(v) && !json_is_array(v)) {
		rc = srv_error_status(r, 400, "InvalidObject", "replication_rules should be a list");
		goto out;
	}
	filter = member_text(o, "filter");
	rules = member_text(o, "replication_rules");
	v = json_object_get(o, "comments");
	if (json_is_string(v))
		comments = json_string_value(v);
	v = json_object_get(o, "lifetime");
	if (json_is_integer(v))
		lifetime = json_integer_value(v);
	else if (v && !json_is_null(v) && !json_is_false(v)) {
		rc = srv_error_status(r, 400, "InvalidObject", "lifetime takes a number of days or false");
		goto out;
	}
	v = json_object_get(o, "priority");
	if (json_is_integer(v))
		priority = (int)(json_integer_value(v) < -1 || json_integer_value(v) > 5 ? 99 : json_integer_value(v));
	if (json_is_true(json_object_get(o, "retroactive"))) {
		rc = srv_error_status(r, 400, "InvalidObject", "Retroactive mode is not implemented");
		goto out;
	}
	v = json_object_get(o, "state");
	if (json_is_string(v))
		state = json_string_value(v);
	if (!(db = srv_db_tx(r)))
		goto out;
	if (update) {
		struct cat_subscription_update u;

		cat_subscription_update_init(&u);
		u.filter = filter;
		u.rules = rules;
		u.comments = comments;
		u.state = state;
		u.lifetime_days = lifetime == 0 ? -1 : lifetime;
		u.priority = priority;
		if (cat_subscription_update(db, name, account, &u))
			rc = sub_error(r, db);
		else
			rc = srv_reply(r, 201, "text/html; charset=utf-8", "Created", 7);
	} else {
		if (!rules)
			rc = srv_error_status(r, 400, "InvalidObject", "You must specify a rule");
		else if (cat_subscription_add(db, name, account, filter ? filter : "{}", rules, comments,
					      lifetime, priority, id))
			rc = sub_error(r, db);
		else
			rc = srv_reply(r, 201, "text/html; charset=utf-8", id, strlen(id));
	}
out:
	free(filter);
	free(rules);
	json_decref(j);
	return rc;
}

int ep_subscriptions(struct srv_req *r, const char *rest)
{
	char seg[4][SEG_MAX];
	int n;

	if (segments(rest, seg, &n))
		return srv_error(r, "ValueError", "bad path: %s", r->path);
	if (n == 2 && !strcmp(seg[0], "id") && is(r, "GET"))
		return by_id(r, seg[1]);
	/* 1.31's client says /Name/<name> and /<a>/<n>/Rules */
	if (n == 2 && !strcasecmp(seg[0], "name") && is(r, "GET"))
		return stream(r, seg[1], NULL, 0);
	if (n <= 1 && is(r, "GET"))
		return stream(r, NULL, n ? seg[0] : NULL, 0);
	if (n == 2 && is(r, "GET"))
		return stream(r, seg[1], seg[0], 0);
	if (n == 2 && (is(r, "POST") || is(r, "PUT")))
		return write_sub(r, seg[0], seg[1], is(r, "PUT"));
	if (n == 3 && !strcasecmp(seg[2], "rules") && is(r, "GET"))
		return stream(r, seg[1], seg[0], 1);
	return srv_error_status(r, 404, "UnsupportedOperation", "Unknown endpoint: %s %s", r->method,
				r->path);
}
