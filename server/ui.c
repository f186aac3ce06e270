/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ui.c - the monitoring web UI of `didfs serve` under /ui: server-rendered
 * HTML over the catalog's bounded overview queries (catalog/overview.c),
 * with a little JavaScript (ui_html.c) that refreshes the page's <main>
 * every few seconds.  Read-only: every page is a GET; the only POST is the
 * login form.
 *
 * Pages: /ui/rules (filter by state, account, scope; per-RSE lock counts),
 * /ui/rule?id=, /ui/stuck (stuck rules with the rule's error and the last
 * transfer error of each stuck lock), /ui/transfers (source x destination
 * over the last hour from requests_history: files, bytes, failures,
 * retries, throughput; live requests per destination), /ui/rses (usage
 * against MaxSpaceAvailable and the accounts' quotas), /ui/daemons
 * (heartbeats: age, alive), /ui/dids (scopes -> DIDs -> /ui/did: metadata,
 * content, parents, replicas, dataset locks, rules).  Every list is one
 * page of at most UI_PAGE rows with a link to the next (keyset cursors).
 *
 * Authentication is the API's: the login page posts a username and password
 * to /ui/login, checked by srv_login_userpass (the code of /auth/userpass);
 * /ui/login/x509 takes the TLS session's client certificate through
 * srv_login_x509 (the code of /auth/x509, proxies allowed).  Either gives a
 * token of the server's token table (same lifetime), kept by the browser in
 * the cookie didfs_ui (HttpOnly, Secure, SameSite=Strict, Path=/ui,
 * percent-encoded since a DN has spaces and commas).  A page without a
 * valid cookie is a 303 to /ui/login?next=<page>; /ui/logout forgets the
 * token.
 *
 * Who sees what: the UI is for admin accounts only (the `admin` attribute,
 * and root).  Rucio lets non-admins read rules and DIDs but not transfer
 * requests or the daemons' state, and the matrix, usage and heartbeats are
 * the operator's view; a non-admin who logs in gets 403 with the reason,
 * and the catalog's overview calls refuse non-admins themselves.
 *
 * Every value that goes into HTML passes through ui_esc (names may hold
 * <, & and quotes); every value in a link through ui_url.  Pages carry a
 * Content-Security-Policy that allows only /ui/static's script and style,
 * so even an escaping mistake could not run a script.
 */
#include "server.h"
#include "ui.h"

#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define UI_COOKIE "didfs_ui"
#define UI_PAGE 50              /* rows per page */
#define UI_SUB 100              /* rows of a DID's sub-lists */
#define UI_REFRESH 3            /* seconds between refreshes */
#define UI_HEARTBEAT_TIMEOUT 30 /* a daemon's beat older than this: dead (the daemons' default) */
#define UI_WINDOW 3600          /* the transfer matrix's window */
#define UI_LIST_LOCK_SCAN 10000 /* locks per rule counted per RSE on the rules page */

struct page {
	struct srv_req *r;
	struct cat_db *db;
	struct dm_buf b;
	int status;
};

/* ---- small helpers ---- */

static void security_headers(struct srv_req *r)
{
	srv_add_header(r, "Content-Security-Policy",
		       "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self';"
		       " connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'");
	srv_add_header(r, "X-Content-Type-Options", "nosniff");
	srv_add_header(r, "X-Frame-Options", "DENY");
	srv_add_header(r, "Referrer-Policy", "same-origin"); /* no-referrer would make the login form's Origin "null" */
	srv_add_header(r, "Cache-Control", "no-store");
}

static void add_time(struct dm_buf *b, int64_t t)
{
	char s[40];

	if (t <= 0) {
		dm_buf_adds(b, "<span class=muted>-</span>");
		return;
	}
	dm_fmt_time(t, s);
	ui_esc(b, s);
}

static void td_num(struct dm_buf *b, int64_t v)
{
	dm_buf_addf(b, "<td class=n>%lld</td>", (long long)v);
}

static void td_bytes(struct dm_buf *b, uint64_t v)
{
	dm_buf_adds(b, "<td class=n>");
	ui_bytes(b, v);
	dm_buf_adds(b, "</td>");
}

static void link_did(struct dm_buf *b, const char *scope, const char *name)
{
	dm_buf_adds(b, "<a href=\"/ui/did?scope=");
	ui_url(b, scope);
	dm_buf_adds(b, "&amp;name=");
	ui_url(b, name);
	dm_buf_adds(b, "\">");
	ui_esc(b, scope);
	dm_buf_addc(b, ':');
	ui_esc(b, name);
	dm_buf_adds(b, "</a>");
}

static void link_rule(struct dm_buf *b, const char *id)
{
	dm_buf_adds(b, "<a href=\"/ui/rule?id=");
	ui_url(b, id);
	dm_buf_adds(b, "\"><code>");
	ui_esc(b, id);
	dm_buf_adds(b, "</code></a>");
}

static void state_span(struct dm_buf *b, const char *state)
{
	dm_buf_adds(b, "<span class=\"state ");
	ui_esc(b, state);
	dm_buf_adds(b, "\">");
	ui_esc(b, state);
	dm_buf_adds(b, "</span>");
}

static const char *arg(struct srv_req *r, const char *k)
{
	const char *v = srv_arg(r, k);

	return v && *v ? v : NULL;
}

/* ---- the page frame ---- */

static const struct { const char *path, *label; } nav[] = {
	{ "rules", "Rules" }, { "stuck", "Stuck" }, { "transfers", "Transfers" },
	{ "rses", "RSEs" }, { "daemons", "Daemons" }, { "dids", "DIDs" },
};

static void page_begin(struct page *p, const char *active, const char *title)
{
	struct dm_buf *b = &p->b;

	dm_buf_adds(b, "<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
		       "<meta name=viewport content=\"width=device-width\"><title>");
	ui_esc(b, title);
	dm_buf_adds(b, " - didfs</title><link rel=stylesheet href=\"/ui/static/app.css\"></head>\n<body><header>"
		       "<strong>didfs</strong>");
	for (size_t i = 0; i < DM_ARRAY_SIZE(nav); i++)
		dm_buf_addf(b, "<a href=\"/ui/%s\"%s>%s</a>", nav[i].path,
			    active && !strcmp(active, nav[i].path) ? " class=on" : "", nav[i].label);
	if (p->r->account[0]) {
		dm_buf_adds(b, "<span class=who>");
		ui_esc(b, p->r->account);
		dm_buf_adds(b, " &middot; <label id=refresh><input type=checkbox id=autorefresh checked>"
			       " auto refresh <span id=refreshed></span></label>"
			       " &middot; <a href=\"/ui/logout\">log out</a></span>");
	}
	dm_buf_addf(b, "</header>\n<main data-refresh=\"%d\"><h1>", UI_REFRESH);
	ui_esc(b, title);
	dm_buf_adds(b, "</h1>\n");
}

static int page_end(struct page *p)
{
	int rc;

	dm_buf_adds(&p->b, "</main>\n<script src=\"/ui/static/app.js\"></script></body></html>\n");
	security_headers(p->r);
	rc = srv_reply(p->r, p->status ? p->status : 200, "text/html; charset=utf-8", p->b.s, p->b.len);
	dm_buf_release(&p->b);
	return rc;
}

/* An error page with the status of Rucio's class (unless p->status is set). */
static int page_error(struct page *p, const char *active, const struct dm_err *e)
{
	const char *cls = e->cls[0] ? e->cls : dm_status_class(e->code);

	dm_buf_reset(&p->b);
	page_begin(p, active, "Error");
	dm_buf_adds(&p->b, "<p class=msg><strong>");
	ui_esc(&p->b, cls);
	dm_buf_adds(&p->b, "</strong>: ");
	ui_esc(&p->b, e->msg);
	dm_buf_adds(&p->b, "</p>");
	if (!p->status)
		p->status = srv_class_status(cls);
	return page_end(p);
}

static int cat_page_error(struct page *p, const char *active)
{
	return page_error(p, active, cat_error(p->db));
}

static int redirect(struct srv_req *r, const char *to)
{
	srv_add_header(r, "Location", to);
	security_headers(r);
	return srv_reply(r, 303, "text/html; charset=utf-8", "", 0);
}

/* ---- session ---- */

static void set_cookie(struct srv_req *r, const char *token, int max_age)
{
	struct dm_buf c = DM_BUF_INIT;

	dm_buf_adds(&c, UI_COOKIE "=");
	ui_url(&c, token);
	dm_buf_addf(&c, "; Path=/ui; Max-Age=%d; HttpOnly; Secure; SameSite=Strict", max_age);
	srv_add_header(r, "Set-Cookie", c.s);
	dm_buf_release(&c);
}

/* The cookie's token, decoded into tok (4096 bytes); 0 if there is one. */
static int cookie_token(struct srv_req *r, char *tok, size_t n)
{
	const char *raw = MHD_lookup_connection_value(r->conn, MHD_COOKIE_KIND, UI_COOKIE);

	if (!raw || !*raw || strlen(raw) >= n || srv_pct_decode(raw, strlen(raw), 0, tok, n))
		return -1;
	return 0;
}

/* The cookie's token -> r->account; 0 if valid. */
static int session(struct srv_req *r)
{
	char tok[4096];

	r->account[0] = 0;
	if (cookie_token(r, tok, sizeof(tok)))
		return -1;
	if (srv_token_check(tok, r->account, NULL, 0, NULL)) {
		r->account[0] = 0;
		return -1;
	}
	return 0;
}

static int login_form(struct srv_req *r, int status, const char *msg, const char *next)
{
	struct page p = { .r = r, .b = DM_BUF_INIT, .status = status };
	struct dm_err err = { 0 };
	char dn[2048];

	page_begin(&p, NULL, "Log in");
	dm_buf_adds(&p.b, "<div class=login>");
	if (msg) {
		dm_buf_adds(&p.b, "<p class=msg id=login-error>");
		ui_esc(&p.b, msg);
		dm_buf_adds(&p.b, "</p>");
	}
	dm_buf_adds(&p.b, "<form method=post action=\"/ui/login\">"
			  "<label>Username<input name=username id=username autocomplete=username required></label>"
			  "<label>Password<input name=password id=password type=password"
			  " autocomplete=current-password required></label>"
			  "<label>Account (optional)<input name=account id=account></label>");
	if (next) {
		dm_buf_adds(&p.b, "<input type=hidden name=next value=\"");
		ui_esc(&p.b, next);
		dm_buf_adds(&p.b, "\">");
	}
	dm_buf_adds(&p.b, "<button type=submit id=login>Log in</button></form>");
	if (!srv_x509_dn(r, 1, dn, sizeof(dn), &err)) {
		dm_buf_adds(&p.b, "<p>or <a id=login-x509 href=\"/ui/login/x509");
		if (next) {
			dm_buf_adds(&p.b, "?next=");
			ui_url(&p.b, next);
		}
		dm_buf_adds(&p.b, "\">log in with your certificate</a> <code>");
		ui_esc(&p.b, dn);
		dm_buf_adds(&p.b, "</code></p>");
	}
	dm_buf_adds(&p.b, "</div>");
	return page_end(&p);
}

static int logged_in(struct srv_req *r, const char *token, int64_t exp, const char *next)
{
	int64_t left = exp - dm_now();

	set_cookie(r, token, left > 0 ? (int)(left < 0x7fffffff ? left : 0x7fffffff) : 0);
	if (!next || !ui_next_ok(next) || !strncmp(next, "/ui/login", 9))
		next = "/ui/rules";
	return redirect(r, next);
}

/* Origin, when the browser sends one, must be this server. */
static int same_origin(struct srv_req *r)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	const char *o = srv_header(r, "Origin"), *h = srv_header(r, "Host");
	const char *scheme = ci && ci->tls_session ? "https://" : "http://";
	size_t n = strlen(scheme);

	if (!o)
		return 1;
	return h && !strncmp(o, scheme, n) && !strcmp(o + n, h);
}

static int login_post(struct srv_req *r)
{
	const char *ct = srv_header(r, "Content-Type");
	char user[256], pw[1024], want[CAT_ACCOUNT_MAX + 1], next[2048];
	char account[CAT_ACCOUNT_MAX + 1], token[1024];
	struct dm_err err = { 0 };
	int64_t exp;
	int has_next;

	if (!ct || strncmp(ct, "application/x-www-form-urlencoded", 33))
		return login_form(r, 400, "the login form must be sent as application/x-www-form-urlencoded", NULL);
	if (!same_origin(r))
		return login_form(r, 403, "the login form was sent from another site", NULL);
	has_next = ui_form_get(r->body.s, r->body.len, "next", next, sizeof(next)) == 0 && ui_next_ok(next);
	if (ui_form_get(r->body.s, r->body.len, "username", user, sizeof(user)) ||
	    ui_form_get(r->body.s, r->body.len, "password", pw, sizeof(pw)) || !*user)
		return login_form(r, 401, "Cannot authenticate without passing all required arguments",
				  has_next ? next : NULL);
	if (ui_form_get(r->body.s, r->body.len, "account", want, sizeof(want)) < 0)
		return login_form(r, 401, "Cannot authenticate with given credentials", has_next ? next : NULL);
	if (ui_form_get(r->body.s, r->body.len, "account", want, sizeof(want)))
		want[0] = 0;
	if (srv_login_userpass(r, user, pw, want, "webui", token, sizeof(token), &exp, account, &err)) {
		memset(pw, 0, sizeof(pw));
		return login_form(r, srv_class_status(err.cls), err.msg, has_next ? next : NULL);
	}
	memset(pw, 0, sizeof(pw));
	snprintf(r->account, sizeof(r->account), "%s", account);
	return logged_in(r, token, exp, has_next ? next : NULL);
}

static int login_x509(struct srv_req *r)
{
	char account[CAT_ACCOUNT_MAX + 1], token[4096];
	const char *next = arg(r, "next");
	struct dm_err err = { 0 };
	int64_t exp;

	if (next && !ui_next_ok(next))
		next = NULL;
	if (srv_login_x509(r, 1, arg(r, "account"), "webui", token, sizeof(token), &exp, account, &err))
		return login_form(r, srv_class_status(err.cls), err.msg, next);
	snprintf(r->account, sizeof(r->account), "%s", account);
	return logged_in(r, token, exp, next);
}

/* ---- rules ---- */

static int parse_state(const char *s, int *out)
{
	*out = -1;
	if (!s || !strcmp(s, "ALL"))
		return 0;
	for (int i = 0; i <= CAT_RULE_INJECT; i++)
		if (!strcmp(s, cat_rule_state_name((enum cat_rule_state)i))) {
			*out = i;
			return 0;
		}
	return -1;
}

struct rse_cells { struct dm_buf *b; int n; };

static int rule_rse_cb(void *ud, const struct cat_ov_rule_rse *c)
{
	struct rse_cells *x = ud;

	if (x->n++)
		dm_buf_adds(x->b, "<br>");
	dm_buf_adds(x->b, "<span class=rse-locks data-rse=\"");
	ui_esc(x->b, c->rse);
	dm_buf_addf(x->b, "\" data-ok=\"%lld\" data-replicating=\"%lld\" data-stuck=\"%lld\">",
		    (long long)c->ok, (long long)c->replicating, (long long)c->stuck);
	ui_esc(x->b, c->rse);
	dm_buf_addf(x->b, ": %lld OK, %lld replicating, %lld stuck</span>", (long long)c->ok,
		    (long long)c->replicating, (long long)c->stuck);
	return 0;
}

struct rules_ctx {
	struct page *p;
	int n;
	int64_t last;
	int with_rses;
	enum dm_status sub_rc;
};

/* scan: how many of the rule's locks are counted (a page of rules counts
 * fewer per rule than the rule's own page) */
static void rule_rses(struct page *p, const char *id, int scan, enum dm_status *rc)
{
	struct rse_cells c = { &p->b, 0 };
	int capped = 0;

	if (*rc)
		return;
	*rc = cat_ov_rule_rses(p->db, id, scan, rule_rse_cb, &c, &capped);
	if (capped)
		dm_buf_addf(&p->b, "<br><span class=muted>(counted over the first %d locks)</span>", scan);
	if (!c.n)
		dm_buf_adds(&p->b, "<span class=muted>no locks</span>");
}

static int rules_row_cb(void *ud, const struct cat_ov_rule *x)
{
	struct rules_ctx *c = ud;
	struct dm_buf *b = &c->p->b;
	const char *state = cat_rule_state_name(x->state);

	c->n++;
	c->last = x->cursor;
	dm_buf_adds(b, "<tr class=rule data-id=\"");
	ui_esc(b, x->id);
	dm_buf_adds(b, "\" data-state=\"");
	ui_esc(b, state);
	dm_buf_adds(b, "\"><td>");
	link_rule(b, x->id);
	dm_buf_adds(b, "</td><td>");
	link_did(b, x->scope, x->name);
	dm_buf_adds(b, "</td><td>");
	ui_esc(b, x->account);
	dm_buf_adds(b, "</td><td class=state>");
	state_span(b, state);
	dm_buf_adds(b, "</td><td><code>");
	ui_esc(b, x->rse_expression);
	dm_buf_addf(b, "</code></td><td class=n>%d</td>", x->copies);
	td_num(b, x->locks_ok);
	td_num(b, x->locks_replicating);
	td_num(b, x->locks_stuck);
	dm_buf_adds(b, "<td>");
	if (c->with_rses)
		rule_rses(c->p, x->id, UI_LIST_LOCK_SCAN, &c->sub_rc);
	dm_buf_adds(b, "</td><td>");
	add_time(b, x->created_at);
	dm_buf_adds(b, "</td><td class=err>");
	ui_esc(b, x->error);
	dm_buf_adds(b, "</td></tr>\n");
	return c->sub_rc != DM_OK;
}

static const char rules_head[] =
	"<table id=rules><tr><th>rule</th><th>DID</th><th>account</th><th>state</th><th>expression</th>"
	"<th>copies</th><th>OK</th><th>replicating</th><th>stuck</th><th>locks per RSE</th>"
	"<th>created</th><th>error</th></tr>\n";

static int page_rules(struct page *p)
{
	struct cat_ov_rule_filter f = { 0 };
	const char *state = arg(p->r, "state"), *before = arg(p->r, "before");
	struct rules_ctx c = { .p = p, .with_rses = 1 };
	struct dm_err e = { 0 };
	enum dm_status rc;

	if (parse_state(state, &f.state)) {
		dm_seterr(&e, DM_EINVAL, "InvalidValueForKey", "unknown rule state '%.64s'", state);
		return page_error(p, "rules", &e);
	}
	f.account = arg(p->r, "account");
	f.scope = arg(p->r, "scope");
	f.limit = UI_PAGE;
	if (before && dm_parse_i64(before, &f.before)) {
		dm_seterr(&e, DM_EINVAL, "InvalidValueForKey", "before must be a number");
		return page_error(p, "rules", &e);
	}
	page_begin(p, "rules", "Rules");
	dm_buf_adds(&p->b, "<form class=filter method=get action=\"/ui/rules\"><label>state<select name=state id=f-state>");
	dm_buf_addf(&p->b, "<option%s>ALL</option>", f.state < 0 ? " selected" : "");
	for (int i = 0; i <= CAT_RULE_INJECT; i++)
		dm_buf_addf(&p->b, "<option%s>%s</option>", f.state == i ? " selected" : "",
			    cat_rule_state_name((enum cat_rule_state)i));
	dm_buf_adds(&p->b, "</select></label><label>account<input name=account id=f-account value=\"");
	ui_esc(&p->b, f.account);
	dm_buf_adds(&p->b, "\"></label><label>scope<input name=scope id=f-scope value=\"");
	ui_esc(&p->b, f.scope);
	dm_buf_adds(&p->b, "\"></label><button type=submit id=f-go>filter</button></form>\n");
	dm_buf_adds(&p->b, rules_head);
	rc = cat_ov_rules(p->db, &f, rules_row_cb, &c);
	if (rc || c.sub_rc)
		return cat_page_error(p, "rules");
	dm_buf_adds(&p->b, "</table>\n");
	if (!c.n)
		dm_buf_adds(&p->b, "<p class=muted id=no-rules>no rules</p>");
	if (c.n == UI_PAGE) {
		dm_buf_adds(&p->b, "<p><a id=next href=\"/ui/rules?state=");
		ui_url(&p->b, state ? state : "ALL");
		dm_buf_adds(&p->b, "&amp;account=");
		ui_url(&p->b, f.account);
		dm_buf_adds(&p->b, "&amp;scope=");
		ui_url(&p->b, f.scope);
		dm_buf_addf(&p->b, "&amp;before=%lld\">older rules &rarr;</a></p>", (long long)c.last);
	}
	return page_end(p);
}

struct stuck_ctx { struct page *p; int n; };

static int stuck_lock_cb(void *ud, const struct cat_ov_stuck *s)
{
	struct stuck_ctx *c = ud;
	struct dm_buf *b = &c->p->b;

	c->n++;
	dm_buf_adds(b, "<tr class=stuck-lock><td>");
	link_did(b, s->scope, s->name);
	dm_buf_adds(b, "</td><td>");
	ui_esc(b, s->rse);
	dm_buf_addf(b, "</td><td class=n>%d</td><td>", s->repair_cnt);
	add_time(b, s->updated_at);
	dm_buf_adds(b, "</td><td class=\"err reason\">");
	if (s->reason)
		ui_esc(b, s->reason);
	else
		dm_buf_adds(b, "<span class=muted>no transfer error recorded</span>");
	dm_buf_adds(b, "</td></tr>\n");
	return 0;
}

static enum dm_status stuck_locks_table(struct page *p, const char *rule_id, int limit)
{
	struct stuck_ctx c = { p, 0 };
	enum dm_status rc;

	dm_buf_adds(&p->b, "<table class=stuck-locks><tr><th>file</th><th>RSE</th><th>repairs</th>"
			   "<th>since</th><th>last transfer error</th></tr>\n");
	rc = cat_ov_stuck_locks(p->db, rule_id, limit, stuck_lock_cb, &c);
	dm_buf_adds(&p->b, "</table>\n");
	if (!rc && c.n == limit)
		dm_buf_addf(&p->b, "<p class=muted>the first %d stuck locks</p>", limit);
	return rc;
}

struct rule_one { struct page *p; int found; char id[64]; };

static int rule_one_cb(void *ud, const struct cat_ov_rule *x)
{
	struct rule_one *o = ud;
	struct dm_buf *b = &o->p->b;
	const char *state = cat_rule_state_name(x->state);

	o->found = 1;
	snprintf(o->id, sizeof(o->id), "%s", x->id);
	dm_buf_adds(b, "<table id=rule class=kv data-state=\"");
	ui_esc(b, state);
	dm_buf_adds(b, "\"><tr><th>id</th><td><code>");
	ui_esc(b, x->id);
	dm_buf_adds(b, "</code></td></tr><tr><th>DID</th><td>");
	link_did(b, x->scope, x->name);
	dm_buf_addf(b, " (%s)</td></tr><tr><th>account</th><td>", cat_did_type_name(x->did_type));
	ui_esc(b, x->account);
	dm_buf_adds(b, "</td></tr><tr><th>state</th><td class=state>");
	state_span(b, state);
	dm_buf_adds(b, "</td></tr><tr><th>expression</th><td><code>");
	ui_esc(b, x->rse_expression);
	dm_buf_addf(b, "</code></td></tr><tr><th>copies</th><td>%d</td></tr>", x->copies);
	dm_buf_addf(b, "<tr><th>locks</th><td>%lld OK, %lld replicating, %lld stuck</td></tr>",
		    (long long)x->locks_ok, (long long)x->locks_replicating, (long long)x->locks_stuck);
	dm_buf_adds(b, "<tr><th>created</th><td>");
	add_time(b, x->created_at);
	dm_buf_adds(b, "</td></tr><tr><th>updated</th><td>");
	add_time(b, x->updated_at);
	dm_buf_adds(b, "</td></tr><tr><th>expires</th><td>");
	add_time(b, x->expires_at);
	dm_buf_adds(b, "</td></tr><tr><th>stuck since</th><td>");
	add_time(b, x->stuck_at);
	dm_buf_adds(b, "</td></tr><tr><th>error</th><td class=err id=rule-error>");
	ui_esc(b, x->error);
	dm_buf_adds(b, "</td></tr></table>\n");
	return 1;
}

static int page_rule(struct page *p)
{
	const char *id = arg(p->r, "id");
	struct cat_ov_rule_filter f = { .state = -1, .id = id, .limit = 1 };
	struct rule_one o = { .p = p };
	struct dm_err e = { 0 };
	enum dm_status rc = DM_OK;

	if (!id) {
		dm_seterr(&e, DM_EINVAL, "InvalidValueForKey", "which rule? (/ui/rule?id=RULE_ID)");
		return page_error(p, "rules", &e);
	}
	page_begin(p, "rules", "Rule");
	if (cat_ov_rules(p->db, &f, rule_one_cb, &o))
		return cat_page_error(p, "rules");
	if (!o.found) {
		dm_seterr(&e, DM_ENOENT, "RuleNotFound", "No replication rule found with the id '%.64s'", id);
		return page_error(p, "rules", &e);
	}
	dm_buf_adds(&p->b, "<h2>Locks per RSE</h2><p id=rule-rses>");
	rule_rses(p, o.id, CAT_OV_LOCK_SCAN, &rc);
	dm_buf_adds(&p->b, "</p>\n<h2>Stuck locks</h2>\n");
	if (rc || stuck_locks_table(p, o.id, UI_PAGE))
		return cat_page_error(p, "rules");
	return page_end(p);
}

/* ---- stuck ---- */

struct stuck_rules { struct page *p; int n; char (*ids)[64]; };

static int stuck_rule_cb(void *ud, const struct cat_ov_rule *x)
{
	struct stuck_rules *c = ud;
	struct dm_buf *b = &c->p->b;

	snprintf(c->ids[c->n++], 64, "%s", x->id);
	dm_buf_adds(b, "<section class=stuck-rule data-id=\"");
	ui_esc(b, x->id);
	dm_buf_adds(b, "\"><h2>");
	link_rule(b, x->id);
	dm_buf_adds(b, " ");
	link_did(b, x->scope, x->name);
	dm_buf_adds(b, " &rarr; <code>");
	ui_esc(b, x->rse_expression);
	dm_buf_adds(b, "</code></h2><p>");
	state_span(b, cat_rule_state_name(x->state));
	dm_buf_adds(b, " account ");
	ui_esc(b, x->account);
	dm_buf_addf(b, ", %lld stuck of %lld locks, stuck since ", (long long)x->locks_stuck,
		    (long long)(x->locks_ok + x->locks_replicating + x->locks_stuck));
	add_time(b, x->stuck_at);
	dm_buf_adds(b, "</p><p class=\"err rule-error\">");
	ui_esc(b, x->error ? x->error : "");
	/* the stuck locks go here: filled after the listing (no catalog call
	 * inside a row callback); a marker to splice at */
	dm_buf_adds(b, "</p>\x01</section>\n");
	return 0;
}

static int page_stuck(struct page *p)
{
	struct cat_ov_rule_filter f = { .state = CAT_RULE_STUCK, .limit = 20 };
	char ids[20][64];
	struct stuck_rules c = { p, 0, ids };
	struct dm_buf out = DM_BUF_INIT;
	const char *s, *mark;
	int i = 0;

	page_begin(p, "stuck", "Stuck rules");
	dm_buf_adds(&p->b, "<p class=muted>Rules in state STUCK (newest first, at most 20), with the rule's"
			   " error and the last transfer error of each stuck lock.</p>\n");
	if (cat_ov_rules(p->db, &f, stuck_rule_cb, &c))
		return cat_page_error(p, "stuck");
	if (!c.n)
		dm_buf_adds(&p->b, "<p id=no-stuck>no stuck rules</p>");
	/* splice each rule's stuck locks in at its marker */
	s = p->b.s;
	while ((mark = strchr(s, '\x01'))) {
		struct dm_buf save = p->b;

		dm_buf_add(&out, s, (size_t)(mark - s));
		p->b = out;
		if (i < c.n && stuck_locks_table(p, ids[i], 10)) {
			out = p->b;
			p->b = save;
			dm_buf_release(&out);
			return cat_page_error(p, "stuck");
		}
		out = p->b;
		p->b = save;
		i++;
		s = mark + 1;
	}
	dm_buf_adds(&out, s);
	dm_buf_release(&p->b);
	p->b = out;
	return page_end(p);
}

/* ---- transfers ---- */

struct pair { char *src, *dst; struct cat_ov_transfer t; };
struct matrix { struct pair *v; size_t n; };

static int transfer_cb(void *ud, const struct cat_ov_transfer *t)
{
	struct matrix *m = ud;
	struct pair *x;

	m->v = dm_xrealloc(m->v, sizeof(*m->v) * (m->n + 1));
	x = &m->v[m->n++];
	x->src = dm_xstrdup(t->source);
	x->dst = dm_xstrdup(t->dest);
	x->t = *t;
	x->t.source = x->src;
	x->t.dest = x->dst;
	return 0;
}

static int queued_cb(void *ud, const char *dest, int64_t queued, int64_t submitted)
{
	struct dm_buf *b = ud;

	dm_buf_adds(b, "<tr class=queue data-dst=\"");
	ui_esc(b, dest);
	dm_buf_adds(b, "\"><td>");
	ui_esc(b, dest);
	dm_buf_adds(b, "</td>");
	td_num(b, queued);
	td_num(b, submitted);
	dm_buf_adds(b, "</tr>\n");
	return 0;
}

static int in_list(char **names, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(names[i], s))
			return 1;
	return 0;
}

static int page_transfers(struct page *p)
{
	struct matrix m = { 0 };
	struct dm_buf *b = &p->b;
	char **srcs = NULL, **dsts = NULL;
	size_t ns = 0, nd = 0;
	int64_t now = dm_now();
	int capped = 0;

	page_begin(p, "transfers", "Transfers");
	if (cat_ov_transfers(p->db, now - UI_WINDOW, transfer_cb, &m)) {
		for (size_t i = 0; i < m.n; i++) {
			free(m.v[i].src);
			free(m.v[i].dst);
		}
		free(m.v);
		return cat_page_error(p, "transfers");
	}
	dm_buf_addf(b, "<p class=muted>Finished transfers of the last %d minutes by source and destination"
		       " RSE (files and bytes done; failures: requests given up; throughput: bytes done"
		       " over the window, and over the time spent transferring).</p>\n", UI_WINDOW / 60);
	for (size_t i = 0; i < m.n; i++) {
		if (!in_list(srcs, ns, m.v[i].src)) {
			srcs = dm_xrealloc(srcs, sizeof(*srcs) * (ns + 1));
			srcs[ns++] = m.v[i].src;
		}
		if (!in_list(dsts, nd, m.v[i].dst)) {
			dsts = dm_xrealloc(dsts, sizeof(*dsts) * (nd + 1));
			dsts[nd++] = m.v[i].dst;
		}
	}
	/* the matrix: files done (failures) per cell */
	dm_buf_adds(b, "<h2>Files done (failed), source &darr; x destination &rarr;</h2>"
		       "<table id=matrix><tr><th></th>");
	for (size_t j = 0; j < nd; j++) {
		dm_buf_adds(b, "<th>");
		ui_esc(b, dsts[j]);
		dm_buf_adds(b, "</th>");
	}
	dm_buf_adds(b, "</tr>\n");
	for (size_t i = 0; i < ns; i++) {
		dm_buf_adds(b, "<tr><th>");
		if (*srcs[i])
			ui_esc(b, srcs[i]);
		else
			dm_buf_adds(b, "<span class=muted>(no source)</span>");
		dm_buf_adds(b, "</th>");
		for (size_t j = 0; j < nd; j++) {
			const struct pair *x = NULL;

			for (size_t k = 0; k < m.n && !x; k++)
				if (!strcmp(m.v[k].src, srcs[i]) && !strcmp(m.v[k].dst, dsts[j]))
					x = &m.v[k];
			if (!x) {
				dm_buf_adds(b, "<td class=n></td>");
				continue;
			}
			dm_buf_addf(b, "<td class=n>%llu", (unsigned long long)x->t.files);
			if (x->t.failures)
				dm_buf_addf(b, " <span class=err>(%llu)</span>", (unsigned long long)x->t.failures);
			dm_buf_adds(b, "</td>");
		}
		dm_buf_adds(b, "</tr>\n");
	}
	dm_buf_adds(b, "</table>\n<h2>Per link</h2><table id=links><tr><th>source</th><th>destination</th>"
		       "<th>files</th><th>bytes</th><th>failures</th><th>retries</th>"
		       "<th>throughput (window)</th><th>throughput (busy)</th><th>last</th></tr>\n");
	for (size_t i = 0; i < m.n; i++) {
		const struct cat_ov_transfer *t = &m.v[i].t;

		dm_buf_adds(b, "<tr class=link data-src=\"");
		ui_esc(b, t->source);
		dm_buf_adds(b, "\" data-dst=\"");
		ui_esc(b, t->dest);
		dm_buf_adds(b, "\"><td>");
		ui_esc(b, *t->source ? t->source : "(none)");
		dm_buf_adds(b, "</td><td>");
		ui_esc(b, t->dest);
		dm_buf_addf(b, "</td><td class=\"n files\">%llu</td>", (unsigned long long)t->files);
		td_bytes(b, t->bytes);
		dm_buf_addf(b, "<td class=\"n failures\">%llu</td>", (unsigned long long)t->failures);
		td_num(b, (int64_t)t->retries);
		dm_buf_adds(b, "<td class=n>");
		ui_bytes(b, t->bytes / UI_WINDOW);
		dm_buf_adds(b, "/s</td><td class=n>");
		if (t->busy_seconds > 0) {
			ui_bytes(b, t->bytes / (uint64_t)t->busy_seconds);
			dm_buf_adds(b, "/s");
		} else if (t->files) {
			dm_buf_adds(b, "<span class=muted>&lt; 1 s</span>");
		}
		dm_buf_adds(b, "</td><td>");
		add_time(b, t->last_at);
		dm_buf_adds(b, "</td></tr>\n");
	}
	dm_buf_adds(b, "</table>\n");
	if (!m.n)
		dm_buf_adds(b, "<p class=muted id=no-transfers>no finished transfers in the window</p>");
	for (size_t i = 0; i < m.n; i++) {
		free(m.v[i].src);
		free(m.v[i].dst);
	}
	free(m.v);
	free(srcs);
	free(dsts);
	dm_buf_adds(b, "<h2>Live requests per destination</h2><table id=queues><tr><th>destination</th>"
		       "<th>queued</th><th>submitted</th></tr>\n");
	if (cat_ov_queued(p->db, queued_cb, b, &capped))
		return cat_page_error(p, "transfers");
	dm_buf_adds(b, "</table>\n");
	if (capped)
		dm_buf_addf(b, "<p class=muted>counted over the first %d live requests</p>\n", CAT_OV_QUEUE_SCAN);
	return page_end(p);
}

/* ---- RSEs ---- */

struct rse_list { struct page *p; int n; char (*names)[CAT_RSE_MAX + 1]; };

static void usage_against(struct dm_buf *b, int64_t used, int64_t limit)
{
	if (limit < 0) {
		dm_buf_adds(b, "<td class=muted>no limit</td><td></td>");
		return;
	}
	dm_buf_adds(b, "<td class=n>");
	ui_bytes(b, (uint64_t)limit);
	dm_buf_adds(b, "</td><td class=n>");
	if (limit > 0) {
		double pct = 100.0 * (double)used / (double)limit;

		dm_buf_addf(b, "%s%.1f %%%s", pct > 100 ? "<span class=err>" : "", pct, pct > 100 ? "</span>" : "");
	} else {
		dm_buf_adds(b, used > 0 ? "<span class=err>over</span>" : "0 %");
	}
	dm_buf_adds(b, "</td>");
}

static int rse_cb(void *ud, const struct cat_ov_rse *x)
{
	struct rse_list *c = ud;
	struct dm_buf *b = &c->p->b;

	snprintf(c->names[c->n++], CAT_RSE_MAX + 1, "%s", x->rse);
	dm_buf_adds(b, "<tr class=rse data-rse=\"");
	ui_esc(b, x->rse);
	dm_buf_adds(b, "\"><td>");
	ui_esc(b, x->rse);
	dm_buf_adds(b, "</td><td>");
	ui_esc(b, x->rse_type);
	dm_buf_addf(b, "</td><td>%s%s%s</td>", x->availability_read ? "r" : "-",
		    x->availability_write ? "w" : "-", x->availability_delete ? "d" : "-");
	td_num(b, x->protocols);
	td_num(b, x->files);
	td_bytes(b, (uint64_t)(x->used > 0 ? x->used : 0));
	usage_against(b, x->used, x->max_space);
	if (x->storage_free >= 0)
		td_bytes(b, (uint64_t)x->storage_free);
	else
		dm_buf_adds(b, "<td class=muted>unknown</td>");
	dm_buf_adds(b, "<td>");
	add_time(b, x->usage_at);
	dm_buf_adds(b, "</td><td>\x01</td></tr>\n");
	return 0;
}

static int quota_cb(void *ud, const struct cat_usage *u)
{
	struct dm_buf *b = ud;

	dm_buf_adds(b, "<span class=quota data-account=\"");
	ui_esc(b, u->account);
	dm_buf_adds(b, "\">");
	ui_esc(b, u->account);
	dm_buf_adds(b, ": ");
	ui_bytes(b, u->bytes);
	if (!u->limit_set)
		dm_buf_adds(b, " of no quota");
	else if (u->limit < 0)
		dm_buf_adds(b, " of unlimited");
	else {
		dm_buf_adds(b, " of ");
		ui_bytes(b, (uint64_t)u->limit);
		if ((int64_t)u->bytes > u->limit)
			dm_buf_adds(b, " <span class=err>over quota</span>");
	}
	dm_buf_addf(b, " (%llu files)</span><br>", (unsigned long long)u->files);
	return 0;
}

static int page_rses(struct page *p)
{
	char names[UI_PAGE][CAT_RSE_MAX + 1];
	struct rse_list c = { p, 0, names };
	struct dm_buf out = DM_BUF_INIT;
	const char *after = arg(p->r, "after"), *s, *mark;
	int i = 0;

	page_begin(p, "rses", "RSEs");
	dm_buf_adds(&p->b, "<p class=muted>Usage counts the catalog's replicas as the abacus last"
			   " counted them; the limit is the RSE's MaxSpaceAvailable; quotas are the accounts'"
			   " limits on the RSE.</p>\n<table id=rses><tr><th>RSE</th><th>type</th><th>rwd</th>"
			   "<th>protocols</th><th>files</th><th>used</th><th>limit</th><th>used of limit</th>"
			   "<th>storage free</th><th>counted</th><th>accounts: usage of quota</th></tr>\n");
	if (cat_ov_rses(p->db, after, UI_PAGE, rse_cb, &c))
		return cat_page_error(p, "rses");
	dm_buf_adds(&p->b, "</table>\n");
	s = p->b.s;
	while ((mark = strchr(s, '\x01'))) {
		dm_buf_add(&out, s, (size_t)(mark - s));
		if (i < c.n && cat_ov_rse_accounts(p->db, names[i], 20, quota_cb, &out)) {
			dm_buf_release(&out);
			return cat_page_error(p, "rses");
		}
		i++;
		s = mark + 1;
	}
	dm_buf_adds(&out, s);
	dm_buf_release(&p->b);
	p->b = out;
	if (c.n == UI_PAGE) {
		dm_buf_adds(&p->b, "<p><a id=next href=\"/ui/rses?after=");
		ui_url(&p->b, names[c.n - 1]);
		dm_buf_adds(&p->b, "\">more RSEs &rarr;</a></p>");
	}
	return page_end(p);
}

/* ---- daemons ---- */

struct hb_ctx { struct dm_buf *b; int64_t now; int n; };

static int hb_cb(void *ud, const struct cat_ov_heartbeat *h)
{
	struct hb_ctx *c = ud;
	int64_t age = c->now - h->updated_at;
	int alive = age <= UI_HEARTBEAT_TIMEOUT;

	c->n++;
	dm_buf_adds(c->b, "<tr class=daemon data-executable=\"");
	ui_esc(c->b, h->executable);
	dm_buf_addf(c->b, "\" data-alive=\"%d\"><td>", alive);
	ui_esc(c->b, h->executable);
	dm_buf_adds(c->b, "</td><td>");
	ui_esc(c->b, h->hostname);
	dm_buf_addf(c->b, "</td><td class=n>%lld</td><td class=n>%d</td><td class=n>", (long long)h->pid,
		    h->thread);
	ui_age(c->b, age);
	dm_buf_addf(c->b, "</td><td class=%s>%s</td><td>", alive ? "alive" : "dead", alive ? "alive" : "dead");
	add_time(c->b, h->created_at);
	dm_buf_adds(c->b, "</td></tr>\n");
	return 0;
}

static int page_daemons(struct page *p)
{
	struct hb_ctx c = { &p->b, dm_now(), 0 };

	page_begin(p, "daemons", "Daemons");
	dm_buf_addf(&p->b, "<p class=muted>One row per daemon thread; a heartbeat older than %d s"
			   " (the daemons' default heartbeat.timeout) counts as dead.</p>\n"
			   "<table id=daemons><tr><th>daemon</th><th>host</th><th>pid</th><th>thread</th>"
			   "<th>heartbeat age</th><th>state</th><th>started</th></tr>\n", UI_HEARTBEAT_TIMEOUT);
	if (cat_ov_heartbeats(p->db, CAT_OV_MAX_LIMIT, hb_cb, &c))
		return cat_page_error(p, "daemons");
	dm_buf_adds(&p->b, "</table>\n");
	if (!c.n)
		dm_buf_adds(&p->b, "<p id=no-daemons>no daemon is running</p>");
	return page_end(p);
}

/* ---- DIDs ---- */

struct scope_ctx { struct dm_buf *b; int n; };

static int scope_cb(void *ud, const char *scope, const char *account)
{
	struct scope_ctx *c = ud;

	if (c->n++ >= CAT_OV_MAX_LIMIT)
		return 1;
	dm_buf_adds(c->b, "<tr class=scope><td><a href=\"/ui/dids?scope=");
	ui_url(c->b, scope);
	dm_buf_adds(c->b, "\">");
	ui_esc(c->b, scope);
	dm_buf_adds(c->b, "</a></td><td>");
	ui_esc(c->b, account);
	dm_buf_adds(c->b, "</td></tr>\n");
	return 0;
}

/* a child count from cat_ov_did(s): cap + 1 means more than cap */
static void children(struct dm_buf *b, uint64_t n, uint64_t cap)
{
	if (n > cap)
		dm_buf_addf(b, "more than %llu children", (unsigned long long)cap);
	else
		dm_buf_addf(b, "%llu %s", (unsigned long long)n, n == 1 ? "child" : "children");
}

/* counted: the rows come from cat_ov_dids (collections carry a child
 * count); other listings show a collection's size as "-" */
struct did_rows { struct dm_buf *b; int n, max, counted; char last[CAT_NAME_MAX + 1]; int64_t last_id; };

static int did_row_cb(void *ud, const struct cat_did *d)
{
	struct did_rows *c = ud;

	if (c->n >= c->max)
		return 1;
	c->n++;
	snprintf(c->last, sizeof(c->last), "%s", d->name);
	c->last_id = d->id;
	dm_buf_adds(c->b, "<tr class=did><td>");
	link_did(c->b, d->scope, d->name);
	dm_buf_addf(c->b, "</td><td>%s</td><td>", cat_did_type_name(d->type));
	ui_esc(c->b, d->account);
	dm_buf_adds(c->b, "</td>");
	if (d->type == CAT_DID_FILE) {
		td_bytes(c->b, d->bytes);
	} else if (c->counted) {
		dm_buf_adds(c->b, "<td class=n>");
		children(c->b, d->length, CAT_OV_CHILD_COUNT_LIST);
		dm_buf_adds(c->b, "</td>");
	} else {
		dm_buf_adds(c->b, "<td class=n>-</td>");
	}
	dm_buf_adds(c->b, "</tr>\n");
	return 0;
}

static int page_dids(struct page *p)
{
	const char *scope = arg(p->r, "scope"), *prefix = arg(p->r, "prefix"), *after = arg(p->r, "after");
	struct did_rows c = { .b = &p->b, .max = UI_PAGE, .counted = 1 };

	if (!scope) {
		struct scope_ctx sc = { &p->b, 0 };

		page_begin(p, "dids", "Scopes");
		dm_buf_adds(&p->b, "<table id=scopes><tr><th>scope</th><th>account</th></tr>\n");
		if (cat_scope_list(p->db, NULL, scope_cb, &sc))
			return cat_page_error(p, "dids");
		dm_buf_adds(&p->b, "</table>\n");
		return page_end(p);
	}
	page_begin(p, "dids", "DIDs");
	dm_buf_adds(&p->b, "<p><a href=\"/ui/dids\">scopes</a> / ");
	ui_esc(&p->b, scope);
	dm_buf_adds(&p->b, "</p><form class=filter method=get action=\"/ui/dids\"><input type=hidden name=scope value=\"");
	ui_esc(&p->b, scope);
	dm_buf_adds(&p->b, "\"><label>name starts with<input name=prefix id=f-prefix value=\"");
	ui_esc(&p->b, prefix);
	dm_buf_adds(&p->b, "\"></label><button type=submit>list</button></form>\n"
			   "<table id=dids><tr><th>DID</th><th>type</th><th>account</th><th>size</th></tr>\n");
	if (cat_ov_dids(p->db, scope, prefix, after, UI_PAGE, did_row_cb, &c))
		return cat_page_error(p, "dids");
	dm_buf_adds(&p->b, "</table>\n");
	if (c.n == UI_PAGE) {
		dm_buf_adds(&p->b, "<p><a id=next href=\"/ui/dids?scope=");
		ui_url(&p->b, scope);
		dm_buf_adds(&p->b, "&amp;prefix=");
		ui_url(&p->b, prefix);
		dm_buf_adds(&p->b, "&amp;after=");
		ui_url(&p->b, c.last);
		dm_buf_adds(&p->b, "\">more &rarr;</a></p>");
	}
	return page_end(p);
}

struct did_copy { int found; int64_t id; enum cat_did_type type; struct dm_buf *b; };

static int did_info_cb(void *ud, const struct cat_did *d)
{
	struct did_copy *c = ud;
	struct dm_buf *b = c->b;

	c->found = 1;
	c->id = d->id;
	c->type = d->type;
	dm_buf_adds(b, "<table id=did class=kv><tr><th>DID</th><td id=did-name>");
	ui_esc(b, d->scope);
	dm_buf_addc(b, ':');
	ui_esc(b, d->name);
	dm_buf_addf(b, "</td></tr><tr><th>type</th><td>%s</td></tr><tr><th>account</th><td>",
		    cat_did_type_name(d->type));
	ui_esc(b, d->account);
	dm_buf_adds(b, "</td></tr>");
	if (d->type == CAT_DID_FILE) {
		dm_buf_adds(b, "<tr><th>bytes</th><td>");
		ui_bytes(b, d->bytes);
		dm_buf_addf(b, " (%llu)</td></tr>", (unsigned long long)d->bytes);
		dm_buf_adds(b, "<tr><th>adler32</th><td>");
		ui_esc(b, d->adler32);
		dm_buf_adds(b, "</td></tr><tr><th>md5</th><td>");
		ui_esc(b, d->md5);
		dm_buf_adds(b, "</td></tr>");
	} else {
		dm_buf_adds(b, "<tr><th>children</th><td id=did-children>");
		children(b, d->length, CAT_OV_CHILD_COUNT);
		dm_buf_addf(b, "</td></tr><tr><th>open</th><td>%s</td></tr>", d->is_open ? "yes" : "no");
	}
	dm_buf_adds(b, "<tr><th>created</th><td>");
	add_time(b, d->created_at);
	dm_buf_adds(b, "</td></tr><tr><th>expires</th><td>");
	add_time(b, d->expired_at);
	dm_buf_adds(b, "</td></tr></table>\n");
	return 1;
}

struct kv_ctx { struct dm_buf *b; int n; };

static int meta_cb(void *ud, const char *k, const char *v)
{
	struct kv_ctx *c = ud;

	if (c->n++ >= UI_SUB)
		return 1;
	dm_buf_adds(c->b, "<tr class=meta><th>");
	ui_esc(c->b, k);
	dm_buf_adds(c->b, "</th><td>");
	ui_esc(c->b, v);
	dm_buf_adds(c->b, "</td></tr>\n");
	return 0;
}

static int replica_cb(void *ud, const struct cat_replica *x)
{
	struct kv_ctx *c = ud;

	if (c->n++ >= UI_SUB)
		return 1;
	dm_buf_adds(c->b, "<tr class=replica data-rse=\"");
	ui_esc(c->b, x->rse);
	dm_buf_adds(c->b, "\"><td>");
	ui_esc(c->b, x->rse);
	dm_buf_addf(c->b, "</td><td>%s</td>", cat_replica_state_name(x->state));
	td_bytes(c->b, x->bytes);
	td_num(c->b, x->lock_cnt);
	dm_buf_adds(c->b, "<td>");
	add_time(c->b, x->created_at);
	dm_buf_adds(c->b, "</td></tr>\n");
	return 0;
}

static int dslock_cb(void *ud, const struct cat_dataset_lock *l)
{
	struct kv_ctx *c = ud;

	if (c->n++ >= UI_SUB)
		return 1;
	dm_buf_adds(c->b, "<tr class=dslock><td>");
	ui_esc(c->b, l->rse);
	dm_buf_adds(c->b, "</td><td>");
	link_rule(c->b, l->rule_id);
	dm_buf_adds(c->b, "</td><td>");
	state_span(c->b, l->state);
	dm_buf_adds(c->b, "</td>");
	td_num(c->b, l->length);
	if (l->bytes >= 0)
		td_bytes(c->b, (uint64_t)l->bytes);
	else
		dm_buf_adds(c->b, "<td></td>");
	dm_buf_adds(c->b, "</tr>\n");
	return 0;
}

static int did_rule_cb(void *ud, const struct cat_rule *x)
{
	struct kv_ctx *c = ud;

	if (c->n++ >= UI_SUB)
		return 1;
	dm_buf_adds(c->b, "<tr class=rule><td>");
	link_rule(c->b, x->id);
	dm_buf_adds(c->b, "</td><td>");
	ui_esc(c->b, x->account);
	dm_buf_adds(c->b, "</td><td>");
	state_span(c->b, cat_rule_state_name(x->state));
	dm_buf_adds(c->b, "</td><td><code>");
	ui_esc(c->b, x->rse_expression);
	dm_buf_addf(c->b, "</code></td><td class=n>%d</td></tr>\n", x->copies);
	return 0;
}

static int page_did(struct page *p)
{
	const char *scope = arg(p->r, "scope"), *name = arg(p->r, "name"), *after = arg(p->r, "after");
	struct did_copy d = { .b = &p->b };
	struct kv_ctx k = { &p->b, 0 };
	struct did_rows c = { .b = &p->b, .max = UI_SUB };
	struct dm_err e = { 0 };
	int64_t after_id = 0;

	if (!scope || !name) {
		dm_seterr(&e, DM_EINVAL, "InvalidValueForKey", "which DID? (/ui/did?scope=S&name=N)");
		return page_error(p, "dids", &e);
	}
	if (after && dm_parse_i64(after, &after_id)) {
		dm_seterr(&e, DM_EINVAL, "InvalidValueForKey", "after must be a number");
		return page_error(p, "dids", &e);
	}
	page_begin(p, "dids", "DID");
	dm_buf_adds(&p->b, "<p><a href=\"/ui/dids\">scopes</a> / <a href=\"/ui/dids?scope=");
	ui_url(&p->b, scope);
	dm_buf_adds(&p->b, "\">");
	ui_esc(&p->b, scope);
	dm_buf_adds(&p->b, "</a></p>\n");
	if (cat_ov_did(p->db, scope, name, did_info_cb, &d))
		return cat_page_error(p, "dids");
	dm_buf_adds(&p->b, "<h2>Metadata</h2><table id=meta>\n");
	if (cat_did_meta_list(p->db, scope, name, meta_cb, &k))
		return cat_page_error(p, "dids");
	dm_buf_adds(&p->b, "</table>\n");
	if (d.type != CAT_DID_FILE) {
		dm_buf_adds(&p->b, "<h2>Content</h2><table id=content><tr><th>DID</th><th>type</th>"
				   "<th>account</th><th>size</th></tr>\n");
		if (cat_did_list_content_from(p->db, d.id, after_id, did_row_cb, &c))
			return cat_page_error(p, "dids");
		dm_buf_adds(&p->b, "</table>\n");
		if (c.n == UI_SUB) {
			dm_buf_adds(&p->b, "<p><a id=next href=\"/ui/did?scope=");
			ui_url(&p->b, scope);
			dm_buf_adds(&p->b, "&amp;name=");
			ui_url(&p->b, name);
			dm_buf_addf(&p->b, "&amp;after=%lld\">more content &rarr;</a></p>", (long long)c.last_id);
		}
	}
	dm_buf_adds(&p->b, "<h2>Parents</h2><table id=parents><tr><th>DID</th><th>type</th>"
			   "<th>account</th><th>size</th></tr>\n");
	c.n = 0;
	if (cat_did_list_parents(p->db, scope, name, did_row_cb, &c))
		return cat_page_error(p, "dids");
	dm_buf_adds(&p->b, "</table>\n");
	if (d.type == CAT_DID_FILE) {
		dm_buf_adds(&p->b, "<h2>Replicas</h2><table id=replicas><tr><th>RSE</th><th>state</th>"
				   "<th>bytes</th><th>locks</th><th>created</th></tr>\n");
		k.n = 0;
		if (cat_replica_list(p->db, scope, name, NULL, 0x3f, replica_cb, &k))
			return cat_page_error(p, "dids");
	} else {
		dm_buf_adds(&p->b, "<h2>Dataset locks</h2><table id=dslocks><tr><th>RSE</th><th>rule</th>"
				   "<th>state</th><th>files</th><th>bytes</th></tr>\n");
		k.n = 0;
		if (cat_dataset_lock_list(p->db, NULL, scope, name, dslock_cb, &k))
			return cat_page_error(p, "dids");
	}
	dm_buf_adds(&p->b, "</table>\n<h2>Rules</h2><table id=did-rules><tr><th>rule</th><th>account</th>"
			   "<th>state</th><th>expression</th><th>copies</th></tr>\n");
	k.n = 0;
	if (cat_rule_list(p->db, scope, name, NULL, did_rule_cb, &k))
		return cat_page_error(p, "dids");
	dm_buf_adds(&p->b, "</table>\n");
	return page_end(p);
}

/* ---- routing ---- */

static int static_file(struct srv_req *r, const char *ctype, const char *body)
{
	srv_add_header(r, "X-Content-Type-Options", "nosniff");
	srv_add_header(r, "Cache-Control", "max-age=300");
	return srv_reply(r, 200, ctype, body, strlen(body));
}

struct qs_ctx { struct dm_buf *b; int n; };

static int qs_cb(void *ud, const char *k, const char *v)
{
	struct qs_ctx *c = ud;

	dm_buf_addc(c->b, c->n++ ? '&' : '?');
	ui_url(c->b, k);
	dm_buf_addc(c->b, '=');
	ui_url(c->b, v);
	return c->b->len > 1900; /* a next= that long is not kept */
}

/* 303 to the login page, with the page asked for (its query rebuilt from
 * the decoded arguments) as next. */
static int to_login(struct srv_req *r)
{
	struct dm_buf to = DM_BUF_INIT, next = DM_BUF_INIT;
	struct qs_ctx qc = { &next, 0 };
	int rc;

	dm_buf_adds(&next, r->path);
	if (srv_args_each(r, qs_cb, &qc))
		dm_buf_reset(&next), dm_buf_adds(&next, r->path);
	dm_buf_adds(&to, "/ui/login");
	if (next.len < 1900 && ui_next_ok(next.s)) {
		dm_buf_adds(&to, "?next=");
		ui_url(&to, next.s);
	}
	rc = redirect(r, to.s);
	dm_buf_release(&to);
	dm_buf_release(&next);
	return rc;
}

int srv_ui(struct srv_req *r, const char *rest)
{
	struct page p = { .r = r, .b = DM_BUF_INIT };
	int get = !strcmp(r->method, "GET") || !strcmp(r->method, "HEAD");
	struct dm_err e = { 0 };

	if (!strcmp(rest, "static/app.css") && get)
		return static_file(r, "text/css; charset=utf-8", ui_css);
	if (!strcmp(rest, "static/app.js") && get)
		return static_file(r, "text/javascript; charset=utf-8", ui_js);
	if (!strcmp(rest, "login")) {
		if (!strcmp(r->method, "POST"))
			return login_post(r);
		if (get) {
			const char *next = arg(r, "next");

			return login_form(r, 200, NULL, next && ui_next_ok(next) ? next : NULL);
		}
	}
	if (!strcmp(rest, "login/x509") && get)
		return login_x509(r);
	if (!get) {
		security_headers(r);
		srv_add_header(r, "Allow", "GET, HEAD");
		return srv_error_status(r, 405, "MethodNotAllowed", "Method %s not allowed on /ui/%s (the web UI is read-only)",
					r->method, rest);
	}
	if (!strcmp(rest, "logout")) {
		char tok[4096];

		if (!cookie_token(r, tok, sizeof(tok)))
			srv_token_revoke(tok); /* the token dies with the session */
		set_cookie(r, "", 0);
		return redirect(r, "/ui/login");
	}
	if (session(r))
		return to_login(r);
	p.db = srv_db(r);
	if (!p.db) {
		dm_seterr(&e, DM_AGAIN, "DatabaseException", "too many requests: no catalog connection free");
		return page_error(&p, NULL, &e);
	}
	if (!cat_issuer_is_admin(p.db)) {
		dm_seterr(&e, DM_EPERM, "AccessDenied",
			  "the web UI is for admin accounts, and account %s is not one", r->account);
		p.status = 403; /* logged in, not allowed (Rucio's AccessDenied would be 401) */
		return page_error(&p, NULL, &e);
	}
	if (!*rest)
		return redirect(r, "/ui/rules");
	if (!strcmp(rest, "rules"))
		return page_rules(&p);
	if (!strcmp(rest, "rule"))
		return page_rule(&p);
	if (!strcmp(rest, "stuck"))
		return page_stuck(&p);
	if (!strcmp(rest, "transfers"))
		return page_transfers(&p);
	if (!strcmp(rest, "rses"))
		return page_rses(&p);
	if (!strcmp(rest, "daemons"))
		return page_daemons(&p);
	if (!strcmp(rest, "dids"))
		return page_dids(&p);
	if (!strcmp(rest, "did"))
		return page_did(&p);
	dm_seterr(&e, DM_ENOENT, "UnsupportedOperation", "no page /ui/%.200s", rest);
	p.status = 404;
	return page_error(&p, NULL, &e);
}
