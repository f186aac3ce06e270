/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_metrics_req.c - libFuzzer target for the request-line parser of the
 * /metrics exporter (util/metrics.c, dm_m_http_parse_request), which reads
 * whatever a peer sends to `--metrics ADDR:PORT`.  Beside the sanitizers it
 * traps when the answer is not one of 200, 400, 404, 405, 505, when HEAD is
 * reported for anything but a HEAD line, or when 200 is given for a line
 * that does not name /metrics.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size ? size : 1);
	int head = 0, st;

	memcpy(buf, data, size);
	st = dm_m_http_parse_request(buf, size, &head);
	if (st != 200 && st != 400 && st != 404 && st != 405 && st != 505)
		abort();
	if (head && (size < 5 || memcmp(buf, "HEAD ", 5)))
		abort();
	if (st == 200 && !memmem(buf, size, " /metrics", 9))
		abort();
	free(buf);
	return 0;
}
