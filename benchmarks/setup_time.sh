#!/usr/bin/env bash
# Fresh set-up time: clone the repository into a temp dir and time `make setup` twice
# (cold uv cache, then the idempotent second run). Usage: benchmarks/setup_time.sh [runs]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-1}
for i in $(seq "$runs"); do
  work=$(mktemp -d)
  git clone -q "$repo" "$work/ws"
  export UV_CACHE_DIR="$work/uv-cache" PIP_NO_CACHE_DIR=1   # nothing reused from earlier installs
  cd "$work/ws"
  s=$(date +%s.%N); make -s setup >/dev/null; e=$(date +%s.%N)
  s2=$(date +%s.%N); make -s setup >/dev/null; e2=$(date +%s.%N)
  printf 'run %d: fresh setup %.1f s, second setup %.2f s\n' "$i" "$(echo "$e - $s" | bc)" "$(echo "$e2 - $s2" | bc)"
  cd /; rm -rf "$work"
done
