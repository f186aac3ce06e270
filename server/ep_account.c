/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ep_account.c - /accounts, /identities, /scopes, /accountlimits.
 *
 * whoami is Rucio's 303 to the account (relative Location, an HTML body);
 * /accounts/<a> has ISO dates (the one exception to Rucio's date format).
 * Account usage is a stream with bytes_limit/bytes_remaining as Python's
 * json.dumps prints an unlimited quota (Infinity).
 */
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int is(const struct srv_req *r, const char *m) { return !strcmp(r->method, m); }

static int decode_part(struct srv_req *r, const char *raw, size_t n, char *out, size_t outn,
		       const char *what)
{
	if (srv_pct_decode(raw, n, 0, out, outn) || !*out) {
		srv_error(r, "InvalidPath", "invalid %s in the path", what);
		return -1;
	}
	return 0;
}

/* split "a/b/c" into up to 4 raw parts (trailing slash ignored) */
static int split(const char *rest, const char *part[4], size_t len[4])
{
	int n = 0;

	while (*rest && n < 4) {
		const char *s = strchr(rest, '/');
		size_t l = s ? (size_t)(s - rest) : strlen(rest);

		part[n] = rest;
		len[n++] = l;
		if (!s)
			break;
		rest = s + 1;
	}
	if (*rest && n == 4 && strchr(rest, '/'))
		return -1;
	return n;
}

struct acc_out { struct dm_buf *b; int found; };

static int acc_cb(void *ud, const struct cat_account *a)
{
	struct acc_out *o = ud;

	o->found = 1;
	dm_buf_adds(o->b, "{");
	jw_ks(o->b, "account", a->account);
	jw_ks(o->b, "account_type", cat_account_type_name(a->type));
	jw_ks(o->b, "status", a->status);
	jw_ks(o->b, "email", a->email && *a->email ? a->email : NULL);
	jw_knull(o->b, "deleted_at");
	jw_kiso(o->b, "updated_at", a->created_at);
	jw_knull(o->b, "suspended_at");
	jw_kiso(o->b, "created_at", a->created_at);
	dm_buf_adds(o->b, "}");
	return 0;
}

struct acc_stream { struct srv_stream *s; struct dm_buf b; };

static int acc_stream_cb(void *ud, const struct cat_account *a)
{
	struct acc_stream *x = ud;
	struct acc_out o = { &x->b, 0 };

	acc_cb(&o, a);
	dm_buf_addc(&x->b, '\n');
	return srv_stream_buf(x->s, &x->b);
}

static enum dm_status stream_accounts2(struct srv_stream *s, struct cat_db *db, void *ud)
{
	struct acc_stream x = { s, DM_BUF_INIT };
	enum dm_status rc = cat_account_list(db, acc_stream_cb, &x);

	dm_buf_release(&x.b);
	return rc;
}

static int kv_list_cb(void *ud, const char *k, const char *v)
{
	struct dm_buf *b = ud;

	jw_sep(b);
	dm_buf_adds(b, "{");
	jw_ks(b, "key", k);
	jw_key(b, "value");
	if (v && (!strcmp(v, "true") || !strcmp(v, "false")))
		dm_buf_adds(b, v);
	else
		jw_str(b, v);
	dm_buf_adds(b, "}");
	return 0;
}

static int scope_cb(void *ud, const char *scope, const char *account)
{
	struct dm_buf *b = ud;

	jw_sep(b);
	jw_str(b, scope);
	return 0;
}

/* usage: collected first (one row per RSE), then RSE ids looked up, then sent */
struct usage_row { char rse[CAT_RSE_MAX + 1]; uint64_t files, bytes; int64_t limit; };
struct usage_ctx { char account[CAT_ACCOUNT_MAX + 1]; char rse[CAT_RSE_MAX + 1];
		   struct usage_row *rows; size_t n; };

static int usage_cb(void *ud, const struct cat_usage *u)
{
	struct usage_ctx *c = ud;

	if (c->rse[0] && strcmp(c->rse, u->rse))
		return 0;
	c->rows = dm_xrealloc(c->rows, sizeof(*c->rows) * (c->n + 1));
	snprintf(c->rows[c->n].rse, sizeof(c->rows[c->n].rse), "%s", u->rse);
	c->rows[c->n].files = u->files;
	c->rows[c->n].bytes = u->bytes;
	c->rows[c->n].limit = u->limit_set ? u->limit : -1;
	c->n++;
	return 0;
}

static int rse_id_cb(void *ud, const struct cat_rse *r)
{
	snprintf(ud, 33, "%s", r->id);
	return 0;
}

static enum dm_status stream_usage(struct srv_stream *s, struct cat_db *db, void *ud)
{
	struct usage_ctx *c = ud;
	struct dm_buf b = DM_BUF_INIT;
	enum dm_status rc = cat_account_usage_list(db, c->account, usage_cb, c);

	for (size_t i = 0; rc == DM_OK && i < c->n; i++) {
		char id[33] = "";

		cat_rse_get(db, c->rows[i].rse, rse_id_cb, id);
		dm_buf_adds(&b, "{");
		jw_ks(&b, "rse_id", id);
		jw_ks(&b, "rse", c->rows[i].rse);
		jw_ku(&b, "bytes", c->rows[i].bytes);
		jw_ku(&b, "files", c->rows[i].files);
		if (c->rows[i].limit < 0) {
			jw_key(&b, "bytes_limit");
			dm_buf_adds(&b, "Infinity");
			jw_key(&b, "bytes_remaining");
			dm_buf_adds(&b, "Infinity");
		} else {
			jw_ki(&b, "bytes_limit", c->rows[i].limit);
			jw_ki(&b, "bytes_remaining", c->rows[i].limit - (int64_t)c->rows[i].bytes);
		}
		dm_buf_adds(&b, "}\n");
		if (srv_stream_buf(s, &b))
			break;
	}
	dm_buf_release(&b);
	return rc;
}

static void usage_free(void *p)
{
	struct usage_ctx *c = p;

	free(c->rows);
	free(c);
}

int ep_rules_of_account(struct srv_req *r, const char *account);

static int limits_local(struct srv_req *r, const char *account, const char *rse)
{
	struct cat_db *db = srv_db(r);
	struct usage_ctx c = { { 0 } };
	struct dm_buf b = DM_BUF_INIT;
	int rc;

	if (!db)
		return srv_error(r, "DatabaseException", "too many requests");
	snprintf(c.account, sizeof(c.account), "%s", account);
	if (rse)
		snprintf(c.rse, sizeof(c.rse), "%s", rse);
	if (cat_account_usage_list(db, account, usage_cb, &c)) {
		free(c.rows);
		return srv_cat_error(r, db);
	}
	dm_buf_adds(&b, "{");
	for (size_t i = 0; i < c.n; i++)
		if (c.rows[i].limit >= 0)
			jw_ki(&b, c.rows[i].rse, c.rows[i].limit);
	dm_buf_adds(&b, "}");
	free(c.rows);
	rc = srv_reply_json(r, 200, &b);
	dm_buf_release(&b);
	return rc;
}

/* GET /accounts/<a>/identities: {"type", "identity", "email"} per line */
struct ident_ctx {
	char account[CAT_ACCOUNT_MAX + 1];
	struct srv_stream *s;
	struct dm_buf b;
};

static int ident_row_cb(void *ud, const char *identity, const char *type, const char *email)
{
	struct ident_ctx *c = ud;

	dm_buf_adds(&c->b, "{");
	jw_ks(&c->b, "type", type);
	jw_ks(&c->b, "identity", identity);
	jw_ks(&c->b, "email", email);
	dm_buf_adds(&c->b, "}\n");
	return srv_stream_buf(c->s, &c->b);
}

static enum dm_status ident_stream(struct srv_stream *s, struct cat_db *db, void *ud)
{
	struct ident_ctx *c = ud;

	c->s = s;
	return cat_identity_list(db, c->account, ident_row_cb, c);
}

static void ident_free(void *p)
{
	struct ident_ctx *c = p;

	dm_buf_release(&c->b);
	free(c);
}

int ep_accounts(struct srv_req *r, const char *rest)
{
	const char *part[4];
	size_t len[4];
	int n = split(rest, part, len);
	char acc[CAT_ACCOUNT_MAX + 1], sub[CAT_RSE_MAX * 4 + 1];
	struct cat_db *db;
	struct dm_buf b = DM_BUF_INIT;
	int rc;

	if (n < 0)
		return srv_error_status(r, 404, "UnsupportedOperation", "Unknown endpoint: %s %s", r->method, r->path);
	if (n == 0 || (n == 1 && len[0] == 0)) {
		if (!is(r, "GET"))
			return srv_error(r, "MethodNotAllowed", "Method %s not allowed", r->method);
		return srv_stream(r, "application/x-json-stream", stream_accounts2, NULL, NULL);
	}
	if (len[0] == 6 && !strncmp(part[0], "whoami", 6) && n == 1) {
		dm_buf_addf(&b, "<!doctype html>\n<html lang=en>\n<title>Redirecting...</title>\n"
			    "<h1>Redirecting...</h1>\n<p>You should be redirected automatically to the target URL: "
			    "<a href=\"%s\">%s</a>. If not, click the link.\n", r->account, r->account);
		srv_add_header(r, "Location", r->account);
		rc = srv_reply(r, 303, "text/html; charset=utf-8", b.s, b.len);
		dm_buf_release(&b);
		return rc;
	}
	if (decode_part(r, part[0], len[0], acc, sizeof(acc), "account"))
		return 0;
	if (!(db = srv_db_w(r)))
		return 0;
	if (n == 1 || (n == 2 && len[1] == 0)) {
		if (is(r, "GET")) {
			struct acc_out o = { &b, 0 };

			if (cat_account_get(db, acc, acc_cb, &o))
				rc = srv_cat_error(r, db);
			else
				rc = srv_reply_json(r, 200, &b);
			dm_buf_release(&b);
			return rc;
		}
		if (is(r, "POST")) {
			json_t *j = srv_body_json(r);
			const char *type = NULL, *email = NULL;
			enum cat_account_type t;

			if (!j)
				return 0;
			if (srv_jstr(r, j, "type", &type) || srv_jstr(r, j, "email", &email)) {
				json_decref(j);
				return 0;
			}
			if (!type) {
				json_decref(j);
				return srv_error(r, "KeyError", "'type' not defined");
			}
			if (cat_account_type_parse(type, &t)) {
				json_decref(j);
				return srv_error(r, "InvalidObject", "unknown account type '%s'", type);
			}
			rc = cat_account_add(db, acc, t, email) ? srv_cat_error(r, db) : srv_reply_created(r);
			json_decref(j);
			return rc;
		}
		return srv_error(r, "MethodNotAllowed", "Method %s not allowed", r->method);
	}
	/* /accounts/<a>/<sub>[/<x>] */
	if (len[1] == 4 && !strncmp(part[1], "attr", 4)) {
		if (n <= 2 || len[2] == 0) {
			dm_buf_adds(&b, "[");
			if (cat_account_attr_list(db, acc, kv_list_cb, &b)) {
				dm_buf_release(&b);
				return srv_cat_error(r, db);
			}
			dm_buf_adds(&b, "]");
			rc = srv_reply_json(r, 200, &b);
			dm_buf_release(&b);
			return rc;
		}
		if (decode_part(r, part[2], len[2], sub, sizeof(sub), "key"))
			return 0;
		if (is(r, "POST")) {
			json_t *j = srv_body_json(r), *v;
			char val[64];
			const char *vs = val;

			if (!j)
				return 0;
			v = json_object_get(j, "value");
			if (!v) {
				json_decref(j);
				return srv_error(r, "KeyError", "'value' not defined");
			}
			if (json_is_string(v))
				vs = json_string_value(v);
			else if (json_is_boolean(v))
				snprintf(val, sizeof(val), "%s", json_is_true(v) ? "true" : "false");
			else if (json_is_integer(v))
				snprintf(val, sizeof(val), "%lld", (long long)json_integer_value(v));
			else {
				json_decref(j);
				return srv_error(r, "TypeError", "'value' must be a string, number or boolean");
			}
			rc = cat_account_attr_set(db, acc, sub, vs) ? srv_cat_error(r, db) : srv_reply_created(r);
			json_decref(j);
			return rc;
		}
		if (is(r, "DELETE"))
			return cat_account_attr_del(db, acc, sub) ? srv_cat_error(r, db) : srv_reply_ok(r);
		return srv_error(r, "MethodNotAllowed", "Method %s not allowed", r->method);
	}
	if (len[1] == 6 && !strncmp(part[1], "scopes", 6)) {
		if (n <= 2 || len[2] == 0) {
			dm_buf_adds(&b, "[");
			if (cat_scope_list(db, acc, scope_cb, &b)) {
				dm_buf_release(&b);
				return srv_cat_error(r, db);
			}
			dm_buf_adds(&b, "]");
			if (b.len == 2)
				rc = srv_error(r, "ScopeNotFound", "no scopes found for account ID '%s'", acc);
			else
				rc = srv_reply_json(r, 200, &b);
			dm_buf_release(&b);
			return rc;
		}
		if (decode_part(r, part[2], len[2], sub, sizeof(sub), "scope"))
			return 0;
		if (!is(r, "POST"))
			return srv_error(r, "MethodNotAllowed", "Method %s not allowed", r->method);
		return cat_scope_add(db, sub, acc) ? srv_cat_error(r, db) : srv_reply_created(r);
	}
	if (len[1] == 5 && !strncmp(part[1], "rules", 5))
		return ep_rules_of_account(r, acc);
	if (len[1] == 10 && !strncmp(part[1], "identities", 10)) {
		json_t *j;
		const char *identity = NULL, *authtype = NULL, *email = NULL, *pw = NULL;
		json_t *def;

		if (is(r, "GET")) {
			struct ident_ctx *c = dm_xcalloc(1, sizeof(*c));

			dm_buf_init(&c->b, 0);
			dm_strlcpy(c->account, acc, sizeof(c->account));
			return srv_stream(r, "application/x-json-stream", ident_stream, c, ident_free);
		}
		if (!is(r, "POST"))
			return srv_error(r, "MethodNotAllowed", "Method %s not allowed", r->method);
		if (!(j = srv_body_json(r)))
			return 0;
		if (srv_jstr(r, j, "identity", &identity) || srv_jstr(r, j, "authtype", &authtype) ||
		    srv_jstr(r, j, "email", &email) || srv_jstr(r, j, "password", &pw)) {
			json_decref(j);
			return 0;
		}
		def = json_object_get(j, "default");
		if (!identity || !authtype) {
			json_decref(j);
			return srv_error(r, "KeyError", "'%s' not defined", identity ? "authtype" : "identity");
		}
		if (!strcmp(authtype, "USERPASS"))
			rc = cat_identity_add_userpass(db, acc, identity, pw ? pw : "", email);
		else if (!strcmp(authtype, "X509"))
			rc = cat_identity_add_x509(db, acc, identity, email, def && json_is_true(def));
		else {
			json_decref(j);
			return srv_error(r, "UnsupportedOperation", "identity type %s is not supported", authtype);
		}
		json_decref(j);
		return rc ? srv_cat_error(r, db) : srv_reply_created(r);
	}
	if (len[1] == 6 && (!strncmp(part[1], "limits", 6) || 0)) {
		char rse[CAT_RSE_MAX * 4 + 1];

		if (n >= 3 && len[2] == 5 && !strncmp(part[2], "local", 5)) {
			if (n == 4 && len[3]) {
				if (decode_part(r, part[3], len[3], rse, sizeof(rse), "RSE"))
					return 0;
				return limits_local(r, acc, rse);
			}
			return limits_local(r, acc, NULL);
		}
		if (n >= 3 && len[2] == 6 && !strncmp(part[2], "global", 6))
			return srv_reply(r, 200, "application/json", "{}", 2);
		return limits_local(r, acc, NULL);
	}
	if (len[1] == 5 && !strncmp(part[1], "usage", 5)) {
		struct usage_ctx *c;

		if (n >= 3 && len[2] == 6 && !strncmp(part[2], "global", 6))
			return srv_reply(r, 200, "application/x-json-stream", "", 0);
		c = dm_xcalloc(1, sizeof(*c));
		snprintf(c->account, sizeof(c->account), "%s", acc);
		if (n == 4 && len[3] && decode_part(r, part[3], len[3], c->rse, sizeof(c->rse), "RSE")) {
			free(c);
			return 0;
		}
		return srv_stream(r, "application/x-json-stream", stream_usage, c, usage_free);
	}
	return srv_error_status(r, 404, "UnsupportedOperation", "Unknown endpoint: %s %s", r->method, r->path);
}

/* PUT /identities/<account>/userpass with X-Rucio-Username/-Password/-Email */
int ep_identities(struct srv_req *r, const char *rest)
{
	const char *slash = strchr(rest, '/');
	char acc[CAT_ACCOUNT_MAX + 1];
	struct cat_db *db;
	const char *u = srv_header(r, "X-Rucio-Username"), *p = srv_header(r, "X-Rucio-Password");

	if (!slash || strcmp(slash, "/userpass") || !is(r, "PUT"))
		return srv_error_status(r, 404, "UnsupportedOperation", "Unknown endpoint: %s %s", r->method, r->path);
	if (decode_part(r, rest, (size_t)(slash - rest), acc, sizeof(acc), "account"))
		return 0;
	if (!u || !p)
		return srv_error(r, "KeyError", "X-Rucio-Username and X-Rucio-Password are required");
	if (!(db = srv_db(r)))
		return srv_error(r, "DatabaseException", "too many requests");
	if (cat_identity_add_userpass(db, acc, u, p, srv_header(r, "X-Rucio-Email")))
		return srv_cat_error(r, db);
	return srv_reply_created(r);
}

int ep_scopes(struct srv_req *r, const char *rest)
{
	struct cat_db *db = srv_db(r);
	struct dm_buf b = DM_BUF_INIT;
	int rc;

	if (!db)
		return srv_error(r, "DatabaseException", "too many requests");
	if (*rest || !is(r, "GET"))
		return srv_error_status(r, 404, "UnsupportedOperation", "Unknown endpoint: %s %s", r->method, r->path);
	dm_buf_adds(&b, "[");
	if (cat_scope_list(db, NULL, scope_cb, &b)) {
		dm_buf_release(&b);
		return srv_cat_error(r, db);
	}
	dm_buf_adds(&b, "]");
	rc = srv_reply_json(r, 200, &b);
	dm_buf_release(&b);
	return rc;
}

/* POST|DELETE /accountlimits/local/<account>/<rse> {"bytes": N} */
int ep_accountlimits(struct srv_req *r, const char *rest)
{
	const char *part[4];
	size_t len[4];
	int n = split(rest, part, len);
	char acc[CAT_ACCOUNT_MAX + 1], rse[CAT_RSE_MAX * 4 + 1];
	struct cat_db *db;
	int64_t bytes = -1;

	if (n != 3 || len[0] != 5 || strncmp(part[0], "local", 5))
		return srv_error_status(r, 404, "UnsupportedOperation", "Unknown endpoint: %s %s", r->method, r->path);
	if (decode_part(r, part[1], len[1], acc, sizeof(acc), "account") ||
	    decode_part(r, part[2], len[2], rse, sizeof(rse), "RSE"))
		return 0;
	if (!(db = srv_db(r)))
		return srv_error(r, "DatabaseException", "too many requests");
	if (is(r, "POST")) {
		json_t *j = srv_body_json(r), *v;

		if (!j)
			return 0;
		v = json_object_get(j, "bytes");
		if (!v || !json_is_integer(v)) {
			json_decref(j);
			return srv_error(r, v ? "TypeError" : "KeyError", "'bytes' must be an integer");
		}
		bytes = json_integer_value(v);
		json_decref(j);
		if (bytes < -1)
			return srv_error(r, "InvalidObject", "bytes must be >= -1");
	} else if (!is(r, "DELETE")) {
		return srv_error(r, "MethodNotAllowed", "Method %s not allowed", r->method);
	}
	if (cat_account_limit_set(db, acc, rse, bytes))
		return srv_cat_error(r, db);
	return is(r, "POST") ? srv_reply_created(r) : srv_reply_ok(r);
}
