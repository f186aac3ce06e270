/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ep_rule.c - /rules (add, get, list, update, delete with purge, locks),
 * /locks and the rule listings of DIDs and accounts.
 *
 * POST /rules/ needs the `account` key (KeyError otherwise, as Rucio);
 * null means the issuer.  A USER account may only add rules as itself; an
 * admin naming another account creates the rule as that account.  One rule
 * per DID, each its own transaction (as Rucio's REST: the ids of the rules
 * made before a failure are not returned).
 */
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int is(const struct srv_req *r, const char *m) { return !strcmp(r->method, m); }

void srv_rule_json(struct dm_buf *b, const struct cat_rule *x, int old_enums)
{
	dm_buf_adds(b, "{");
	jw_ks(b, "id", x->id);
	jw_knull(b, "subscription_id");
	jw_ks(b, "account", x->account);
	jw_ks(b, "scope", x->scope);
	jw_ks(b, "name", x->name);
	jw_ks(b, "did_type", cat_did_type_name(x->did_type));
	jw_ks(b, "state", cat_rule_state_name(x->state));
	jw_ks(b, "error", x->error && *x->error ? x->error : NULL);
	jw_ks(b, "rse_expression", x->rse_expression);
	jw_ki(b, "copies", x->copies);
	jw_kt(b, "expires_at", x->expires_at);
	jw_ks(b, "weight", x->weight && *x->weight ? x->weight : NULL);
	jw_kb(b, "locked", x->locked);
	jw_ki(b, "locks_ok_cnt", x->locks_ok_cnt);
	jw_ki(b, "locks_replicating_cnt", x->locks_replicating_cnt);
	jw_ki(b, "locks_stuck_cnt", x->locks_stuck_cnt);
	jw_ks(b, "source_replica_expression",
	      x->source_replica_expression && *x->source_replica_expression ? x->source_replica_expression : NULL);
	jw_ks(b, "activity", x->activity);
	jw_ks(b, "grouping", cat_grouping_name(x->grouping));
	jw_ks(b, "notification", x->notification ? x->notification : "NO");
	jw_kt(b, "stuck_at", x->stuck_at);
	jw_kb(b, "purge_replicas", x->purge_replicas);
	jw_kb(b, "ignore_availability", x->ignore_availability);
	jw_kb(b, "ignore_account_limit", 0);
	jw_ki(b, "priority", x->priority);
	jw_ks(b, "comments", x->comment && *x->comment ? x->comment : NULL);
	jw_knull(b, "child_rule_id");
	jw_knull(b, "eol_at");
	jw_kb(b, "split_container", 0);
	jw_knull(b, "meta");
	jw_kt(b, "created_at", x->created_at);
	jw_kt(b, "updated_at", x->updated_at);
	dm_buf_adds(b, "}");
	(void)old_enums;
}

static int rule_copy_cb(void *ud, const struct cat_rule *x)
{
	srv_rule_json(ud, x, 0);
	return 0;
}

/* ---- streams ---- */
struct rules_ctx {
	char scope[CAT_SCOPE_MAX + 1], name[CAT_NAME_MAX + 1], account[CAT_ACCOUNT_MAX + 1];
	char state[32], rule_id[33];
	struct srv_stream *s;
	struct dm_buf b;
	int locks;
	struct rse_id { char rse[CAT_RSE_MAX + 1]; char id[33]; } *rses; /* RSE name -> id */
	size_t nrses;
};

static int rule_row_cb(void *ud, const struct cat_rule *x)
{
	struct rules_ctx *c = ud;

	if (c->state[0] && strcmp(c->state, cat_rule_state_name(x->state)))
		return 0;
	srv_rule_json(&c->b, x, 0);
	dm_buf_addc(&c->b, '\n');
	return srv_stream_buf(c->s, &c->b);
}

static int lock_row_cb(void *ud, const struct cat_lock *l)
{
	struct rules_ctx *c = ud;

	dm_buf_adds(&c->b, "{");
	const char *rse_id = NULL;

	for (size_t i = 0; i < c->nrses && !rse_id; i++)
		if (!strcmp(c->rses[i].rse, l->rse))
			rse_id = c->rses[i].id;
	/* T-36's key order */
	jw_ks(&c->b, "scope", l->scope);
	jw_ks(&c->b, "name", l->name);
	jw_ks(&c->b, "rse_id", rse_id);
	jw_ks(&c->b, "rse", l->rse);
	jw_ks(&c->b, "state", cat_lock_state_name(l->state));
	jw_ks(&c->b, "rule_id", l->rule_id);
	dm_buf_adds(&c->b, "}\n");
	return srv_stream_buf(c->s, &c->b);
}

static int rse_id_cb(void *ud, const struct cat_rse *x)
{
	struct rules_ctx *c = ud;

	c->rses = dm_xrealloc(c->rses, sizeof(*c->rses) * (c->nrses + 1));
	dm_strlcpy(c->rses[c->nrses].rse, x->rse, sizeof(c->rses[0].rse));
	dm_strlcpy(c->rses[c->nrses++].id, x->id, sizeof(c->rses[0].id));
	return 0;
}

static enum dm_status rules_stream(struct srv_stream *s, struct cat_db *db, void *ud)
{
	struct rules_ctx *c = ud;
	enum dm_status rc;

	c->s = s;
	if (c->locks) {
		/* RSE ids are read before the listing: no catalog call in a row callback */
		if ((rc = cat_rse_list(db, rse_id_cb, c)))
			return rc;
		return cat_rule_list_locks(db, c->rule_id, lock_row_cb, c);
	}
	return cat_rule_list(db, c->scope[0] ? c->scope : NULL, c->name[0] ? c->name : NULL,
			     c->account[0] ? c->account : NULL, rule_row_cb, c);
}

static void rules_free(void *p)
{
	struct rules_ctx *c = p;

	dm_buf_release(&c->b);
	free(c->rses);
	free(c);
}

int srv_stream_rules(struct srv_req *r, const char *scope, const char *name, const char *account)
{
	struct rules_ctx *c = dm_xcalloc(1, sizeof(*c));

	dm_buf_init(&c->b, 0);
	snprintf(c->scope, sizeof(c->scope), "%s", scope ? scope : "");
	snprintf(c->name, sizeof(c->name), "%s", name ? name : "");
	snprintf(c->account, sizeof(c->account), "%s", account ? account : "");
	return srv_stream(r, "application/x-json-stream", rules_stream, c, rules_free);
}

int ep_rules_of_account(struct srv_req *r, const char *account);
int ep_rules_of_account(struct srv_req *r, const char *account)
{
	return srv_stream_rules(r, NULL, NULL, account);
}

/* ---- add ---- */

static int jint(json_t *j, const char *k, int64_t def)
{
	json_t *v = json_object_get(j, k);

	return json_is_integer(v) ? (int)json_integer_value(v) : (int)def;
}

static int add_rule(struct srv_req *r, struct cat_db *db)
{
	json_t *j = srv_body_json(r), *dids, *acc, *x, *lt;
	struct cat_rule_opts o;
	const char *account = NULL, *grouping = NULL, *notify = NULL;
	struct dm_buf b = DM_BUF_INIT;
	size_t i;
	int switched = 0;

	if (!j)
		return 0;
	if (!json_is_object(j)) {
		json_decref(j);
		return srv_error(r, "TypeError", "the body must be a JSON object");
	}
	dids = json_object_get(j, "dids");
	acc = json_object_get(j, "account");
	if (!json_is_array(dids)) {
		json_decref(j);
		return srv_error(r, "KeyError", "'dids' not defined");
	}
	if (!acc) {
		json_decref(j);
		return srv_error(r, "KeyError", "'account' not defined");
	}
	cat_rule_opts_init(&o);
	if (srv_jstr(r, j, "account", &account) || srv_jstr(r, j, "rse_expression", &o.rse_expression) ||
	    srv_jstr(r, j, "grouping", &grouping) || srv_jstr(r, j, "weight", &o.weight) ||
	    srv_jstr(r, j, "source_replica_expression", &o.source_replica_expression) ||
	    srv_jstr(r, j, "activity", &o.activity) || srv_jstr(r, j, "comment", &o.comment) ||
	    srv_jstr(r, j, "notify", &notify))
		goto out;
	if (!json_object_get(j, "copies") || !json_is_integer(json_object_get(j, "copies"))) {
		srv_error(r, json_object_get(j, "copies") ? "TypeError" : "KeyError", "'copies' must be an integer");
		goto out;
	}
	if (!o.rse_expression) {
		srv_error(r, "KeyError", "'rse_expression' not defined");
		goto out;
	}
	o.copies = jint(j, "copies", 1);
	lt = json_object_get(j, "lifetime");
	if (json_is_integer(lt))
		o.lifetime = json_integer_value(lt);
	if (grouping && cat_grouping_parse(grouping, &o.grouping)) {
		srv_error(r, "InvalidObject", "unknown grouping '%s'", grouping);
		goto out;
	}
	if (!o.activity)
		o.activity = "User Subscriptions";
	o.locked = json_is_true(json_object_get(j, "locked"));
	o.purge_replicas = json_is_true(json_object_get(j, "purge_replicas"));
	o.ignore_availability = json_is_true(json_object_get(j, "ignore_availability"));
	o.asynchronous = json_is_true(json_object_get(j, "asynchronous"));
	o.priority = jint(j, "priority", 3);
	if (notify) {
		o.notification = !strcmp(notify, "Y") ? "YES" : !strcmp(notify, "C") ? "CLOSE" :
				 !strcmp(notify, "P") ? "PROGRESS" : "NO";
	}
	if (account && strcmp(account, r->account)) {
		if (!cat_issuer_is_admin(db)) {
			srv_error(r, "AccessDenied", "Account %s can not add rule for account %s", r->account, account);
			goto out;
		}
		if (cat_set_issuer(db, account)) {
			srv_cat_error(r, db);
			goto out;
		}
		switched = 1;
	}
	dm_buf_adds(&b, "[");
	json_array_foreach(dids, i, x) {
		const char *s = NULL, *n = NULL;
		char id[33];

		if (srv_jstr(r, x, "scope", &s) || srv_jstr(r, x, "name", &n))
			goto out;
		if (!s || !n) {
			srv_error(r, "KeyError", "every DID needs 'scope' and 'name'");
			goto out;
		}
		if (cat_rule_add(db, s, n, &o, id)) {
			srv_cat_error(r, db);
			goto out;
		}
		jw_sep(&b);
		jw_str(&b, id);
	}
	dm_buf_adds(&b, "]");
	srv_reply(r, 201, "text/html; charset=utf-8", b.s, b.len);
out:
	if (switched)
		cat_set_issuer(db, r->account);
	dm_buf_release(&b);
	json_decref(j);
	return 0;
}

static int update_rule(struct srv_req *r, struct cat_db *db, const char *id)
{
	json_t *j = srv_body_json(r), *opts, *v;
	const char *k;

	if (!j)
		return 0;
	opts = json_object_get(j, "options");
	if (!json_is_object(opts)) {
		json_decref(j);
		return srv_error(r, "KeyError", "'options' not defined");
	}
	json_object_foreach(opts, k, v) {
		char val[1024];

		if (json_is_string(v))
			snprintf(val, sizeof(val), "%s", json_string_value(v));
		else if (json_is_integer(v))
			snprintf(val, sizeof(val), "%lld", (long long)json_integer_value(v));
		else if (json_is_boolean(v))
			snprintf(val, sizeof(val), "%s", json_is_true(v) ? "true" : "false");
		else if (json_is_null(v))
			snprintf(val, sizeof(val), "none");
		else {
			json_decref(j);
			return srv_error(r, "TypeError", "option '%s' has a value of the wrong type", k);
		}
		if (!strcmp(k, "stuck") && !strcmp(val, "true"))
			k = "state", snprintf(val, sizeof(val), "STUCK");
		if (cat_rule_update(db, id, k, val)) {
			json_decref(j);
			return srv_cat_error(r, db);
		}
	}
	json_decref(j);
	return srv_reply_ok(r);
}

int ep_rules(struct srv_req *r, const char *rest)
{
	struct cat_db *db;
	char id[33];
	const char *slash;
	struct dm_buf b = DM_BUF_INIT;
	int rc;

	if (!*rest) {
		if (is(r, "POST")) {
			if (!(db = srv_db_tx(r)))
				return 0;
			return add_rule(r, db);
		}
		if (is(r, "GET")) {
			struct rules_ctx *c = dm_xcalloc(1, sizeof(*c));
			const char *v;

			dm_buf_init(&c->b, 0);
			if ((v = srv_arg(r, "scope")))
				snprintf(c->scope, sizeof(c->scope), "%s", v);
			if ((v = srv_arg(r, "name")))
				snprintf(c->name, sizeof(c->name), "%s", v);
			if ((v = srv_arg(r, "account")))
				snprintf(c->account, sizeof(c->account), "%s", v);
			if ((v = srv_arg(r, "state")))
				snprintf(c->state, sizeof(c->state), "%s", v);
			if (c->name[0] && !c->scope[0]) {
				rules_free(c);
				return srv_error(r, "InvalidObject", "a name filter needs a scope");
			}
			return srv_stream(r, "application/x-json-stream", rules_stream, c, rules_free);
		}
		return srv_error(r, "MethodNotAllowed", "Method %s not allowed", r->method);
	}
	slash = strchr(rest, '/');
	if (srv_pct_decode(rest, slash ? (size_t)(slash - rest) : strlen(rest), 0, id, sizeof(id)) || !*id)
		return srv_error(r, "InvalidPath", "invalid rule id in the path");
	if (slash && !strcmp(slash, "/locks")) {
		struct rules_ctx *c = dm_xcalloc(1, sizeof(*c));

		dm_buf_init(&c->b, 0);
		c->locks = 1;
		snprintf(c->rule_id, sizeof(c->rule_id), "%s", id);
		return srv_stream(r, "application/x-json-stream", rules_stream, c, rules_free);
	}
	if (slash && slash[1])
		return srv_error_status(r, 404, "UnsupportedOperation", "Unknown endpoint: %s %s", r->method, r->path);
	if (!(db = srv_db_w(r)))
		return 0;
	if (is(r, "GET")) {
		if (cat_rule_get(db, id, rule_copy_cb, &b)) {
			if (!strcmp(cat_error(db)->cls, "RuleNotFound")) /* Rucio's text (T-35) */
				rc = srv_error(r, "RuleNotFound", "No rule with the id %s found", id);
			else
				rc = srv_cat_error(r, db);
		}
		else
			rc = srv_reply_json(r, 200, &b);
		dm_buf_release(&b);
		return rc;
	}
	if (is(r, "PUT"))
		return update_rule(r, db, id);
	if (is(r, "DELETE")) {
		int purge = -1;

		if (r->body.len) {
			json_t *j = srv_body_json(r), *p;

			if (!j)
				return 0;
			p = json_object_get(j, "purge_replicas");
			if (json_is_boolean(p))
				purge = json_is_true(p);
			json_decref(j);
		}
		/* Rucio's REST delete: the rule expires now and goes at once */
		if (cat_rule_delete(db, id, purge, 0))
			return srv_cat_error(r, db);
		return srv_reply_ok(r);
	}
	return srv_error(r, "MethodNotAllowed", "Method %s not allowed", r->method);
}

/* Dataset locks (Rucio's locks.py): GET /locks/<rse>, GET /locks/<s>/<n>
 * (both need did_type=dataset, else Rucio's 500 text) and POST
 * /locks/bulk_locks_for_dids {"dids": [...]}. */
struct dslock_ctx {
	char rse[CAT_RSE_MAX + 1];
	json_t *dids; /* bulk: [{scope,name}] */
	char scope[CAT_SCOPE_MAX + 1], name[CAT_NAME_MAX + 1];
	struct srv_stream *s;
	struct dm_buf b;
};

static int dslock_row_cb(void *ud, const struct cat_dataset_lock *l)
{
	struct dslock_ctx *c = ud;
	struct dm_buf *b = &c->b;

	dm_buf_adds(b, "{");
	jw_ks(b, "rse_id", l->rse_id);
	jw_ks(b, "scope", l->scope);
	jw_ks(b, "name", l->name);
	jw_ks(b, "rule_id", l->rule_id);
	jw_ks(b, "account", l->account);
	jw_ks(b, "state", l->state);
	if (l->length < 0)
		jw_knull(b, "length");
	else
		jw_ki(b, "length", l->length);
	if (l->bytes < 0)
		jw_knull(b, "bytes");
	else
		jw_ki(b, "bytes", l->bytes);
	jw_knull(b, "accessed_at");
	jw_ks(b, "rse", l->rse);
	dm_buf_adds(b, "}\n");
	return srv_stream_buf(c->s, b);
}

struct kid { char scope[CAT_SCOPE_MAX + 1], name[CAT_NAME_MAX + 1]; enum cat_did_type type; };
struct kids { struct kid *v; size_t n; };

static void kids_push(struct kids *k, const char *scope, const char *name, enum cat_did_type t)
{
	k->v = dm_xrealloc(k->v, sizeof(*k->v) * (k->n + 1));
	dm_strlcpy(k->v[k->n].scope, scope, sizeof(k->v[k->n].scope));
	dm_strlcpy(k->v[k->n].name, name, sizeof(k->v[k->n].name));
	k->v[k->n++].type = t;
}

static int kid_type_cb(void *ud, const struct cat_did *d)
{
	*(enum cat_did_type *)ud = d->type;
	return 0;
}

static int kids_cb(void *ud, const struct cat_did *d)
{
	if (d->type != CAT_DID_FILE)
		kids_push(ud, d->scope, d->name, d->type);
	return 0;
}

static void kids_free(struct kids *k)
{
	free(k->v);
}

static enum dm_status dslock_stream(struct srv_stream *s, struct cat_db *db, void *ud)
{
	struct dslock_ctx *c = ud;
	enum dm_status rc = DM_OK;
	json_t *x;
	size_t i;

	c->s = s;
	if (c->rse[0])
		return cat_dataset_lock_list(db, c->rse, NULL, NULL, dslock_row_cb, c);
	if (!c->dids)
		return cat_dataset_lock_list(db, NULL, c->scope, c->name, dslock_row_cb, c);
	/* containers are walked down to their datasets (Rucio's get_dataset_locks_bulk);
	 * children are collected first, no catalog call runs inside a row callback */
	json_array_foreach(c->dids, i, x) {
		struct kids k = { 0 };
		const char *sc = json_string_value(json_object_get(x, "scope"));
		const char *nm = json_string_value(json_object_get(x, "name"));
		enum cat_did_type t = CAT_DID_FILE;

		if (cat_did_get(db, sc, nm, kid_type_cb, &t) == DM_OK)
			kids_push(&k, sc, nm, t);
		for (size_t w = 0; rc == DM_OK && w < k.n && w < 100000; w++) {
			if (k.v[w].type == CAT_DID_DATASET)
				rc = cat_dataset_lock_list(db, NULL, k.v[w].scope, k.v[w].name, dslock_row_cb, c);
			if (rc == DM_OK && k.v[w].type == CAT_DID_CONTAINER)
				rc = cat_did_list_content(db, k.v[w].scope, k.v[w].name, kids_cb, &k);
			if (rc == DM_ENOENT)
				rc = DM_OK;
		}
		kids_free(&k);
		if (rc)
			break;
	}
	return rc;
}

static void dslock_free(void *p)
{
	struct dslock_ctx *c = p;

	dm_buf_release(&c->b);
	json_decref(c->dids);
	free(c);
}

int ep_locks(struct srv_req *r, const char *rest)
{
	char scope[CAT_SCOPE_MAX * 4 + 1], name[CAT_NAME_MAX * 4 + 1];
	const char *suffix, *dt = srv_arg(r, "did_type");
	struct dm_err err = { 0 };
	struct dslock_ctx *c;

	if (!strcmp(rest, "bulk_locks_for_dids") || !strcmp(rest, "bulk_locks_for_dids/")) {
		json_t *j, *dids, *x;
		size_t i;

		if (!is(r, "POST"))
			return srv_error(r, "MethodNotAllowed", "Method %s not allowed", r->method);
		if (!(j = srv_body_json(r)))
			return 0;
		if (!json_is_object(j)) {
			json_decref(j);
			return srv_error(r, "TypeError", "the body must be a JSON object");
		}
		dids = json_object_get(j, "dids");
		if (!dids) {
			json_decref(j);
			return srv_reply(r, 400, "text/html; charset=utf-8",
					 "Can not find the list of DIDs in the data. Use \"dids\" keyword.", 62);
		}
		if (!json_is_array(dids)) {
			json_decref(j);
			return srv_error(r, "TypeError", "'dids' must be a list");
		}
		json_array_foreach(dids, i, x) {
			if (!json_is_string(json_object_get(x, "scope")) || !json_is_string(json_object_get(x, "name"))) {
				json_decref(j);
				return srv_error(r, "ValueError", "every DID needs 'scope' and 'name' strings");
			}
		}
		c = dm_xcalloc(1, sizeof(*c));
		dm_buf_init(&c->b, 0);
		c->dids = json_incref(dids);
		json_decref(j);
		return srv_stream(r, "application/x-json-stream", dslock_stream, c, dslock_free);
	}
	if (!is(r, "GET") || !*rest)
		return srv_error_status(r, 404, "UnsupportedOperation", "Unknown endpoint: %s %s", r->method, r->path);
	if (!dt || strcmp(dt, "dataset"))
		return srv_reply(r, 500, "text/html; charset=utf-8", "Wrong did_type specified", 24);
	c = dm_xcalloc(1, sizeof(*c));
	dm_buf_init(&c->b, 0);
	if (!strchr(rest, '/')) {
		if (srv_pct_decode(rest, strlen(rest), 0, c->rse, sizeof(c->rse)) || !*c->rse) {
			dslock_free(c);
			return srv_error(r, "InvalidPath", "invalid RSE name in the path");
		}
	} else {
		if (srv_did_path(rest, scope, sizeof(scope), name, sizeof(name), &suffix, &err) || *suffix ||
		    strlen(scope) > CAT_SCOPE_MAX || strlen(name) > CAT_NAME_MAX) {
			dslock_free(c);
			return srv_error(r, "ValueError", "invalid DID in the path");
		}
		dm_strlcpy(c->scope, scope, sizeof(c->scope));
		dm_strlcpy(c->name, name, sizeof(c->name));
	}
	return srv_stream(r, "application/x-json-stream", dslock_stream, c, dslock_free);
}

/* GET /dids/<s>/<n>/associated_rules: the rules holding a lock on the file.
 * The ids are collected first, then each rule is read: no catalog call
 * inside a row callback. */
struct assoc_ctx {
	char scope[CAT_SCOPE_MAX + 1], name[CAT_NAME_MAX + 1];
	char (*ids)[33];
	size_t n;
	struct srv_stream *s;
	struct dm_buf b;
};

static int assoc_id_cb(void *ud, const char *id)
{
	struct assoc_ctx *c = ud;

	c->ids = dm_xrealloc(c->ids, sizeof(*c->ids) * (c->n + 1));
	dm_strlcpy(c->ids[c->n++], id, 33);
	return 0;
}

static int assoc_rule_cb(void *ud, const struct cat_rule *x)
{
	struct assoc_ctx *c = ud;

	srv_rule_json(&c->b, x, 0);
	dm_buf_addc(&c->b, '\n');
	return srv_stream_buf(c->s, &c->b);
}

static enum dm_status assoc_stream(struct srv_stream *s, struct cat_db *db, void *ud)
{
	struct assoc_ctx *c = ud;
	enum dm_status rc = cat_file_rule_ids(db, c->scope, c->name, assoc_id_cb, c);

	c->s = s;
	for (size_t i = 0; rc == DM_OK && i < c->n; i++) {
		rc = cat_rule_get(db, c->ids[i], assoc_rule_cb, c);
		if (rc == DM_ENOENT) /* removed meanwhile */
			rc = DM_OK;
	}
	return rc;
}

static void assoc_free(void *p)
{
	struct assoc_ctx *c = p;

	dm_buf_release(&c->b);
	free(c->ids);
	free(c);
}

int srv_stream_associated_rules(struct srv_req *r, const char *scope, const char *name)
{
	struct assoc_ctx *c = dm_xcalloc(1, sizeof(*c));

	dm_buf_init(&c->b, 0);
	dm_strlcpy(c->scope, scope, sizeof(c->scope));
	dm_strlcpy(c->name, name, sizeof(c->name));
	return srv_stream(r, "application/x-json-stream", assoc_stream, c, assoc_free);
}
