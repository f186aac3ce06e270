/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_subscription.c - libFuzzer target for the subscription parsers of
 * catalog/subscription.c, which take outside input from the CLI and the
 * REST API: the input, split at its first NUL (or newline), is a filter
 * (JSON object) and a rule (JSON or the short "COPIES EXPRESSION
 * [key=value...]" form), given to cat_subscription_check() and
 * cat_subscription_rule_text().  Beside the sanitizers it traps when an
 * accepted input does not produce normalized JSON that is accepted again
 * (the stored text must validate when the transmogrifier reads it back),
 * or a refusal comes without a class and a message.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1), *rule;
	struct dm_buf nf = DM_BUF_INIT, nr = DM_BUF_INIT, r = DM_BUF_INIT, again = DM_BUF_INIT;
	struct dm_err e;

	memcpy(s, data, size);
	s[size] = 0;
	rule = strchr(s, '\n');
	if (rule)
		*rule++ = 0;
	else
		rule = s + strlen(s);
	memset(&e, 0, sizeof e);
	if (cat_subscription_rule_text(rule, &r, &e) == DM_OK) {
		dm_buf_addc(&again, '[');
		dm_buf_add(&again, r.s, r.len);
		dm_buf_addc(&again, ']');
		if (cat_subscription_check(s, again.s, &nf, &nr, &e) == DM_OK) {
			if (!nf.s || !nr.s)
				abort();
			if (cat_subscription_check(nf.s, nr.s, NULL, NULL, &e) != DM_OK)
				abort(); /* normalized text refused on the way back */
		} else if (!e.cls[0] || !e.msg[0])
			abort();
	} else if (!e.cls[0] || !e.msg[0])
		abort();
	dm_buf_release(&nf);
	dm_buf_release(&nr);
	dm_buf_release(&r);
	dm_buf_release(&again);
	free(s);
	return 0;
}
