#!/usr/bin/env bash
# The soak: N workflows through a small fleet with chaos for the whole run (kill -9 of a
# worker every 5 s, the broker restarted empty every 60 s, PostgreSQL restarted every
# 90 s), on private servers of its own. It prints lost, doubled and wrong, and how long
# the workflows each kind of event hit took to move again (p50/p99); it exits 1 if any
# workflow was lost, doubled or wrong.
#   bash scripts/soak.sh                      # 10,000 workflows (about 8 minutes here)
#   bash scripts/soak.sh --workflows 500 --kill-every 2 --broker-restart-every 4 --db-restart-every 6
# Arguments go to `python -m ruvon_workers.bench.soak` (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
python -m ruvon_workers.bench.soak "$@"
