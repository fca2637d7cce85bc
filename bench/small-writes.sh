#!/bin/bash
# Small sequential writes into a new file (dd with 100-byte and 4 KiB blocks), through layerfs
# (default, and --writeback-cache), fuse-overlayfs and kernel overlayfs; the median of REPS runs
# per system, in ms. The time is dd's own (every write returns; the data may still be in the
# page cache: that is what the writeback cache buys). Root; takes the shared FUSE lock.
#   bench/small-writes.sh [REPS]
set -euo pipefail
REPS=${1:-5}
HERE=$(cd "$(dirname "$0")" && pwd)
CLI="$HERE/../dist/bin/layerfs.js"
T=$(mktemp -d /var/tmp/layerfs-small-writes.XXXXXX)
trap 'umount -l "$T/mnt" 2>/dev/null || true; rm -rf "$T"' EXIT
mkdir -p "$T"/{lo,mnt} && echo x > "$T/lo/x"

mountit() { # SYSTEM
  rm -rf "$T/up" "$T/work"; mkdir "$T/up" "$T/work"
  case $1 in
    layerfs) node "$CLI" mount "$T/up=rw:$T/lo=ro" "$T/mnt" ;;
    layerfs-writeback) node "$CLI" mount --writeback-cache "$T/up=rw:$T/lo=ro" "$T/mnt" ;;
    fuse-overlayfs) fuse-overlayfs -o "lowerdir=$T/lo,upperdir=$T/up,workdir=$T/work" "$T/mnt" 2>/dev/null ;;
    overlayfs) mount -t overlay overlay -o "lowerdir=$T/lo,upperdir=$T/up,workdir=$T/work" "$T/mnt" ;;
  esac
}
unmountit() { # SYSTEM
  case $1 in
    layerfs*) node "$CLI" umount "$T/mnt" ;;
    fuse-overlayfs) fusermount3 -u "$T/mnt" ;;
    overlayfs) umount "$T/mnt" ;;
  esac
}
ms() { # FILE BS COUNT: dd's time in ms
  local t0 t1
  sync; t0=$(date +%s%N)
  dd if=/dev/zero of="$T/mnt/$1" bs="$2" count="$3" status=none
  t1=$(date +%s%N); echo $(( (t1 - t0) / 1000000 ))
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

exec 9>/tmp/layerfs-fuse.lock; flock 9
echo "| system | 20,000 writes of 100 B (ms) | 2,000 writes of 4 KiB (ms) |"
echo "|---|--:|--:|"
declare -A small big
for rep in $(seq "$REPS"); do
  for sys in layerfs layerfs-writeback fuse-overlayfs overlayfs; do
    command -v fuse-overlayfs >/dev/null || [ "$sys" != fuse-overlayfs ] || continue
    mountit "$sys"
    small[$sys]+="$(ms a 100 20000) "
    big[$sys]+="$(ms b 4096 2000) "
    unmountit "$sys"
  done
done
for sys in layerfs layerfs-writeback fuse-overlayfs overlayfs; do
  [ -n "${small[$sys]:-}" ] || continue
  echo "| $sys | $(tr ' ' '\n' <<<"${small[$sys]}" | grep . | median) | $(tr ' ' '\n' <<<"${big[$sys]}" | grep . | median) |"
done
