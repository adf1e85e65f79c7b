# syntax=docker/dockerfile:1
#
# Ruvon Workers image: the "ruvon-workers" CLI in a virtualenv on python:3.11-slim.
#
#   docker build -t ruvon-workers:0.1.0 .
#   docker run --rm -e DATABASE_URL=... -e CELERY_BROKER_URL=... ruvon-workers:0.1.0
#
# Default command: a Celery worker ("ruvon-workers worker"). Other roles use the
# same image with other arguments: "flower --port 5555", "db migrate",
# "health live|ready|fleet". To add your step functions, build FROM this image
# and pip install your package into /opt/venv (see docs/deploy.md).

ARG PYTHON_IMAGE=python:3.11-slim

# ---- builder: resolve and install the package and its dependencies into /opt/venv
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
# Only what the wheel build reads: pyproject.toml names README.md as the readme
# and packs config/ (the example registry) into the package.
COPY pyproject.toml README.md ./
COPY ruvon_workers ./ruvon_workers
COPY config ./config
# Every dependency ships binary wheels, so no compiler is needed here either;
# byte-compile up front because the runtime filesystem is read-only.
RUN pip install --no-cache-dir . \
    && python -m compileall -q /opt/venv/lib

# ---- runtime: no compilers, no build tools, non-root
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="ruvon-workers" \
      org.opencontainers.image.description="Durable workflow engine whose worker fleet is Celery (state in PostgreSQL)" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    RUVON_REGISTRY=/app/config/workflow_registry.yaml \
    RUVON_METRICS_PORT=9808 \
    RUVON_HEARTBEAT_FILE=/tmp/ruvon-worker.heartbeat

RUN groupadd --system --gid 10001 ruvon \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin ruvon

COPY --from=builder /opt/venv /opt/venv
# The example registry and workflow definitions; readable, not writable, by the app user.
COPY config/ /app/config/

WORKDIR /app
# Only /tmp needs to be writable (heartbeat file, Celery's scratch files); on
# Kubernetes the root filesystem is read-only and /tmp is an emptyDir.
USER 10001:10001

# 9808: Prometheus /metrics of the worker. 5555: Flower.
EXPOSE 9808 5555

# Exec form: the CLI is PID 1 and receives SIGTERM (warm shutdown) itself.
ENTRYPOINT ["ruvon-workers"]
CMD ["worker"]
