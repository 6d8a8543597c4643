#!/usr/bin/env bash
# End-to-end fan-out benchmark: tickcast vs uWebSockets.js vs Node ws vs
# nats-server (WebSocket), same topology, same load generator, same run.
#
#   benches/fanout.sh            # full matrix (about 11 minutes)
#   benches/fanout.sh --quick    # a smaller matrix, about 2 minutes
#   benches/fanout.sh --deflate  # 1,000 subscribers, permessage-deflate on:
#                                # tickcast (shared mode, every frame compressed)
#                                # against uWS.js (SHARED_COMPRESSOR), about 3 minutes
#
# The server under test is pinned to CPU 0 and the load generator to CPU 1
# (taskset). Each row: target deliveries/s, delivered/s measured by the
# subscribers, publish-to-receive latency percentiles, server CPU (% of one
# core, over the measured window only: the load generator reads the server's
# /proc/PID/stat when it starts and ends measuring, so connection setup and
# warm-up, which take longer at 10,000 connections and differ from server to
# server, do not dilute it), the connections the
# server closed (NATS drops slow consumers; the others merge or queue) and, in
# the idle table, server RSS per idle subscribed connection. tickcast and the
# Node peers publish from inside the server process; nats-server has no feed,
# so benches/peers/nats_pub.js publishes into it over NATS's TCP protocol from
# the same core, and its CPU is counted with the server's. Results also go to
# target/bench/fanout-<date>.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=0
DEFLATE=0
[[ "${1:-}" == "--quick" ]] && QUICK=1
[[ "${1:-}" == "--deflate" ]] && DEFLATE=1
# --deflate: the load generator offers permessage-deflate and inflates; the
# servers compress every event (the bench payload, about 110 bytes, is under
# tickcast's default 256-byte threshold, so it is set to 0 here).
LOADGEN_DEFLATE=(); BENCH_DEFLATE=(); UWS_DEFLATE=()
if [[ $DEFLATE == 1 ]]; then
    LOADGEN_DEFLATE=(--deflate); BENCH_DEFLATE=(--deflate-min 0); UWS_DEFLATE=(--compress 1)
fi
SERVER_CPU=0
CLIENT_CPU=1
PORT=${PORT:-9300}
BIN=target/release/examples
OUT=target/bench
mkdir -p "$OUT"
REPORT="$OUT/fanout-$(date +%Y%m%d-%H%M%S).txt"

echo "building..." >&2
cargo build --quiet --release --example bench_server --example loadgen
if ! command -v nats-server >/dev/null; then
    echo "installing nats-server (apt)..." >&2
    sudo=(); [[ $(id -u) -eq 0 ]] || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq nats-server
fi
if [[ ! -d benches/peers/node_modules/uwebsockets ]]; then
    (cd benches/peers && npm ci --no-audit --no-fund --loglevel=error)
fi

SPID=""
PUBPID="" # nats_pub.js, for nats-server only
# Never leave a server behind (a stale one would answer on a later port).
trap 'for p in $SPID $PUBPID; do kill "$p" 2>/dev/null || true; done' EXIT

# nats-server: WebSocket on $PORT (what the load generator dials), its TCP
# client port and monitoring port beside it, defaults otherwise (so its
# slow-consumer policy is the one users get).
start_nats() {
    local conf="$OUT/nats-$PORT.conf"
    cat >"$conf" <<EOF
listen: 127.0.0.1:$((PORT + 2000))
http: 127.0.0.1:$((PORT + 3000))
websocket { listen: "127.0.0.1:$PORT", no_tls: true }
EOF
    taskset -c $SERVER_CPU nats-server -c "$conf" >/dev/null 2>&1 &
}

start_server() { # system rate topics [start-after] [topics-per-conn]
    local system=$1 rate=$2 topics=$3 after=${4:-0} per=${5:-10}
    PUBPID=""
    case $system in
        tickcast) taskset -c $SERVER_CPU $BIN/bench_server --listen 127.0.0.1:$PORT \
                      --rate "$rate" --topics "$topics" --shards 1 --start-after "$after" \
                      "${BENCH_DEFLATE[@]}" >/dev/null 2>&1 & ;;
        uWS.js)   taskset -c $SERVER_CPU node benches/peers/uws.js --port $PORT \
                      --rate "$rate" --topics "$topics" --start-after "$after" "${UWS_DEFLATE[@]}" \
                      >/dev/null 2>&1 & ;;
        ws)       taskset -c $SERVER_CPU node benches/peers/ws.js --port $PORT \
                      --rate "$rate" --topics "$topics" --start-after "$after" >/dev/null 2>&1 & ;;
        nats)     start_nats ;;
    esac
    SPID=$!
    for _ in $(seq 100); do
        kill -0 "$SPID" 2>/dev/null || { echo "$system exited at start (port $PORT busy?)" >&2; exit 1; }
        if (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null; then
            if [[ $system == nats && $rate -gt 0 ]]; then
                taskset -c $SERVER_CPU node benches/peers/nats_pub.js --port $((PORT + 2000)) \
                    --monitor $((PORT + 3000)) --rate "$rate" --topics "$topics" \
                    --start-after $((after * per)) >/dev/null 2>&1 &
                PUBPID=$!
            fi
            return 0
        fi
        sleep 0.05
    done
    echo "$system did not start" >&2
    exit 1
}

stop_server() {
    for p in $PUBPID $SPID; do
        kill "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    PUBPID=""
    PORT=$((PORT + 1)) # never wait for TIME_WAIT on the old port
}

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
proto() { [[ $1 == nats ]] && echo nats || echo tickcast; }
json() { sed -E "s/.*\"$2\":([0-9.]+).*/\1/" <<<"$1"; }

declare -A DELIVERED CPU P99
row() { printf "%-9s %6s %9s %11s %11s %9s %9s %9s %9s %6s\n" "$@" | tee -a "$REPORT"; }

run_case() { # system conns topics per_conn target
    local system=$1 conns=$2 topics=$3 per=$4 target=$5
    local subs=$((conns * per / topics))
    local rate=$((target / subs))
    start_server "$system" "$rate" "$topics" "$conns" "$per"
    local out pids=$SPID
    [[ -n $PUBPID ]] && pids="$SPID,$PUBPID"
    out=$(taskset -c $CLIENT_CPU $BIN/loadgen --addr 127.0.0.1:$PORT --conns "$conns" \
        --topics "$topics" --per-conn "$per" --warmup "$WARMUP" --duration "$DURATION" --sources 4 \
        --proto "$(proto "$system")" --server-pids "$pids" "${LOADGEN_DEFLATE[@]}" \
        2> >(grep -v '^READY$' >&2))
    stop_server
    local cpu
    cpu=$(awk -v c="$(json "$out" server_cpu_pct)" 'BEGIN {printf "%.0f", c}')
    local delivered
    delivered=$(json "$out" delivered_per_s)
    DELIVERED["$system/$conns/$target"]=$delivered
    CPU["$system/$conns/$target"]=$cpu
    P99["$system/$conns/$target"]=$(json "$out" p99_ms)
    row "$system" "${conns}" "$target" "$delivered" "$(json "$out" p50_ms)" "$(json "$out" p99_ms)" \
        "$(json "$out" p999_ms)" "$(json "$out" max_ms)" "${cpu}%" "$(json "$out" dropped)"
}

idle_case() { # system conns
    local system=$1 conns=$2
    start_server "$system" 0 1000
    sleep 0.5
    local before after fifo
    before=$(rss_kb "$SPID")
    fifo="$OUT/hold.$$"
    taskset -c $CLIENT_CPU $BIN/loadgen --addr 127.0.0.1:$PORT --conns "$conns" --topics 1000 \
        --per-conn 10 --hold --duration 4 --sources 4 --proto "$(proto "$system")" \
        "${LOADGEN_DEFLATE[@]}" >"$fifo" &
    local lg=$!
    for _ in $(seq 1200); do grep -q READY "$fifo" 2>/dev/null && break; sleep 0.1; done
    sleep 1
    after=$(rss_kb "$SPID")
    wait "$lg"
    rm -f "$fifo"
    stop_server
    printf "%-9s %6s %12s %12s %14s\n" "$system" "$conns" "$before" "$after" \
        "$(( (after - before) * 1024 / conns ))" | tee -a "$REPORT"
}

SYSTEMS=(tickcast uWS.js ws nats)
if [[ $DEFLATE == 1 ]]; then
    SYSTEMS=(tickcast uWS.js)
    WARMUP=2; DURATION=5
    TOPOLOGIES=("1000 100 10")
    RATES=(100000 500000 1000000 2000000)
    IDLE_CONNS=1000
elif [[ $QUICK == 1 ]]; then
    WARMUP=1; DURATION=2
    TOPOLOGIES=("1000 100 10")
    RATES=(500000 2000000)
    IDLE_CONNS=1000
else
    WARMUP=2; DURATION=5
    TOPOLOGIES=("1000 100 10" "10000 1000 10")
    RATES=(100000 500000 1000000 2000000 4000000)
    IDLE_CONNS=10000
fi

{
    echo "# fanout $(date -u +%Y-%m-%dT%H:%M:%SZ) $(uname -r) $(nproc) cores, $(node --version) node"
    echo "# server on CPU $SERVER_CPU, load generator on CPU $CLIENT_CPU; warmup ${WARMUP}s, measure ${DURATION}s"
} | tee "$REPORT"

echo | tee -a "$REPORT"
echo "## memory per idle subscribed connection ($IDLE_CONNS connections, 10 topics each)" | tee -a "$REPORT"
printf "%-9s %6s %12s %12s %14s\n" system conns rss_before_kb rss_after_kb bytes_per_conn | tee -a "$REPORT"
for s in "${SYSTEMS[@]}"; do idle_case "$s" "$IDLE_CONNS"; done

for topo in "${TOPOLOGIES[@]}"; do
    read -r conns topics per <<<"$topo"
    echo | tee -a "$REPORT"
    echo "## $conns subscribers x $per of $topics topics ($((conns * per / topics)) subscribers per topic)" | tee -a "$REPORT"
    row system conns target delivered/s p50_ms p99_ms p99.9_ms max_ms cpu dropped
    for rate in "${RATES[@]}"; do
        for s in "${SYSTEMS[@]}"; do run_case "$s" "$conns" "$topics" "$per" "$rate"; done
    done
done

echo | tee -a "$REPORT"
echo "## tickcast / peer ratios: delivered (higher is better), server CPU and p99 (lower is better)" | tee -a "$REPORT"
for topo in "${TOPOLOGIES[@]}"; do
    read -r conns _ _ <<<"$topo"
    for rate in "${RATES[@]}"; do
        for peer in uWS.js nats; do
            [[ " ${SYSTEMS[*]} " == *" $peer "* ]] || continue
            k="$conns/$rate"
            awk -v c="$conns" -v r="$rate" -v p="$peer" \
                -v t="${DELIVERED["tickcast/$k"]}" -v u="${DELIVERED["$peer/$k"]}" \
                -v tc="${CPU["tickcast/$k"]}" -v uc="${CPU["$peer/$k"]}" \
                -v t9="${P99["tickcast/$k"]}" -v u9="${P99["$peer/$k"]}" \
                'BEGIN {printf "%6s conns, target %8s/s: tickcast/%-6s delivered %.2f, cpu %.2f, p99 %.2f\n",
                        c, r, p, (u > 0 ? t/u : 0), (uc > 0 ? tc/uc : 0), (u9 > 0 ? t9/u9 : 0)}' | tee -a "$REPORT"
        done
    done
done
echo "report: $REPORT" >&2
