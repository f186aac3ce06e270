/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ep_replica.c - /replicas: add (state C or A), update states, delete,
 * POST /replicas/list (JSON stream or metalink, by Accept) and the legacy
 * GET /replicas/<scope>/<name>.
 *
 * The listing reads every RSE's settings and protocols once before it
 * starts, so PFNs are computed in C inside the row callback with no catalog
 * call there; rows come ordered by (scope, name, rse) and are grouped per
 * file.  Sorting by the client's location (Rucio's sort_replicas): a PFN on
 * an RSE whose `site` attribute is client_location.site is in the "lan"
 * domain (with the protocol's LAN read priority), others "wan".  `sort`
 * (body or query): geoip = by great-circle distance from
 * client_location.latitude/longitude to the RSE's latitude/longitude
 * (RSEs without coordinates last); random = shuffled; closeness and the
 * default = lan first, then protocol priority, then RSE name.  The listed
 * `priority` is the rank after sorting.  With metalink and resolve_parents,
 * a file's parent is the collection it was listed through, or its own
 * parents for a file DID.
 */
#include "server.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int is(const struct srv_req *r, const char *m) { return !strcmp(r->method, m); }

static int parse_state(const char *s, enum cat_replica_state *st)
{
	static const struct { const char *code; enum cat_replica_state st; } codes[] = {
		{ "A", CAT_REPLICA_AVAILABLE }, { "U", CAT_REPLICA_UNAVAILABLE },
		{ "C", CAT_REPLICA_COPYING }, { "B", CAT_REPLICA_BEING_DELETED },
		{ "D", CAT_REPLICA_BAD }, { "T", CAT_REPLICA_TEMPORARY_UNAVAILABLE },
	};

	for (size_t i = 0; i < DM_ARRAY_SIZE(codes); i++)
		if (!strcmp(s, codes[i].code)) {
			*st = codes[i].st;
			return 0;
		}
	return cat_replica_state_parse(s, st);
}

int srv_files_from_json(struct srv_req *r, json_t *arr, struct cat_file_in **out, size_t *n)
{
	size_t i;
	json_t *x;

	if (!json_is_array(arr)) {
		srv_error(r, "TypeError", "files must be a list");
		return -1;
	}
	*n = json_array_size(arr);
	*out = dm_xcalloc(*n ? *n : 1, sizeof(**out));
	json_array_foreach(arr, i, x) {
		struct cat_file_in *f = &(*out)[i];
		json_t *b = json_object_get(x, "bytes");
		const char *state = NULL;

		if (!json_is_object(x)) {
			srv_error(r, "TypeError", "every file must be an object");
			goto fail;
		}
		if (srv_jstr(r, x, "scope", &f->scope) || srv_jstr(r, x, "name", &f->name) ||
		    srv_jstr(r, x, "adler32", &f->adler32) || srv_jstr(r, x, "md5", &f->md5) ||
		    srv_jstr(r, x, "pfn", &f->pfn) || srv_jstr(r, x, "state", &state))
			goto fail;
		if (!f->scope || !f->name) {
			srv_error(r, "KeyError", "every file needs 'scope' and 'name'");
			goto fail;
		}
		if (!json_is_integer(b) || json_integer_value(b) < 0) {
			srv_error(r, b ? "TypeError" : "KeyError", "file %s:%s needs 'bytes' as a non-negative integer",
				  f->scope, f->name);
			goto fail;
		}
		f->bytes = (uint64_t)json_integer_value(b);
		f->state = -1;
		if (state) {
			enum cat_replica_state st;

			if (parse_state(state, &st)) {
				srv_error(r, "InvalidObject", "unknown replica state '%s'", state);
				goto fail;
			}
			f->state = (int)st;
		}
	}
	return 0;
fail:
	free(*out);
	*out = NULL;
	return -1;
}

static int files_body(struct srv_req *r, json_t **j, const char **rse, struct cat_file_in **f, size_t *n)
{
	*j = srv_body_json(r);
	if (!*j)
		return -1;
	if (srv_jstr(r, *j, "rse", rse))
		goto fail;
	if (!*rse) {
		srv_error(r, "KeyError", "'rse' not defined");
		goto fail;
	}
	if (srv_files_from_json(r, json_object_get(*j, "files"), f, n))
		goto fail;
	return 0;
fail:
	json_decref(*j);
	return -1;
}

/* ---- listing ---- */
struct rinfo {
	char id[33], rse[CAT_RSE_MAX + 1], type[16], algo[32], site[64];
	int volatile_, deterministic, in_expr;
	double lat, lon;
	int has_coords;
	struct cat_protocol *p;
	struct dm_buf strs;  /* protocol strings */
	int np;
};
struct pfnent { char *pfn; int rse; int lan; int prio; double dist; unsigned rnd; };
enum sort_mode { SORT_DEFAULT, SORT_GEOIP, SORT_CLOSENESS, SORT_RANDOM };
struct list_ctx {
	struct rinfo *rses;
	int nrses;
	char **schemes;
	int nschemes;
	int metalink, all_states, resolve_parents;
	json_t *dids;
	struct srv_stream *s;
	struct dm_buf b, path, pfn;
	/* the file being grouped */
	char scope[CAT_SCOPE_MAX + 1], name[CAT_NAME_MAX + 1], adler[16], md5[40];
	uint64_t bytes;
	int have;
	struct pfnent *ents;
	int nents;
	int st_rse[64];
	enum cat_replica_state st_state[64];
	int nst;
	char parents[4][CAT_SCOPE_MAX + CAT_NAME_MAX + 2];
	int nparents;
	int64_t nfiles;
	char site[64]; /* client_location.site: its RSEs' PFNs are lan and first */
	enum sort_mode sort;
	int has_client_coords;
	double clat, clon;
	unsigned seed;
	char **only; /* RSEs of the request's rse_expression */
	int nonly, use_only;
};

static int rse_collect_cb(void *ud, const struct cat_rse *x)
{
	struct list_ctx *c = ud;
	struct rinfo *ri;

	c->rses = dm_xrealloc(c->rses, sizeof(*c->rses) * (size_t)(c->nrses + 1));
	ri = &c->rses[c->nrses++];
	memset(ri, 0, sizeof(*ri));
	snprintf(ri->id, sizeof(ri->id), "%s", x->id);
	snprintf(ri->rse, sizeof(ri->rse), "%s", x->rse);
	snprintf(ri->type, sizeof(ri->type), "%s", x->rse_type ? x->rse_type : "DISK");
	ri->volatile_ = x->volatile_;
	ri->lat = x->latitude;
	ri->lon = x->longitude;
	ri->has_coords = x->latitude != 0.0 || x->longitude != 0.0;
	ri->deterministic = x->deterministic;
	ri->in_expr = !c->use_only;
	for (int i = 0; i < c->nonly; i++)
		if (!strcmp(c->only[i], x->rse))
			ri->in_expr = 1;
	return 0;
}

static int expr_mark_cb(void *ud, const struct cat_rse *x)
{
	struct list_ctx *c = ud;

	c->only = dm_xrealloc(c->only, sizeof(char *) * (size_t)(c->nonly + 1));
	c->only[c->nonly++] = dm_xstrdup(x->rse);
	return 0;
}

static int proto_collect_cb(void *ud, const struct cat_protocol *p)
{
	struct rinfo *ri = ud;
	struct cat_protocol *q;

	ri->p = dm_xrealloc(ri->p, sizeof(*ri->p) * (size_t)(ri->np + 1));
	q = &ri->p[ri->np++];
	*q = *p;
	/* strings copied by offset; fixed up after the listing */
	q->scheme = (const char *)(uintptr_t)ri->strs.len;
	dm_buf_adds(&ri->strs, p->scheme);
	dm_buf_addc(&ri->strs, 0);
	q->hostname = (const char *)(uintptr_t)ri->strs.len;
	dm_buf_adds(&ri->strs, p->hostname ? p->hostname : "");
	dm_buf_addc(&ri->strs, 0);
	q->prefix = (const char *)(uintptr_t)ri->strs.len;
	/* root:// PFNs carry an absolute path ("//prefix"), as Rucio lists them */
	if (!strcmp(p->scheme, "root") && p->prefix && p->prefix[0] == '/' && p->prefix[1] != '/')
		dm_buf_addc(&ri->strs, '/');
	dm_buf_adds(&ri->strs, p->prefix ? p->prefix : "");
	dm_buf_addc(&ri->strs, 0);
	q->impl = NULL;
	q->extended_attributes = NULL;
	return 0;
}

static int scheme_ok(const struct list_ctx *c, const char *scheme)
{
	if (!c->nschemes)
		return 1;
	for (int i = 0; i < c->nschemes; i++)
		if (!strcmp(c->schemes[i], scheme))
			return 1;
	return 0;
}

static __thread const struct list_ctx *tl_sort_ctx;

static int ent_cmp(const void *a, const void *b)
{
	const struct pfnent *x = a, *y = b;
	const struct list_ctx *c = tl_sort_ctx;

	if (c && c->sort == SORT_RANDOM && x->rnd != y->rnd)
		return x->rnd < y->rnd ? -1 : 1;
	if (c && c->sort == SORT_GEOIP && x->dist != y->dist)
		return x->dist < y->dist ? -1 : 1;
	if (x->lan != y->lan)
		return y->lan - x->lan;
	if (x->prio != y->prio)
		return x->prio - y->prio;
	return x->rse - y->rse;
}

/* Great-circle distance in km (haversine); HUGE_VAL when either end has no
 * coordinates. */
static double distance(const struct list_ctx *c, const struct rinfo *ri)
{
	const double rad = M_PI / 180.0;
	double dlat, dlon, h;

	if (!c->has_client_coords || !ri->has_coords)
		return HUGE_VAL;
	dlat = (ri->lat - c->clat) * rad;
	dlon = (ri->lon - c->clon) * rad;
	h = sin(dlat / 2) * sin(dlat / 2) +
	    cos(c->clat * rad) * cos(ri->lat * rad) * sin(dlon / 2) * sin(dlon / 2);
	return 2 * 6371.0 * asin(sqrt(h < 1 ? h : 1));
}

static void xml_esc(struct dm_buf *b, const char *s)
{
	for (; *s; s++) {
		if (*s == '<') dm_buf_adds(b, "&lt;");
		else if (*s == '>') dm_buf_adds(b, "&gt;");
		else if (*s == '&') dm_buf_adds(b, "&amp;");
		else if (*s == '"') dm_buf_adds(b, "&quot;");
		else dm_buf_addc(b, *s);
	}
}

static int emit_file(struct list_ctx *c)
{
	struct dm_buf *b = &c->b;
	int rc;

	if (!c->have)
		return 0;
	c->have = 0;
	c->nfiles++;
	tl_sort_ctx = c;
	if (c->nents > 1) /* ents is NULL for a file without PFNs */
		qsort(c->ents, (size_t)c->nents, sizeof(*c->ents), ent_cmp);
	tl_sort_ctx = NULL;
	if (c->metalink) {
		dm_buf_adds(b, " <file name=\"");
		xml_esc(b, c->name);
		dm_buf_adds(b, "\">\n");
		if (c->resolve_parents && c->nparents) {
			dm_buf_adds(b, "  <parents>\n");
			for (int i = 0; i < c->nparents; i++) {
				dm_buf_adds(b, "   <did>");
				xml_esc(b, c->parents[i]);
				dm_buf_adds(b, "</did>\n");
			}
			dm_buf_adds(b, "  </parents>\n");
		}
		dm_buf_adds(b, "  <identity>");
		xml_esc(b, c->scope);
		dm_buf_addc(b, ':');
		xml_esc(b, c->name);
		dm_buf_adds(b, "</identity>\n");
		if (c->adler[0])
			dm_buf_addf(b, "  <hash type=\"adler32\">%s</hash>\n", c->adler);
		if (c->md5[0])
			dm_buf_addf(b, "  <hash type=\"md5\">%s</hash>\n", c->md5);
		dm_buf_addf(b, "  <size>%llu</size>\n", (unsigned long long)c->bytes);
		dm_buf_adds(b, "  <glfn name=\"/generic/rucio/");
		xml_esc(b, c->scope);
		dm_buf_addc(b, ':');
		xml_esc(b, c->name);
		dm_buf_adds(b, "\"></glfn>\n");
		for (int i = 0; i < c->nents; i++) {
			dm_buf_addf(b, "  <url location=\"%s\" domain=\"%s\" priority=\"%d\" client_extract=\"false\">",
				    c->rses[c->ents[i].rse].rse, c->ents[i].lan ? "lan" : "wan", i + 1);
			xml_esc(b, c->ents[i].pfn);
			dm_buf_adds(b, "</url>\n");
		}
		dm_buf_adds(b, " </file>\n");
	} else {
		dm_buf_adds(b, "{");
		jw_ks(b, "scope", c->scope);
		jw_ks(b, "name", c->name);
		jw_ku(b, "bytes", c->bytes);
		jw_ks(b, "md5", c->md5[0] ? c->md5 : NULL);
		jw_ks(b, "adler32", c->adler[0] ? c->adler : NULL);
		jw_key(b, "pfns");
		dm_buf_adds(b, "{");
		for (int i = 0; i < c->nents; i++) {
			const struct rinfo *ri = &c->rses[c->ents[i].rse];

			jw_key(b, c->ents[i].pfn);
			dm_buf_adds(b, "{");
			jw_ks(b, "rse_id", ri->id);
			jw_ks(b, "rse", ri->rse);
			jw_ks(b, "type", ri->type);
			jw_kb(b, "volatile", ri->volatile_);
			jw_ks(b, "domain", c->ents[i].lan ? "lan" : "wan");
			jw_ki(b, "priority", i + 1);
			jw_kb(b, "client_extract", 0);
			dm_buf_adds(b, "}");
		}
		dm_buf_adds(b, "}");
		jw_key(b, "rses");
		dm_buf_adds(b, "{");
		for (int i = 0; i < c->nents;) {
			int r0 = c->ents[i].rse;

			jw_key(b, c->rses[r0].rse);
			dm_buf_adds(b, "[");
			for (; i < c->nents && c->ents[i].rse == r0; i++) {
				jw_sep(b);
				jw_str(b, c->ents[i].pfn);
			}
			dm_buf_adds(b, "]");
		}
		dm_buf_adds(b, "}");
		jw_key(b, "states");
		dm_buf_adds(b, "{");
		for (int i = 0; i < c->nst; i++)
			jw_ks(b, c->rses[c->st_rse[i]].rse, cat_replica_state_name(c->st_state[i]));
		dm_buf_adds(b, "}}\n");
	}
	for (int i = 0; i < c->nents; i++)
		free(c->ents[i].pfn);
	c->nents = 0;
	c->nst = 0;
	rc = srv_stream_buf(c->s, b);
	return rc;
}

static int replica_cb(void *ud, const struct cat_replica *x)
{
	struct list_ctx *c = ud;
	int ri = -1;

	if (c->have && (strcmp(c->scope, x->scope) || strcmp(c->name, x->name)))
		if (emit_file(c))
			return 1;
	if (!c->have) {
		c->have = 1;
		snprintf(c->scope, sizeof(c->scope), "%s", x->scope);
		snprintf(c->name, sizeof(c->name), "%s", x->name);
		snprintf(c->adler, sizeof(c->adler), "%s", x->adler32 ? x->adler32 : "");
		snprintf(c->md5, sizeof(c->md5), "%s", x->md5 ? x->md5 : "");
		c->bytes = x->bytes;
	}
	for (int i = 0; i < c->nrses; i++)
		if (!strcmp(c->rses[i].rse, x->rse)) {
			ri = i;
			break;
		}
	if (ri < 0 || c->rses[ri].in_expr == 0)
		return 0;
	if (c->nst < 64) {
		c->st_rse[c->nst] = ri;
		c->st_state[c->nst++] = x->state;
	}
	if (x->state != CAT_REPLICA_AVAILABLE && !c->all_states)
		return 0;
	for (int k = 0; k < c->rses[ri].np; k++) {
		const struct cat_protocol *p = &c->rses[ri].p[k];
		int lan = c->site[0] && !strcmp(c->rses[ri].site, c->site);
		int prio = lan && p->prio[CAT_LAN][CAT_OP_READ] >= 0 ? p->prio[CAT_LAN][CAT_OP_READ]
								      : p->prio[CAT_WAN][CAT_OP_READ];

		if (prio < 0 || !scheme_ok(c, p->scheme))
			continue;
		dm_buf_reset(&c->path);
		dm_buf_reset(&c->pfn);
		if (x->path)
			dm_buf_adds(&c->path, x->path);
		else if (cat_lfn2path(c->rses[ri].algo, x->scope, x->name, &c->path, NULL))
			continue;
		cat_pfn_join(p, c->path.s, &c->pfn);
		c->ents = dm_xrealloc(c->ents, sizeof(*c->ents) * (size_t)(c->nents + 1));
		c->ents[c->nents].pfn = dm_xstrdup(c->pfn.s);
		c->ents[c->nents].lan = lan && p->prio[CAT_LAN][CAT_OP_READ] >= 0;
		c->ents[c->nents].prio = prio;
		c->ents[c->nents].dist = c->sort == SORT_GEOIP ? distance(c, &c->rses[ri]) : 0;
		c->seed = c->seed * 1103515245u + 12345u;
		c->ents[c->nents].rnd = c->seed >> 8;
		c->ents[c->nents++].rse = ri;
	}
	return 0;
}

struct did_type_ctx { enum cat_did_type t; };

static int dtype_cb(void *ud, const struct cat_did *d)
{
	((struct did_type_ctx *)ud)->t = d->type;
	return 0;
}

static int parent_cb(void *ud, const struct cat_did *d)
{
	struct list_ctx *c = ud;

	if (c->nparents < 4)
		snprintf(c->parents[c->nparents++], sizeof(c->parents[0]), "%s:%s", d->scope, d->name);
	return 0;
}

static enum dm_status list_stream(struct srv_stream *s, struct cat_db *db, void *ud)
{
	struct list_ctx *c = ud;
	enum dm_status rc = DM_OK;
	json_t *x;
	size_t i;

	c->s = s;
	rc = cat_rse_list(db, rse_collect_cb, c);
	for (int k = 0; rc == DM_OK && k < c->nrses; k++) {
		struct rinfo *ri = &c->rses[k];

		dm_buf_init(&ri->strs, 0);
		if (cat_rse_attr_get(db, ri->rse, "lfn2pfn_algorithm", ri->algo, sizeof(ri->algo)))
			snprintf(ri->algo, sizeof(ri->algo), "hash");
		if (cat_rse_attr_get(db, ri->rse, "site", ri->site, sizeof(ri->site)))
			ri->site[0] = 0;
		rc = cat_protocol_list(db, ri->rse, proto_collect_cb, ri);
		for (int q = 0; q < ri->np; q++) {
			ri->p[q].scheme = ri->strs.s + (uintptr_t)ri->p[q].scheme;
			ri->p[q].hostname = ri->strs.s + (uintptr_t)ri->p[q].hostname;
			ri->p[q].prefix = ri->strs.s + (uintptr_t)ri->p[q].prefix;
		}
	}
	if (rc)
		return rc;
	json_array_foreach(c->dids, i, x) {
		const char *scope = json_string_value(json_object_get(x, "scope"));
		const char *name = json_string_value(json_object_get(x, "name"));
		struct did_type_ctx t = { CAT_DID_FILE };

		if (cat_did_get(db, scope, name, dtype_cb, &t))
			return cat_error(db)->code;
		c->nparents = 0;
		if (t.t == CAT_DID_FILE) {
			if (c->resolve_parents && (rc = cat_did_list_parents(db, scope, name, parent_cb, c)))
				return rc;
		} else {
			snprintf(c->parents[0], sizeof(c->parents[0]), "%s:%s", scope, name);
			c->nparents = 1;
		}
		if (c->metalink && !c->nfiles && i == 0) {
			dm_buf_adds(&c->b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
				    "<metalink xmlns=\"urn:ietf:params:xml:ns:metalink\">\n");
		}
		rc = cat_replica_list(db, scope, name, NULL,
				      c->all_states ? 0xffu : (1u << CAT_REPLICA_AVAILABLE), replica_cb, c);
		if (rc)
			return rc;
		if (emit_file(c))
			return DM_OK;
	}
	if (c->metalink) {
		if (!c->nfiles && !c->b.len)
			dm_buf_adds(&c->b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
				    "<metalink xmlns=\"urn:ietf:params:xml:ns:metalink\">\n");
		dm_buf_adds(&c->b, "</metalink>\n");
		srv_stream_buf(s, &c->b);
	}
	return DM_OK;
}

static void list_free(void *p)
{
	struct list_ctx *c = p;

	for (int k = 0; k < c->nrses; k++) {
		free(c->rses[k].p);
		dm_buf_release(&c->rses[k].strs);
	}
	free(c->rses);
	for (int i = 0; i < c->nonly; i++)
		free(c->only[i]);
	free(c->only);
	for (int i = 0; i < c->nschemes; i++)
		free(c->schemes[i]);
	free(c->schemes);
	for (int i = 0; i < c->nents; i++)
		free(c->ents[i].pfn);
	free(c->ents);
	json_decref(c->dids);
	dm_buf_release(&c->b);
	dm_buf_release(&c->path);
	dm_buf_release(&c->pfn);
	free(c);
}

static enum dm_status list_with_expr(struct srv_stream *s, struct cat_db *db, void *ud);

struct expr_ctx { struct list_ctx *c; char *expr; };

static int wants_metalink(struct srv_req *r)
{
	const char *a = srv_header(r, "Accept");

	return a && strstr(a, "metalink4+xml") != NULL;
}

static int list_replicas(struct srv_req *r, json_t *dids, json_t *schemes, int all_states,
			 int resolve_parents, const char *expr, json_t *loc, const char *sort)
{
	struct list_ctx *c;
	const char *site = json_string_value(json_object_get(loc, "site"));
	json_t *la = json_object_get(loc, "latitude"), *lo = json_object_get(loc, "longitude");
	size_t i;
	json_t *x;

	c = dm_xcalloc(1, sizeof(*c));
	if (site)
		snprintf(c->site, sizeof(c->site), "%s", site);
	c->sort = !sort ? SORT_DEFAULT : !strcmp(sort, "geoip") ? SORT_GEOIP :
		  !strcmp(sort, "random") ? SORT_RANDOM : !strcmp(sort, "closeness") ? SORT_CLOSENESS : SORT_DEFAULT;
	if (json_is_number(la) && json_is_number(lo)) {
		c->clat = json_number_value(la);
		c->clon = json_number_value(lo);
		c->has_client_coords = 1;
	}
	c->seed = (unsigned)(dm_now_f() * 1e6);

	dm_buf_init(&c->b, 0);
	dm_buf_init(&c->path, 0);
	dm_buf_init(&c->pfn, 0);
	c->metalink = wants_metalink(r);
	c->all_states = all_states;
	c->resolve_parents = resolve_parents;
	c->dids = json_incref(dids);
	json_array_foreach(dids, i, x) {
		if (!json_is_string(json_object_get(x, "scope")) || !json_is_string(json_object_get(x, "name"))) {
			list_free(c);
			return srv_error(r, "KeyError", "every DID needs 'scope' and 'name' strings");
		}
	}
	if (json_is_array(schemes)) {
		json_array_foreach(schemes, i, x) {
			if (!json_is_string(x))
				continue;
			c->schemes = dm_xrealloc(c->schemes, sizeof(char *) * (size_t)(c->nschemes + 1));
			c->schemes[c->nschemes++] = dm_xstrdup(json_string_value(x));
		}
	}
	if (expr && *expr) {
		struct expr_ctx *e = dm_xcalloc(1, sizeof(*e));

		e->c = c;
		e->expr = dm_xstrdup(expr);
		return srv_stream(r, c->metalink ? "application/metalink4+xml" : "application/x-json-stream",
				  list_with_expr, e, NULL);
	}
	return srv_stream(r, c->metalink ? "application/metalink4+xml" : "application/x-json-stream",
			  list_stream, c, list_free);
}

/* with an RSE expression: RSEs outside it are left out (in_expr 0) */
static enum dm_status list_with_expr(struct srv_stream *s, struct cat_db *db, void *ud)
{
	struct expr_ctx *e = ud;
	struct list_ctx *c = e->c;
	enum dm_status rc;

	c->use_only = 1;
	rc = cat_rse_expr_list(db, e->expr, expr_mark_cb, c);
	if (rc == DM_OK)
		rc = list_stream(s, db, c);
	list_free(c);
	free(e->expr);
	free(e);
	return rc;
}

static int replicas_list_post(struct srv_req *r)
{
	json_t *j = srv_body_json(r), *dids, *loc;
	const char *expr = NULL, *sort = NULL;
	int rc;

	if (!j)
		return 0;
	dids = json_object_get(j, "dids");
	if (!json_is_array(dids)) {
		json_decref(j);
		return srv_error(r, "KeyError", "'dids' must be a list");
	}
	if (srv_jstr(r, j, "rse_expression", &expr) || srv_jstr(r, j, "sort", &sort)) {
		json_decref(j);
		return 0;
	}
	if (!sort)
		sort = srv_arg(r, "sort");
	loc = json_object_get(j, "client_location");
	rc = list_replicas(r, dids, json_object_get(j, "schemes"), json_is_true(json_object_get(j, "all_states")),
			   json_is_true(json_object_get(j, "resolve_parents")), expr,
			   json_is_object(loc) ? loc : NULL, sort);
	json_decref(j);
	return rc;
}

int ep_replicas(struct srv_req *r, const char *rest)
{
	struct cat_db *db;
	json_t *j;
	const char *rse;
	struct cat_file_in *f;
	size_t n;
	int rc = 0;

	if (!strcmp(rest, "list") || !strcmp(rest, "list/")) {
		if (!is(r, "POST"))
			return srv_error(r, "MethodNotAllowed", "Method %s not allowed", r->method);
		return replicas_list_post(r);
	}
	if (*rest && is(r, "GET")) { /* legacy GET /replicas/<scope>/<name> */
		char scope[CAT_SCOPE_MAX * 4 + 1], name[CAT_NAME_MAX * 4 + 1];
		const char *suffix;
		struct dm_err err = { 0 };
		json_t *dids, *schemes = NULL;
		const char *sch = srv_arg(r, "schemes");

		if (srv_did_path(rest, scope, sizeof(scope), name, sizeof(name), &suffix, &err))
			return srv_err_error(r, &err);
		dids = json_pack("[{s:s,s:s}]", "scope", scope, "name", name);
		if (sch)
			schemes = json_pack("[s]", sch);
		rc = list_replicas(r, dids, schemes, 0, 0, NULL, NULL, srv_arg(r, "sort"));
		json_decref(dids);
		json_decref(schemes);
		return rc;
	}
	if (*rest)
		return srv_error_status(r, 404, "UnsupportedOperation", "Unknown endpoint: %s %s", r->method, r->path);
	/* POST is one catalog call; updates and deletions of many files are one batch */
	if (!(db = is(r, "POST") ? srv_db(r) : srv_db_tx(r)))
		return r->responded ? 0 : srv_error(r, "DatabaseException", "too many requests");
	if (files_body(r, &j, &rse, &f, &n))
		return 0;
	if (is(r, "POST")) {
		for (size_t i = 0; i < n; i++) {
			char ip[48];

			if (srv_name_ok(f[i].name))
				continue;
			snprintf(ip, sizeof(ip), "[%zu]['name']", i);
			srv_invalid_name(r, 500, "dids", "['items']['properties']['name']", ip, f[i].name);
			free(f);
			json_decref(j);
			return 0;
		}
	}
	if (is(r, "POST")) {
		unsigned flags = json_is_true(json_object_get(j, "ignore_availability")) ? CAT_REPLICA_IGNORE_AVAILABILITY : 0;

		rc = cat_replicas_add(db, rse, f, n, NULL, NULL, flags) ? srv_cat_error(r, db) : srv_reply_created(r);
	} else if (is(r, "PUT")) {
		/* update states: one call per file (each its own transaction) */
		for (size_t i = 0; i < n && !r->responded; i++) {
			if (f[i].state < 0) {
				srv_error(r, "KeyError", "file %s:%s has no 'state'", f[i].scope, f[i].name);
				break;
			}
			if (cat_replica_set_state(db, rse, f[i].scope, f[i].name, (enum cat_replica_state)f[i].state))
				srv_cat_error(r, db);
		}
		if (!r->responded)
			srv_reply_ok(r);
	} else if (is(r, "DELETE")) {
		for (size_t i = 0; i < n && !r->responded; i++)
			if (cat_replica_del(db, rse, f[i].scope, f[i].name))
				srv_cat_error(r, db);
		if (!r->responded)
			srv_reply_ok(r);
	} else {
		srv_error(r, "MethodNotAllowed", "Method %s not allowed", r->method);
	}
	free(f);
	json_decref(j);
	return rc;
}
