# Sourced by the other scripts: create ./.venv (or $RUVON_VENV) and install the project
# into it with the extras in $RUVON_EXTRAS, reinstalling only when pyproject.toml changes.
set -euo pipefail
VENV="${RUVON_VENV:-.venv}"
EXTRAS="${RUVON_EXTRAS:-dev,embedded}"
PYTHON="${PYTHON:-python3}"

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "error: Python 3.11 or newer is needed (found: $("$PYTHON" --version 2>&1))." >&2
    echo "       Set PYTHON=/path/to/python3.11 and run again." >&2
    exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
    echo "==> creating virtual environment in $VENV"
    "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.ruvon-installed-$EXTRAS"
want="$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "==> installing ruvon-workers[$EXTRAS] (first run takes a minute)"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet --progress-bar off -e ".[$EXTRAS]"
    echo "$want" > "$stamp"
fi
export PATH="$PWD/$VENV/bin:$PATH"
