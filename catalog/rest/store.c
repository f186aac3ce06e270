/* SPDX-License-Identifier: Apache-2.0 */
/*
 * store.c - the REST catalog: catalog.h's client calls served by a Rucio
 * server (didfs serve, or Rucio itself) through client.h, using only the
 * endpoints and formats Rucio's own clients use (shared/reference/
 * rucio-rest.md section 1).  cat_open("https://host[:port]") lands here
 * (catalog/open.c); the store installs a struct cat_remote_ops table
 * (catalog_i.h) that the public functions of did.c, rse.c, replica.c,
 * rule.c and store.c hand their call to (CAT_REMOTE).  Calls not in the
 * table are UnsupportedOperation naming the call.
 *
 * Mapping (REST -> catalog.h):
 *   scopes            GET /scopes/, GET /accounts/<a>/scopes/
 *   did_get           GET /dids/<s>/<n>?dynamic_depth=FILE
 *   did_list          GET /dids/<s>/dids/search?type=&long=1&filters=[{'name': P}]
 *   did_list_roots    GET /dids/<s>/  (the scope's DIDs without a parent)
 *   content, files, parents   GET /dids/<s>/<n>/{dids,files,parents}
 *   metadata          GET /dids/<s>/<n>/meta (DID columns dropped),
 *                     POST .../meta/<k> {"value"}, DELETE .../meta?key=
 *   lifetime          POST .../meta/lifetime {"value": seconds | null}
 *   add / attach / close   POST /dids/<s>/<n>, POST .../dids, PUT .../status
 *   replicas          POST /replicas/list (one row per file and RSE, with
 *                     the server's best PFN in cat_replica.pfn)
 *   RSEs              GET /rses/, /rses/?expression=, /rses/<r>, .../attr/,
 *                     .../protocols, .../lfns2pfns
 *   rules             POST /rules/, GET/PUT/DELETE /rules/<id>, GET
 *                     /rules/<id>/locks, /dids/<s>/<n>/rules, /accounts/<a>/rules,
 *                     /rules/
 *   usage             GET /accounts/<a>/usage/local
 *   whoami            GET /accounts/whoami (303) -> GET /accounts/<a>
 * DID ids (cat_did.id, the mount's inode material) are a 63-bit hash of
 * "scope:name": stable across processes and servers without a lookup.
 */
#include "catalog_i.h"
#include "client.h"
#include "cache.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

struct rest_db {
	struct cat_db base;   /* first: the handle the callers hold */
	struct rest_client *cl;
	struct rest_cache *cache; /* NULL when off */
	char *uri;
	struct dm_buf path;   /* request path scratch */
	char stats_server[256];
	char stats_path[1024];
};
#define RDB(db) ((struct rest_db *)(db))

/* ---- helpers ---- */
static const char *js(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static int64_t ji(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	if (json_is_integer(v))
		return (int64_t)json_integer_value(v);
	if (json_is_real(v))
		return (int64_t)json_real_value(v);
	if (json_is_true(v))
		return 1;
	if (json_is_string(v)) {
		int64_t x;
		if (!dm_parse_i64(json_string_value(v), &x))
			return x;
	}
	return 0;
}

static int jb(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	if (json_is_string(v))
		return !strcasecmp(json_string_value(v), "true") || !strcmp(json_string_value(v), "1");
	return ji(o, k) != 0;
}

/* Rucio's dates: "%a, %d %b %Y %H:%M:%S UTC", ISO "%Y-%m-%dT%H:%M:%S", or epoch */
static int64_t jt(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	const char *s;
	struct tm tm;

	if (json_is_integer(v) || json_is_real(v))
		return ji(o, k);
	if (!(s = json_string_value(v)))
		return 0;
	memset(&tm, 0, sizeof tm);
	if (strptime(s, "%a, %d %b %Y %H:%M:%S", &tm) || strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) ||
	    strptime(s, "%Y-%m-%d %H:%M:%S", &tm))
		return (int64_t)timegm(&tm);
	return 0;
}

static void did_from_json(json_t *o, struct cat_did *d, const char *dflt_scope)
{
	const char *t = js(o, "type");
	json_t *open;

	memset(d, 0, sizeof *d);
	if (!t)
		t = js(o, "did_type");
	if (t && !strncmp(t, "DIDType.", 8))
		t += 8;
	d->scope = js(o, "scope") ? js(o, "scope") : dflt_scope;
	d->name = js(o, "name");
	if (!t || cat_did_type_parse(t, &d->type))
		d->type = CAT_DID_FILE;
	d->account = js(o, "account");
	open = json_object_get(o, "open");
	if (!open)
		open = json_object_get(o, "is_open");
	d->is_open = json_is_true(open);
	d->monotonic = jb(o, "monotonic");
	d->bytes = (uint64_t)ji(o, "bytes");
	d->length = d->type == CAT_DID_FILE ? 0 : (uint64_t)ji(o, "length");
	d->adler32 = js(o, "adler32");
	d->md5 = js(o, "md5");
	d->created_at = jt(o, "created_at");
	d->updated_at = jt(o, "updated_at");
	d->expired_at = jt(o, "expired_at");
	d->closed_at = jt(o, "closed_at");
	d->availability = js(o, "availability");
	if (d->scope && d->name)
		d->id = cat_rest_did_id(d->scope, d->name);
}

static void sync_issuer(struct cat_db *db)
{
	const char *a = rest_client_account(RDB(db)->cl);
	dm_strlcpy(db->issuer, a ? a : "", sizeof db->issuer);
}

static enum dm_status call(struct cat_db *db, struct rest_req *r)
{
	struct dm_err e = { 0 };
	enum dm_status rc = rest_call(RDB(db)->cl, r, &e);

	sync_issuer(db);
	if (rc)
		db->err = e;
	else
		dm_err_clear(&db->err);
	return rc;
}

/* path = prefix + escaped(a) [+ "/" + escaped(b)] + suffix */
static const char *path2(struct cat_db *db, const char *prefix, const char *a, const char *b,
			 const char *suffix)
{
	struct dm_buf *p = &RDB(db)->path;

	dm_buf_reset(p);
	dm_buf_adds(p, prefix);
	if (a)
		rest_escape(p, a);
	if (b) {
		dm_buf_addc(p, '/');
		rest_escape(p, b);
	}
	if (suffix)
		dm_buf_adds(p, suffix);
	return p->s;
}

static enum dm_status did_args(struct cat_db *db, const char *scope, const char *name)
{
	if (cat_validate_scope(scope, &db->err) || (name && cat_validate_name(name, &db->err)))
		return db->err.code;
	return DM_OK;
}

static char *dumps(json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	return s;
}

/* ---- the cache's fill (cache.h), when there is one ---- */
static struct rest_cache *cache(struct cat_db *db)
{
	return RDB(db)->cache;
}

/* ---- accounts, scopes ---- */
static enum dm_status r_set_issuer(struct cat_db *db, const char *account)
{
	if (cat_validate_account(account, &db->err))
		return db->err.code;
	rest_client_set_creds(RDB(db)->cl, account, NULL, NULL, NULL, NULL);
	sync_issuer(db);
	return DM_OK;
}

static enum dm_status r_set_creds(struct cat_db *db, const struct cat_creds *c)
{
	if (!c)
		return DM_OK;
	if (c->account && cat_validate_account(c->account, &db->err))
		return db->err.code;
	rest_client_set_creds(RDB(db)->cl, c->account, c->x509_proxy, c->client_cert,
			      c->client_key, c->token_file);
	sync_issuer(db);
	return DM_OK;
}

static enum dm_status r_account_get(struct cat_db *db, const char *account, cat_account_cb cb,
				    void *ud)
{
	struct rest_req r = { .method = "GET" };
	json_t *j = NULL;
	struct cat_account a;
	char who[CAT_ACCOUNT_MAX + 1];
	enum dm_status rc;

	if (!account || !*account) { /* whoami: 303 to the account */
		r.path = "/accounts/whoami";
		if ((rc = call(db, &r)))
			return rc;
		if (r.status != 303 || !r.location[0])
			return cat_fail(db, DM_EIO, "RucioException",
					"GET /accounts/whoami answered %d without a Location", r.status);
		dm_strlcpy(who, strrchr(r.location, '/') ? strrchr(r.location, '/') + 1 : r.location,
			   sizeof who);
		if (cat_validate_account(who, &db->err))
			return db->err.code;
		rest_client_set_account(RDB(db)->cl, who);
		sync_issuer(db);
		account = who;
	}
	memset(&r, 0, sizeof r);
	r.method = "GET";
	r.path = path2(db, "/accounts/", account, NULL, NULL);
	r.json = &j;
	if ((rc = call(db, &r)))
		return rc;
	memset(&a, 0, sizeof a);
	a.account = js(j, "account");
	if (!a.account || cat_account_type_parse(js(j, "account_type") ? js(j, "account_type") : "USER",
						 &a.type))
		a.type = CAT_ACCOUNT_USER;
	a.status = js(j, "status");
	a.email = js(j, "email");
	a.created_at = jt(j, "created_at");
	if (a.account)
		cb(ud, &a);
	json_decref(j);
	return DM_OK;
}

struct scope_ctx { cat_scope_cb cb; void *ud; const char *account; };
static int scope_row(void *ud, json_t *row)
{
	struct scope_ctx *c = ud;
	const char *s = json_string_value(row);
	return s ? c->cb(c->ud, s, c->account) : 0;
}

static enum dm_status r_scope_list(struct cat_db *db, const char *account, cat_scope_cb cb,
				   void *ud)
{
	struct scope_ctx c = { cb, ud, account };
	struct rest_req r = { .method = "GET", .rows = scope_row, .ud = &c };
	enum dm_status rc;

	if (account)
		r.path = path2(db, "/accounts/", account, NULL, "/scopes/");
	else
		r.path = "/scopes/";
	rc = call(db, &r);
	if (rc == DM_ENOENT && account && !strcmp(db->err.cls, "ScopeNotFound"))
		rc = DM_OK; /* Rucio: 404 when the account has none */
	return rc;
}

/* ---- DIDs ---- */
struct did_ctx {
	cat_did_cb cb;
	void *ud;
	const char *scope;
	int stopped;
	struct rest_fill *fill; /* cache fill, or NULL */
};

static int did_row(void *ud, json_t *row)
{
	struct did_ctx *c = ud;
	struct cat_did d;

	if (!json_is_object(row))
		return 0;
	did_from_json(row, &d, c->scope);
	if (!d.name || !d.scope)
		return 0;
	if (c->fill)
		rest_fill_did(c->fill, &d);
	if (c->cb && !c->stopped && c->cb(c->ud, &d))
		c->stopped = 1;
	return c->stopped && !c->fill;
}

static enum dm_status r_did_get(struct cat_db *db, const char *scope, const char *name,
				cat_did_cb cb, void *ud)
{
	struct rest_req r = { .method = "GET" };
	json_t *j = NULL;
	struct cat_did d;
	enum dm_status rc;
	int hit;

	if ((rc = did_args(db, scope, name)))
		return rc;
	if (cache(db) && (hit = rest_cache_did_get(cache(db), db, scope, name, cb, ud, 0)) >= 0)
		return hit ? DM_OK : cat_fail(db, DM_ENOENT, "DataIdentifierNotFound",
					      "Data identifier '%s:%s' not found", scope, name);
	r.path = path2(db, "/dids/", scope, name, "?dynamic_depth=FILE");
	r.json = &j;
	rc = call(db, &r);
	if (rc) {
		if (cache(db)) {
			if (rc == DM_ENOENT && !strcmp(db->err.cls, "DataIdentifierNotFound"))
				rest_cache_negative(cache(db), scope, name);
			else if (!strcmp(db->err.cls, "ServerUnreachable") &&
				 (hit = rest_cache_did_get(cache(db), db, scope, name, cb, ud, 1)) >= 0)
				return hit ? DM_OK : cat_fail(db, DM_ENOENT, "DataIdentifierNotFound",
							      "Data identifier '%s:%s' not found",
							      scope, name);
		}
		return rc;
	}
	did_from_json(j, &d, scope);
	if (!d.scope || !d.name) {
		json_decref(j);
		return cat_fail(db, DM_EIO, "RucioException", "GET /dids/%s/%s: no scope/name in the answer",
				scope, name);
	}
	if (cache(db))
		rest_cache_put_did(cache(db), &d);
	cb(ud, &d);
	json_decref(j);
	return DM_OK;
}

static enum dm_status r_did_add(struct cat_db *db, const char *scope, const char *name,
				enum cat_did_type type, int64_t lifetime)
{
	struct rest_req r = { .method = "POST" };
	json_t *b = json_object();
	char *body;
	enum dm_status rc;

	if ((rc = did_args(db, scope, name)))
		return rc;
	if (type == CAT_DID_FILE)
		return cat_fail(db, DM_EINVAL, "UnsupportedOperation",
				"files are added with their replicas (add-replicas, upload)");
	json_object_set_new(b, "type", json_string(cat_did_type_name(type)));
	json_object_set_new(b, "lifetime", lifetime > 0 ? json_integer(lifetime) : json_null());
	body = dumps(b);
	r.path = path2(db, "/dids/", scope, name, NULL);
	r.body = body;
	rc = call(db, &r);
	free(body);
	if (rc == DM_OK && cache(db))
		rest_cache_invalidate(cache(db), scope, name, 1);
	return rc;
}

static enum dm_status r_did_attach(struct cat_db *db, const char *scope, const char *name,
				   const struct cat_did_ref *ch, size_t n, unsigned flags)
{
	struct rest_req r = { .method = "POST" };
	json_t *b = json_object(), *l = json_array();
	enum dm_status rc;
	char *body;

	if ((rc = did_args(db, scope, name))) {
		json_decref(b);
		json_decref(l);
		return rc;
	}
	for (size_t i = 0; i < n; i++)
		json_array_append_new(l, json_pack("{ssss}", "scope", ch[i].scope, "name", ch[i].name));
	if (flags & CAT_IGNORE_DUPLICATE) {
		/* Rucio: POST /dids/attachments {"attachments": [..], "ignore_duplicate": true} */
		json_t *a = json_array();
		json_array_append_new(a, json_pack("{ssssso}", "scope", scope, "name", name, "dids", l));
		json_object_set_new(b, "attachments", a);
		json_object_set_new(b, "ignore_duplicate", json_true());
		r.path = "/dids/attachments";
	} else {
		json_object_set_new(b, "dids", l);
		r.path = path2(db, "/dids/", scope, name, "/dids");
	}
	body = dumps(b);
	r.body = body;
	rc = call(db, &r);
	free(body);
	if (cache(db)) {
		rest_cache_invalidate(cache(db), scope, name, 0);
		for (size_t i = 0; i < n; i++)
			rest_cache_invalidate(cache(db), ch[i].scope, ch[i].name, 0);
	}
	return rc;
}

static enum dm_status r_did_set_open(struct cat_db *db, const char *scope, const char *name,
				     int open)
{
	struct rest_req r = { .method = "PUT" };
	enum dm_status rc;

	if ((rc = did_args(db, scope, name)))
		return rc;
	r.path = path2(db, "/dids/", scope, name, "/status");
	r.body = open ? "{\"open\": true}" : "{\"open\": false}";
	rc = call(db, &r);
	if (cache(db))
		rest_cache_invalidate(cache(db), scope, name, 0);
	return rc;
}

static enum dm_status r_did_meta_set(struct cat_db *db, const char *scope, const char *name,
				     const char *key, const char *value)
{
	struct rest_req r = { .method = "POST" };
	json_t *b = json_object();
	enum dm_status rc;
	char *body;
	struct dm_buf tail = DM_BUF_INIT;

	if ((rc = did_args(db, scope, name))) {
		json_decref(b);
		return rc;
	}
	json_object_set_new(b, "value", json_string(value));
	body = dumps(b);
	dm_buf_adds(&tail, "/meta/");
	rest_escape(&tail, key);
	r.path = path2(db, "/dids/", scope, name, tail.s);
	r.body = body;
	rc = call(db, &r);
	free(body);
	dm_buf_release(&tail);
	if (cache(db))
		rest_cache_invalidate(cache(db), scope, name, 0);
	return rc;
}

static enum dm_status r_did_set_lifetime(struct cat_db *db, const char *scope, const char *name,
					 int64_t lifetime)
{
	struct rest_req r = { .method = "POST" };
	enum dm_status rc;
	char body[64];

	if ((rc = did_args(db, scope, name)))
		return rc;
	if (lifetime > 0)
		snprintf(body, sizeof body, "{\"value\": %lld}", (long long)lifetime);
	else
		snprintf(body, sizeof body, "{\"value\": null}");
	r.path = path2(db, "/dids/", scope, name, "/meta/lifetime");
	r.body = body;
	rc = call(db, &r);
	if (cache(db))
		rest_cache_invalidate(cache(db), scope, name, 0);
	return rc;
}

static enum dm_status r_did_meta_del(struct cat_db *db, const char *scope, const char *name,
				     const char *key)
{
	struct rest_req r = { .method = "DELETE" };
	struct dm_buf tail = DM_BUF_INIT;
	enum dm_status rc;

	if ((rc = did_args(db, scope, name)))
		return rc;
	dm_buf_adds(&tail, "/meta?key=");
	rest_escape(&tail, key);
	r.path = path2(db, "/dids/", scope, name, tail.s);
	rc = call(db, &r);
	dm_buf_release(&tail);
	if (cache(db))
		rest_cache_invalidate(cache(db), scope, name, 0);
	return rc;
}

/* the DID columns GET .../meta returns besides the generic metadata */
static int is_did_column(const char *k)
{
	static const char *const cols[] = {
		"scope", "name", "account", "did_type", "type", "is_open", "monotonic", "hidden",
		"obsolete", "complete", "is_new", "availability", "suppressed", "bytes", "length",
		"md5", "adler32", "expired_at", "purge_replicas", "deleted_at", "closed_at",
		"created_at", "updated_at", "guid", "events", "accessed_at", "access_cnt",
		"eol_at", "is_archive", "constituent", "transient",
	};
	for (size_t i = 0; i < DM_ARRAY_SIZE(cols); i++)
		if (!strcmp(cols[i], k))
			return 1;
	return 0;
}

static enum dm_status r_did_meta_list(struct cat_db *db, const char *scope, const char *name,
				      cat_kv_cb cb, void *ud)
{
	struct rest_req r = { .method = "GET" };
	json_t *j = NULL, *v;
	const char *k;
	enum dm_status rc;

	if ((rc = did_args(db, scope, name)))
		return rc;
	r.path = path2(db, "/dids/", scope, name, "/meta");
	r.json = &j;
	if ((rc = call(db, &r)))
		return rc;
	json_object_foreach(j, k, v) {
		char num[64];
		const char *s = NULL;
		if (is_did_column(k) || json_is_null(v))
			continue;
		if (json_is_string(v))
			s = json_string_value(v);
		else if (json_is_integer(v))
			snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v)), s = num;
		else if (json_is_real(v))
			snprintf(num, sizeof num, "%.17g", json_real_value(v)), s = num;
		else if (json_is_boolean(v))
			s = json_is_true(v) ? "True" : "False";
		if (s && cb(ud, k, s))
			break;
	}
	json_decref(j);
	return DM_OK;
}

static enum dm_status list_dids(struct cat_db *db, const char *p, const char *scope,
				cat_did_cb cb, void *ud, struct rest_fill *fill)
{
	struct did_ctx c = { cb, ud, scope, 0, fill };
	struct rest_req r = { .method = "GET", .rows = did_row, .ud = &c, .path = p };
	return call(db, &r);
}

static enum dm_status r_did_list(struct cat_db *db, const char *scope, const char *pattern,
				 unsigned mask, cat_did_cb cb, void *ud)
{
	struct dm_buf q = DM_BUF_INIT, f = DM_BUF_INIT;
	const char *type = "all";
	enum dm_status rc;

	if ((rc = did_args(db, scope, NULL)))
		return rc;
	mask &= 7;
	if (mask == (1u << CAT_DID_FILE))
		type = "file";
	else if (mask == (1u << CAT_DID_DATASET))
		type = "dataset";
	else if (mask == (1u << CAT_DID_CONTAINER))
		type = "container";
	else if (mask == ((1u << CAT_DID_DATASET) | (1u << CAT_DID_CONTAINER)))
		type = "collection";
	/* filters is a Python literal: [{'name': '...'}], quotes escaped */
	dm_buf_adds(&f, "[{'name': '");
	for (const char *s = pattern && *pattern ? pattern : "*"; *s; s++) {
		if (*s == '\'' || *s == '\\')
			dm_buf_addc(&f, '\\');
		dm_buf_addc(&f, *s);
	}
	dm_buf_adds(&f, "'}]");
	dm_buf_adds(&q, "/dids/");
	rest_escape(&q, scope);
	dm_buf_addf(&q, "/dids/search?type=%s&long=1&filters=", type);
	rest_escape(&q, f.s);
	rc = list_dids(db, q.s, scope, cb, ud, NULL);
	dm_buf_release(&q);
	dm_buf_release(&f);
	return rc;
}

/* Rows after the child with id `after` (0: all) go on to cb. */
struct after_ctx { cat_did_cb cb; void *ud; int64_t after; int passed; };
static int after_cb(void *ud, const struct cat_did *d)
{
	struct after_ctx *c = ud;

	if (!c->passed) {
		if (c->after == 0 || d->id == c->after)
			c->passed = 1;
		if (c->after != 0)
			return 0;
	}
	return c->cb(c->ud, d);
}

/* A listing of a parent through the cache: fresh -> from the cache; else
 * from the server, filled in one transaction once the whole answer parsed;
 * unreachable -> the cached listing however old.  `after` != 0: only the
 * rows after the child with that id (the cache seeks to it). */
static enum dm_status cached_list(struct cat_db *db, const char *p, const char *pscope,
				  const char *pname, int kind, int64_t after, cat_did_cb cb,
				  void *ud)
{
	struct rest_cache *ca = cache(db);
	struct rest_fill *fill;
	struct after_ctx ac = { cb, ud, after, 0 };
	enum dm_status rc;
	int hit;

	if (!ca)
		return list_dids(db, p, pscope, after_cb, &ac, NULL);
	if ((hit = rest_cache_list_after(ca, pscope, pname, kind, 0, after, cb, ud)) >= 0)
		return DM_OK;
	/* from the server: every row comes, those up to `after` are skipped */
	cb = after_cb;
	ud = &ac;
	/* the rows go to the caller as they arrive (as without a cache) and into
	 * the fill, which only a complete answer commits */
	fill = rest_fill_begin(ca, pscope, pname, kind);
	{
		struct did_ctx c = { cb, ud, pscope, 0, fill };
		struct rest_req r = { .method = "GET", .rows = did_row, .ud = &c, .path = p };
		rc = call(db, &r);
		if (rc) {
			rest_fill_abort(fill);
			if (r.nrows == 0 && !strcmp(db->err.cls, "ServerUnreachable") &&
			    rest_cache_list_after(ca, pscope, pname, kind, 1, after, ac.cb, ac.ud) >= 0)
				return DM_OK;
			return rc;
		}
	}
	rest_fill_commit(fill);
	return DM_OK;
}

static enum dm_status r_did_list_roots(struct cat_db *db, const char *scope, cat_did_cb cb,
				       void *ud)
{
	enum dm_status rc;

	if ((rc = did_args(db, scope, NULL)))
		return rc;
	return cached_list(db, path2(db, "/dids/", scope, NULL, "/"), scope, "", REST_LIST_ROOTS,
			   0, cb, ud);
}

static enum dm_status content_after(struct cat_db *db, const char *scope, const char *name,
				    int64_t after, cat_did_cb cb, void *ud)
{
	enum dm_status rc;

	if ((rc = did_args(db, scope, name)))
		return rc;
	return cached_list(db, path2(db, "/dids/", scope, name, "/dids"), scope, name,
			   REST_LIST_CONTENT, after, cb, ud);
}

static enum dm_status r_did_list_content(struct cat_db *db, const char *scope, const char *name,
					 cat_did_cb cb, void *ud)
{
	return content_after(db, scope, name, 0, cb, ud);
}

/* The readdir cursor over REST: ids are hashes, so "after" means after the
 * child with that id in the server's (cached) order. */
static enum dm_status r_did_list_content_from(struct cat_db *db, int64_t parent, int64_t after,
					      cat_did_cb cb, void *ud)
{
	char scope[CAT_SCOPE_MAX + 1], name[CAT_NAME_MAX + 1];

	if (!cache(db) || rest_cache_did_by_id(cache(db), parent, scope, name))
		return cat_fail(db, DM_ENOENT, "DataIdentifierNotFound",
				"no DID with id %lld seen through this REST catalog", (long long)parent);
	return content_after(db, scope, name, after, cb, ud);
}

static enum dm_status r_did_list_files(struct cat_db *db, const char *scope, const char *name,
				       cat_did_cb cb, void *ud)
{
	enum dm_status rc;

	if ((rc = did_args(db, scope, name)))
		return rc;
	return list_dids(db, path2(db, "/dids/", scope, name, "/files"), scope, cb, ud, NULL);
}

static enum dm_status r_did_list_parents(struct cat_db *db, const char *scope, const char *name,
					 cat_did_cb cb, void *ud)
{
	enum dm_status rc;

	if ((rc = did_args(db, scope, name)))
		return rc;
	return list_dids(db, path2(db, "/dids/", scope, name, "/parents"), scope, cb, ud, NULL);
}

/* ---- RSEs ---- */
static void rse_from_json(json_t *o, struct cat_rse *r)
{
	memset(r, 0, sizeof *r);
	r->id = js(o, "id");
	r->rse = js(o, "rse");
	r->rse_type = js(o, "rse_type") ? js(o, "rse_type") : "DISK";
	if (!strncmp(r->rse_type, "RSEType.", 8))
		r->rse_type += 8;
	r->deterministic = json_object_get(o, "deterministic") ? jb(o, "deterministic") : 1;
	r->volatile_ = jb(o, "volatile");
	r->staging_area = jb(o, "staging_area");
	r->availability_read = json_object_get(o, "availability_read") ? jb(o, "availability_read") : 1;
	r->availability_write = json_object_get(o, "availability_write") ? jb(o, "availability_write") : 1;
	r->availability_delete = json_object_get(o, "availability_delete") ? jb(o, "availability_delete") : 1;
	r->city = js(o, "city");
	r->country_name = js(o, "country_name");
	r->continent = js(o, "continent");
	r->region_code = js(o, "region_code");
	r->time_zone = js(o, "time_zone");
	r->isp = js(o, "ISP") ? js(o, "ISP") : js(o, "isp");
	r->asn = js(o, "ASN") ? js(o, "ASN") : js(o, "asn");
	r->latitude = json_number_value(json_object_get(o, "latitude"));
	r->longitude = json_number_value(json_object_get(o, "longitude"));
	r->qos_class = js(o, "qos_class");
}

struct rse_ctx { cat_rse_cb cb; void *ud; };
static int rse_row(void *ud, json_t *row)
{
	struct rse_ctx *c = ud;
	struct cat_rse r;

	rse_from_json(row, &r);
	return r.rse ? c->cb(c->ud, &r) : 0;
}

static enum dm_status r_rse_get(struct cat_db *db, const char *rse, cat_rse_cb cb, void *ud)
{
	struct rest_req r = { .method = "GET" };
	json_t *j = NULL;
	struct cat_rse x;
	enum dm_status rc;

	if (cat_validate_rse(rse, &db->err))
		return db->err.code;
	r.path = path2(db, "/rses/", rse, NULL, NULL);
	r.json = &j;
	if ((rc = call(db, &r)))
		return rc;
	rse_from_json(j, &x);
	if (x.rse)
		cb(ud, &x);
	json_decref(j);
	return DM_OK;
}

static enum dm_status r_rse_list(struct cat_db *db, cat_rse_cb cb, void *ud)
{
	struct rse_ctx c = { cb, ud };
	struct rest_req r = { .method = "GET", .path = "/rses/", .rows = rse_row, .ud = &c };
	return call(db, &r);
}

static enum dm_status r_rse_expr_list(struct cat_db *db, const char *expr, cat_rse_cb cb, void *ud)
{
	struct rse_ctx c = { cb, ud };
	struct rest_req r = { .method = "GET", .rows = rse_row, .ud = &c };
	struct dm_buf q = DM_BUF_INIT;
	enum dm_status rc;

	dm_buf_adds(&q, "/rses/?expression=");
	rest_escape(&q, expr);
	r.path = q.s;
	rc = call(db, &r);
	dm_buf_release(&q);
	return rc;
}

static enum dm_status r_rse_attr_list(struct cat_db *db, const char *rse, cat_kv_cb cb, void *ud)
{
	struct rest_req r = { .method = "GET" };
	json_t *j = NULL, *v;
	const char *k;
	enum dm_status rc;

	if (cat_validate_rse(rse, &db->err))
		return db->err.code;
	r.path = path2(db, "/rses/", rse, NULL, "/attr/");
	r.json = &j;
	if ((rc = call(db, &r)))
		return rc;
	/* a dict (Rucio), or a list of one dict / of {"key","value"} pairs */
	if (json_is_array(j) && json_array_size(j) == 1 && json_is_object(json_array_get(j, 0))) {
		json_t *o = json_incref(json_array_get(j, 0));
		json_decref(j);
		j = o;
	}
	json_object_foreach(j, k, v) {
		char num[64];
		const char *s = NULL;
		if (json_is_string(v))
			s = json_string_value(v);
		else if (json_is_boolean(v))
			s = json_is_true(v) ? "true" : "false";
		else if (json_is_integer(v))
			snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v)), s = num;
		else if (json_is_real(v))
			snprintf(num, sizeof num, "%g", json_real_value(v)), s = num;
		if (s && cb(ud, k, s))
			break;
	}
	json_decref(j);
	return DM_OK;
}

struct attr_ctx { const char *key; char *out; size_t n; int found; };
static int attr_one(void *ud, const char *k, const char *v)
{
	struct attr_ctx *c = ud;
	if (strcmp(k, c->key))
		return 0;
	dm_strlcpy(c->out, v, c->n);
	c->found = 1;
	return 1;
}

static enum dm_status r_rse_attr_get(struct cat_db *db, const char *rse, const char *key,
				     char *out, size_t n)
{
	struct attr_ctx c = { key, out, n, 0 };
	enum dm_status rc = r_rse_attr_list(db, rse, attr_one, &c);

	if (rc)
		return rc;
	if (!c.found)
		return cat_fail(db, DM_ENOENT, "RSEAttributeNotFound",
				"RSE attribute '%s' not found for RSE '%s'", key, rse);
	return DM_OK;
}

static const char *const op_names[CAT_OP_COUNT] = {
	"read", "write", "delete", "third_party_copy_read", "third_party_copy_write",
};

static void proto_from_json(json_t *o, struct cat_protocol *p)
{
	json_t *doms = json_object_get(o, "domains");

	memset(p, 0, sizeof *p);
	p->scheme = js(o, "scheme");
	p->hostname = js(o, "hostname");
	p->port = (int)ji(o, "port");
	p->prefix = js(o, "prefix");
	p->impl = js(o, "impl");
	for (int d = 0; d < CAT_DOMAIN_COUNT; d++) {
		json_t *dd = json_object_get(doms, d == CAT_LAN ? "lan" : "wan");
		for (int op = 0; op < CAT_OP_COUNT; op++) {
			int64_t v = ji(dd, op_names[op]);
			if (op == CAT_OP_TPC_READ && !json_object_get(dd, op_names[op]))
				v = ji(dd, "third_party_copy"); /* older servers */
			p->prio[d][op] = v <= 0 ? -1 : (int)(v - 1); /* Rucio 0 = off, 1 = best */
		}
	}
}

static enum dm_status r_protocol_list(struct cat_db *db, const char *rse, cat_protocol_cb cb,
				      void *ud)
{
	struct rest_req r = { .method = "GET" };
	json_t *j = NULL, *e;
	size_t i;
	enum dm_status rc;

	if (cat_validate_rse(rse, &db->err))
		return db->err.code;
	r.path = path2(db, "/rses/", rse, NULL, "/protocols");
	r.json = &j;
	rc = call(db, &r);
	if (rc == DM_ENOTSUP && !strcmp(db->err.cls, "RSEProtocolNotSupported"))
		return DM_OK; /* Rucio: 404 when there are none */
	if (rc)
		return rc;
	if (json_is_object(j) && json_is_array(json_object_get(j, "protocols"))) {
		json_t *l = json_incref(json_object_get(j, "protocols"));
		json_decref(j);
		j = l;
	}
	json_array_foreach(j, i, e) {
		struct cat_protocol p;
		proto_from_json(e, &p);
		if (p.scheme && cb(ud, &p))
			break;
	}
	json_decref(j);
	return DM_OK;
}

static enum dm_status r_lfn2pfn(struct cat_db *db, const char *rse, const char *scope,
				const char *name, const char *scheme, enum cat_proto_op op,
				struct dm_buf *out)
{
	static const char *const ops[CAT_OP_COUNT] = {
		"read", "write", "delete", "third_party_copy_read", "third_party_copy_write" };
	struct rest_req r = { .method = "GET" };
	struct dm_buf q = DM_BUF_INIT, lfn = DM_BUF_INIT;
	json_t *j = NULL;
	const char *pfn;
	enum dm_status rc;

	if (cat_validate_rse(rse, &db->err) || did_args(db, scope, name))
		return db->err.code;
	dm_buf_addf(&lfn, "%s:%s", scope, name);
	dm_buf_adds(&q, "/rses/");
	rest_escape(&q, rse);
	dm_buf_adds(&q, "/lfns2pfns?lfn=");
	rest_escape(&q, lfn.s);
	dm_buf_addf(&q, "&operation=%s", ops[op]);
	if (scheme) {
		dm_buf_adds(&q, "&scheme=");
		rest_escape(&q, scheme);
	}
	r.path = q.s;
	r.json = &j;
	rc = call(db, &r);
	if (rc == DM_OK) {
		pfn = js(j, lfn.s);
		dm_buf_reset(out);
		if (pfn)
			dm_buf_adds(out, pfn);
		else
			rc = cat_fail(db, DM_EIO, "RucioException", "lfns2pfns on %s gave no PFN for %s",
				      rse, lfn.s);
	}
	json_decref(j);
	dm_buf_release(&q);
	dm_buf_release(&lfn);
	return rc;
}

/* ---- replicas ---- */
struct rep_ctx {
	cat_replica_cb cb;       /* NULL: only the cache is filled */
	void *ud;
	unsigned mask;
	const char *rse;
	int stopped;
	struct rest_rep_fill *fill;
};

static int rep_row(void *ud, json_t *row)
{
	struct rep_ctx *c = ud;
	json_t *states = json_object_get(row, "states"), *rses = json_object_get(row, "rses"), *pfns =
		json_object_get(row, "pfns"), *v;
	const char *rse;

	if (!json_is_object(row))
		return 0;
	if (!json_is_object(states) || !json_object_size(states))
		states = rses; /* AVAILABLE ones only */
	if (c->fill && js(row, "scope") && js(row, "name")) {
		struct cat_replica none = { .scope = js(row, "scope"), .name = js(row, "name") };
		rest_rep_fill_row(c->fill, &none); /* the file counts as listed */
	}
	json_object_foreach(states, rse, v) {
		struct cat_replica rp;
		enum cat_replica_state st = CAT_REPLICA_AVAILABLE;
		json_t *l = json_object_get(rses, rse);
		json_t *pi;

		if (json_is_string(v) && cat_replica_state_parse(json_string_value(v), &st))
			continue;
		memset(&rp, 0, sizeof rp);
		rp.scope = js(row, "scope");
		rp.name = js(row, "name");
		rp.rse = rse;
		rp.bytes = (uint64_t)ji(row, "bytes");
		rp.adler32 = js(row, "adler32");
		rp.md5 = js(row, "md5");
		rp.state = st;
		rp.pfn = json_string_value(json_array_get(l, 0));
		pi = rp.pfn ? json_object_get(pfns, rp.pfn) : NULL;
		rp.rse_id = js(pi, "rse_id");
		if (!rp.scope || !rp.name)
			continue;
		if (c->fill)
			rest_rep_fill_row(c->fill, &rp);
		if (c->mask ? !(c->mask & (1u << st)) : st != CAT_REPLICA_AVAILABLE)
			continue;
		if (c->rse && strcmp(c->rse, rse))
			continue;
		if (c->cb && !c->stopped && c->cb(c->ud, &rp))
			c->stopped = 1;
	}
	return c->stopped && !c->fill;
}

static enum dm_status replica_post(struct cat_db *db, const char *scope, const char *name,
				   const char *rse, unsigned mask, cat_replica_cb cb, void *ud,
				   struct rest_rep_fill *fill)
{
	struct rep_ctx c = { cb, ud, mask, rse, 0, fill };
	struct rest_req r = { .method = "POST", .path = "/replicas/list", .rows = rep_row, .ud = &c,
			      .accept = "application/x-json-stream" };
	json_t *b = json_object(), *dids = json_array();
	const char *site = getenv("DIDFS_SITE");
	enum dm_status rc;
	char *body;

	if ((rc = did_args(db, scope, name))) {
		json_decref(b);
		json_decref(dids);
		return rc;
	}
	json_array_append_new(dids, json_pack("{ssss}", "scope", scope, "name", name));
	json_object_set_new(b, "dids", dids);
	json_object_set_new(b, "all_states", mask || fill ? json_true() : json_false());
	json_object_set_new(b, "ignore_availability", json_true());
	if (rse && !fill)
		json_object_set_new(b, "rse_expression", json_string(rse));
	if (site && *site)
		json_object_set_new(b, "client_location", json_pack("{ss}", "site", site));
	body = dumps(b);
	r.body = body;
	rc = call(db, &r);
	free(body);
	return rc;
}

static double replica_ttl(void)
{
	const char *e = getenv("DIDFS_REST_REPLICA_TTL");
	char *end;
	double v;

	if (!e || !*e)
		return 60;
	v = strtod(e, &end);
	return *end || v < 0 ? 60 : v;
}

/* Through the cache: a file's cached replicas when fresh; else one POST
 * for its dataset (when a cached listing names one) or for the DID itself,
 * every replica of every file filled in one transaction; offline, the
 * cached replicas however old. */
static enum dm_status r_replica_list(struct cat_db *db, const char *scope, const char *name,
				     const char *rse, unsigned mask, cat_replica_cb cb, void *ud)
{
	struct rest_cache *ca = cache(db);
	char ps[CAT_SCOPE_MAX + 1], pn[CAT_NAME_MAX + 1];
	struct rest_rep_fill *fill;
	double ttl = replica_ttl();
	enum dm_status rc;
	int via_parent;

	if ((rc = did_args(db, scope, name)))
		return rc;
	if (!ca)
		return replica_post(db, scope, name, rse, mask, cb, ud, NULL);
	if (rest_cache_replicas(ca, scope, name, ttl, 0, mask, rse, cb, ud) == 0)
		return DM_OK;
	via_parent = rest_cache_parent_dataset(ca, scope, name, ps, pn) == 0;
	fill = rest_rep_fill_begin(ca);
	if (via_parent)
		rc = replica_post(db, ps, pn, NULL, ~0u, NULL, NULL, fill);
	else
		rc = replica_post(db, scope, name, rse, mask, cb, ud, fill);
	if (rc) {
		rest_rep_fill_abort(fill);
		if (!strcmp(db->err.cls, "ServerUnreachable") &&
		    rest_cache_replicas(ca, scope, name, ttl, 1, mask, rse, cb, ud) == 0)
			return DM_OK;
		return rc;
	}
	rest_rep_fill_commit(fill, via_parent ? ps : scope, via_parent ? pn : name);
	if (via_parent && rest_cache_replicas(ca, scope, name, ttl, 1, mask, rse, cb, ud))
		return replica_post(db, scope, name, rse, mask, cb, ud, NULL); /* not in it after all */
	return DM_OK;
}

/* POST /replicas (add), PUT /replicas (states), DELETE /replicas: the
 * body {"rse": R, "files": [{scope, name, ...}]} as Rucio's client sends. */
static enum dm_status replicas_call(struct cat_db *db, const char *method, const char *rse,
				    json_t *files, int ignore_availability)
{
	struct rest_req r = { .method = method, .path = "/replicas" };
	json_t *b = json_object();
	enum dm_status rc;
	char *body;

	json_object_set_new(b, "rse", json_string(rse));
	json_object_set_new(b, "files", files);
	if (ignore_availability)
		json_object_set_new(b, "ignore_availability", json_true());
	body = dumps(b);
	r.body = body;
	rc = call(db, &r);
	free(body);
	return rc;
}

static enum dm_status r_replicas_add(struct cat_db *db, const char *rse, const struct cat_file_in *f,
				     size_t n, const char *ds_scope, const char *ds_name,
				     unsigned flags)
{
	json_t *files = json_array();
	enum dm_status rc;

	if (cat_validate_rse(rse, &db->err)) {
		json_decref(files);
		return db->err.code;
	}
	for (size_t i = 0; i < n; i++) {
		json_t *o = json_pack("{sssssIss}", "scope", f[i].scope, "name", f[i].name,
				      "bytes", (json_int_t)f[i].bytes, "adler32", f[i].adler32 ? f[i].adler32 : "");
		if (f[i].md5)
			json_object_set_new(o, "md5", json_string(f[i].md5));
		if (f[i].pfn)
			json_object_set_new(o, "pfn", json_string(f[i].pfn));
		json_object_set_new(o, "state", json_string(cat_replica_state_code(
			f[i].state < 0 ? CAT_REPLICA_AVAILABLE : (enum cat_replica_state)f[i].state)));
		json_object_set_new(o, "meta", json_object());
		json_array_append_new(files, o);
	}
	rc = replicas_call(db, "POST", rse, files, flags & CAT_REPLICA_IGNORE_AVAILABILITY);
	for (size_t i = 0; cache(db) && i < n; i++) /* new files: no more "not found" */
		rest_cache_invalidate(cache(db), f[i].scope, f[i].name, 0);
	if (rc == DM_OK && ds_scope && ds_name) {
		struct cat_did_ref *refs = dm_xcalloc(n ? n : 1, sizeof *refs);
		for (size_t i = 0; i < n; i++)
			refs[i] = (struct cat_did_ref){ f[i].scope, f[i].name };
		rc = r_did_attach(db, ds_scope, ds_name, refs, n, CAT_IGNORE_DUPLICATE);
		free(refs);
	}
	return rc;
}

/* {scope, name, bytes, adler32} of a file, as the replica calls carry it
 * (Rucio's client sends the whole file dict; bytes comes from the server). */
struct file_fields { json_t *o; };
static int file_fields_cb(void *ud, const struct cat_did *d)
{
	struct file_fields *f = ud;
	json_object_set_new(f->o, "bytes", json_integer((json_int_t)d->bytes));
	if (d->adler32)
		json_object_set_new(f->o, "adler32", json_string(d->adler32));
	return 0;
}

static json_t *file_obj(struct cat_db *db, const char *scope, const char *name)
{
	struct file_fields f = { json_pack("{ssss}", "scope", scope, "name", name) };
	struct dm_err keep = db->err;

	if (r_did_get(db, scope, name, file_fields_cb, &f))
		db->err = keep; /* the replica call itself says what is wrong */
	return f.o;
}

static enum dm_status r_replica_set_state(struct cat_db *db, const char *rse, const char *scope,
					  const char *name, enum cat_replica_state st)
{
	json_t *files = json_array(), *o;

	if (did_args(db, scope, name) || cat_validate_rse(rse, &db->err)) {
		json_decref(files);
		return db->err.code;
	}
	o = file_obj(db, scope, name);
	json_object_set_new(o, "state", json_string(cat_replica_state_code(st)));
	json_array_append_new(files, o);
	if (cache(db))
		rest_cache_invalidate(cache(db), scope, name, 0);
	return replicas_call(db, "PUT", rse, files, 0);
}

static enum dm_status r_replica_del(struct cat_db *db, const char *rse, const char *scope,
				    const char *name)
{
	json_t *files = json_array();

	if (did_args(db, scope, name) || cat_validate_rse(rse, &db->err)) {
		json_decref(files);
		return db->err.code;
	}
	json_array_append_new(files, file_obj(db, scope, name));
	if (cache(db))
		rest_cache_invalidate(cache(db), scope, name, 0);
	return replicas_call(db, "DELETE", rse, files, 0);
}

/* ---- usage ---- */
struct usage_ctx { cat_usage_cb cb; void *ud; const char *account; };
static int usage_row(void *ud, json_t *row)
{
	struct usage_ctx *c = ud;
	struct cat_usage u;
	json_t *lim = json_object_get(row, "bytes_limit");

	memset(&u, 0, sizeof u);
	u.account = c->account;
	u.rse = js(row, "rse");
	u.files = (uint64_t)ji(row, "files");
	u.bytes = (uint64_t)ji(row, "bytes");
	/* a number; Python's Infinity (rest_json_loadb: "Infinity") = unlimited */
	u.limit_set = lim && !json_is_null(lim);
	u.limit = !u.limit_set || json_is_string(lim) ? -1 : ji(row, "bytes_limit");
	return u.rse ? c->cb(c->ud, &u) : 0;
}

static enum dm_status r_account_usage_list(struct cat_db *db, const char *account,
					   cat_usage_cb cb, void *ud)
{
	struct usage_ctx c = { cb, ud, account };
	struct rest_req r = { .method = "GET", .rows = usage_row, .ud = &c };

	if (cat_validate_account(account, &db->err))
		return db->err.code;
	r.path = path2(db, "/accounts/", account, NULL, "/usage/local");
	return call(db, &r);
}

static enum dm_status r_usage_refresh(struct cat_db *db)
{
	return DM_OK; /* the server's abacus folds usage; nothing to do here */
}

/* ---- rules ---- */
static int rule_state_parse(const char *s, enum cat_rule_state *st)
{
	for (int i = 0; i <= CAT_RULE_INJECT; i++)
		if (s && !strcasecmp(s, cat_rule_state_name((enum cat_rule_state)i))) {
			*st = (enum cat_rule_state)i;
			return 0;
		}
	return -1;
}

static void rule_from_json(json_t *o, struct cat_rule *r)
{
	const char *t;

	memset(r, 0, sizeof *r);
	r->id = js(o, "id");
	r->scope = js(o, "scope");
	r->name = js(o, "name");
	t = js(o, "did_type");
	if (t && !strncmp(t, "DIDType.", 8))
		t += 8;
	if (!t || cat_did_type_parse(t, &r->did_type))
		r->did_type = CAT_DID_DATASET;
	r->account = js(o, "account");
	t = js(o, "state");
	if (t && !strncmp(t, "RuleState.", 10))
		t += 10;
	if (rule_state_parse(t, &r->state))
		r->state = CAT_RULE_REPLICATING;
	r->error = js(o, "error");
	r->rse_expression = js(o, "rse_expression");
	r->copies = (int)ji(o, "copies");
	t = js(o, "grouping");
	if (t && !strncmp(t, "RuleGrouping.", 13))
		t += 13;
	if (!t || cat_grouping_parse(t, &r->grouping))
		r->grouping = CAT_GROUPING_DATASET;
	r->weight = js(o, "weight");
	r->locked = jb(o, "locked");
	r->source_replica_expression = js(o, "source_replica_expression");
	r->activity = js(o, "activity");
	r->purge_replicas = jb(o, "purge_replicas");
	r->ignore_availability = jb(o, "ignore_availability");
	r->comment = js(o, "comments") ? js(o, "comments") : js(o, "comment");
	r->notification = js(o, "notification");
	r->locks_ok_cnt = ji(o, "locks_ok_cnt");
	r->locks_replicating_cnt = ji(o, "locks_replicating_cnt");
	r->locks_stuck_cnt = ji(o, "locks_stuck_cnt");
	r->expires_at = jt(o, "expires_at");
	r->created_at = jt(o, "created_at");
	r->updated_at = jt(o, "updated_at");
	r->stuck_at = jt(o, "stuck_at");
	r->priority = (int)ji(o, "priority");
}

/* (a rule is on one DID, so the rules of several DIDs never repeat) */
struct rule_ctx { cat_rule_cb cb; void *ud; int stopped; };
static int rule_row(void *ud, json_t *row)
{
	struct rule_ctx *c = ud;
	struct cat_rule r;

	rule_from_json(row, &r);
	if (!r.id)
		return 0;
	if (c->cb(c->ud, &r)) {
		c->stopped = 1;
		return 1;
	}
	return 0;
}

static enum dm_status r_rule_add(struct cat_db *db, const char *scope, const char *name,
				 const struct cat_rule_opts *o, char *id_out)
{
	struct rest_req r = { .method = "POST", .path = "/rules/" };
	json_t *b = json_object(), *dids = json_array(), *j = NULL;
	const char *acct = rest_client_account(RDB(db)->cl);
	enum dm_status rc;
	char *body;

	if ((rc = did_args(db, scope, name))) {
		json_decref(b);
		json_decref(dids);
		return rc;
	}
	json_array_append_new(dids, json_pack("{ssss}", "scope", scope, "name", name));
	json_object_set_new(b, "dids", dids);
	json_object_set_new(b, "account", acct ? json_string(acct) : json_null());
	json_object_set_new(b, "copies", json_integer(o->copies));
	json_object_set_new(b, "rse_expression", json_string(o->rse_expression ? o->rse_expression : ""));
	json_object_set_new(b, "grouping", json_string(cat_grouping_name(o->grouping)));
	json_object_set_new(b, "weight", o->weight ? json_string(o->weight) : json_null());
	json_object_set_new(b, "lifetime", o->lifetime > 0 ? json_integer(o->lifetime) : json_null());
	json_object_set_new(b, "locked", json_boolean(o->locked));
	json_object_set_new(b, "subscription_id", json_null());
	json_object_set_new(b, "source_replica_expression", o->source_replica_expression ?
			    json_string(o->source_replica_expression) : json_null());
	json_object_set_new(b, "activity", o->activity ? json_string(o->activity) : json_null());
	json_object_set_new(b, "notify", o->notification ? json_string(o->notification) : json_null());
	json_object_set_new(b, "purge_replicas", json_boolean(o->purge_replicas));
	json_object_set_new(b, "ignore_availability", json_boolean(o->ignore_availability));
	json_object_set_new(b, "comment", o->comment ? json_string(o->comment) : json_null());
	json_object_set_new(b, "ask_approval", json_false());
	json_object_set_new(b, "asynchronous", json_boolean(o->asynchronous));
	json_object_set_new(b, "priority", json_integer(o->priority));
	body = dumps(b);
	r.body = body;
	r.json = &j;
	rc = call(db, &r);
	free(body);
	if (rc == DM_OK) {
		const char *id = json_string_value(json_array_get(j, 0));
		if (!id || strlen(id) != 32)
			rc = cat_fail(db, DM_EIO, "RucioException",
				      "POST /rules/ answered without a rule id");
		else if (id_out)
			memcpy(id_out, id, 33);
	}
	json_decref(j);
	if (cache(db))
		rest_cache_invalidate(cache(db), scope, name, 0);
	return rc;
}

static enum dm_status rule_id_check(struct cat_db *db, const char *id)
{
	if (!id || strlen(id) != 32 || !dm_is_hex(id, 32))
		return cat_fail(db, DM_ENOENT, "RuleNotFound", "No replication rule found with the id '%s'",
				id ? id : "");
	return DM_OK;
}

static enum dm_status r_rule_get(struct cat_db *db, const char *id, cat_rule_cb cb, void *ud)
{
	struct rest_req r = { .method = "GET" };
	json_t *j = NULL;
	struct cat_rule x;
	enum dm_status rc;

	if ((rc = rule_id_check(db, id)))
		return rc;
	r.path = path2(db, "/rules/", id, NULL, NULL);
	r.json = &j;
	if ((rc = call(db, &r)))
		return rc;
	rule_from_json(j, &x);
	if (x.id)
		cb(ud, &x);
	json_decref(j);
	return DM_OK;
}

static enum dm_status r_rule_list(struct cat_db *db, const char *scope, const char *name,
				  const char *account, cat_rule_cb cb, void *ud)
{
	struct rule_ctx c = { cb, ud, 0 };
	struct rest_req r = { .method = "GET", .rows = rule_row, .ud = &c };

	if (scope && name) {
		if (did_args(db, scope, name))
			return db->err.code;
		r.path = path2(db, "/dids/", scope, name, "/rules");
	} else if (account) {
		if (cat_validate_account(account, &db->err))
			return db->err.code;
		r.path = path2(db, "/accounts/", account, NULL, "/rules");
	} else {
		r.path = "/rules/";
	}
	return call(db, &r);
}

/* Rules on a file and on every collection above it (parents walked). */
struct walk { char (*dids)[CAT_SCOPE_MAX + CAT_NAME_MAX + 2]; size_t n, cap; };
static int walk_cb(void *ud, const struct cat_did *d)
{
	struct walk *w = ud;
	char key[CAT_SCOPE_MAX + CAT_NAME_MAX + 2];

	snprintf(key, sizeof key, "%s:%s", d->scope, d->name);
	for (size_t i = 0; i < w->n; i++)
		if (!strcmp(w->dids[i], key))
			return 0;
	if (w->n == w->cap) {
		w->cap = w->cap ? w->cap * 2 : 8;
		w->dids = dm_xrealloc(w->dids, w->cap * sizeof *w->dids);
	}
	memcpy(w->dids[w->n++], key, sizeof key);
	return w->n > 4096;
}

static enum dm_status r_rule_list_for_file(struct cat_db *db, const char *scope, const char *name,
					   cat_rule_cb cb, void *ud)
{
	struct rule_ctx c = { cb, ud, 0 };
	struct walk w = { 0 };
	struct cat_did self = { .scope = scope, .name = name };
	enum dm_status rc = DM_OK;

	if ((rc = did_args(db, scope, name)))
		return rc;
	walk_cb(&w, &self);
	for (size_t i = 0; i < w.n && rc == DM_OK; i++) {
		char s[CAT_SCOPE_MAX + 1], n[CAT_NAME_MAX + 1];
		struct dm_err e;
		if (cat_parse_did(w.dids[i], s, n, &e))
			continue;
		rc = r_did_list_parents(db, s, n, walk_cb, &w);
	}
	for (size_t i = 0; i < w.n && rc == DM_OK && !c.stopped; i++) {
		char s[CAT_SCOPE_MAX + 1], n[CAT_NAME_MAX + 1];
		struct dm_err e;
		struct rest_req r = { .method = "GET", .rows = rule_row, .ud = &c };
		if (cat_parse_did(w.dids[i], s, n, &e))
			continue;
		r.path = path2(db, "/dids/", s, n, "/rules");
		rc = call(db, &r);
	}
	free(w.dids);
	return rc;
}

static enum dm_status r_rule_delete(struct cat_db *db, const char *id, int purge, int64_t delay)
{
	struct rest_req r = { .method = "DELETE" };
	enum dm_status rc;

	if ((rc = rule_id_check(db, id)))
		return rc;
	r.path = path2(db, "/rules/", id, NULL, NULL);
	r.body = purge < 0 ? "{\"purge_replicas\": null}" : purge ? "{\"purge_replicas\": true}"
								   : "{\"purge_replicas\": false}";
	rc = call(db, &r);
	if (cache(db))
		rest_cache_invalidate_all_rules(cache(db));
	return rc;
}

static enum dm_status r_rule_delete_now(struct cat_db *db, const char *id)
{
	return r_rule_delete(db, id, -1, 0);
}

static enum dm_status r_rule_update(struct cat_db *db, const char *id, const char *key,
				    const char *value)
{
	struct rest_req r = { .method = "PUT" };
	json_t *b = json_object(), *o = json_object(), *v;
	enum dm_status rc;
	char *body;
	int64_t n;

	if ((rc = rule_id_check(db, id))) {
		json_decref(b);
		json_decref(o);
		return rc;
	}
	if (!strcmp(key, "locked") || !strcmp(key, "purge_replicas") ||
	    !strcmp(key, "ignore_availability")) {
		v = json_boolean(value && (!strcasecmp(value, "true") || !strcmp(value, "1")));
	} else if (!strcmp(key, "lifetime") || !strcmp(key, "priority")) {
		if (!value || !*value || !strcasecmp(value, "none") || !strcasecmp(value, "null"))
			v = json_null();
		else if (!dm_parse_i64(value, &n))
			v = json_integer(n);
		else
			v = json_string(value);
	} else if (!strcmp(key, "state")) {
		/* Rucio: {"state": "STUCK"} repairs, "SUSPENDED" suspends */
		v = json_string(value ? value : "");
	} else {
		v = value ? json_string(value) : json_null();
	}
	json_object_set_new(o, key, v);
	json_object_set_new(b, "options", o);
	body = dumps(b);
	r.path = path2(db, "/rules/", id, NULL, NULL);
	r.body = body;
	rc = call(db, &r);
	free(body);
	return rc;
}

struct lock_ctx {
	cat_lock_cb cb;
	void *ud;
	struct { char rse[CAT_RSE_MAX + 1]; int64_t ok, rep, stuck; } *per;
	size_t n;
};
static int lock_row(void *ud, json_t *row)
{
	struct lock_ctx *c = ud;
	struct cat_lock l;
	const char *st = js(row, "state");

	memset(&l, 0, sizeof l);
	l.scope = js(row, "scope");
	l.name = js(row, "name");
	l.rse = js(row, "rse");
	l.rule_id = js(row, "rule_id");
	if (st && !strncmp(st, "LockState.", 10))
		st += 10;
	l.state = st && !strcmp(st, "OK") ? CAT_LOCK_OK : st && !strcmp(st, "STUCK") ? CAT_LOCK_STUCK
									     : CAT_LOCK_REPLICATING;
	l.bytes = (uint64_t)ji(row, "bytes");
	if (!l.rse)
		return 0;
	if (c->cb)
		return c->cb(c->ud, &l);
	{
		size_t i;
		for (i = 0; i < c->n; i++)
			if (!strcmp(c->per[i].rse, l.rse))
				break;
		if (i == c->n) {
			if (c->n >= 100000)
				return 1;
			c->per = dm_xrealloc(c->per, (c->n + 1) * sizeof *c->per);
			memset(&c->per[c->n], 0, sizeof *c->per);
			dm_strlcpy(c->per[c->n].rse, l.rse, sizeof c->per[c->n].rse);
			c->n++;
		}
		if (l.state == CAT_LOCK_OK)
			c->per[i].ok++;
		else if (l.state == CAT_LOCK_STUCK)
			c->per[i].stuck++;
		else
			c->per[i].rep++;
	}
	return 0;
}

static enum dm_status r_rule_list_locks(struct cat_db *db, const char *id, cat_lock_cb cb, void *ud)
{
	struct lock_ctx c = { cb, ud, NULL, 0 };
	struct rest_req r = { .method = "GET", .rows = lock_row, .ud = &c };
	enum dm_status rc;

	if ((rc = rule_id_check(db, id)))
		return rc;
	r.path = path2(db, "/rules/", id, NULL, "/locks");
	return call(db, &r);
}

static int cmp_rse(const void *a, const void *b)
{
	return strcmp(a, b); /* rse is the first member */
}

static enum dm_status r_rule_lock_counts(struct cat_db *db, const char *id, cat_lock_count_cb cb,
					 void *ud)
{
	struct lock_ctx c = { NULL, NULL, NULL, 0 };
	struct rest_req r = { .method = "GET", .rows = lock_row, .ud = &c };
	enum dm_status rc;

	if ((rc = rule_id_check(db, id)))
		return rc;
	r.path = path2(db, "/rules/", id, NULL, "/locks");
	rc = call(db, &r);
	if (rc == DM_OK) {
		if (c.n)
			qsort(c.per, c.n, sizeof *c.per, cmp_rse);
		for (size_t i = 0; i < c.n; i++) {
			struct cat_lock_count lc = { c.per[i].rse, c.per[i].ok, c.per[i].rep,
						     c.per[i].stuck };
			if (cb(ud, &lc))
				break;
		}
	}
	free(c.per);
	return rc;
}

/* ---- the store ---- */
static void r_close(struct cat_db *db)
{
	struct rest_db *r = RDB(db);

	rest_client_free(r->cl);
	rest_cache_close(r->cache);
	dm_buf_release(&r->path);
	free(r->uri);
	free(r);
}

static void r_location(const struct cat_db *db, struct dm_buf *out)
{
	dm_buf_adds(out, RDB(db)->uri);
}

static void r_describe(const struct cat_db *db, struct dm_buf *out)
{
	const struct rest_config *c = rest_client_config(RDB(db)->cl);

	dm_buf_addf(out, "rest %s (Rucio REST API; auth %s%s%s; cache %s)", RDB(db)->uri,
		    c->auth_type ? c->auth_type : "by the credentials given",
		    c->origin[0] ? "; config " : "", c->origin,
		    RDB(db)->cache ? rest_cache_path(RDB(db)->cache) : "off");
}

static int r_os_owner(const struct cat_db *db, unsigned *uid)
{
	return -1;
}

static enum dm_status r_cache_stats(struct cat_db *db, struct cat_cache_stats *s)
{
	struct rest_db *r = RDB(db);
	const struct dm_err *e = rest_client_last_error(r->cl);

	s->remote = 1;
	dm_strlcpy(r->stats_server, r->uri, sizeof r->stats_server);
	s->server = r->stats_server;
	s->reachable = rest_client_reachable(r->cl);
	s->requests = rest_client_requests(r->cl);
	s->last_error = *e;
	if (r->cache) {
		dm_strlcpy(r->stats_path, rest_cache_path(r->cache), sizeof r->stats_path);
		s->path = r->stats_path;
		return rest_cache_stats(r->cache, s);
	}
	return DM_OK;
}

static const struct cat_remote_ops rest_remote = {
	.set_issuer = r_set_issuer,
	.account_get = r_account_get,
	.scope_list = r_scope_list,
	.did_add = r_did_add,
	.did_get = r_did_get,
	.did_attach = r_did_attach,
	.did_set_open = r_did_set_open,
	.did_set_lifetime = r_did_set_lifetime,
	.did_list = r_did_list,
	.did_list_roots = r_did_list_roots,
	.did_list_content = r_did_list_content,
	.did_list_content_from = r_did_list_content_from,
	.did_list_files = r_did_list_files,
	.did_list_parents = r_did_list_parents,
	.did_meta_set = r_did_meta_set,
	.did_meta_del = r_did_meta_del,
	.did_meta_list = r_did_meta_list,
	.rse_get = r_rse_get,
	.rse_list = r_rse_list,
	.rse_attr_list = r_rse_attr_list,
	.rse_attr_get = r_rse_attr_get,
	.rse_expr_list = r_rse_expr_list,
	.protocol_list = r_protocol_list,
	.lfn2pfn = r_lfn2pfn,
	.replica_list = r_replica_list,
	.account_usage_list = r_account_usage_list,
	.usage_refresh = r_usage_refresh,
	.rule_add = r_rule_add,
	.rule_get = r_rule_get,
	.rule_list = r_rule_list,
	.rule_list_for_file = r_rule_list_for_file,
	.rule_delete = r_rule_delete,
	.rule_delete_now = r_rule_delete_now,
	.rule_update = r_rule_update,
	.rule_lock_counts = r_rule_lock_counts,
	.rule_list_locks = r_rule_list_locks,
	.replicas_add = r_replicas_add,
	.replica_set_state = r_replica_set_state,
	.replica_del = r_replica_del,
};

static const struct cat_store_ops rest_ops = {
	.name = "rest",
	.close = r_close,
	.location = r_location,
	.describe = r_describe,
	.os_owner = r_os_owner,
	.set_creds = r_set_creds,
	.cache_stats = r_cache_stats,
	.remote = &rest_remote,
};

enum dm_status cat_rest_open(const char *uri, unsigned flags, struct cat_db **out,
			     struct dm_err *err)
{
	struct rest_config cfg;
	struct rest_db *r;
	enum dm_status rc;

	*out = NULL;
	if (flags & CAT_OPEN_CREATE)
		return dm_seterr(err, DM_ENOTSUP, "UnsupportedOperation",
				 "catalog '%s' is a REST server: it cannot be created from here"
				 " ('didfs init' runs next to the server's catalog)", uri);
	rest_config_init(&cfg);
	if ((rc = rest_config_load(&cfg, err)) || (rc = rest_config_env(&cfg, err)) ||
	    (rc = rest_config_host(&cfg, uri, err))) {
		rest_config_free(&cfg);
		return rc;
	}
	r = dm_xcalloc(1, sizeof *r);
	r->base.ops = &rest_ops;
	r->base.issuer_admin = -1;
	r->cl = rest_client_new(&cfg);
	r->uri = dm_xstrdup(cfg.rucio_host);
	dm_buf_init(&r->path, 0);
	rest_config_free(&cfg);
	sync_issuer(&r->base);
	if ((rc = rest_cache_open(r->uri, &r->cache, err))) {
		r_close(&r->base);
		return rc;
	}
	*out = &r->base;
	return DM_OK;
}
