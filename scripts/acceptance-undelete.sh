#!/usr/bin/env bash
# Issue 10's acceptance, part 3, with the release binary: three `trove node
# run` processes on 127.0.0.1 (2+1); an attacker holding the key forgets
# and prunes the history and wipes the home; the owner recovers from the 24
# words and `trove undelete` brings the old snapshot back, restored exactly.
#
#   scripts/acceptance-undelete.sh [WORKDIR] [SOURCE_TREE]
set -euo pipefail
W=${1:-/tmp/trove-acceptance-undelete}
SRC_TREE=${2:-/usr/share/doc}
. "$(dirname "$0")/acceptance-lib.sh"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

$B init --json >"$W/init.json"
jq_ 'd["phrase"]' <"$W/init.json" >"$W/phrase.txt"
owner=$($B whoami --json | jq_ 'd["owner_id"]')
for i in 1 2 3; do
  d=$W/nodes/n$i
  mkdir -p "$d"
  port=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  $B node run --data "$d" --listen "127.0.0.1:$port" --network direct --grace 3600 >"$W/n$i.out" 2>"$W/n$i.log" &
  pids+=($!)
  for _ in $(seq 300); do [ -f "$d/ticket" ] && break; sleep 0.1; done
  $B node grant "$owner" --quota 2G --data "$d" >/dev/null
done
ticket() { $B node ticket --data "$W/nodes/n$1" --json | jq_ 'd["ticket"]'; }
for i in 1 2 3; do $B peer add "n$i" "$(ticket $i)" >/dev/null; done
mkdir -p "$W/src"
cp -a "$SRC_TREE" "$W/src/tree"
$B container create data "$W/src" --redundancy 2+1 >/dev/null
echo "source: $(du -sh "$W/src" | cut -f1), three node processes, 2+1"
t=$(now)
old=$($B backup data --json | jq_ 'd["snapshot"]')
echo "snapshot 1 (${old:0:8}): $(took "$t") s"
cp -a "$W/src" "$W/expect-old"
find "$W/src/tree" -mindepth 1 -maxdepth 1 -type d | sort | awk 'NR % 2 == 0' | xargs rm -rf
echo "written later" >"$W/src/later.txt"
new=$($B backup data --json | jq_ 'd["snapshot"]')

# The attacker, with the key: forget all but the newest, prune, wipe the home.
t=$(now)
$B forget data --keep-last 1 --prune --json >"$W/attack.json"
echo "attacker: forget --keep-last 1 --prune in $(took "$t") s; forgot $(jq_ '[r["short_id"] for r in d["forget"]]' <"$W/attack.json"), deleted $(jq_ 'd["prune"]["fragment_bytes_removed"]' <"$W/attack.json") bytes of fragments"
rm -rf "$W/home"

# The owner: the 24 words and one node's ticket; sync finds the others.
t=$(now)
$B recover --phrase-file "$W/phrase.txt" --json >/dev/null
$B peer add found "$(ticket 1)" >/dev/null
$B sync --json >"$W/sync.json"
echo "owner: recover + sync in $(took "$t") s; snapshots found: $(jq_ 'd["snapshots"]' <"$W/sync.json") (the forgotten one stays forgotten); peers now: $($B peer list --json | jq_ 'len(d)')"
$B undelete data --json >"$W/list.json"
echo "undelete lists: $(jq_ '[s["short_id"] for s in d["snapshots"]]' <"$W/list.json")"
t=$(now)
$B undelete data "${old:0:12}" --json >"$W/undelete.json"
echo "undelete ${old:0:8}: $(took "$t") s; $(jq_ 'd["fragments_undeleted"]' <"$W/undelete.json") fragments back from the trash, $(jq_ 'd["packs_restored"]' <"$W/undelete.json") packs recorded again, missing: $(jq_ 'len(d["missing"])' <"$W/undelete.json")"
rm -rf "$W/r"
t=$(now)
$B restore "${old:0:12}" --target "$W/r" >/dev/null
diff -r --no-dereference "$W/expect-old" "$W/r/src" >/dev/null || { echo "DIFFERENT"; exit 1; }
echo "restore of the undeleted snapshot: exact ($(took "$t") s)"
$B check --read-data --json >"$W/check.json"
echo "check --read-data: $(jq_ 'len(d["problems"])' <"$W/check.json") problems"
echo ACCEPTANCE-OK
