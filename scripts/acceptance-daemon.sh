#!/usr/bin/env bash
# Issue 11's acceptance, with the release binary, real folder peers and a real
# tree (default /usr/share/doc):
#   seven folder peers, 4+2,
#   `trove daemon --debounce 1s --max-delay 5s --audit-every 5s --peer-lost-after 15s`;
#   1. a new file is in `latest` within seconds (measured, five times);
#   2. a peer folder is deleted and, with no command, `status --json` shows it
#      `lost` and `packs_degraded` 0 (measured);
#   3. the daemon's idle CPU and RSS over a minute;
#   4. kill -9 mid-backup, restart: nothing lost (`check --read-data`, restore);
#   5. two more peers vanish: the restore is exact.
#
#   scripts/acceptance-daemon.sh [WORKDIR] [SOURCE_TREE]
set -euo pipefail
W=${1:-/tmp/trove-acceptance-daemon}
SRC_TREE=${2:-/usr/share/doc}
. "$(dirname "$0")/acceptance-lib.sh"
DAEMON_ARGS=(--debounce 1s --max-delay 5s --audit-every 5s --peer-lost-after 15s)
dpid=
start_daemon() {
  TROVE_LOG=info NO_COLOR=1 "$B" daemon "${DAEMON_ARGS[@]}" >>"$W/daemon.log" 2>&1 &
  dpid=$!
  until grep -q "trove daemon started" "$W/daemon.log"; do sleep 0.1; done
}
stop() { [ -n "$dpid" ] && kill "$dpid" 2>/dev/null && wait "$dpid" 2>/dev/null; dpid=; }
trap 'stop || true' EXIT
in_latest() { # the newest snapshot lists path $1
  "$B" ls data:latest --json 2>/dev/null | python3 -c "import json,sys; sys.exit(0 if any(e['path']=='$1' for e in json.load(sys.stdin)) else 1)"
}
snapshots() { "$B" snapshots --json | jq_ 'len(d)'; }

seven_peers_over_tree
echo "; daemon ${DAEMON_ARGS[*]}"

t=$(now)
start_daemon
until [ "$(snapshots)" -ge 1 ]; do sleep 0.5; done
echo "first snapshot (the start's rescan) after $(took "$t") s"

# 1. Write -> snapshot: polled with `snapshots` (index only, cheap), then
# the file is looked for in the new snapshot once (`ls` reads its trees
# from the peers, and holds the index meanwhile).
sleep 3
for n in 1 2 3 4 5; do
  before=$(snapshots)
  t=$(now)
  echo "note $n" >"$W/src/note-$n.txt"
  until [ "$(snapshots)" -gt "$before" ]; do sleep 0.1; done
  d=$(took "$t")
  in_latest "src/note-$n.txt" || { echo "note-$n.txt not in the new snapshot"; exit 1; }
  echo "write -> snapshot holding it: $d s (note-$n.txt)"
  sleep 2
done
grep -o "[0-9.]*s after the first change[^:]*" "$W/daemon.log" | tail -5 | sed 's/^/daemon log: backup started /'

# 3. Idle CPU and RSS (audits every 5 s continue).
sleep 5
ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$dpid/stat"; }
c0=$(cpu); t=$(now)
sleep 60
c1=$(cpu)
python3 -c "print(f'idle: CPU {($c1 - $c0) / $ticks / ($(now) - $t) * 100:.2f}% of one core over 60 s (12 audit rounds), RSS', '$(grep VmRSS /proc/$dpid/status | awk '{print $2, $3}')', 'peak', '$(grep VmHWM /proc/$dpid/status | awk '{print $2, $3}')')"

# 2. A peer folder deleted: lost after 15 s, repaired, no command.
held=$(find "$W/peers/p3/fragments" -type f | wc -l)
t=$(now)
rm -rf "$W/peers/p3"
while true; do
  "$B" status --json >"$W/status.json" || true
  ok=$(jq_ '[p["state"] for p in d["peers"] if p["name"]=="p3"][0]=="lost" and d["containers"][0]["packs_degraded"]==0' <"$W/status.json")
  [ "$ok" = True ] && break
  sleep 1
done
echo "p3 deleted ($held fragments) -> status: p3 lost, packs_degraded 0 after $(took "$t") s"
grep "repair: [0-9]* pack(s) repaired" "$W/daemon.log" | tail -1 | sed 's/.*repair: /daemon: repair: /'
jq_ '"status: " + ", ".join(c["name"] + ": " + str(c["packs_total"]) + " packs, " + str(c["packs_degraded"]) + " degraded, loss_probability_year " + format(c["loss_probability_year"], ".1e") for c in d["containers"])' <"$W/status.json"

# 4. kill -9 in the middle of a big backup, restart.
mkdir -p "$W/src/big"
for i in 1 2 3 4 5 6; do head -c 40000000 /dev/urandom >"$W/src/big/$i.bin"; done
before=$(find "$W/peers" -path '*/fragments/*' -type f | wc -l)
until [ "$(find "$W/peers" -path '*/fragments/*' -type f | wc -l)" -ge $((before + 20)) ]; do sleep 0.05; done
kill -9 "$dpid"; wait "$dpid" 2>/dev/null || true; dpid=
echo "daemon killed with -9 mid-backup ($(($(find "$W/peers" -path '*/fragments/*' -type f | wc -l) - before)) new fragment files on the peers)"
t=$(now)
start_daemon
for i in 1 2 3 4 5 6; do until in_latest "src/big/$i.bin"; do sleep 0.5; done; done
echo "restarted: every big file in latest after $(took "$t") s"
sleep 6
stop
# p3 is still configured (lost, nothing on it): check names it, and nothing else.
$B check --read-data --peer-lost-after 15s --json >"$W/check.json" || true
jq_ '"check --read-data: " + str(d["fragments_ok"]) + " of " + str(d["fragments"]) + " fragments intact, " + str(d["blobs_verified"]) + " blobs verified, " + str(d["packs_unrecoverable"]) + " packs unrecoverable; problems: " + str(d["problems"])' <"$W/check.json"
[ "$(jq_ 'd["fragments_ok"] == d["fragments"] and d["packs_unrecoverable"] == 0 and all("p3" in p for p in d["problems"])' <"$W/check.json")" = True ]

# 5. Two more peers vanish; the daemon's storm guard holds; the restore is exact.
start_daemon
rm -rf "$W/peers/p1" "$W/peers/p5"
sleep 8
grep -o "3 of 7 peers are unreachable at once[^;]*" "$W/daemon.log" | tail -1 | sed 's/^/daemon: /'
stop
rm -rf "$W/r"
$B restore data:latest --target "$W/r" --json >"$W/restore.json"
same "$W/src" "$W/r/src"
echo "p1 and p5 gone too: latest restores exactly ($(jq_ 'd["files"]' <"$W/restore.json") files)"
echo ACCEPTANCE-OK
