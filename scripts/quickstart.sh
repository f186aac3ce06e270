#!/bin/bash
# Set up everything on a fresh Debian 12 machine and run the main job on the
# embedded default (one SQLite catalog file): create a catalog, register
# storage elements with attributes and protocols, register a sample dataset
# whose files already sit on storage (walking the storage directory), and
# list what the catalog now knows.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
[ -d build ] || meson setup build >/dev/null
ninja -C build >/dev/null
didfs() { build/tools/didfs --catalog "$work/catalog.db" "$@"; }
work=${DIDFS_QUICKSTART_DIR:-$(mktemp -d /tmp/didfs-quickstart.XXXXXX)}
mkdir -p "$work"
rm -f "$work"/catalog.db*
set -x
didfs init
didfs add-account alice --email alice@example.org
didfs add-scope user.alice --account alice
didfs add-scope km3net
for i in 1 2 3; do
	didfs add-rse SITE$i-DISK
	didfs set-rse-attribute --rse SITE$i-DISK --key tier --value $(( i < 3 ? 1 : 2 ))
	didfs set-rse-attribute --rse SITE$i-DISK --key site --value SITE$i
	didfs add-protocol --rse SITE$i-DISK --scheme file --prefix "$work/rse$i"
done
didfs set-account-limit alice SITE1-DISK 10G
set +x
# Data that already sits on SITE1-DISK, in Rucio's deterministic layout.
for n in 1 2 3 4 5; do
	name="run42/raw/file_0$n.dat"
	h=$(printf 'km3net:%s' "$name" | md5sum | cut -c1-4)
	mkdir -p "$work/rse1/km3net/${h:0:2}/${h:2:2}/run42/raw"
	head -c $((n * 100000)) /dev/urandom > "$work/rse1/km3net/${h:0:2}/${h:2:2}/$name"
done
set -x
didfs add-dataset km3net:run42
didfs add-replicas --rse SITE1-DISK --walk "$work/rse1" --dataset km3net:run42 --md5
didfs close km3net:run42
didfs list-rses
didfs list-rses 'tier=1\SITE2-DISK'
didfs list-dids 'km3net:*' --type all
didfs list-files km3net:run42
didfs list-file-replicas km3net:run42
didfs get-metadata km3net:run42
didfs list-rse-usage SITE1-DISK
set +x
echo "quickstart done: catalog at $work/catalog.db"
