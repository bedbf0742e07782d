#!/bin/sh
# Run one fuzz target for a stated time with the limits used for the
# results in README.md. One fuzzer at a time: each is one process on one core.
#
#   fuzz/fuzz.sh TARGET [SECONDS] [extra libFuzzer flags...]
#
# New inputs go to fuzz/corpus-work/TARGET (not committed); the committed,
# minimized corpus and the crash regressions are read as seeds.
set -eu
cd "$(dirname "$0")/.."
target=$1
secs=${2:-600}
shift $(( $# < 2 ? $# : 2 ))
dirs="fuzz/corpus-work/$target fuzz/corpus/$target"
[ -d "fuzz/regressions/$target" ] && dirs="$dirs fuzz/regressions/$target"
mkdir -p "fuzz/corpus-work/$target" "fuzz/corpus/$target"
# -a: debug assertions and overflow checks; ASan (the default sanitizer)
# makes -malloc_limit_mb catch any single allocation of 256 MiB or more.
# shellcheck disable=SC2086
exec cargo +nightly fuzz run -a "$target" $dirs -- \
    -max_total_time="$secs" -rss_limit_mb=512 -malloc_limit_mb=256 -timeout=10 \
    -max_len=4096 -print_final_stats=1 "$@"
