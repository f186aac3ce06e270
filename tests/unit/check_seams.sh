#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# The catalog's seams (issue 9, items 1-2), checked over the source tree:
#  - catalog/engine.h (the rule engine's calls) is included only by daemons/,
#    catalog/ itself and the unit tests;
#  - process liveness (kill(pid, 0), gethostname) is not the catalog's;
#  - nothing outside catalog/ treats the catalog URI as a file (realpath or
#    stat of it).
# Usage: check_seams.sh SOURCE_ROOT
root=${1:?source root}
cd "$root" || exit 2
fail=0
bad=$(grep -rln '#include "engine.h"' --include='*.c' --include='*.h' --include='*.cc' \
	fs server tools transfer util 2>/dev/null)
if [ -n "$bad" ]; then
	echo "engine.h included outside daemons/ and catalog/: $bad"
	fail=1
fi
bad=$(grep -rn 'kill *(\|gethostname *(' catalog/*.c catalog/*.h)
if [ -n "$bad" ]; then
	echo "process liveness in catalog/: $bad"
	fail=1
fi
bad=$(grep -rn 'realpath *([^,]*catalog\|stat *([^,]*catalog' fs server tools daemons)
if [ -n "$bad" ]; then
	echo "the catalog treated as a file outside catalog/: $bad"
	fail=1
fi
[ -e catalog/rule.h ] && { echo "catalog/rule.h is back: client calls go to catalog.h, the engine's to engine.h"; fail=1; }
[ $fail -eq 0 ] && echo "ok: engine.h only in daemons/ and catalog/, no liveness in catalog/, no catalog file outside it"
exit $fail
