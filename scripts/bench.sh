#!/usr/bin/env bash
# Run the benchmark: the seed's micro benchmarks, then the fleet beside a raw Celery chain.
# Extra arguments go to `ruvon-workers bench` (e.g. --quick, --ablations, --json).
# Uses DATABASE_URL / CELERY_BROKER_URL when set, otherwise embedded servers.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
quick=""
for arg in "$@"; do [ "$arg" = "--quick" ] && quick="--quick"; done
echo "==> micro benchmarks (tests/benchmarks/workflow_performance.py)"
python tests/benchmarks/workflow_performance.py --skip-fleet $quick
echo "==> ruvon-workers bench $*"
ruvon-workers bench "$@"
