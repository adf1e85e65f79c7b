#!/usr/bin/env bash
# Run lint, type checks and the whole test suite.
#
# PostgreSQL and Redis: the tests use DATABASE_URL / CELERY_BROKER_URL (or TEST_DATABASE_URL /
# TEST_REDIS_URL) when they answer, and otherwise start embedded servers, so this works on
# a machine with nothing running. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh

echo "==> ruff"
ruff check .
echo "==> mypy"
mypy
echo "==> pytest"
python -m pytest "$@"
