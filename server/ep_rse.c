/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ep_rse.c - /rses: listing (with an RSE expression: {"rse": name} rows;
 * a bad expression is 400 here), settings with protocols (what the clients'
 * rsemgr.get_rse_info fetches), attributes, protocols, lfns2pfns, add and
 * update.
 *
 * Protocol priorities: the catalog's -1 (disabled) is Rucio's 0; the
 * catalog's 0 (best) is sent as 1, Rucio's best.
 */
#include "server.h"

#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int is(const struct srv_req *r, const char *m) { return !strcmp(r->method, m); }

static int prio_out(int p) { return p < 0 ? 0 : p == 0 ? 1 : p; }

static const char *const opnames[CAT_OP_COUNT] = {
	"read", "write", "delete", "third_party_copy_read", "third_party_copy_write",
};

/* one protocol dict; sorted/compact keys for /protocols (jsonify), Rucio's
 * order otherwise */
static void proto_json(struct dm_buf *b, const struct cat_protocol *p)
{
	dm_buf_adds(b, "{");
	jw_ks(b, "hostname", p->hostname);
	jw_ks(b, "scheme", p->scheme);
	jw_ki(b, "port", p->port);
	{
		/* root:// paths are absolute: Rucio's convention is the prefix "//path" */
		char pre[1024];

		if (!strcmp(p->scheme, "root") && p->prefix && p->prefix[0] == '/' && p->prefix[1] != '/')
			snprintf(pre, sizeof(pre), "/%s", p->prefix);
		else
			snprintf(pre, sizeof(pre), "%s", p->prefix ? p->prefix : "");
		jw_ks(b, "prefix", pre);
	}
	jw_ks(b, "impl", p->impl);
	jw_key(b, "domains");
	dm_buf_adds(b, "{");
	for (int d = 0; d < CAT_DOMAIN_COUNT; d++) {
		jw_key(b, d == CAT_LAN ? "lan" : "wan");
		dm_buf_adds(b, "{");
		for (int o = 0; o < CAT_OP_COUNT; o++) {
			if (d == CAT_LAN && o >= CAT_OP_TPC_READ)
				continue;
			jw_ki(b, opnames[o], prio_out(p->prio[d][o]));
		}
		dm_buf_adds(b, "}");
	}
	dm_buf_adds(b, "}");
	jw_key(b, "extended_attributes");
	dm_buf_adds(b, p->extended_attributes && *p->extended_attributes ? p->extended_attributes : "null");
	dm_buf_adds(b, "}");
}

static int proto_cb(void *ud, const struct cat_protocol *p)
{
	struct dm_buf *b = ud;

	jw_sep(b);
	proto_json(b, p);
	return 0;
}

static void rse_settings(struct dm_buf *b, const struct cat_rse *r, const char *algo)
{
	dm_buf_adds(b, "{");
	jw_kb(b, "availability_delete", r->availability_delete);
	jw_kb(b, "availability_read", r->availability_read);
	jw_kb(b, "availability_write", r->availability_write);
	jw_knull(b, "credentials");
	jw_kb(b, "deterministic", r->deterministic);
	jw_key(b, "domain");
	dm_buf_adds(b, "[\"lan\", \"wan\"]");
	jw_ks(b, "id", r->id);
	jw_ks(b, "lfn2pfn_algorithm", algo);
}

static int rse_copy_cb(void *ud, const struct cat_rse *r)
{
	struct dm_buf *b = ud;

	/* keep what the settings need after the callback */
	dm_buf_addf(b, "%s%c%s%c%d%d%d%d%d%d", r->id, 0, r->rse, 0, r->availability_read,
		    r->availability_write, r->availability_delete, r->deterministic, r->volatile_,
		    r->staging_area);
	dm_buf_addc(b, 0);
	dm_buf_adds(b, r->rse_type ? r->rse_type : "DISK");
	dm_buf_addc(b, 0);
	dm_buf_adds(b, r->qos_class ? r->qos_class : "");
	return 0;
}

static int settings(struct srv_req *r, struct cat_db *db, const char *rse)
{
	struct dm_buf raw = DM_BUF_INIT, b = DM_BUF_INIT;
	struct cat_rse x = { 0 };
	char algo[64];
	const char *p;
	int rc;

	if (cat_rse_get(db, rse, rse_copy_cb, &raw)) {
		dm_buf_release(&raw);
		return srv_cat_error(r, db);
	}
	p = raw.s;
	x.id = p;
	p += strlen(p) + 1;
	x.rse = p;
	p += strlen(p) + 1;
	x.availability_read = p[0] - '0';
	x.availability_write = p[1] - '0';
	x.availability_delete = p[2] - '0';
	x.deterministic = p[3] - '0';
	x.volatile_ = p[4] - '0';
	x.staging_area = p[5] - '0';
	p += 7;
	x.rse_type = p;
	p += strlen(p) + 1;
	x.qos_class = *p ? p : NULL;
	if (cat_rse_attr_get(db, rse, "lfn2pfn_algorithm", algo, sizeof(algo)))
		snprintf(algo, sizeof(algo), "hash");
	rse_settings(&b, &x, algo);
	jw_key(&b, "protocols");
	dm_buf_adds(&b, "[");
	if (cat_protocol_list(db, rse, proto_cb, &b)) {
		rc = srv_cat_error(r, db);
		goto out;
	}
	dm_buf_adds(&b, "]");
	jw_ks(&b, "qos_class", x.qos_class);
	jw_ks(&b, "rse", x.rse);
	jw_ks(&b, "rse_type", x.rse_type);
	jw_knull(&b, "sign_url");
	jw_kb(&b, "staging_area", x.staging_area);
	jw_kb(&b, "verify_checksum", 1);
	jw_kb(&b, "volatile", x.volatile_);
	jw_ki(&b, "read_protocol", 1);
	jw_ki(&b, "write_protocol", 1);
	jw_ki(&b, "delete_protocol", 1);
	jw_ki(&b, "third_party_copy_read_protocol", 1);
	jw_ki(&b, "third_party_copy_write_protocol", 1);
	jw_ki(&b, "availability", x.availability_read * 4 + x.availability_write * 2 + x.availability_delete);
	dm_buf_adds(&b, "}");
	rc = srv_reply_json(r, 200, &b);
out:
	dm_buf_release(&raw);
	dm_buf_release(&b);
	return rc;
}

static int attr_cb(void *ud, const char *k, const char *v)
{
	struct dm_buf *b = ud;

	jw_key(b, k);
	if (v && (!strcmp(v, "true") || !strcmp(v, "True")))
		dm_buf_adds(b, "true");
	else if (v && (!strcmp(v, "false") || !strcmp(v, "False")))
		dm_buf_adds(b, "false");
	else
		jw_str(b, v);
	return 0;
}

/* ---- listing ---- */
struct list_ctx { char *expr; struct dm_buf b; struct srv_stream *s; };

static int rse_row_cb(void *ud, const struct cat_rse *x)
{
	struct list_ctx *c = ud;

	if (c->expr) {
		dm_buf_adds(&c->b, "{");
		jw_ks(&c->b, "rse", x->rse);
		dm_buf_adds(&c->b, "}\n");
	} else {
		rse_settings(&c->b, x, "hash");
		jw_ks(&c->b, "rse", x->rse);
		jw_ks(&c->b, "rse_type", x->rse_type);
		jw_kb(&c->b, "volatile", x->volatile_);
		jw_kb(&c->b, "staging_area", x->staging_area);
		jw_ks(&c->b, "city", x->city);
		jw_ks(&c->b, "country_name", x->country_name);
		jw_ks(&c->b, "continent", x->continent);
		dm_buf_adds(&c->b, "}\n");
	}
	return srv_stream_buf(c->s, &c->b);
}

static enum dm_status list_stream(struct srv_stream *s, struct cat_db *db, void *ud)
{
	struct list_ctx *c = ud;

	c->s = s;
	if (c->expr)
		return cat_rse_expr_list(db, c->expr, rse_row_cb, c);
	return cat_rse_list(db, rse_row_cb, c);
}

static void list_free(void *p)
{
	struct list_ctx *c = p;

	free(c->expr);
	dm_buf_release(&c->b);
	free(c);
}

/* ---- lfns2pfns ---- */
struct lfn_ctx { const char *lfns[256]; int n; };

static enum MHD_Result lfn_iter(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	struct lfn_ctx *c = cls;

	if (!strcmp(key, "lfn") && value && c->n < 256)
		c->lfns[c->n++] = value;
	return MHD_YES;
}

static int lfns2pfns(struct srv_req *r, struct cat_db *db, const char *rse)
{
	struct lfn_ctx c = { { 0 }, 0 };
	struct dm_buf b = DM_BUF_INIT, pfn = DM_BUF_INIT;
	const char *scheme = srv_arg(r, "scheme"), *opname = srv_arg(r, "operation");
	enum cat_proto_op op = CAT_OP_WRITE;
	int rc;

	if (opname && !strcmp(opname, "read"))
		op = CAT_OP_READ;
	else if (opname && !strcmp(opname, "delete"))
		op = CAT_OP_DELETE;
	MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, lfn_iter, &c);
	dm_buf_adds(&b, "{");
	for (int i = 0; i < c.n; i++) {
		char dec[1024], scope[CAT_SCOPE_MAX + 1], name[CAT_NAME_MAX + 1];
		struct dm_err err = { 0 };

		if (srv_pct_decode(c.lfns[i], strlen(c.lfns[i]), 1, dec, sizeof(dec)) ||
		    cat_parse_did(dec, scope, name, &err)) {
			dm_buf_release(&b);
			return srv_error(r, "InvalidPath", "LFN is not in the scope:name format: '%s'", c.lfns[i]);
		}
		dm_buf_reset(&pfn);
		if (cat_lfn2pfn(db, rse, scope, name, scheme, op, &pfn)) {
			dm_buf_release(&b);
			dm_buf_release(&pfn);
			return srv_cat_error(r, db);
		}
		jw_ks(&b, dec, pfn.s);
	}
	dm_buf_adds(&b, "}");
	rc = srv_reply_json(r, 200, &b);
	dm_buf_release(&b);
	dm_buf_release(&pfn);
	return rc;
}

static int json_int(json_t *j, const char *k, int def)
{
	json_t *v = json_object_get(j, k);

	if (json_is_integer(v))
		return (int)json_integer_value(v);
	if (json_is_boolean(v))
		return json_is_true(v);
	return def;
}

static int add_protocol(struct srv_req *r, struct cat_db *db, const char *rse, const char *scheme)
{
	json_t *j = srv_body_json(r), *doms;
	struct cat_protocol p;
	const char *host = NULL, *prefix = NULL, *impl = NULL;
	int rc;

	if (!j)
		return 0;
	cat_protocol_defaults(&p);
	p.scheme = scheme;
	if (srv_jstr(r, j, "hostname", &host) || srv_jstr(r, j, "prefix", &prefix) ||
	    srv_jstr(r, j, "impl", &impl)) {
		json_decref(j);
		return 0;
	}
	p.hostname = host ? host : "localhost";
	p.prefix = prefix ? prefix : "";
	p.impl = impl;
	p.port = json_int(j, "port", 0);
	doms = json_object_get(j, "domains");
	if (json_is_object(doms)) {
		for (int d = 0; d < CAT_DOMAIN_COUNT; d++) {
			json_t *dd = json_object_get(doms, d == CAT_LAN ? "lan" : "wan");

			if (!json_is_object(dd))
				continue;
			for (int o = 0; o < CAT_OP_COUNT; o++) {
				json_t *v = json_object_get(dd, opnames[o]);

				if (json_is_integer(v))
					p.prio[d][o] = json_integer_value(v) <= 0 ? -1 : (int)json_integer_value(v);
				else if (v && json_is_null(v))
					p.prio[d][o] = -1;
			}
		}
	}
	rc = cat_protocol_add(db, rse, &p) ? srv_cat_error(r, db) : srv_reply_created(r);
	json_decref(j);
	return rc;
}

static int add_rse(struct srv_req *r, struct cat_db *db, const char *rse)
{
	json_t *j = srv_body_json(r);
	struct cat_rse_opts o = { 0 };
	int rc;

	if (!j)
		return 0;
	if (!cat_issuer_is_admin(db)) {
		json_decref(j);
		return srv_error(r, "AccessDenied", "Account %s can not add RSE", r->account);
	}
	if (srv_jstr(r, j, "rse_type", &o.rse_type) || srv_jstr(r, j, "city", &o.city) ||
	    srv_jstr(r, j, "country_name", &o.country_name) || srv_jstr(r, j, "continent", &o.continent)) {
		json_decref(j);
		return 0;
	}
	o.non_deterministic = !json_int(j, "deterministic", 1);
	o.volatile_ = json_int(j, "volatile", 0);
	o.staging_area = json_int(j, "staging_area", 0);
	rc = cat_rse_add(db, rse, &o) ? srv_cat_error(r, db) : srv_reply_created(r);
	json_decref(j);
	return rc;
}

static int update_rse(struct srv_req *r, struct cat_db *db, const char *rse)
{
	json_t *j = srv_body_json(r), *v;
	const char *k;
	int rc = 0;

	if (!j)
		return 0;
	if (!json_is_object(j)) {
		json_decref(j);
		return srv_error(r, "TypeError", "the body must be a JSON object");
	}
	json_object_foreach(j, k, v) {
		char val[256];

		if (json_is_boolean(v))
			snprintf(val, sizeof(val), "%s", json_is_true(v) ? "true" : "false");
		else if (json_is_integer(v))
			snprintf(val, sizeof(val), "%lld", (long long)json_integer_value(v));
		else if (json_is_string(v))
			snprintf(val, sizeof(val), "%s", json_string_value(v));
		else {
			json_decref(j);
			return srv_error(r, "TypeError", "'%s' must be a string, number or boolean", k);
		}
		if (cat_rse_update(db, rse, k, val)) {
			json_decref(j);
			return srv_cat_error(r, db);
		}
	}
	json_decref(j);
	(void)rc;
	return srv_reply_ok(r);
}

int ep_rses(struct srv_req *r, const char *rest)
{
	char rse[CAT_RSE_MAX + 1], key[256];
	const char *slash;
	struct cat_db *db;
	struct dm_buf b = DM_BUF_INIT;
	int rc;

	if (!*rest) {
		struct list_ctx *c;
		const char *e = srv_arg(r, "expression");

		if (!is(r, "GET"))
			return srv_error(r, "MethodNotAllowed", "Method %s not allowed", r->method);
		c = dm_xcalloc(1, sizeof(*c));
		dm_buf_init(&c->b, 0);
		if (e && *e)
			c->expr = dm_xstrdup(e);
		r->expr_400 = 1;
		return srv_stream(r, "application/x-json-stream", list_stream, c, list_free);
	}
	slash = strchr(rest, '/');
	if (srv_pct_decode(rest, slash ? (size_t)(slash - rest) : strlen(rest), 0, rse, sizeof(rse)) || !*rse)
		return srv_error(r, "InvalidPath", "invalid RSE name in the path");
	if (!(db = srv_db_w(r)))
		return 0;
	if (!slash || !slash[1]) {
		if (is(r, "GET"))
			return settings(r, db, rse);
		if (is(r, "POST"))
			return add_rse(r, db, rse);
		if (is(r, "PUT"))
			return update_rse(r, db, rse);
		return srv_error(r, "MethodNotAllowed", "Method %s not allowed", r->method);
	}
	slash++;
	if (!strcmp(slash, "attr") || !strcmp(slash, "attr/")) {
		dm_buf_adds(&b, "{");
		jw_key(&b, rse);
		dm_buf_adds(&b, "true");
		if (cat_rse_attr_list(db, rse, attr_cb, &b)) {
			dm_buf_release(&b);
			return srv_cat_error(r, db);
		}
		dm_buf_adds(&b, "}");
		rc = srv_reply_json(r, 200, &b);
		dm_buf_release(&b);
		return rc;
	}
	if (!strncmp(slash, "attr/", 5)) {
		if (srv_pct_decode(slash + 5, strlen(slash + 5), 0, key, sizeof(key)) || !*key)
			return srv_error(r, "InvalidPath", "invalid attribute key in the path");
		if (is(r, "POST")) {
			json_t *j = srv_body_json(r), *v;
			char val[256];

			if (!j)
				return 0;
			v = json_object_get(j, "value");
			if (json_is_string(v))
				snprintf(val, sizeof(val), "%s", json_string_value(v));
			else if (json_is_boolean(v))
				snprintf(val, sizeof(val), "%s", json_is_true(v) ? "true" : "false");
			else if (json_is_integer(v))
				snprintf(val, sizeof(val), "%lld", (long long)json_integer_value(v));
			else {
				json_decref(j);
				return srv_error(r, v ? "TypeError" : "KeyError", "'value' must be given as a string, number or boolean");
			}
			json_decref(j);
			return cat_rse_attr_set(db, rse, key, val) ? srv_cat_error(r, db) : srv_reply_created(r);
		}
		if (is(r, "DELETE"))
			return cat_rse_attr_del(db, rse, key) ? srv_cat_error(r, db) : srv_reply_ok(r);
		return srv_error(r, "MethodNotAllowed", "Method %s not allowed", r->method);
	}
	if (!strcmp(slash, "protocols") || !strcmp(slash, "protocols/")) {
		dm_buf_adds(&b, "[");
		if (cat_protocol_list(db, rse, proto_cb, &b)) {
			dm_buf_release(&b);
			return srv_cat_error(r, db);
		}
		dm_buf_adds(&b, "]");
		if (b.len == 2)
			rc = srv_error(r, "RSEProtocolNotSupported", "RSE does not support requested protocol.");
		else
			rc = srv_reply_json(r, 200, &b);
		dm_buf_release(&b);
		return rc;
	}
	if (!strncmp(slash, "protocols/", 10) && is(r, "POST")) {
		if (srv_pct_decode(slash + 10, strlen(slash + 10), 0, key, sizeof(key)) || !*key || strchr(key, '/'))
			return srv_error(r, "InvalidPath", "invalid scheme in the path");
		return add_protocol(r, db, rse, key);
	}
	if (!strcmp(slash, "lfns2pfns") && is(r, "GET"))
		return lfns2pfns(r, db, rse);
	return srv_error_status(r, 404, "UnsupportedOperation", "Unknown endpoint: %s %s", r->method, r->path);
}
