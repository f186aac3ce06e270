/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_ui.c - libFuzzer target over the web UI's pure parts (server/ui_html.c)
 * that see outside input: the login form's parser (ui_form_get), the
 * check of the redirect target after a login (ui_next_ok), and the HTML and
 * URL escaping every page value goes through.  Properties checked, not only
 * crashes: escaped HTML holds no raw < > " ' and no C0 control but tab/LF/CR,
 * and every & starts an entity; the URL form holds only unreserved
 * characters and '%XX', and decodes back to the input; a next= accepted is
 * under /ui and never "//"; a form value found decodes without a NUL and
 * fits.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"
#include "ui.h"

/* json.c's error replies go nowhere here */
int srv_error(struct srv_req *r, const char *cls, const char *fmt, ...)
{
	return 0;
}

int srv_error_status(struct srv_req *r, int status, const char *cls, const char *fmt, ...)
{
	return 0;
}

static void check_html(const char *s)
{
	struct dm_buf b = DM_BUF_INIT;

	ui_esc(&b, s);
	for (size_t i = 0; i < b.len; i++) {
		unsigned char c = (unsigned char)b.s[i];

		if (c == '<' || c == '>' || c == '"' || c == '\'')
			abort();
		if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
			abort();
		if (c == '&' && strncmp(b.s + i, "&amp;", 5) && strncmp(b.s + i, "&lt;", 4) &&
		    strncmp(b.s + i, "&gt;", 4) && strncmp(b.s + i, "&quot;", 6) &&
		    strncmp(b.s + i, "&#39;", 5) && strncmp(b.s + i, "&#xfffd;", 8))
			abort();
	}
	dm_buf_release(&b);
}

static void check_url(const char *s)
{
	struct dm_buf b = DM_BUF_INIT;
	char *back;

	ui_url(&b, s);
	for (size_t i = 0; i < b.len; i++) {
		unsigned char c = (unsigned char)b.s[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '.' || c == '_' || c == '~' || c == '%'))
			abort();
	}
	back = malloc(b.len + 1);
	if (srv_pct_decode(b.s, b.len, 0, back, b.len + 1) || strcmp(back, s))
		abort();
	free(back);
	dm_buf_release(&b);
}

static void check_next(const char *s)
{
	if (!ui_next_ok(s))
		return;
	if (strncmp(s, "/ui", 3) || strstr(s, "//") || strchr(s, '\\'))
		abort();
}

static void check_form(const char *body, size_t n)
{
	static const char *const keys[] = { "username", "password", "account", "next" };
	char out[64];

	for (size_t k = 0; k < 4; k++) {
		int rc = ui_form_get(body, n, keys[k], out, sizeof out);

		if (rc == 0 && strlen(out) >= sizeof out)
			abort();
		if (rc < -1 || rc > 1)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	memcpy(s, data, size);
	s[size] = 0;
	check_form(s, size);  /* the raw body, NULs included */
	check_html(s);        /* the text up to a NUL */
	check_url(s);
	check_next(s);
	free(s);
	return 0;
}
