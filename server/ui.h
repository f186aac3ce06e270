/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ui.h - internals of the monitoring web UI of `didfs serve` (prefix ui_).
 *
 *   ui.c       /ui routing, the login (userpass and X.509, through the
 *              same code as /auth/...), the session cookie, the pages
 *   ui_html.c  the pure parts, fuzzed by tests/fuzz/fuzz_ui.c: HTML and
 *              URL escaping, the login form's parser, the check of a
 *              redirect target, number formatting, and the embedded CSS
 *              and JavaScript (no CDN: the UI works offline)
 */
#ifndef SRV_UI_H
#define SRV_UI_H

#include <stddef.h>
#include <stdint.h>

#include "dm.h"

/* Text as HTML (element content or a quoted attribute): & < > " ' become
 * entities, C0 controls but tab/newline/CR "&#xfffd;"; NULL is "". */
void ui_esc(struct dm_buf *b, const char *s);
/* Text as a URL query component: everything but [A-Za-z0-9-._~] as %XX. */
void ui_url(struct dm_buf *b, const char *s);
/* The value of key in an application/x-www-form-urlencoded body, decoded
 * ('+' is a space) into out (outn bytes with the NUL).  0 found, 1 absent,
 * -1 malformed (a bad escape, a NUL, or longer than outn - 1). */
int ui_form_get(const char *body, size_t len, const char *key, char *out, size_t outn);
/* Whether s is a safe place to send the browser back to after the login:
 * a path under /ui ("/ui" or "/ui/..." or "/ui?..."), printable ASCII, no
 * "//" or backslash (never another site). */
int ui_next_ok(const char *s);
/* 1536 -> "1.5 KiB"; 512 -> "512 B". */
void ui_bytes(struct dm_buf *b, uint64_t n);
/* Seconds as "42 s", "3 min", "5 h", "2 d". */
void ui_age(struct dm_buf *b, int64_t seconds);

extern const char ui_css[];
extern const char ui_js[];

#endif
