# Shared by scripts/run and scripts/test: create .venv and install a requirements file into
# it, skipping pip when that file has not changed since the last install.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CHATWAIT_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"

ensure_venv() {
  local requirements="$1" stamp
  if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
  fi
  stamp="$VENV/.installed-$(basename "$requirements")"
  local digest
  digest="$(cat "$ROOT/requirements"*.txt | sha256sum | cut -d' ' -f1)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$digest" ]; then
    echo "Installing dependencies from $(basename "$requirements") into $VENV ..." >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements" >&2
    echo "$digest" > "$stamp"
  fi
}
