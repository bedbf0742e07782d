# What the acceptance scripts share; sourced after they set W and SRC_TREE.
# Defines B (the release binary, built if missing), a fresh $W, the home
# and passphrase, and small helpers: now, took, jq_, same.
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
