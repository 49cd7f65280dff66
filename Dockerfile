# ChatWait: slim image, non-root, health-checked. Mirrors scripts/run:
# install requirements.txt, then gunicorn -c gunicorn.conf.py wsgi:app.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PORT=8000

WORKDIR /srv/chatwait

COPY requirements.txt ./
RUN pip install -r requirements.txt

COPY app ./app
COPY contracts ./contracts
COPY wsgi.py gunicorn.conf.py ./

RUN useradd --system --uid 10001 --no-create-home chatwait
USER chatwait

EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"PORT\", \"8000\")}/health', timeout=2)"]

CMD ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
