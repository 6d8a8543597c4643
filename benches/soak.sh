#!/usr/bin/env bash
# Soak test for issue 15: the hostile-client attacks together against one
# release tickcastd (under a lowered open-files limit) while a keeping-up
# subscriber checks for gaps and measures its longest silence. Bounded in
# time: --minutes N (default 3). Loopback only.
#   benches/soak.sh [--minutes N] [--nofile N]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin tickcastd --example soak
# The attackers hold up to ~1,600 sockets of their own.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
exec target/release/examples/soak "$@"
