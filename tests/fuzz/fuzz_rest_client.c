/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_rest_client.c - the REST catalog's parsers of outside input
 * (catalog/rest/): the x-json-stream line reader, fed the input in pieces
 * whose sizes come from the first byte, and the rucio.cfg parser on the
 * same bytes.  Neither may crash, leak or read out of bounds.
 */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "lines.h"

static int count(void *ud, json_t *row)
{
	(*(size_t *)ud)++;
	return json_is_null(row); /* a null row stops the reading */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rest_lines l;
	struct rest_config c;
	struct dm_err e;
	size_t rows = 0, step = size ? (data[0] % 17) + 1 : 1, i;

	rest_lines_init(&l, 4096, count, &rows);
	for (i = 0; i < size; i += step)
		if (rest_lines_feed(&l, data + i, size - i < step ? size - i : step))
			break;
	rest_lines_finish(&l);
	rest_lines_release(&l);

	rest_config_init(&c);
	rest_config_parse(&c, (const char *)data, size, "fuzz.cfg", &e);
	rest_config_free(&c);
	return 0;
}
