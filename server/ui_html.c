/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ui_html.c - the pure parts of the web UI (ui.h): escaping, the login
 * form's parser, the redirect check, formatting, and the CSS and JavaScript
 * compiled into the binary.  No I/O and no catalog here, so
 * tests/fuzz/fuzz_ui.c runs it on arbitrary input.
 *
 * The JavaScript is the UI's only client code: every few seconds it fetches
 * the page it is on again and swaps the <main> element for the new one
 * (pausable), so a rule going REPLICATING -> OK shows without a reload; a
 * session that expired sends the browser to the login page.  Everything
 * else is server-rendered HTML, and the Content-Security-Policy ui.c sends
 * allows scripts and styles from /ui/static only.
 */
#include "ui.h"
#include "server.h"

#include <stdio.h>
#include <string.h>

void ui_esc(struct dm_buf *b, const char *s)
{
	const char *run;

	if (!s)
		return;
	for (run = s; *s; s++) {
		const char *e;

		switch (*s) {
		case '&': e = "&amp;"; break;
		case '<': e = "&lt;"; break;
		case '>': e = "&gt;"; break;
		case '"': e = "&quot;"; break;
		case '\'': e = "&#39;"; break;
		default:
			/* C0 controls are not allowed in HTML text (and ui.c
			 * uses \x01 as a splice marker): U+FFFD */
			if ((unsigned char)*s < 0x20 && *s != '\t' && *s != '\n' && *s != '\r') {
				e = "&#xfffd;";
				break;
			}
			continue;
		}
		dm_buf_add(b, run, (size_t)(s - run));
		dm_buf_adds(b, e);
		run = s + 1;
	}
	dm_buf_add(b, run, (size_t)(s - run));
}

void ui_url(struct dm_buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~') {
			dm_buf_addc(b, (char)c);
		} else {
			char e[3] = { '%', hex[c >> 4], hex[c & 15] };

			dm_buf_add(b, e, 3);
		}
	}
}

int ui_form_get(const char *body, size_t len, const char *key, char *out, size_t outn)
{
	size_t klen = strlen(key), i = 0;

	if (!body || !outn)
		return 1;
	while (i < len) {
		size_t end = i, eq;

		while (end < len && body[end] != '&')
			end++;
		eq = i;
		while (eq < end && body[eq] != '=')
			eq++;
		/* keys are plain ASCII names here: compared as sent */
		if (eq - i == klen && !memcmp(body + i, key, klen)) {
			size_t vlen = eq < end ? end - eq - 1 : 0;

			if (vlen >= outn)
				return -1;
			if (srv_pct_decode(eq < end ? body + eq + 1 : "", vlen, 1, out, outn))
				return -1;
			return 0;
		}
		i = end + 1;
	}
	return 1;
}

int ui_next_ok(const char *s)
{
	if (!s || strncmp(s, "/ui", 3) || (s[3] && s[3] != '/' && s[3] != '?'))
		return 0;
	for (const char *p = s; *p; p++) {
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || *p == '\\')
			return 0;
		if (p[0] == '/' && p[1] == '/')
			return 0;
	}
	return strlen(s) < 2048;
}

void ui_bytes(struct dm_buf *b, uint64_t n)
{
	char h[32];

	dm_buf_adds(b, dm_human_bytes(n, 1, h));
}

void ui_age(struct dm_buf *b, int64_t s)
{
	if (s < 0)
		s = 0;
	if (s < 120)
		dm_buf_addf(b, "%lld s", (long long)s);
	else if (s < 7200)
		dm_buf_addf(b, "%lld min", (long long)(s / 60));
	else if (s < 172800)
		dm_buf_addf(b, "%lld h", (long long)(s / 3600));
	else
		dm_buf_addf(b, "%lld d", (long long)(s / 86400));
}

const char ui_css[] =
	"*{box-sizing:border-box}\n"
	"body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d2330;background:#f5f6f8}\n"
	"header{background:#1d2330;color:#fff;padding:.5em 1em;display:flex;gap:1.2em;align-items:center;flex-wrap:wrap}\n"
	"header a{color:#cfd8ea;text-decoration:none}header a.on{color:#fff;font-weight:600}\n"
	"header .who{margin-left:auto;color:#9aa6bd}\n"
	"main{padding:1em}\n"
	"h1{font-size:1.3em;margin:.2em 0 .6em}h2{font-size:1.1em;margin:1.2em 0 .4em}\n"
	"table{border-collapse:collapse;background:#fff;margin-bottom:1em}\n"
	"th,td{border:1px solid #d5d9e0;padding:.25em .6em;text-align:left;vertical-align:top}\n"
	"th{background:#e9ecf1}td.n{text-align:right;font-variant-numeric:tabular-nums}\n"
	".OK,.alive{color:#18794e;font-weight:600}.REPLICATING{color:#a35f00;font-weight:600}\n"
	".STUCK,.SUSPENDED,.dead,.err{color:#b42318;font-weight:600}\n"
	"form.filter{margin:.5em 0 1em;display:flex;gap:.6em;align-items:end;flex-wrap:wrap}\n"
	"form.filter label{display:flex;flex-direction:column;font-size:.85em}\n"
	".login{max-width:24em;margin:4em auto;background:#fff;padding:1.5em;border:1px solid #d5d9e0}\n"
	".login input{width:100%;margin:.2em 0 .8em;padding:.4em}\n"
	".msg{background:#fde8e8;border:1px solid #f5b5b5;padding:.5em;margin-bottom:1em}\n"
	".muted{color:#6b7385}.bar{display:inline-block;height:.7em;background:#4a7bd0}\n"
	"#refresh{font-size:.85em;color:#9aa6bd}\n";

const char ui_js[] =
	"'use strict';\n"
	"(function () {\n"
	"  var main = document.querySelector('main');\n"
	"  var box = document.getElementById('autorefresh');\n"
	"  var stamp = document.getElementById('refreshed');\n"
	"  if (!main || !box) return;\n"
	"  var every = parseInt(main.getAttribute('data-refresh') || '3', 10) * 1000;\n"
	"  box.checked = sessionStorage.getItem('didfs-ui-pause') !== '1';\n"
	"  box.addEventListener('change', function () {\n"
	"    sessionStorage.setItem('didfs-ui-pause', box.checked ? '0' : '1');\n"
	"  });\n"
	"  function tick() {\n"
	"    if (!box.checked || document.hidden) return;\n"
	"    fetch(location.href, {credentials: 'same-origin', cache: 'no-store'})\n"
	"      .then(function (r) {\n"
	"        if (r.redirected || r.status === 401 || r.status === 403) { location.reload(); return null; }\n"
	"        return r.ok ? r.text() : null;\n"
	"      })\n"
	"      .then(function (t) {\n"
	"        if (!t) return;\n"
	"        var doc = new DOMParser().parseFromString(t, 'text/html');\n"
	"        var fresh = doc.querySelector('main');\n"
	"        if (!fresh) return;\n"
	"        var focused = document.activeElement && main.contains(document.activeElement);\n"
	"        if (focused) return; /* never under the user's typing */\n"
	"        main.replaceWith(fresh);\n"
	"        main = fresh;\n"
	"        if (stamp) stamp.textContent = new Date().toLocaleTimeString();\n"
	"      })\n"
	"      .catch(function () {});\n"
	"  }\n"
	"  setInterval(tick, every);\n"
	"})();\n";
