#!/usr/bin/env bash
# Install the project with its embedded servers and run the demo.
# With DATABASE_URL / CELERY_BROKER_URL set, the demo uses those instead.
set -euo pipefail
cd "$(dirname "$0")/.."
RUVON_EXTRAS="${RUVON_EXTRAS:-embedded}" source scripts/_venv.sh
exec ruvon-workers demo "$@"
