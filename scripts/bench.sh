#!/usr/bin/env bash
# Whole-path benchmark: Trove vs restic on the same source tree, same run.
#
#   scripts/bench.sh [--many-files] [SOURCE_DIR]
#
# Without SOURCE_DIR, assembles a ~1 GiB mixed tree of real files in /tmp
# (parts of /usr/share, the Rust toolchain's docs and libraries); with
# --many-files, generates 200,000 small text files (0.2-6 KiB) in 2,000
# folders instead.
# Phases, each measured with GNU time (/usr/bin/time -v):
#   (a) first backup  (b) unchanged re-run  (d) one file changed, backed up
#   (e) `trove daemon` running on the folder peers' home: `trove backup`
#       unchanged, one file changed, put back; each asks the daemon, whose
#       watcher knows what changed (compared with restic's (b) and (d))
#   (c) restore (of the last snapshot)
# Then a profile run: a first backup into a fresh trove home with six new
# folder peers, `trove backup --profile`, whose per-stage table and pipeline
# limit are printed below the main table.
# Three runs per phase, one after the other:
#   trove folders: six folder peers with 4+2 redundancy; two peer folders are
#     deleted before its restore;
#   trove nodes: a separate trove home backing up to six node peers, each a
#     `trove node run` process on 127.0.0.1 (QUIC, --network direct, no
#     relays) with its own data folder, 4+2; two node processes are killed
#     (SIGKILL) before its restore;
#   restic: a local repository.
# All three restores are compared with the source (diff -r). Time, MB/s, CPU
# and peak RSS are the owner process's (trove / restic); for the node run the
# node processes' CPU and peak RSS (VmHWM from /proc, reset before each node
# phase where the kernel allows) are reported beside it, and the node/folder
# time ratio (the aim: node peers within 1.30x of folder peers).
# Prints a table and writes bench-results.json into the current directory.
# Runs one after the other: on ext4 without a journal the inodes the previous
# run's cleanup freed are not reused for 60-300 s, and a restore made in that
# time spends much of its CPU looking past them (docs/performance.md, seventh
# round). Wait five minutes, or keep the work folder (BENCH_KEEP=1).
#
# Environment: CARGO_TARGET_DIR (where trove is built), TROVE_BIN (use this
# binary instead of building), BENCH_TMP (parent of the work dir, default /tmp),
# BENCH_KEEP=1 (keep the work dir: source, trove homes, peers, node data
# folders and logs, restic repo). Node processes are stopped on any exit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT_JSON="$PWD/bench-results.json"
MANY_FILES=false
if [ "${1:-}" = --many-files ]; then
    MANY_FILES=true
    shift
fi
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
NODE_PIDS=() # running node processes, indexed by node number (1..6)
wait_or_kill() { # PID TENTHS: wait up to TENTHS/10 s for PID to exit, then SIGKILL it
    local n
    for ((n = 0; n < $2; n++)); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}
stop_nodes() { # SIGTERM every node still running, SIGKILL after 10 s
    local pid
    for pid in ${NODE_PIDS[@]+"${NODE_PIDS[@]}"}; do
        [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in ${NODE_PIDS[@]+"${NODE_PIDS[@]}"}; do
        [ -z "$pid" ] || wait_or_kill "$pid" 100
    done
    NODE_PIDS=()
}
DAEMON_PID="" # the `trove daemon` of phase (e)
stop_daemon() { # SIGTERM, SIGKILL after 30 s
    [ -n "$DAEMON_PID" ] || return 0
    kill -TERM "$DAEMON_PID" 2>/dev/null || true
    wait_or_kill "$DAEMON_PID" 300
    DAEMON_PID=""
}
CHANGED="" # the source file phase (d) changes; put back on exit
cleanup() {
    stop_daemon
    stop_nodes
    [ -z "$CHANGED" ] || cp -p "$WORK/changed.orig" "$CHANGED" 2>/dev/null || true
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
elif [ "$MANY_FILES" = true ]; then
    SRC="$WORK/src"
    GENERATED=true
    say "generating 200,000 small text files in 2,000 folders in $SRC..."
    python3 - "$SRC" <<'PY'
import os, random, sys
root = sys.argv[1]
rnd = random.Random(12)
words = [w.strip() for w in open("/usr/share/dict/words")] if os.path.exists("/usr/share/dict/words") else \
    ["".join(rnd.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rnd.randint(2, 10))) for _ in range(5000)]
for d in range(2000):
    folder = os.path.join(root, f"d{d // 100:02}", f"f{d:04}")
    os.makedirs(folder, exist_ok=True)
    for f in range(100):
        size = rnd.randint(200, 6 * 1024)
        text, n = [], 0
        while n < size:
            w = rnd.choice(words)
            text.append(w)
            n += len(w) + 1
        with open(os.path.join(folder, f"n{f:03}.txt"), "w") as out:
            out.write(" ".join(text)[:size])
PY
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

# ------------------------------------------------------------ node peers ----
# Node processes are plain background children of this shell: $! is the trove
# process itself, so /proc/$pid is the node's own CPU and memory.
NODES=(1 2 3 4 5 6)
NODE_KILLED=(1 2) # killed with SIGKILL before the node restore
declare -A NODE_PEAK # node number -> highest VmHWM sample (KiB)
NENV=(env TROVE_HOME="$WORK/trove-home-nodes" TROVE_NETWORK=direct TROVE_BIND=127.0.0.1:0)
unset TROVE_RELAY
# Port 0: the node binds a free loopback port and puts the bound address in
# its ticket (no probe-then-bind race).
start_node() { # I: start node I on a free loopback port and wait for its ticket
    local i="$1" dir="$WORK/nodes/n$1" n
    mkdir -p "$dir"
    "$TROVE" node run --data "$dir" --listen 127.0.0.1:0 --network direct --grace 30 \
        </dev/null >"$WORK/nodes/n$i.out" 2>"$WORK/nodes/n$i.log" &
    NODE_PIDS[$i]=$!
    for ((n = 0; n < 300; n++)); do
        [ -s "$dir/ticket" ] && return 0
        kill -0 "${NODE_PIDS[$i]}" 2>/dev/null || break
        sleep 0.1
    done
    tail -n 5 "$WORK/nodes/n$i.log" | sed 's/^/    /' >&2
    die "node n$i did not start (log: $WORK/nodes/n$i.log)"
}
node_hwm() { # I: the node's peak RSS (KiB) since start or the last reset
    awk '/^VmHWM:/ {print $2}' "/proc/${NODE_PIDS[$1]}/status" 2>/dev/null || true
}
node_sample() { # fold the live nodes' VmHWM into NODE_PEAK; sets S_MAX S_SUM (KiB)
    local i v
    S_MAX=0 S_SUM=0
    for i in "${!NODE_PIDS[@]}"; do
        v=$(node_hwm "$i")
        [ -n "$v" ] || continue
        [ "$v" -le "${NODE_PEAK[$i]:-0}" ] || NODE_PEAK[$i]=$v
        [ "$v" -le "$S_MAX" ] || S_MAX=$v
        S_SUM=$((S_SUM + v))
    done
}
HWM_RESET=yes
node_reset_hwm() { # start a new peak-RSS window on every live node (Linux >= 4.0)
    local i
    for i in "${!NODE_PIDS[@]}"; do
        echo 5 2>/dev/null >"/proc/${NODE_PIDS[$i]}/clear_refs" || HWM_RESET=no
    done
}
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)
node_cpu_ticks() { # user+system ticks of the live nodes
    local i t=0 v
    for i in "${!NODE_PIDS[@]}"; do
        v=$(awk '{print $14 + $15}' "/proc/${NODE_PIDS[$i]}/stat" 2>/dev/null || true)
        t=$((t + ${v:-0}))
    done
    echo "$t"
}
# measure_nodes PHASE CMD...: measure the owner command (as trove-nodes-PHASE)
# and the nodes' CPU and peak RSS over it; records R[nodes.PHASE.*].
measure_nodes() {
    local p="$1" t0
    shift
    node_reset_hwm
    t0=$(node_cpu_ticks)
    measure "trove-nodes-$p" "${NENV[@]}" "$TROVE" "$@"
    record nodes "$p"
    R[nodes.$p.ncpu]=$(awk -v t="$(($(node_cpu_ticks) - t0))" -v hz="$CLK_TCK" 'BEGIN {printf "%.2f", t / hz}')
    node_sample
    R[nodes.$p.nrss_max]=$(awk -v k="$S_MAX" 'BEGIN {printf "%.1f", k / 1024}')
    R[nodes.$p.nrss_sum]=$(awk -v k="$S_SUM" 'BEGIN {printf "%.1f", k / 1024}')
    say "  nodes over trove-nodes-$p: CPU ${R[nodes.$p.ncpu]}s, peak RSS max ${R[nodes.$p.nrss_max]} MiB, sum ${R[nodes.$p.nrss_sum]} MiB"
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

say "setting up the trove node run (separate home, six node processes on 127.0.0.1, 4+2)..."
"${NENV[@]}" "$TROVE" --json init >/dev/null
OWNER=$("${NENV[@]}" "$TROVE" --json whoami >"$WORK/whoami.json" && json_field "$WORK/whoami.json" owner_id)
[ -n "$OWNER" ] || die "no owner_id from trove whoami"
for i in "${NODES[@]}"; do
    start_node "$i"
    "$TROVE" --json node grant "$OWNER" --quota 100G --data "$WORK/nodes/n$i" >/dev/null
    "${NENV[@]}" "$TROVE" --json peer add "node$i" "$("$TROVE" node ticket --data "$WORK/nodes/n$i")" \
        --label "site=site-$i" >"$WORK/nodes/n$i.peer.json"
    grep -q '"granted": *true' "$WORK/nodes/n$i.peer.json" ||
        die "node n$i does not let the owner in: $(cat "$WORK/nodes/n$i.peer.json")"
done
"${NENV[@]}" "$TROVE" --json container create bench "$SRC" --redundancy 4+2 >/dev/null
restic init >/dev/null 2>"$WORK/restic-init.err" || { cat "$WORK/restic-init.err" >&2; die "restic init failed"; }
TROVE_VERSION=$("$TROVE" --version | awk '{print $NF}')
RESTIC_VERSION=$(restic version | awk '{print $2}')
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# --------------------------------------------------------------- phases ----
# backup_phase P: trove folders, trove nodes, restic, one after the other;
# sets SNAP_P, NSNAP_P, RSNAP_P (the snapshots each made).
backup_phase() {
    local p="$1"
    prepare_phase backup
    measure "trove-$p" "$TROVE" --json backup bench
    record trove "$p"
    printf -v "SNAP_$p" '%s' "$(json_field "$WORK/trove-$p.out" snapshot)"
    prepare_phase backup
    measure_nodes "$p" --json backup bench
    printf -v "NSNAP_$p" '%s' "$(json_field "$WORK/trove-nodes-$p.out" snapshot)"
    prepare_phase backup
    measure "restic-$p" restic backup --json "$SRC"
    record restic "$p"
    printf -v "RSNAP_$p" '%s' "$(grep '"message_type":"summary"' "$WORK/restic-$p.out" |
        sed -n 's/.*"snapshot_id":"\([0-9a-f]*\)".*/\1/p' | tail -n 1)"
}

say "(a) first backup"
backup_phase a

TROVE_STORED=$(du -sb "$WORK/peers" | cut -f1)
RESTIC_STORED=$(du -sb "$RESTIC_REPOSITORY" | cut -f1)
NODES_STORED=$(du -sbc "$WORK"/nodes/n*/owners | tail -n 1 | cut -f1)

say "(b) unchanged re-run"
backup_phase b
say "  trove snapshots: ${SNAP_a:-?} then ${SNAP_b:-?} (re-run read $(json_field "$WORK/trove-b.out" bytes_read) bytes); nodes: ${NSNAP_a:-?} then ${NSNAP_b:-?}; restic: ${RSNAP_a:-?} then ${RSNAP_b:-?}"

say "(d) one file changed (put back as it was when the benchmark ends)"
CHANGED=$(find "$SRC" -type f -size +0 | sort | awk 'NR == 1000 || last == "" {last = $0} END {print last}')
cp -p "$CHANGED" "$WORK/changed.orig"
printf 'one more line\n' >>"$CHANGED"
backup_phase d
say "  changed $CHANGED; trove read $(json_field "$WORK/trove-d.out" bytes_read) bytes"

# (e) `trove daemon` on the folder peers' home, the way Trove is meant to
# run: its start's backup walks everything. Then `trove backup` (measured as
# the others, cold cache) asks the daemon, whose watcher knows what changed:
# unchanged, after the file of (d) changed again, and after it is put back as
# it was after (d) (so every restore below still matches the source). The
# daemon's log says how each backup walked; its CPU is counted apart.
say "(e) with trove daemon running: trove backup unchanged, one file changed, put back"
cp -p "$CHANGED" "$WORK/changed.d"
DLOG="$WORK/daemon.log"
# wait_log PATTERN COUNT: until PATTERN is on COUNT lines of the log (300 s).
wait_log() {
    local n
    for ((n = 0; n < 3000; n++)); do
        [ "$(grep -c -- "$1" "$DLOG" 2>/dev/null)" -ge "$2" ] && return 0
        kill -0 "$DAEMON_PID" 2>/dev/null || die "the daemon stopped; its log: $DLOG"
        sleep 0.1
    done
    die "no '$1' in the daemon's log within 300 s: $DLOG"
}
daemon_ticks() { awk '{print $14 + $15}' "/proc/$DAEMON_PID/stat" 2>/dev/null || echo 0; }
# Long quiet times: only the requests make it back up. Audits start a
# minute after the daemon; this phase ends before.
TROVE_LOG=info "$TROVE" daemon --debounce 10m --max-delay 20m >/dev/null 2>"$DLOG" &
DAEMON_PID=$!
wait_log "of bench (rescan" 1
for ((n = 0; n < 100; n++)); do # it takes requests once daemon.json says so
    grep -q '"takes_requests": true' "$TROVE_HOME/daemon.json" 2>/dev/null && break
    sleep 0.1
done
D_RESCAN=$(sed -n 's/.*of bench (rescan.* stored, \([0-9.]*\)s.*/\1/p' "$DLOG" | head -n 1)
daemon_request() { # PHASE: trove backup through the daemon, measured
    local t0
    prepare_phase backup
    t0=$(daemon_ticks)
    measure "trove-$1" "$TROVE" --json backup bench
    record trove "$1"
    R[trove.$1.dcpu]=$(awk -v t="$(($(daemon_ticks) - t0))" -v hz="$CLK_TCK" 'BEGIN {printf "%.2f", t / hz}')
    grep -q '"by_daemon"' "$WORK/trove-$1.out" || say "  warning: trove-$1 was not made by the daemon"
}
daemon_request e1
printf 'one more line, seen by the watcher\n' >>"$CHANGED"
daemon_request e2
cp -p "$WORK/changed.d" "$CHANGED"
daemon_request e3
D_HWM=$(awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$DAEMON_PID/status" 2>/dev/null || echo "?")
stop_daemon
# "N changed path(s) seen: W folder(s) walked, K kept (S s)" per backup.
D_WALKS=$(sed -n 's/.*; \([0-9]*\) changed path(s) seen: \([0-9]*\) folder(s) walked, \([0-9]*\) kept (\([0-9.]*\)s).*/\2 walked, \3 kept in \4 s/p' "$DLOG" | paste -sd ';' | sed 's/;/; /g')
say "  daemon: start's whole walk ${D_RESCAN:-?} s; its backups for the requests: ${D_WALKS:-none guided}"

say "(c) restore (trove: after deleting peer folders p1 and p2; nodes: after killing n1 and n2)"
rm -rf "$WORK/peers/p1" "$WORK/peers/p2"
prepare_phase restore
measure trove-c "$TROVE" --json restore bench:latest --target "$WORK/restore-trove"
record trove c
SNAP_C=$(json_field "$WORK/trove-c.out" snapshot)
say "  trove restored snapshot $SNAP_C (the daemon's last)"
node_sample # the killed nodes' peaks up to now
for i in "${NODE_KILLED[@]}"; do
    kill -KILL "${NODE_PIDS[$i]}"
    wait "${NODE_PIDS[$i]}" 2>/dev/null || true
    unset "NODE_PIDS[$i]"
done
prepare_phase restore
measure_nodes c --json restore bench:latest --target "$WORK/restore-nodes"
NSNAP_C=$(json_field "$WORK/trove-nodes-c.out" snapshot)
[ -z "$NSNAP_d" ] || [ "$NSNAP_C" = "$NSNAP_d" ] || say "  warning: trove (nodes) restored snapshot $NSNAP_C, expected $NSNAP_d"
node_sample
stop_nodes
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
say "profile run: a first backup with --profile into a fresh home with six new folder peers..."
PENV=(env TROVE_HOME="$WORK/trove-home-profile")
"${PENV[@]}" "$TROVE" --json init >/dev/null
for i in 1 2 3 4 5 6; do
    mkdir -p "$WORK/profile-peers/p$i"
    "${PENV[@]}" "$TROVE" --json peer add "p$i" "dir:$WORK/profile-peers/p$i" >/dev/null
done
"${PENV[@]}" "$TROVE" --json container create bench "$SRC" --redundancy 4+2 >/dev/null
prepare_phase backup
measure trove-profile "${PENV[@]}" "$TROVE" --json backup bench --profile
rm -rf "$WORK/profile-peers"
PROFILE_TABLE=$(python3 - "$WORK/trove-profile.out" "$SRC_BYTES" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
p, src = r["profile"], int(sys.argv[2])
print(f"per-stage profile (trove folders, first backup, --profile; {p['cores']} cores)")
print(f"{'stage':<12} {'CPU s':>7} {'thread s':>9} {'MB/s/core':>10}")
for s in p["stages"]:
    speed = f"{s['bytes'] / 1e6 / s['cpu_seconds']:.0f}" if s["cpu_seconds"] > 0 and s["bytes"] else "-"
    print(f"{s['stage']:<12} {s['cpu_seconds']:>7.2f} {s['wall_seconds']:>9.2f} {speed:>10}")
print(f"pipeline limit: {p['limit_seconds']:.2f} s ({src / 1e6 / p['limit_seconds']:.0f} MB/s: the stages' CPU over {p['cores']} cores);"
      f" this run {p['wall_seconds']:.2f} s ({p['cpu_seconds']:.2f} CPU s) = {100 * p['limit_fraction']:.0f}% of the limit")
if "early_files" in p:
    print(f"files read while the walk went on: {p['early_files']} of {r['files_new'] + r['files_changed']}")
PY
) || PROFILE_TABLE="(profile run failed: see $WORK/trove-profile.err)"

TROVE_VERIFY=$(verify "$WORK/restore-trove/$(basename "$SRC")")
NODES_VERIFY=$(verify "$WORK/restore-nodes/$(basename "$SRC")")
RESTIC_VERIFY=$(verify "$WORK/restore-restic$SRC")
[ "${R[trove.c.rc]}" = 0 ] || TROVE_VERIFY=FAIL
[ "${R[nodes.c.rc]}" = 0 ] || NODES_VERIFY=FAIL
[ "${R[restic.c.rc]}" = 0 ] || RESTIC_VERIFY=FAIL

# ---------------------------------------------------------------- report ----
mbps() { awk -v b="$SRC_BYTES" -v s="$1" 'BEGIN { if (s > 0) printf "%.1f", b / 1e6 / s; else printf "null" }'; }
ratio() { awk -v t="$1" -v r="$2" 'BEGIN { if (r > 0) printf "%.2f", t / r; else printf "null" }'; }
mb() { awk -v b="$1" 'BEGIN {printf "%.1f MB", b/1e6}'; }
PHASES=(a b d c)
declare -A LABEL=([a]="first backup" [b]="unchanged re-run" [d]="one file changed" [c]="restore")
declare -A KEY=([a]="first_backup" [b]="unchanged_rerun" [d]="one_file_changed" [c]="restore")
LABEL[c]="restore (2 of 6 peers lost)"
declare -A NLIVE=([a]=${#NODES[@]} [b]=${#NODES[@]} [d]=${#NODES[@]} [c]=$((${#NODES[@]} - ${#NODE_KILLED[@]})))
NODE_RSS_MAX=0 NODE_RSS_SUM=0 NODE_RSS_LIST=""
for i in "${NODES[@]}"; do
    v=${NODE_PEAK[$i]:-0}
    [ "$v" -le "$NODE_RSS_MAX" ] || NODE_RSS_MAX=$v
    NODE_RSS_SUM=$((NODE_RSS_SUM + v))
    NODE_RSS_LIST="$NODE_RSS_LIST${NODE_RSS_LIST:+, }$v"
done
AIM=1.30

row() { # PHASE-LABEL RUN SEC MBPS RSS CPU VS-RESTIC NODES/FOLDERS [NOTE]
    printf '%-28s | %-14s | %8s %8s %8s %8s | %9s | %13s%s\n' "$@" | sed 's/ *$//'
}
echo
echo "Trove $TROVE_VERSION (folder peers, node peers) vs restic $RESTIC_VERSION | source: $SRC_FILES files, $(mb "$SRC_BYTES") | $CACHE cache | $(nproc) cores, load $LOAD_START -> $LOAD_END"
row "phase" "run" "time s" "MB/s" "RSS MiB" "CPU s" "speed vs restic" "nodes/folders" ""
printf -- '%.0s-' {1..114}
echo
for p in "${PHASES[@]}"; do
    row "${LABEL[$p]}" "trove folders" "${R[trove.$p.sec]}" "$(mbps "${R[trove.$p.sec]}")" "${R[trove.$p.rss]}" "${R[trove.$p.cpu]}" \
        "$(ratio "${R[restic.$p.sec]}" "${R[trove.$p.sec]}")x" "" ""
    row "" "trove nodes" "${R[nodes.$p.sec]}" "$(mbps "${R[nodes.$p.sec]}")" "${R[nodes.$p.rss]}" "${R[nodes.$p.cpu]}" \
        "$(ratio "${R[restic.$p.sec]}" "${R[nodes.$p.sec]}")x" "$(ratio "${R[nodes.$p.sec]}" "${R[trove.$p.sec]}")x" ""
    row "" "  ${NLIVE[$p]} node procs" "" "" "${R[nodes.$p.nrss_max]}" "${R[nodes.$p.ncpu]}" "" "" \
        "  (RSS: largest node; all ${NLIVE[$p]} together ${R[nodes.$p.nrss_sum]} MiB)"
    row "" "restic" "${R[restic.$p.sec]}" "$(mbps "${R[restic.$p.sec]}")" "${R[restic.$p.rss]}" "${R[restic.$p.cpu]}" "" "" ""
done
echo "speed vs restic: restic's time over trove's (2.00x: trove took half restic's time)."
TROVE_RSS_MAX=0 RESTIC_RSS_MAX=0
for p in "${PHASES[@]}"; do
    TROVE_RSS_MAX=$(awk -v a="$TROVE_RSS_MAX" -v b="${R[trove.$p.rss]}" 'BEGIN {print (b > a) ? b : a}')
    RESTIC_RSS_MAX=$(awk -v a="$RESTIC_RSS_MAX" -v b="${R[restic.$p.rss]}" 'BEGIN {print (b > a) ? b : a}')
done
echo "peak RSS, max over phases: trove folders $TROVE_RSS_MAX MiB, restic $RESTIC_RSS_MAX MiB (trove/restic $(ratio "$TROVE_RSS_MAX" "$RESTIC_RSS_MAX"))"
echo "RSS and CPU are the owner process's (trove, restic); node procs rows: the node processes' CPU over the phase and peak RSS$([ "$HWM_RESET" = yes ] && echo " over the phase" || echo " since start (could not reset VmHWM)")."
VERDICT=""
for p in "${PHASES[@]}"; do
    r=$(ratio "${R[nodes.$p.sec]}" "${R[trove.$p.sec]}")
    VERDICT="$VERDICT${VERDICT:+, }${KEY[$p]} ${r}x$(awk -v r="$r" -v a="$AIM" 'BEGIN { if (r != "null" && r <= a) print " ok"; else print " OVER" }')"
done
echo "node peers vs folder peers, time (aim: within ${AIM}x): $VERDICT"
echo "node processes, peak RSS over the whole run: largest $(awk -v k="$NODE_RSS_MAX" 'BEGIN {printf "%.1f", k/1024}') MiB, all ${#NODES[@]} together $(awk -v k="$NODE_RSS_SUM" 'BEGIN {printf "%.1f", k/1024}') MiB"
echo "stored after first backup: trove $(mb "$TROVE_STORED") over 6 folder peers, $(mb "$NODES_STORED") over 6 nodes (4+2), restic $(mb "$RESTIC_STORED")"
echo "restore verified against source: trove folders $TROVE_VERIFY, trove nodes $NODES_VERIFY, restic $RESTIC_VERIFY"
echo
echo "with trove daemon running (trove folders' home; \`trove backup\` asks the daemon, whose watcher knows what changed; cold cache):"
echo "  daemon's start: every folder walked in ${D_RESCAN:-?} s; peak RSS of the daemon over its life ${D_HWM} MiB"
for p in e1:b:"unchanged" e2:d:"one file changed" e3:d:"put back"; do
    IFS=: read -r e q what <<<"$p"
    printf '  %-18s trove backup %5s s (command: %s MiB, %s CPU s; daemon %s CPU s) | restic %-18s %5s s | speed vs restic %sx\n' \
        "$what:" "${R[trove.$e.sec]}" "${R[trove.$e.rss]}" "${R[trove.$e.cpu]}" "${R[trove.$e.dcpu]}" \
        "$([ "$q" = b ] && echo "unchanged re-run" || echo "one file changed")" "${R[restic.$q.sec]}" "$(ratio "${R[restic.$q.sec]}" "${R[trove.$e.sec]}")"
done
echo "  the daemon's walks (its log): ${D_WALKS:-none guided}"
echo
echo "$PROFILE_TABLE"
for t in trove nodes restic; do
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
    echo "  \"snapshots\": {\"trove\": [\"$SNAP_a\", \"$SNAP_b\", \"$SNAP_d\"], \"restic\": [\"$RSNAP_a\", \"$RSNAP_b\", \"$RSNAP_d\"]},"
    echo "  \"verify\": {\"trove\": \"$TROVE_VERIFY\", \"restic\": \"$RESTIC_VERIFY\"},"
    echo "  \"with_daemon\": {\"rescan_seconds\": ${D_RESCAN:-null}, \"daemon_peak_rss_mib\": \"$D_HWM\", \"walks\": \"$D_WALKS\","
    for e in e1 e2 e3; do
        printf '    "%s": {"seconds": %s, "peak_rss_mib": %s, "cpu_seconds": %s, "daemon_cpu_seconds": %s, "exit_code": %s},\n' \
            "$e" "${R[trove.$e.sec]}" "${R[trove.$e.rss]}" "${R[trove.$e.cpu]}" "${R[trove.$e.dcpu]}" "${R[trove.$e.rc]}"
    done
    echo "    \"phases\": \"e1: unchanged, e2: one file changed, e3: put back\"},"
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
    echo "  ],"
    echo "  \"trove_nodes\": {\"nodes\": ${#NODES[@]}, \"redundancy\": \"4+2\", \"network\": \"direct, 127.0.0.1\", \"killed_before_restore\": ${#NODE_KILLED[@]},"
    echo "    \"stored_bytes\": $NODES_STORED,"
    echo "    \"snapshots\": [\"$NSNAP_a\", \"$NSNAP_b\", \"$NSNAP_d\"],"
    echo "    \"verify\": \"$NODES_VERIFY\","
    for p in "${PHASES[@]}"; do
        printf '    "%s": {"seconds": %s, "mb_per_s": %s, "peak_rss_mib": %s, "cpu_seconds": %s, "exit_code": %s, "time_ratio_nodes_over_folders": %s, "time_ratio_nodes_over_restic": %s, "nodes_running": %s, "node_cpu_seconds": %s, "node_peak_rss_max_mib": %s, "node_peak_rss_sum_mib": %s},\n' \
            "${KEY[$p]}" "${R[nodes.$p.sec]}" "$(mbps "${R[nodes.$p.sec]}")" "${R[nodes.$p.rss]}" "${R[nodes.$p.cpu]}" "${R[nodes.$p.rc]}" \
            "$(ratio "${R[nodes.$p.sec]}" "${R[trove.$p.sec]}")" "$(ratio "${R[nodes.$p.sec]}" "${R[restic.$p.sec]}")" \
            "${NLIVE[$p]}" "${R[nodes.$p.ncpu]}" "${R[nodes.$p.nrss_max]}" "${R[nodes.$p.nrss_sum]}"
    done
    echo "    \"node_peak_rss_per_phase\": $([ "$HWM_RESET" = yes ] && echo true || echo false),"
    echo "    \"node_peak_rss_kib\": [$NODE_RSS_LIST],"
    echo "    \"node_peak_rss_max_kib\": $NODE_RSS_MAX,"
    echo "    \"node_peak_rss_sum_kib\": $NODE_RSS_SUM}"
    echo "}"
} >"$OUT_JSON"
say "wrote $OUT_JSON"
[ "$TROVE_VERIFY" = OK ] && [ "$NODES_VERIFY" = OK ] && [ "$RESTIC_VERIFY" = OK ]
