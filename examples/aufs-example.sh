#!/bin/sh
# The aufs example: A (rw) over B (ro) at C. Run from the repository after `npm run build`.
set -eu
LAYERFS="node $(cd "$(dirname "$0")/.." && pwd)/dist/bin/layerfs.js"
dir=$(mktemp -d /tmp/layerfs-example.XXXXXX)
cd "$dir"
mkdir -p A B C; echo a>A/a; echo xA>A/x; echo b>B/b; echo xB>B/x
set -x
$LAYERFS mount A:B ./C
ls C
cat C/x
echo new > C/b
rm C/x
ls C
ls -a A
cat B/b A/b
$LAYERFS umount ./C
{ set +x; } 2>/dev/null
echo "(the branches are in $dir)"
