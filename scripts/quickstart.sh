#!/bin/bash
# Set up everything on a fresh Debian 12 machine and run the main job on the
# embedded default (one SQLite catalog file):
#   1. a catalog with three real XRootD storage elements on loopback
#      (root:// and https://, tiers and sites as RSE attributes);
#   2. data that already sits on storage registered in bulk by walking it,
#      and new files uploaded with Rucio's safe upload;
#   3. the replication service (didfs daemon all) running;
#   4. the catalog mounted as a directory tree: listed, a file read through
#      the mount and compared, its user.rucio.* attributes shown;
#   5. a rule asked for with setfattr ("2 copies on tier=1") and carried out
#      by the service: user.rucio.state goes REPLICATING -> OK.
# Everything it starts is stopped at the end, whatever happens.
# DIDFS_QUICKSTART_DIR=DIR keeps the work directory there.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
scripts/install-deps.sh
[ -d build ] || meson setup build -Dfuse=enabled >/dev/null
meson configure build -Dfuse=enabled >/dev/null
ninja -C build >/dev/null

work=${DIDFS_QUICKSTART_DIR:-$(mktemp -d /tmp/didfs-quickstart.XXXXXX)}
mkdir -p "$work"
chmod 755 "$work"
export DIDFS_CATALOG=$work/catalog.db
mnt=$work/lake
daemon_pid=""
cleanup() {
	set +e
	mountpoint -q "$mnt" 2>/dev/null && fusermount3 -u "$mnt"
	[ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
	[ -f "$work/rses/rses.json" ] && "$repo/tests/env/stop-rses" "$work/rses" >/dev/null 2>&1
}
trap cleanup EXIT
didfs() { "$repo/build/tools/didfs" "$@"; }
step() { printf '\n== %s\n' "$*"; }

rm -rf "$work/catalog.db"* "$work/rses" "$work/cache" "$mnt"
step "a catalog and three XRootD storage elements on loopback"
didfs init
tests/env/start-rses --register "$DIDFS_CATALOG" --didfs "$repo/build/tools/didfs" "$work/rses"
export X509_CERT_DIR=$work/rses/ca/certificates
didfs list-rses
didfs list-rses 'tier=1'
didfs add-scope km3net
didfs add-scope user.root

step "register data that already sits on XRD1 by walking its storage"
data=$(python3 -c "import json;print(json.load(open('$work/rses/rses.json'))['servers'][0]['data_dir'])")
for n in 1 2 3; do
	name="run42_file_0$n.dat"
	h=$(printf 'km3net:%s' "$name" | md5sum | cut -c1-4)
	d="$data/rucio/km3net/${h:0:2}/${h:2:2}"
	mkdir -p "$d"
	head -c $((n * 300000)) /dev/urandom > "$d/$name"
done
chown -R xrootd:xrootd "$data/rucio"
didfs add-dataset km3net:run42
didfs add-replicas --rse XRD1 --walk "$data/rucio" --dataset km3net:run42 --md5

step "upload new files with Rucio's safe upload"
head -c 2000000 /dev/urandom > "$work/obs_001.h5"
printf 'run,energy\n1,12.5\n2,13.1\n' > "$work/summary.csv"
didfs upload "$work/obs_001.h5" "$work/summary.csv" --rse XRD1 --dataset user.root:notebook
didfs list-file-replicas km3net:run42

step "the replication service"
# the binary itself in the background, not the shell function: $! must be
# the daemon's pid (a function would run in a subshell whose pid $! names,
# and killing it would leave the daemon running after the script)
"$repo/build/tools/didfs" daemon all --sleep 1 > "$work/daemon.log" 2>&1 &
daemon_pid=$!

step "mount the catalog"
mkdir -p "$mnt"
didfs mount "$mnt" --cache-dir "$work/cache" --cache-size 1G
ls -l "$mnt"
ls -l "$mnt/km3net"
ls -lR "$mnt/user.root/notebook"
cmp "$work/obs_001.h5" "$mnt/user.root/notebook/obs_001.h5"
echo "obs_001.h5 read through the mount matches the original"
head -3 "$mnt/user.root/notebook/summary.csv"
getfattr -d -m 'user.rucio' "$mnt/user.root/notebook/obs_001.h5" | grep -v '^$' || true

step "ask for two copies on tier-1 storage with setfattr"
setfattr -n user.rucio.rule -v "2 tier=1" "$mnt/km3net/run42"
getfattr -n user.rucio.rules --only-values "$mnt/km3net/run42"; echo
for i in $(seq 1 120); do
	state=$(getfattr -n user.rucio.state --only-values "$mnt/km3net/run42" 2>/dev/null || true)
	echo "user.rucio.state = $state"
	[ "$state" = OK ] && break
	sleep 1
done
[ "$state" = OK ] || { echo "the rule did not reach OK; daemon log:"; tail -30 "$work/daemon.log"; exit 1; }
didfs list-file-replicas km3net:run42
getfattr -n user.rucio.replicas --only-values "$mnt/km3net/run42/run42_file_01.dat"
echo
echo "quickstart done: catalog $DIDFS_CATALOG, mounted at $mnt until this script exits"
