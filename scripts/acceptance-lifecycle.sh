#!/usr/bin/env bash
# Issue 10's acceptance, with the release binary and real folder peers:
#   1. seven folder peers, 4+2, a real tree (default /usr/share/doc); four
#      snapshots; `forget --keep-last 2 --prune`; both kept snapshots restore
#      exactly; a prune next to a running backup and a prune killed with -9
#      lose nothing (`check --read-data`);
#   2. a dead disk removed with `peer remove`, a fragment flipped and one
#      deleted, `repair`, `check --read-data`; two more peers vanish and the
#      restore is still exact.
# (Part 3, undelete through three node processes, is the end-to-end test
# `e2e::undelete::an_attacker_forgets_prunes_and_wipes_then_the_owner_recovers_and_undeletes`.)
#
#   scripts/acceptance-lifecycle.sh [WORKDIR] [SOURCE_TREE]
set -euo pipefail
W=${1:-/tmp/trove-acceptance}
SRC_TREE=${2:-/usr/share/doc}
. "$(dirname "$0")/acceptance-lib.sh"

seven_peers_over_tree
echo

backup() { $B backup data --json | jq_ 'd["snapshot"]'; }
s1=$(backup)
# Snapshot 2: a third of the tree gone, 20 MB of new data.
find "$W/src/tree" -mindepth 1 -maxdepth 1 -type d | sort | awk 'NR % 3 == 0' | xargs rm -rf
head -c 20000000 /dev/urandom >"$W/src/new.bin"
s2=$(backup)
# Snapshot 3: the new data replaced.
head -c 20000000 /dev/urandom >"$W/src/new.bin"
s3=$(backup)
cp -a "$W/src" "$W/expect3"
# Snapshot 4: a few files changed.
find "$W/src/tree" -type f | sort | awk 'NR % 50 == 0' | while read -r f; do echo changed >>"$f"; done
s4=$(backup)
cp -a "$W/src" "$W/expect4"
before=$(du -sb "$W/peers" | cut -f1)

t=$(now)
$B forget data --keep-last 2 --prune --json >"$W/forget.json"
echo "forget --keep-last 2 --prune: $(took "$t") s; forgot $(jq_ 'len(d["forget"])' <"$W/forget.json"), fragment bytes freed $(jq_ 'd["prune"]["fragment_bytes_removed"]' <"$W/forget.json"), packs deleted $(jq_ 'd["prune"]["packs_deleted"]' <"$W/forget.json"), repacked $(jq_ 'd["prune"]["packs_repacked"]' <"$W/forget.json")"
# Folder peers keep what prune deletes in trash/ until emptied.
live=$(du -sb --exclude=trash "$W/peers" | cut -f1)
echo "peer folders: $before bytes before, $live bytes outside trash/ after"
for pair in "$s3:expect3" "$s4:expect4"; do
  id=${pair%%:*} exp=${pair##*:}
  rm -rf "$W/r"
  $B restore "${id:0:12}" --target "$W/r" >/dev/null
  same "$W/$exp" "$W/r/src"
done
echo "both kept snapshots restore exactly"

# A prune next to a running backup.
head -c 30000000 /dev/urandom >"$W/src/racing.bin"
$B forget data "${s3:0:12}" >/dev/null
$B backup data --json >"$W/race-backup.json" &
bp=$!
sleep 0.3
t=$(now)
$B prune data --wait 5m --json >"$W/race-prune.json"
wait $bp
echo "prune beside a running backup: both exit 0 (prune $(took "$t") s, waited for the backup)"
cp -a "$W/src" "$W/expect5"
$B check --read-data --json >"$W/check1.json"
echo "check --read-data: $(jq_ 'len(d["problems"])' <"$W/check1.json") problems"

# A prune killed with -9, at a random point, five times.
for k in 1 2 3 4 5; do
  echo "k$k" >>"$W/src/racing.bin"
  $B backup data >/dev/null
  $B forget data --keep-last 1 >/dev/null
  $B prune data --max-unused 0 >/dev/null 2>&1 &
  pp=$!
  sleep "0.$((RANDOM % 9 + 1))"
  kill -9 $pp 2>/dev/null || true
  wait $pp 2>/dev/null || true
done
$B prune data --max-unused 0 --json >"$W/prune-after-kill.json"
$B check --read-data --json >"$W/check2.json"
echo "after 5 kill -9 of prune and one prune: check --read-data: $(jq_ 'len(d["problems"])' <"$W/check2.json") problems"
rm -rf "$W/r"
$B restore data:latest --target "$W/r" >/dev/null
same "$W/src" "$W/r/src"
echo "latest restores exactly"

# 2. A dead disk, a flipped fragment, a deleted one.
rm -rf "$W/peers/p7"
$B peer remove p7 --json >"$W/remove.json"
f1=$(find "$W/peers/p1/fragments" -type f | head -1)
python3 - "$f1" <<'EOF'
import sys
p = sys.argv[1]
b = bytearray(open(p, 'rb').read())
b[len(b) // 2] ^= 0x40
open(p, 'wb').write(b)
EOF
f2=$(find "$W/peers/p2/fragments" -type f | head -1)
rm -f "$f2"
t=$(now)
$B repair --json >"$W/repair.json"
echo "repair: exit 0 in $(took "$t") s; $(jq_ 'd["packs_repaired"]' <"$W/repair.json") packs repaired, $(jq_ 'd["fragments_rebuilt"]' <"$W/repair.json") fragments rebuilt, read $(jq_ 'd["bytes_read"]' <"$W/repair.json") bytes, wrote $(jq_ 'd["bytes_written"]' <"$W/repair.json") bytes, full redundancy $(jq_ 'd["full_redundancy"]' <"$W/repair.json")"
$B check --read-data --json >"$W/check3.json"
echo "check --read-data after repair: $(jq_ 'len(d["problems"])' <"$W/check3.json") problems"
mv "$W/peers/p3" "$W/p3-gone"
mv "$W/peers/p4" "$W/p4-gone"
rm -rf "$W/r"
$B restore data:latest --target "$W/r" >/dev/null 2>&1
same "$W/src" "$W/r/src"
echo "two more peers gone: latest still restores exactly"
echo ACCEPTANCE-OK
