#!/usr/bin/env bash
# tests/bench.sh — the benchmark table of issue 7 (a benchmark, not a test: CI does not run it).
#
# Builds the release binaries, starts one pykv per persistence mode (memory, interval, sync) on
# 127.0.0.1 with a free port and a temporary config and data directory, drives them with
# target/release/pykv-bench and prints one table. Every server it starts is killed by its PID on
# exit; the temporary directory is removed.
#
#   tests/bench.sh            # about 2 minutes
#   tests/bench.sh --nginx    # also GET /health against nginx `return 200` (apt-get install nginx)
#   tests/bench.sh --scale    # 1,000,000 keys of 100 B: start-up time, prefix listing, RSS per key
#   tests/bench.sh --soak M   # M minutes of mixed load on a fixed key set, RSS sampled (leak check)
#   tests/bench.sh --journal  # what a durable write costs at 1k..1M keys, with Redis beside it
#                             # (about 6 minutes; apt-get install redis-server for the yardstick)
#
# Environment: BENCH_SECONDS (per run, default 5), BENCH_REPEAT (runs per throughput figure, best
# kept: the machine is shared and noisy, default 1), BENCH_SYNC_PUTS (PUTs per bytes-per-PUT
# figure, default 1000), BENCH_DIR (where the temporary data directories go, default /var/tmp:
# sync mode must write to a real disk, not tmpfs).
set -euo pipefail

cd "$(dirname "$0")/.."

SECS=${BENCH_SECONDS:-5}
REPEAT=${BENCH_REPEAT:-1}
SYNC_PUTS=${BENCH_SYNC_PUTS:-1000}
CONNS=32
KEYS=10000
VALUE=100
ADMIN=bench-admin-token-0123456789
WITH_NGINX=0
MODE=table
SOAK_MINUTES=10
while [ $# -gt 0 ]; do
    case $1 in
        --nginx) WITH_NGINX=1 ;;
        --scale) MODE=scale ;;
        --journal) MODE=journal ;;
        --soak)
            MODE=soak
            SOAK_MINUTES=${2:?--soak needs a number of minutes}
            shift
            ;;
        -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "bench.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done

cargo build --release --bins --quiet
PYKV=target/release/pykv
BENCH=target/release/pykv-bench

WORK=$(mktemp -d "${BENCH_DIR:-/var/tmp}/pykv-bench.XXXXXX")
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '%s\n' "$*" >&2; }
die() { log "bench.sh: $*"; exit 1; }

# start_pykv MODE: starts a server whose default persistence is MODE; sets ADDR and PID.
start_pykv() {
    local dir=$WORK/$1
    mkdir -p "$dir"
    cat >"$dir/config.json" <<EOF
{"listen": "127.0.0.1:0", "data_dir": "$dir/data", "admin_token": "$ADMIN",
 "persistence": "$1", "log_requests": false}
EOF
    "$PYKV" --config "$dir/config.json" 2>"$dir/log" &
    PID=$!
    PIDS+=("$PID")
    ADDR=
    for _ in $(seq 100); do
        ADDR=$(sed -n 's/.* listening on \([^ ]*\) .*/\1/p' "$dir/log")
        [ -n "$ADDR" ] && return 0
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.05
    done
    die "pykv ($1) did not start: $(cat "$dir/log")"
}

# api METHOD ADDR PATH [BODY]: an admin request; prints the answer, fails on a non-2xx status.
api() {
    curl -sf -X "$1" -H "Authorization: Bearer $ADMIN" "http://$2$3" ${4:+-d "$4"} ||
        die "$1 $3 on $2 failed"
}

# new_project ADDR NAME PERSISTENCE: creates the project and prints its write token.
new_project() {
    api POST "$1" /v1/projects "{\"name\":\"$2\",\"persistence\":\"$3\"}" |
        grep -o '"secret":"pykv_[0-9a-f]*"' | head -1 | cut -d'"' -f4
}

# preload ADDR TOKEN PROJECT KEYS: PUTs key-000000 .. with 32 connections.
preload() {
    "$BENCH" --url "http://$1" --token "$2" --project "$3" --keys "$4" --value-bytes "$VALUE" \
        --connections "$CONNS" --preload-only
}

# run ARGS...: one pykv-bench run; its human line goes to stderr, its JSON line to stdout.
run() {
    local out
    out=$("$BENCH" --seconds "$SECS" --value-bytes "$VALUE" --keys "$KEYS" --no-preload "$@") ||
        die "pykv-bench $* failed"
    log "  $(head -1 <<<"$out")"
    tail -1 <<<"$out"
}

field() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p"; }

# best NAME PID ARGS...: runs pykv-bench REPEAT times against the server whose PID is given and
# keeps, in R[NAME], the JSON line with the highest rps, plus "server_cpu_us": the server's CPU
# time (user + system, from /proc/PID/stat) per request. The machine may be shared: req/s moves
# with whatever else runs, CPU time per request much less, so ratios are given for both.
declare -A R
best() {
    local name=$1 pid=$2 json t0 t1 cpu
    shift 2
    t0=$(cpu_ticks "$pid")
    json=$(run "$@")
    t1=$(cpu_ticks "$pid")
    cpu=$(awk -v t=$((t1 - t0)) -v hz="$HZ" -v n="$(field requests <<<"$json")" \
        'BEGIN{printf "%.1f", t * 1e6 / hz / n}')
    json="${json%\}},\"server_cpu_us\":$cpu}"
    if [ -z "${R[$name]:-}" ] ||
        awk -v a="$(field rps <<<"$json")" -v b="$(field rps <<<"${R[$name]}")" 'BEGIN{exit !(a>b)}'; then
        R[$name]=$json
    fi
}
HZ=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

rps() { field rps <<<"${R[$1]}"; }
p50() { field p50_us <<<"${R[$1]}"; }
cpu() { field server_cpu_us <<<"${R[$1]}"; }
# figure NAME: "req/s (p50, server CPU per request)".
figure() { printf '%s  (p50 %s us, server CPU %s us/req)' "$(rps "$1")" "$(p50 "$1")" "$(cpu "$1")"; }
# vs NAME BASE: NAME as a share of BASE, by req/s and by server CPU per request.
vs() { printf '%s of %s by req/s, %s by CPU/req' "$(pct "$(rps "$1")" "$(rps "$2")")" "$2" "$(pct "$(cpu "$2")" "$(cpu "$1")")"; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.0f %%", 100*a/b}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.1fx", a/b}'; }
proc_field() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/$3"; }

# wait_listening DIR PID: waits (10 ms steps, at most 20 s) for the start line; prints nothing.
wait_listening() {
    for _ in $(seq 2000); do
        grep -q ' listening on ' "$1/log" && return 0
        kill -0 "$2" 2>/dev/null || break
        sleep 0.01
    done
    die "pykv did not start: $(cat "$1/log")"
}

# project_bytes ADDR NAME: the project's key + value bytes, from the API.
project_bytes() { api GET "$1" "/v1/projects/$2" | sed -n 's/.*"bytes":\([0-9]*\).*/\1/p'; }

# per_key RSS_KB IDLE_KB BYTES N: RSS beyond the idle process and the key and value bytes, per key.
per_key() { awk -v r="$1" -v i="$2" -v b="$3" -v n="$4" 'BEGIN{printf "%.1f", (r*1024 - i*1024 - b) / n}'; }

if [ "$MODE" = scale ]; then
    N=1000000
    log "scale: $N keys of $VALUE B in one interval-mode project"
    start_pykv interval
    addr=$ADDR pid=$PID dir=$WORK/interval
    idle=$(proc_field "$pid" VmRSS status)
    # Filled in memory mode, then switched: one snapshot instead of one per interval tick.
    token=$(new_project "$addr" big memory)
    "$BENCH" --url "http://$addr" --token "$token" --project big --keys "$N" --value-bytes "$VALUE" \
        --connections "$CONNS" --preload-only >&2 || die "preload failed"
    api PATCH "$addr" /v1/projects/big '{"persistence":"interval"}' >/dev/null
    bytes=$(project_bytes "$addr" big)
    rss_put=$(proc_field "$pid" VmRSS status)
    list=$("$BENCH" --url "http://$addr" --token "$token" --project big --keys "$N" --no-preload \
        --workload list --prefix-keys 100 --connections 1 --seconds "$SECS" | tail -1)
    kill -TERM "$pid"
    wait "$pid" || die "pykv did not stop cleanly"
    snapshot=$(stat -c %s "$dir/data/big.json")
    t0=$(date +%s%N)
    "$PYKV" --config "$dir/config.json" 2>"$dir/log" &
    pid=$!
    PIDS+=("$pid")
    wait_listening "$dir" "$pid"
    t1=$(date +%s%N)
    rss_loaded=$(proc_field "$pid" VmRSS status)
    echo
    echo "pykv scale: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(uname -sr)"
    row() { printf '%-58s %s\n' "$1" "$2"; }
    row "keys, key + value bytes" "$N, $bytes B (snapshot file $snapshot B)"
    row "start-up with them (to the listening line)" "$(awk -v d=$((t1 - t0)) 'BEGIN{printf "%.2f s", d/1e9}')"
    row "prefix listing of 100 keys out of $N, 1 connection" "p50 $(field p50_us <<<"$list") us, p99 $(field p99_us <<<"$list") us"
    row "idle RSS" "$idle kB"
    row "RSS after PUTting them" "$rss_put kB = $(per_key "$rss_put" "$idle" "$bytes" "$N") B per key beyond key and value"
    row "RSS after a restart that loads them" "$rss_loaded kB = $(per_key "$rss_loaded" "$idle" "$bytes" "$N") B per key beyond key and value"
    exit 0
fi

# metric ADDR SERIES: one sample from /metrics (0 when absent).
metric() {
    api GET "$1" /metrics | awk -v s="$2" '$1 == s {print $2; found=1} END {if (!found) print 0}'
}

# load_with_probe NAME PID SECONDS ARGS...: runs a pykv-bench load for SECONDS and, beside it on
# one more connection, GET /health in a loop; keeps the load's JSON line in R[NAME] (with the
# server's write_bytes per request and the slowest /health answer) .
load_with_probe() {
    local name=$1 pid=$2 secs=$3 probe wb0 wb1 json n
    shift 3
    wb0=$(proc_field "$pid" write_bytes io)
    "$BENCH" --url "$URL" --connections 1 --workload health --seconds "$secs" >"$WORK/probe" 2>&1 &
    probe=$!
    json=$("$BENCH" --seconds "$secs" --value-bytes "$VALUE" --no-preload --url "$URL" "$@") ||
        die "pykv-bench $* failed"
    wait "$probe" || die "the /health probe failed: $(cat "$WORK/probe")"
    wb1=$(proc_field "$pid" write_bytes io)
    log "  $(head -1 <<<"$json")"
    json=$(tail -1 <<<"$json")
    n=$(field requests <<<"$json")
    json="${json%\}},\"write_bytes_per_req\":$(((wb1 - wb0) / n)),\"health_max_us\":$(tail -1 "$WORK/probe" | field max_us)}"
    R[$name]=$json
}

if [ "$MODE" = journal ]; then
    SIZES=(1000 10000 100000 1000000)
    declare -A SECS32=([1000]=5 [10000]=5 [100000]=8 [1000000]=45)
    log "journal: sync PUT at ${SIZES[*]} keys of $VALUE B, $CONNS writers and 1 writer"
    start_pykv sync
    SYN=$ADDR SYN_PID=$PID
    URL="http://$SYN"
    declare -A COMPACT SHARE
    for keys in "${SIZES[@]}"; do
        project=j$keys
        token=$(new_project "$SYN" "$project" memory)
        preload "$SYN" "$token" "$project" "$keys" >&2
        # Answered once the first snapshot of the project is written.
        api PATCH "$SYN" "/v1/projects/$project" '{"persistence":"sync"}' >/dev/null
        # One writer first, on a fresh journal: a compaction the 32 writers set off must not land
        # in its bytes. Its share of compactions is given beside it, from the 32-writer run.
        load_with_probe "s1_$keys" "$SYN_PID" "$SECS" --token "$token" --project "$project" \
            --keys "$keys" --connections 1 --workload put
        c0=$(metric "$SYN" "pykv_compactions_total{project=\"$project\"}")
        load_with_probe "s32_$keys" "$SYN_PID" "${SECS32[$keys]}" --token "$token" --project "$project" \
            --keys "$keys" --connections "$CONNS" --workload put
        c1=$(metric "$SYN" "pykv_compactions_total{project=\"$project\"}")
        COMPACT[$keys]=$(awk -v a="$c0" -v b="$c1" 'BEGIN{print b - a}')
        # A compaction writes the snapshot once per journal of max(snapshot, 1 MiB): per PUT, the
        # snapshot's size over the PUTs such a journal holds.
        snap=$(stat -c %s "$WORK/sync/data/$project.json")
        SHARE[$keys]=$(awk -v s="$snap" -v r=152 'BEGIN{m = (s > 1048576 ? s : 1048576); printf "%.0f", s * r / m}')
        api DELETE "$SYN" "/v1/projects/$project" >/dev/null
    done

    log "interval mode at 1000000 keys: PUT load through compactions, then a restart"
    start_pykv interval
    INT=$ADDR INT_PID=$PID
    URL="http://$INT"
    token=$(new_project "$INT" big memory)
    preload "$INT" "$token" big 1000000 >&2
    api PATCH "$INT" /v1/projects/big '{"persistence":"interval"}' >/dev/null
    c0=$(metric "$INT" 'pykv_compactions_total{project="big"}')
    load_with_probe int_1m "$INT_PID" 30 --token "$token" --project big --keys 1000000 \
        --connections "$CONNS" --workload put
    c1=$(metric "$INT" 'pykv_compactions_total{project="big"}')
    INT_COMPACT=$(awk -v a="$c0" -v b="$c1" 'BEGIN{print b - a}')
    # Fill the journal up to nearly the snapshot's size (a compaction is just short of due).
    jb=$(metric "$INT" 'pykv_journal_bytes{project="big"}')
    snap=$(stat -c %s "$WORK/interval/data/big.json")
    more=$(awk -v j="$jb" -v s="$snap" 'BEGIN{n = int((0.95 * s - j) / 152); print (n > 0 ? n : 0)}')
    if [ "$more" -gt 0 ]; then
        "$BENCH" --url "$URL" --token "$token" --project big --keys 1000000 --value-bytes "$VALUE" \
            --no-preload --connections "$CONNS" --workload put --requests "$more" >/dev/null ||
            die "filling the journal failed"
    fi
    jb=$(metric "$INT" 'pykv_journal_bytes{project="big"}')
    kill -TERM "$INT_PID"
    wait "$INT_PID" || die "pykv did not stop cleanly"
    t0=$(date +%s%N)
    "$PYKV" --config "$WORK/interval/config.json" 2>"$WORK/interval/log" &
    pid=$!
    PIDS+=("$pid")
    wait_listening "$WORK/interval" "$pid"
    t1=$(date +%s%N)

    REDIS=
    if command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null; then
        log "redis: appendfsync always, same keys and values"
        mkdir -p "$WORK/redis"
        rport=
        for _ in $(seq 50); do
            port=$((20000 + RANDOM % 40000))
            if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then rport=$port; break; fi
        done
        [ -n "$rport" ] || die "no free port for redis"
        redis-server --port "$rport" --bind 127.0.0.1 --dir "$WORK/redis" --save "" \
            --appendonly yes --appendfsync always --daemonize no --logfile "$WORK/redis/log" &
        RPID=$!
        PIDS+=("$RPID")
        for _ in $(seq 100); do
            redis-cli -p "$rport" ping >/dev/null 2>&1 && break
            sleep 0.05
        done
        declare -A RS32 RS1 RB32 RB1
        for keys in "${SIZES[@]}"; do
            redis-cli -p "$rport" flushall >/dev/null
            redis-cli -p "$rport" debug populate "$keys" key 100 >/dev/null
            for c in "$CONNS" 1; do
                n=$((c == 1 ? 20000 : 300000))
                wb0=$(proc_field "$RPID" write_bytes io)
                rps=$(redis-benchmark -p "$rport" -t set -c "$c" -n "$n" -d "$VALUE" -r "$keys" -q |
                    sed -n 's/.*SET: \([0-9.]*\) requests per second.*/\1/p' | tail -1)
                wb1=$(proc_field "$RPID" write_bytes io)
                if [ "$c" = 1 ]; then RS1[$keys]=$rps RB1[$keys]=$(((wb1 - wb0) / n)); else RS32[$keys]=$rps RB32[$keys]=$(((wb1 - wb0) / n)); fi
            done
        done
        REDIS=1
    fi

    row() { printf '%-54s %s\n' "$1" "$2"; }
    g() { field "$2" <<<"${R[$1]}"; }
    echo
    echo "pykv journal benchmark: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(uname -sr)"
    echo "sync PUT, $VALUE B values, random keys; bytes = the server's /proc/PID/io write_bytes per PUT;"
    echo "health = the slowest GET /health on one more connection during the run"
    echo
    for keys in "${SIZES[@]}"; do
        row "sync, $keys keys, $CONNS writers" "$(g "s32_$keys" rps) PUT/s, $(g "s32_$keys" write_bytes_per_req) B/PUT, p99 $(g "s32_$keys" p99_us) us, health max $(g "s32_$keys" health_max_us) us, ${COMPACT[$keys]} compactions"
        row "sync, $keys keys, 1 writer" "$(g "s1_$keys" rps) PUT/s, $(g "s1_$keys" write_bytes_per_req) B/PUT + ${SHARE[$keys]} B/PUT of compactions, p99 $(g "s1_$keys" p99_us) us, health max $(g "s1_$keys" health_max_us) us"
        if [ -n "$REDIS" ]; then
            row "  redis appendfsync always, $CONNS / 1 clients" "${RS32[$keys]} / ${RS1[$keys]} SET/s, ${RB32[$keys]} / ${RB1[$keys]} B/SET"
        fi
    done
    row "  32 writers at 100k keys vs at 1k keys" "$(pct "$(g s32_100000 rps)" "$(g s32_1000 rps)")"
    [ -n "$REDIS" ] && row "  32 writers at 100k keys vs redis" "$(pct "$(g s32_100000 rps)" "${RS32[100000]}")"
    row "interval, 1000000 keys, $CONNS writers, 30 s" "$(g int_1m rps) PUT/s, $(g int_1m write_bytes_per_req) B/PUT, health max $(g int_1m health_max_us) us, $INT_COMPACT compactions"
    row "start-up: 1000000 keys, snapshot $snap B + journal $jb B" "$(awk -v d=$((t1 - t0)) 'BEGIN{printf "%.2f s", d/1e9}')"
    exit 0
fi

if [ "$MODE" = soak ]; then
    log "soak: $SOAK_MINUTES min of mixed load (90 % GET, 10 % PUT) on $KEYS keys, RSS every 30 s"
    start_pykv memory
    addr=$ADDR pid=$PID
    token=$(new_project "$addr" soak memory)
    preload "$addr" "$token" soak "$KEYS" >&2
    samples=()
    end=$(($(date +%s) + SOAK_MINUTES * 60))
    while [ "$(date +%s)" -lt "$end" ]; do
        "$BENCH" --url "http://$addr" --token "$token" --project soak --keys "$KEYS" --no-preload \
            --workload mixed --connections "$CONNS" --seconds 30 >/dev/null || die "load failed"
        samples+=("$(proc_field "$pid" VmRSS status)")
        log "  RSS ${samples[-1]} kB"
    done
    first=${samples[0]} last=${samples[-1]}
    max=$(printf '%s\n' "${samples[@]}" | sort -n | tail -1)
    echo
    printf 'soak: %s min mixed load, RSS after the first 30 s %s kB, at the end %s kB, max %s kB, growth %s kB\n' \
        "$SOAK_MINUTES" "$first" "$last" "$max" "$((last - first))"
    exit 0
fi

log "starting servers"
start_pykv memory
MEM=$ADDR MEM_PID=$PID
IDLE_RSS_KB=$(proc_field "$MEM_PID" VmRSS status)
start_pykv interval
INT=$ADDR INT_PID=$PID
start_pykv sync
SYN=$ADDR SYN_PID=$PID

log "preloading $KEYS keys of $VALUE B in each mode"
MEM_TOKEN=$(new_project "$MEM" bench memory)
INT_TOKEN=$(new_project "$INT" bench interval)
# A sync project is filled in memory mode, then switched (one snapshot instead of thousands).
SYN_TOKEN=$(new_project "$SYN" bench memory)
preload "$MEM" "$MEM_TOKEN" bench "$KEYS"
preload "$INT" "$INT_TOKEN" bench "$KEYS"
preload "$SYN" "$SYN_TOKEN" bench "$KEYS"
api PATCH "$SYN" /v1/projects/bench '{"persistence":"sync"}' >/dev/null

if [ "$WITH_NGINX" = 1 ]; then
    command -v nginx >/dev/null || die "--nginx: nginx is not installed (apt-get install nginx)"
    NGX=$WORK/nginx
    mkdir -p "$NGX"
    NGX_PORT=
    for _ in $(seq 50); do
        port=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then NGX_PORT=$port; break; fi
    done
    [ -n "$NGX_PORT" ] || die "no free port for nginx"
    # One worker, as pykv has one thread; no logs; every temp path inside $NGX.
    cat >"$NGX/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 1;
pid $NGX/nginx.pid;
error_log $NGX/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $NGX/body;
    proxy_temp_path $NGX/proxy;
    fastcgi_temp_path $NGX/fastcgi;
    uwsgi_temp_path $NGX/uwsgi;
    scgi_temp_path $NGX/scgi;
    server {
        listen 127.0.0.1:$NGX_PORT;
        location / { default_type application/json; return 200 '{"status":"ok"}'; }
    }
}
EOF
    nginx -p "$NGX" -c "$NGX/nginx.conf" -e "$NGX/error.log" &
    NGX_PID=$!
    PIDS+=("$NGX_PID")
    for _ in $(seq 100); do
        curl -sf "http://127.0.0.1:$NGX_PORT/" >/dev/null && break
        sleep 0.05
    done
    curl -sf "http://127.0.0.1:$NGX_PORT/" >/dev/null || die "nginx did not start: $(cat "$NGX/error.log")"
    # The one worker answers; the master only supervises (it is killed, and kills it, on exit).
    NGX_WORKER=$(cat "/proc/$NGX_PID/task/$NGX_PID/children")
    NGX_WORKER=${NGX_WORKER%% *}
fi

# Throughput figures are interleaved, so a burst of noise from elsewhere hits all of them alike.
for round in $(seq "$REPEAT"); do
    log "round $round/$REPEAT: memory mode, $CONNS connections, $KEYS keys of $VALUE B, ${SECS}s per run"
    best health "$MEM_PID" --url "http://$MEM" --connections "$CONNS" --workload health
    best get "$MEM_PID" --url "http://$MEM" --token "$MEM_TOKEN" --project bench --connections "$CONNS" --workload get
    best put "$MEM_PID" --url "http://$MEM" --token "$MEM_TOKEN" --project bench --connections "$CONNS" --workload put
    best mixed "$MEM_PID" --url "http://$MEM" --token "$MEM_TOKEN" --project bench --connections "$CONNS" --workload mixed
    best list "$MEM_PID" --url "http://$MEM" --token "$MEM_TOKEN" --project bench --connections "$CONNS" --workload list
    if [ "$WITH_NGINX" = 1 ]; then
        best nginx "$NGX_WORKER" --url "http://127.0.0.1:$NGX_PORT" --path / --connections "$CONNS" --workload health
    fi
    log "round $round/$REPEAT: interval and sync PUT"
    best int_put "$INT_PID" --url "http://$INT" --token "$INT_TOKEN" --project bench --connections "$CONNS" --workload put
    best sync_put32 "$SYN_PID" --url "http://$SYN" --token "$SYN_TOKEN" --project bench --connections "$CONNS" --workload put
    best sync_put1 "$SYN_PID" --url "http://$SYN" --token "$SYN_TOKEN" --project bench --connections 1 --workload put
done

# The load generator's own ceiling: wrk (one thread, as pykv-bench has one) on the same /health,
# interleaved with pykv-bench, best of REPEAT each.
WRK_HEALTH=
if command -v wrk >/dev/null; then
    for round in $(seq "$REPEAT"); do
        log "round $round/$REPEAT: wrk -t1 -c$CONNS and pykv-bench on /health"
        rate=$(wrk -t1 -c"$CONNS" -d"${SECS}s" "http://$MEM/health" | awk '/Requests\/sec/ {printf "%.0f", $2}')
        log "  wrk: $rate req/s"
        if [ -z "$WRK_HEALTH" ] || [ "$rate" -gt "$WRK_HEALTH" ]; then WRK_HEALTH=$rate; fi
        best health_again "$MEM_PID" --url "http://$MEM" --connections "$CONNS" --workload health
    done
fi

log "sync mode: bytes written per PUT ($SYNC_PUTS PUTs, $CONNS writers)"
declare -A WBYTES WCHAR SNAP SYNC_P50
for keys in 1000 10000 100000; do
    project=sync$keys
    token=$(new_project "$SYN" "$project" memory)
    preload "$SYN" "$token" "$project" "$keys"
    api PATCH "$SYN" "/v1/projects/$project" '{"persistence":"sync"}' >/dev/null
    wb0=$(proc_field "$SYN_PID" write_bytes io) wc0=$(proc_field "$SYN_PID" wchar io)
    json=$(run --url "http://$SYN" --token "$token" --project "$project" --keys "$keys" \
        --connections "$CONNS" --workload put --requests "$SYNC_PUTS")
    wb1=$(proc_field "$SYN_PID" write_bytes io) wc1=$(proc_field "$SYN_PID" wchar io)
    WBYTES[$keys]=$(((wb1 - wb0) / SYNC_PUTS))
    WCHAR[$keys]=$(((wc1 - wc0) / SYNC_PUTS))
    SNAP[$keys]=$(stat -c %s "$WORK/sync/data/$project.json")
    SYNC_P50[$keys]=$(field p50_us <<<"$json")
    api DELETE "$SYN" "/v1/projects/$project" >/dev/null
done
LOADED_RSS_KB=$(proc_field "$MEM_PID" VmRSS status)

row() { printf '%-58s %s\n' "$1" "$2"; }
echo
echo "pykv benchmark: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(uname -sr)"
echo "pykv-bench: $CONNS keep-alive connections, 1 request in flight each, ${SECS}s per run, best of $REPEAT"
echo
row "figure" "value"
row "------" "-----"
row "memory: GET /health req/s" "$(figure health)"
row "memory: GET key req/s (10k keys, 100 B)" "$(figure get)"
row "  GET vs health" "$(vs get health)"
row "memory: PUT key req/s" "$(figure put)"
row "  PUT vs health" "$(vs put health)"
row "memory: mixed 90/10 req/s" "$(figure mixed)"
row "memory: list prefix (100 of 10k keys, limit 100) req/s" "$(figure list)"
if [ "$WITH_NGINX" = 1 ]; then
    row "nginx, 1 worker, 'return 200': GET / req/s" "$(figure nginx)"
    row "  pykv health vs nginx" "$(vs health nginx)"
fi
if [ -n "$WRK_HEALTH" ]; then
    row "wrk -t1 -c$CONNS on pykv /health req/s" "$WRK_HEALTH"
    row "  pykv-bench on /health, interleaved with wrk" "$(rps health_again) = $(pct "$(rps health_again)" "$WRK_HEALTH") of wrk"
fi
row "interval: PUT req/s" "$(figure int_put)"
row "  interval PUT vs memory PUT" "$(vs int_put put)"
row "sync: PUT req/s, 32 writers" "$(figure sync_put32)"
row "sync: PUT req/s, 1 writer" "$(figure sync_put1)"
row "  32 writers vs 1 writer" "$(ratio "$(rps sync_put32)" "$(rps sync_put1)")"
for keys in 1000 10000 100000; do
    row "sync: per PUT at $keys keys, 32 writers" "write_bytes ${WBYTES[$keys]} B, wchar ${WCHAR[$keys]} B, snapshot ${SNAP[$keys]} B, p50 ${SYNC_P50[$keys]} us"
done
row "idle RSS (memory mode, right after start)" "$IDLE_RSS_KB kB"
row "RSS after the memory-mode runs (10k keys)" "$LOADED_RSS_KB kB"
row "release binary target/release/pykv" "$(stat -c %s "$PYKV") B"
