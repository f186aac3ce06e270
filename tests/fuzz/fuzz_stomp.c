/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_stomp.c - libFuzzer target for the STOMP frame parser of
 * daemons/stomp.c (what a broker sends hermes: CONNECTED, RECEIPT, ERROR).
 * The input is parsed frame after frame as the client does; beside the
 * sanitizers it traps when a parsed frame claims more bytes than it was
 * given, or its command or headers point outside the buffer.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "stomp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size ? size : 1);
	size_t off = 0;

	memcpy(buf, data, size);
	while (off < size) {
		struct stomp_frame f;
		size_t used = 0;
		int r = stomp_frame_parse(buf + off, size - off, &f, &used);

		if (r != 1)
			break;
		if (used == 0 || used > size - off)
			abort();
		if (f.command < buf + off || f.command >= buf + off + used)
			abort();
		for (size_t i = 0; i < f.nheaders; i++)
			if (f.name[i] < buf + off || f.value[i] >= buf + off + used)
				abort();
		if (f.body_len && (f.body < buf + off || f.body + f.body_len > buf + off + used))
			abort();
		(void)stomp_header(&f, "receipt-id");
		off += used;
	}
	free(buf);
	return 0;
}
