# What the acceptance scripts share; sourced after they set W and SRC_TREE.
# Defines B (the release binary, built if missing), a fresh $W, the home
# and passphrase, and small helpers: now, took, jq_, same, seven_peers_over_tree.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
B=$root/target/release/trove
[ -x "$B" ] || (cd "$root" && cargo build --release -q -p trove-cli)
rm -rf "$W"
mkdir -p "$W"
export TROVE_HOME=$W/home TROVE_PASSPHRASE=acceptance
now() { date +%s.%N; }
took() { python3 -c "print(f'{$(now) - $1:.1f}')"; }
jq_() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
same() { # same tree, bytes and modes
  diff -r --no-dereference "$1" "$2" >/dev/null || { echo "DIFFERENT: $1 vs $2"; exit 1; }
}
# init, seven folder peers p1..p7 on sites s1..s7, and container `data` at
# 4+2 over a copy of $SRC_TREE in $W/src/tree.
seven_peers_over_tree() {
  $B init --json >"$W/init.json"
  for i in 1 2 3 4 5 6 7; do $B peer add "p$i" "dir:$W/peers/p$i" --label "site=s$i" >/dev/null; done
  mkdir -p "$W/src"
  cp -a "$SRC_TREE" "$W/src/tree"
  $B container create data "$W/src" --redundancy 4+2 >/dev/null
  echo -n "source: $(du -sh "$W/src" | cut -f1), $(find "$W/src" -type f | wc -l) files"
}
