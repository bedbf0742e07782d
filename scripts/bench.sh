#!/usr/bin/env bash
# Whole-path benchmark: Trove vs restic on the same source tree, same run.
#
#   scripts/bench.sh [SOURCE_DIR]
#
# Without SOURCE_DIR, assembles a ~1 GiB mixed tree of real files in /tmp
# (parts of /usr/share, the Rust toolchain's docs and libraries).
# Phases, each measured with GNU time (/usr/bin/time -v):
#   (a) first backup  (b) unchanged re-run  (c) restore
# Trove backs up to six folder peers with 4+2 redundancy; two peer folders
# are deleted before its restore. restic backs up to a local repository.
# Both restores are compared with the source (diff -r).
# Prints a table and writes bench-results.json into the current directory.
#
# Environment: CARGO_TARGET_DIR (where trove is built), TROVE_BIN (use this
# binary instead of building), BENCH_TMP (parent of the work dir, default /tmp),
# BENCH_KEEP=1 (keep the work dir: source, trove home, peers, restic repo).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT_JSON="$PWD/bench-results.json"
SOURCE_ARG="${1:-}"

say() { printf '%s\n' "$*" >&2; }
die() { say "bench: $*"; exit 1; }

# ---------------------------------------------------------------- tools ----
APT_UPDATED=0
apt_install() {
    command -v apt-get >/dev/null || die "need $* but apt-get is not available"
    [ "$(id -u)" = 0 ] || die "need $* installed (or run as root to install it)"
    if [ "$APT_UPDATED" = 0 ]; then
        say "apt-get update..."
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null || die "apt-get update failed"
        APT_UPDATED=1
    fi
    say "apt-get install $*..."
    local log
    log="$(mktemp)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >"$log" 2>&1 ||
        { cat "$log" >&2; rm -f "$log"; die "apt-get install $* failed"; }
    rm -f "$log"
}
command -v restic >/dev/null || apt_install restic
[ -x /usr/bin/time ] && /usr/bin/time -v true >/dev/null 2>&1 || apt_install time
command -v diff >/dev/null || apt_install diffutils

# ---------------------------------------------------------------- build ----
if [ -n "${TROVE_BIN:-}" ]; then
    TROVE="$TROVE_BIN"
else
    say "building trove (release)..."
    (cd "$ROOT" && cargo build --release -q -p trove-cli) >&2
    TROVE="${CARGO_TARGET_DIR:-$ROOT/target}/release/trove"
fi
[ -x "$TROVE" ] || die "no trove binary at $TROVE"
case "$TROVE" in /*) ;; *) TROVE="$PWD/$TROVE" ;; esac

# ------------------------------------------------------------- work dir ----
WORK="$(mktemp -d "${BENCH_TMP:-/tmp}/trove-bench.XXXXXX")"
cleanup() {
    if [ "${BENCH_KEEP:-0}" = 1 ]; then
        say "kept the work folder $WORK (BENCH_KEEP=1)"
        return
    fi
    # Restored files may be read-only; make them writable before removing.
    chmod -R u+w "$WORK" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --------------------------------------------------------------- source ----
SIZE_TOTAL=0
# copy_until SRC DEST LIMIT_BYTES: copy SRC's entries (cp -a) into DEST while
# the running total stays under LIMIT; descend into a folder too big to take
# whole.
copy_until() {
    local src="$1" dest="$2" limit="$3" e size
    mkdir -p "$dest"
    for e in "$src"/* "$src"/.[!.]*; do
        [ -e "$e" ] || [ -L "$e" ] || continue
        [ "$SIZE_TOTAL" -lt "$limit" ] || return 0
        size=$(du -sb "$e" 2>/dev/null | cut -f1) || continue
        [ -n "$size" ] || continue
        if [ $((SIZE_TOTAL + size)) -le "$limit" ]; then
            cp -a "$e" "$dest/" 2>/dev/null || true
            SIZE_TOTAL=$((SIZE_TOTAL + size))
        elif [ -d "$e" ] && [ ! -L "$e" ]; then
            copy_until "$e" "$dest/$(basename "$e")" "$limit"
        fi
    done
}

if [ -n "$SOURCE_ARG" ]; then
    [ -d "$SOURCE_ARG" ] || die "$SOURCE_ARG is not a folder"
    SRC="$(cd "$SOURCE_ARG" && pwd -P)"
    GENERATED=false
else
    SRC="$WORK/src"
    GENERATED=true
    say "assembling a ~1 GiB source tree in $SRC..."
    MiB=$((1024 * 1024))
    SYSROOT="$(rustc --print sysroot 2>/dev/null || true)"
    # /usr/share, the listed parts first, then the rest, up to 700 MiB.
    FIRST="doc locale man icons zoneinfo fonts i18n vim perl java mime X11 perl5
        python-wheels tcltk postgresql groff xml iso-codes info javascript misc
        common-licenses terminfo"
    for d in $FIRST; do
        [ -d "/usr/share/$d" ] || continue
        copy_until "/usr/share/$d" "$SRC/usr-share/$d" $((700 * MiB))
    done
    for e in /usr/share/*; do
        case " $(echo $FIRST) " in *" $(basename "$e") "*) continue ;; esac
        [ -d "$e" ] && [ ! -L "$e" ] || continue
        copy_until "$e" "$SRC/usr-share/$(basename "$e")" $((700 * MiB))
    done
    if [ -n "$SYSROOT" ] && [ -d "$SYSROOT/share/doc" ]; then
        copy_until "$SYSROOT/share/doc" "$SRC/rust-doc" $((880 * MiB))
    fi
    if [ -n "$SYSROOT" ] && [ -d "$SYSROOT/lib" ]; then
        copy_until "$SYSROOT/lib" "$SRC/rust-lib" $((1024 * MiB))
    fi
    # Pad with real binaries if the toolchain was missing or small.
    [ "$SIZE_TOTAL" -lt $((900 * MiB)) ] && copy_until /usr/lib "$SRC/usr-lib" $((1024 * MiB))
    # Remove anything diff cannot compare as a plain file (sockets, fifos, devices).
    find "$SRC" \( -type s -o -type p -o -type b -o -type c \) -delete 2>/dev/null || true
fi
SRC_FILES=$(find "$SRC" -type f | wc -l)
SRC_BYTES=$(find "$SRC" -type f -printf '%s\n' | awk '{s += $1} END {printf "%d", s}')
SRC_DIRS=$(find "$SRC" -type d | wc -l)
say "source: $SRC: $SRC_FILES files, $SRC_DIRS folders, $(awk -v b="$SRC_BYTES" 'BEGIN {printf "%.1f MB (%.1f MiB)", b/1e6, b/1048576}')"
[ "$SRC_BYTES" -gt 0 ] || die "source has no data"

# --------------------------------------------------------------- caches ----
CACHE=cold
sync
if ! (echo 3 >/proc/sys/vm/drop_caches) 2>/dev/null; then
    CACHE=warm
    say "cannot drop the page cache: both tools run with a warm cache (source pre-read before each backup)"
fi
prepare_phase() { # $1: backup|restore
    sync
    if [ "$CACHE" = cold ]; then
        echo 3 >/proc/sys/vm/drop_caches
    elif [ "$1" = backup ]; then
        find "$SRC" -type f -exec cat {} + >/dev/null 2>&1 || true
    fi
}

# -------------------------------------------------------------- measure ----
# measure NAME CMD...: runs CMD under GNU time; stdout to $WORK/NAME.out,
# stderr to $WORK/NAME.err; sets M_SEC M_RSS_MIB M_CPU M_RC.
measure() {
    local name="$1"
    shift
    local tf="$WORK/$name.time"
    M_RC=0
    /usr/bin/time -v -o "$tf" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" || M_RC=$?
    M_SEC=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): *//p' "$tf" |
        awk -F: '{ if (NF == 3) s = $1 * 3600 + $2 * 60 + $3; else s = $1 * 60 + $2; printf "%.2f", s }')
    M_RSS_MIB=$(sed -n 's/.*Maximum resident set size (kbytes): *//p' "$tf" | awk '{printf "%.1f", $1 / 1024}')
    M_CPU=$(awk -F': *' '/User time \(seconds\)/ {u = $2} /System time \(seconds\)/ {s = $2} END {printf "%.2f", u + s}' "$tf")
    if [ "$M_RC" != 0 ]; then
        say "  $name exited with status $M_RC; last lines of its stderr:"
        tail -n 5 "$WORK/$name.err" | sed 's/^/    /' >&2
    fi
    say "  $name: ${M_SEC}s, peak RSS ${M_RSS_MIB} MiB, CPU ${M_CPU}s, exit $M_RC"
}

declare -A R # results: R[tool.phase.field]
record() { # tool phase
    R[$1.$2.sec]=$M_SEC
    R[$1.$2.rss]=$M_RSS_MIB
    R[$1.$2.cpu]=$M_CPU
    R[$1.$2.rc]=$M_RC
}

json_field() { # FILE KEY: first string or number value of "KEY" in FILE
    sed -n "s/.*\"$2\": *\"\{0,1\}\([^\",}]*\)\"\{0,1\}.*/\1/p" "$1" | head -n 1
}

# ---------------------------------------------------------------- setup ----
export TROVE_HOME="$WORK/trove-home" TROVE_PASSPHRASE="bench-passphrase"
export RESTIC_REPOSITORY="$WORK/restic-repo" RESTIC_PASSWORD="bench-passphrase"
export RESTIC_CACHE_DIR="$WORK/restic-cache"
unset TROVE_LOG

say "setting up trove (six folder peers, 4+2) and restic..."
"$TROVE" --json init >/dev/null
for i in 1 2 3 4 5 6; do
    mkdir -p "$WORK/peers/p$i"
    "$TROVE" --json peer add "p$i" "dir:$WORK/peers/p$i" >/dev/null
done
"$TROVE" --json container create bench "$SRC" --redundancy 4+2 >/dev/null
restic init >/dev/null 2>"$WORK/restic-init.err" || { cat "$WORK/restic-init.err" >&2; die "restic init failed"; }
TROVE_VERSION=$("$TROVE" --version | awk '{print $NF}')
RESTIC_VERSION=$(restic version | awk '{print $2}')
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# --------------------------------------------------------------- phases ----
say "(a) first backup"
prepare_phase backup
measure trove-a "$TROVE" --json backup bench
record trove a
SNAP_A=$(json_field "$WORK/trove-a.out" snapshot)
prepare_phase backup
measure restic-a restic backup --json "$SRC"
record restic a
RSNAP_A=$(grep '"message_type":"summary"' "$WORK/restic-a.out" | sed -n 's/.*"snapshot_id":"\([0-9a-f]*\)".*/\1/p' | tail -n 1)

TROVE_STORED=$(du -sb "$WORK/peers" | cut -f1)
RESTIC_STORED=$(du -sb "$RESTIC_REPOSITORY" | cut -f1)

say "(b) unchanged re-run"
prepare_phase backup
measure trove-b "$TROVE" --json backup bench
record trove b
SNAP_B=$(json_field "$WORK/trove-b.out" snapshot)
TROVE_B_READ=$(json_field "$WORK/trove-b.out" bytes_read)
prepare_phase backup
measure restic-b restic backup --json "$SRC"
record restic b
RSNAP_B=$(grep '"message_type":"summary"' "$WORK/restic-b.out" | sed -n 's/.*"snapshot_id":"\([0-9a-f]*\)".*/\1/p' | tail -n 1)
say "  trove snapshots: ${SNAP_A:-?} then ${SNAP_B:-?} (re-run read ${TROVE_B_READ:-?} bytes); restic: ${RSNAP_A:-?} then ${RSNAP_B:-?}"

say "(c) restore (trove: after deleting peer folders p1 and p2)"
rm -rf "$WORK/peers/p1" "$WORK/peers/p2"
prepare_phase restore
measure trove-c "$TROVE" --json restore bench:latest --target "$WORK/restore-trove"
record trove c
SNAP_C=$(json_field "$WORK/trove-c.out" snapshot)
[ -z "$SNAP_B" ] || [ "$SNAP_C" = "$SNAP_B" ] || say "  warning: trove restored snapshot $SNAP_C, expected $SNAP_B"
prepare_phase restore
measure restic-c restic restore latest --target "$WORK/restore-restic"
record restic c
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

say "verifying restores against the source..."
verify() { # RESTORED_ROOT
    if [ -d "$1" ] && diff -r -q --no-dereference "$SRC" "$1" >"$WORK/diff.txt" 2>&1; then
        echo OK
    else
        head -n 5 "$WORK/diff.txt" | sed 's/^/    /' >&2
        echo FAIL
    fi
}
TROVE_VERIFY=$(verify "$WORK/restore-trove/$(basename "$SRC")")
RESTIC_VERIFY=$(verify "$WORK/restore-restic$SRC")
[ "${R[trove.c.rc]}" = 0 ] || TROVE_VERIFY=FAIL
[ "${R[restic.c.rc]}" = 0 ] || RESTIC_VERIFY=FAIL

# ---------------------------------------------------------------- report ----
mbps() { awk -v b="$SRC_BYTES" -v s="$1" 'BEGIN { if (s > 0) printf "%.1f", b / 1e6 / s; else printf "null" }'; }
ratio() { awk -v t="$1" -v r="$2" 'BEGIN { if (r > 0) printf "%.2f", t / r; else printf "null" }'; }
PHASES=(a b c)
declare -A LABEL=([a]="first backup" [b]="unchanged re-run" [c]="restore")
declare -A KEY=([a]="first_backup" [b]="unchanged_rerun" [c]="restore")
LABEL[c]="restore (trove: 2 peers lost)"

echo
echo "Trove $TROVE_VERSION vs restic $RESTIC_VERSION | source: $SRC_FILES files, $(awk -v b="$SRC_BYTES" 'BEGIN {printf "%.1f MB", b/1e6}') | $CACHE cache | $(nproc) cores, load $LOAD_START -> $LOAD_END"
printf '%-30s | %8s %8s %8s | %8s %8s %8s | %s\n' "phase" "trove s" "MB/s" "RSS MiB" "restic s" "MB/s" "RSS MiB" "time ratio trove/restic"
printf -- '%.0s-' {1..112}
echo
for p in "${PHASES[@]}"; do
    printf '%-30s | %8s %8s %8s | %8s %8s %8s | %s\n' "${LABEL[$p]}" \
        "${R[trove.$p.sec]}" "$(mbps "${R[trove.$p.sec]}")" "${R[trove.$p.rss]}" \
        "${R[restic.$p.sec]}" "$(mbps "${R[restic.$p.sec]}")" "${R[restic.$p.rss]}" \
        "$(ratio "${R[trove.$p.sec]}" "${R[restic.$p.sec]}")x"
done
echo "CPU seconds (user+sys): trove ${R[trove.a.cpu]} / ${R[trove.b.cpu]} / ${R[trove.c.cpu]}, restic ${R[restic.a.cpu]} / ${R[restic.b.cpu]} / ${R[restic.c.cpu]} (a / b / c)"
echo "stored after first backup: trove $(awk -v b="$TROVE_STORED" 'BEGIN {printf "%.1f MB", b/1e6}') over 6 peers (4+2), restic $(awk -v b="$RESTIC_STORED" 'BEGIN {printf "%.1f MB", b/1e6}')"
echo "restore verified against source: trove $TROVE_VERIFY, restic $RESTIC_VERIFY"
for t in trove restic; do
    for p in "${PHASES[@]}"; do
        [ "${R[$t.$p.rc]}" = 0 ] || echo "NOTE: $t phase ${KEY[$p]} exited with status ${R[$t.$p.rc]}"
    done
done

{
    echo "{"
    echo "  \"date\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\","
    echo "  \"trove_version\": \"$TROVE_VERSION\","
    echo "  \"restic_version\": \"$RESTIC_VERSION\","
    echo "  \"cache\": \"$CACHE\","
    echo "  \"cores\": $(nproc),"
    echo "  \"load_start\": \"$LOAD_START\","
    echo "  \"load_end\": \"$LOAD_END\","
    echo "  \"source\": {\"path\": \"$SRC\", \"generated\": $GENERATED, \"files\": $SRC_FILES, \"dirs\": $SRC_DIRS, \"bytes\": $SRC_BYTES},"
    echo "  \"stored_bytes\": {\"trove\": $TROVE_STORED, \"restic\": $RESTIC_STORED},"
    echo "  \"snapshots\": {\"trove\": [\"$SNAP_A\", \"$SNAP_B\"], \"restic\": [\"$RSNAP_A\", \"$RSNAP_B\"]},"
    echo "  \"verify\": {\"trove\": \"$TROVE_VERIFY\", \"restic\": \"$RESTIC_VERIFY\"},"
    echo "  \"phases\": ["
    sep=""
    for p in "${PHASES[@]}"; do
        printf '%s    {"phase": "%s",\n' "$sep" "${KEY[$p]}"
        for t in trove restic; do
            printf '     "%s": {"seconds": %s, "mb_per_s": %s, "peak_rss_mib": %s, "cpu_seconds": %s, "exit_code": %s},\n' \
                "$t" "${R[$t.$p.sec]}" "$(mbps "${R[$t.$p.sec]}")" "${R[$t.$p.rss]}" "${R[$t.$p.cpu]}" "${R[$t.$p.rc]}"
        done
        printf '     "time_ratio_trove_over_restic": %s}' "$(ratio "${R[trove.$p.sec]}" "${R[restic.$p.sec]}")"
        sep=$',\n'
    done
    echo
    echo "  ]"
    echo "}"
} >"$OUT_JSON"
say "wrote $OUT_JSON"
[ "$TROVE_VERIFY" = OK ] && [ "$RESTIC_VERIFY" = OK ]
