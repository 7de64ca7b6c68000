# oneapi: one daphne process on port 3000; SQLite in /data unless SQL_DSN points at MySQL or PostgreSQL.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SQLITE_PATH=/data/oneapi.db \
    PORT=3000

WORKDIR /app

# mysqlclient compiles against the client headers; gcc and pkg-config go once it is built,
# libmariadb3 (the runtime library) stays.
COPY requirements.txt requirements-mysql.txt ./
RUN apt-get update \
    && apt-get install -y --no-install-recommends default-libmysqlclient-dev libmariadb3 pkg-config gcc \
    && pip install -r requirements.txt -r requirements-mysql.txt \
    && apt-get purge -y --auto-remove gcc pkg-config \
    && rm -rf /var/lib/apt/lists/*

COPY . .

# A named volume on /data starts with this owner, so the unprivileged user can write the database.
RUN useradd --system --uid 1000 --home-dir /data oneapi \
    && mkdir -p /data && chown oneapi:oneapi /data
USER oneapi
VOLUME /data
EXPOSE 3000

# /readyz: 200 when the database, Redis, the channels and the ledger are all right (README, "Health checks").
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('PORT', '3000'), timeout=8)"

# Migrations and the root seed are idempotent, so every start runs them (one-api migrates at start too).
CMD ["sh", "-c", "python manage.py migrate --noinput && python manage.py seed && exec python -m oneapi_site.serve"]
