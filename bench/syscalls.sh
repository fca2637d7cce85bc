#!/bin/bash
# Syscalls per operation in the daemon: mounts layerfs and fuse-overlayfs on the quick fixture
# (run `npm run bench -- --quick` once first), attaches `strace -c -f` to the daemon for each
# workload, and prints calls per op. Root; takes the shared FUSE lock itself.
#   bash bench/syscalls.sh [layerfs|fuse-overlayfs ...]
set -u
CACHE=${LAYERFS_BENCH_CACHE:-/var/tmp/layerfs-bench}
FX=$(ls -d "$CACHE"/fixture-quick-v* 2>/dev/null | tail -1)
[ -n "$FX" ] || { echo "no quick fixture in $CACHE: run npm run bench -- --quick first" >&2; exit 1; }
PROBE=$CACHE/probe
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=$CACHE/syscalls
OUT=$ROOT/bench/results/syscalls.md
SYSTEMS=${*:-layerfs fuse-overlayfs}
command -v strace >/dev/null || { echo "strace missing: apt-get install strace" >&2; exit 1; }
mkdir -p "$ROOT/bench/results"
exec 9>/tmp/layerfs-fuse.lock
flock 9

DPID=
unmount_all() {
  if grep -q " $B/mnt " /proc/mounts; then
    node "$ROOT/dist/bin/layerfs.js" umount "$B/mnt" 2>/dev/null || fusermount3 -u "$B/mnt" 2>/dev/null || umount -l "$B/mnt"
  fi
  [ -n "$DPID" ] && { for _ in $(seq 50); do kill -0 "$DPID" 2>/dev/null || break; sleep 0.1; done; }
  DPID=
}
trap unmount_all EXIT

mount_sys() { # $1 = system
  rm -rf "$B"; mkdir -p "$B/upper" "$B/work" "$B/mnt"
  case $1 in
    layerfs)
      node "$ROOT/dist/bin/layerfs.js" mount -o "lowerdir=$FX/top:$FX/middle:$FX/base,upperdir=$B/upper" none "$B/mnt" || exit 1
      DPID=$(node -e 'const fs=require("fs");for(const f of fs.readdirSync("/run/layerfs"))if(f.endsWith(".json")){const r=JSON.parse(fs.readFileSync("/run/layerfs/"+f));if(r.mountpoint===process.argv[1])console.log(r.pid)}' "$B/mnt") ;;
    fuse-overlayfs)
      fuse-overlayfs -f -o "lowerdir=$FX/top:$FX/middle:$FX/base,upperdir=$B/upper,workdir=$B/work" "$B/mnt" & DPID=$!
      for _ in $(seq 100); do grep -q " $B/mnt " /proc/mounts && break; sleep 0.05; done ;;
  esac
}

# traced NAME N CMD...: runs CMD with strace -c on the daemon, prints the top calls per op.
traced() {
  local name=$1 n=$2; shift 2
  strace -c -f -p "$DPID" -o "$B/strace.txt" 2>/dev/null & local sp=$!
  sleep 0.5
  "$@" > /dev/null
  sleep 0.2
  kill -INT $sp; wait $sp 2>/dev/null
  local total list
  total=$(awk -v n="$n" '$NF=="total" { printf "%.1f", $4/n }' "$B/strace.txt")
  list=$(awk -v n="$n" '$1 ~ /^[0-9.]+$/ && $NF != "total" && $4/n >= 0.05 { printf "%s%s %.1f", sep, $NF, $4/n; sep=", " }' "$B/strace.txt")
  echo "| $SYS | $name | $total | $list |"
}

{
echo "| system | workload (per op) | syscalls/op | main calls/op (futex and epoll are the thread hop; read/writev on /dev/fuse are requests/replies) |"
echo "|---|---|--:|---|"
for SYS in $SYSTEMS; do
  mount_sys "$SYS"
  M=$B/mnt
  sed "s|^|$M|" "$FX/lists/existing.txt" > "$B/existing.txt"
  sed "s|^|$M|" "$FX/lists/negative.txt" > "$B/negative.txt"
  sed "s|^/$|$M|; t; s|^|$M|" "$FX/lists/dirs.txt" > "$B/dirs.txt"
  sync; echo 3 > /proc/sys/vm/drop_caches
  traced "lookup existing, cold" "$(wc -l < "$B/existing.txt")" "$PROBE" lstat "$B/existing.txt" 1 exist
  traced "negative lookup, first" "$(wc -l < "$B/negative.txt")" "$PROBE" lstat "$B/negative.txt" 1 enoent
  sync; echo 3 > /proc/sys/vm/drop_caches
  traced "readdir (per dir)" "$(wc -l < "$B/dirs.txt")" "$PROBE" readdir "$B/dirs.txt"
  traced "copy-up 4 MiB (per file)" 1 "$PROBE" copyup "$M/big/m4-0.bin"
  mkdir "$M/cu"
  traced "create+write+close+unlink (per file)" 1000 "$PROBE" createunlink "$M/cu" 1000
  unmount_all
done
} | tee "$OUT"
rm -rf "$B"
