#!/usr/bin/env bash
# Order-book fan-out against plain updates, same topology, same run:
# 1,000 subscribers x 10 of 100 topics, the topics plain (`B.0000`) or order
# books of 200 levels a side (`B.0000.book`, subscribed at depth 10 or 100,
# each change setting two levels inside the window). The server is pinned to
# CPU 0 and the load generator (examples/loadgen.rs) to CPU 1.
#
#   benches/books.sh            # 500k and 2M deliveries/s targets, ~1 minute
#
# Results also go to target/bench/books-<date>.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

PORT=${PORT:-9500}
BIN=target/release/examples
OUT=target/bench
mkdir -p "$OUT"
REPORT="$OUT/books-$(date +%Y%m%d-%H%M%S).txt"
cargo build --quiet --release --example bench_server --example loadgen

SPID=""
trap '[[ -n "$SPID" ]] && kill "$SPID" 2>/dev/null || true' EXIT
json() { sed -E "s/.*\"$2\":([0-9.]+).*/\1/" <<<"$1"; }
row() { printf "%-14s %9s %11s %11s %9s %9s %9s %6s\n" "$@" | tee -a "$REPORT"; }

run() { # kind(plain|depth10|depth100) target
    local kind=$1 target=$2 conns=1000 topics=100 per=10
    local subs=$((conns * per / topics)) rate
    rate=$((target / subs))
    local server_args=() load_args=()
    case $kind in
        plain) ;;
        depth*) server_args=(--books 200); load_args=(--suffix .book --depth "${kind#depth}") ;;
    esac
    taskset -c 0 $BIN/bench_server --listen 127.0.0.1:$PORT --rate "$rate" --topics $topics \
        --shards 1 --start-after $conns "${server_args[@]}" >/dev/null 2>&1 &
    SPID=$!
    for _ in $(seq 100); do
        if (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null; then break; fi
        sleep 0.05
    done
    local out
    # Server CPU over the load generator's measured window (as fanout.sh).
    out=$(taskset -c 1 $BIN/loadgen --addr 127.0.0.1:$PORT --conns $conns --topics $topics \
        --per-conn $per --warmup 1 --duration 3 --sources 4 --server-pids "$SPID" "${load_args[@]}")
    kill "$SPID" 2>/dev/null || true
    wait "$SPID" 2>/dev/null || true
    SPID=""
    PORT=$((PORT + 1))
    local cpu
    cpu=$(awk -v c="$(json "$out" server_cpu_pct)" 'BEGIN {printf "%.0f", c}')
    row "$kind" "$target" "$(json "$out" delivered_per_s)" "$(json "$out" p50_ms)" \
        "$(json "$out" p99_ms)" "$(json "$out" max_ms)" "$(json "$out" mb_per_s)" "${cpu}%"
}

{
    echo "# books.sh $(date -u +%Y-%m-%dT%H:%M:%SZ) $(nproc) cores"
    echo "# 1000 subscribers x 10 of 100 topics; books of 200 levels a side"
} | tee -a "$REPORT"
row kind target delivered/s p50_ms p99_ms max_ms MB/s cpu
for target in 500000 2000000; do
    for kind in plain depth10 depth100; do
        run "$kind" "$target"
    done
done
echo "report: $REPORT" >&2
