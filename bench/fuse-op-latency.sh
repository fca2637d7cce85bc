#!/bin/sh
# Per-opcode latency of FUSE requests as the kernel sees them (tracepoints fuse:fuse_request_send
# → fuse:fuse_request_end: queueing, the daemon's work and its reply), while a command runs on a
# fresh mount of the bench's full fixture. Root, perf(1), under the FUSE lock, after one
# `npm run bench` (fixture cache):
#   flock /tmp/layerfs-fuse.lock bench/fuse-op-latency.sh layerfs|fuse-overlayfs 'COMMAND using $MNT'
#   e.g. ... layerfs 'mkdir $MNT/u && tar -xf /var/tmp/layerfs-bench/fixture-full-v4/untar.tar -C $MNT/u'
set -e
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${LAYERFS_BENCH_CACHE:-/var/tmp/layerfs-bench}
FX=$CACHE/fixture-full-v4; SYS=$1; shift
B=$CACHE/op-latency/$SYS
rm -rf "$B"; mkdir -p "$B/upper" "$B/mnt" "$B/work"
if [ "$SYS" = fuse-overlayfs ]; then
  fuse-overlayfs -o "lowerdir=$FX/top:$FX/middle:$FX/base,upperdir=$B/upper,workdir=$B/work" "$B/mnt" 2>/dev/null
else
  node "$HERE/../dist/bin/layerfs.js" mount --transport native -o "lowerdir=$FX/top:$FX/middle:$FX/base,upperdir=$B/upper" none "$B/mnt"
fi
export MNT="$B/mnt"
T0=$(date +%s%N)
perf record -q -e fuse:fuse_request_send -e fuse:fuse_request_end -a -o "$B/perf.data" -- sh -c "$*" >/dev/null
T1=$(date +%s%N)
umount "$B/mnt"
echo "$SYS: $(( (T1 - T0) / 1000000 )) ms under perf"
perf script -i "$B/perf.data" 2>/dev/null | python3 -c '
import re, sys
sent, lat = {}, {}
for line in sys.stdin:
    m = re.search(r" (\d+\.\d+): +fuse:fuse_request_send: connection \d+ req (\d+) opcode \d+ \((\w+)\)", line)
    if m:
        sent[m.group(2)] = (float(m.group(1)), m.group(3)); continue
    m = re.search(r" (\d+\.\d+): +fuse:fuse_request_end: connection \d+ req (\d+)", line)
    if m and m.group(2) in sent:
        t0, op = sent.pop(m.group(2)); lat.setdefault(op, []).append((float(m.group(1)) - t0) * 1e6)
print("| request | count | median µs | p90 µs | total ms |\n|---|--:|--:|--:|--:|")
for op, v in sorted(lat.items(), key=lambda kv: -sum(kv[1])):
    v.sort(); print(f"| {op} | {len(v)} | {v[len(v)//2]:.0f} | {v[int(len(v)*.9)]:.0f} | {sum(v)/1000:.0f} |")
'
