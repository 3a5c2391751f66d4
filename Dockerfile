# syntax=docker/dockerfile:1
# connection-flask container image.
#   make image                      (CONTAINER_TOOL=docker by default, or podman)
#   docker run --rm --read-only -p 5000:5000 connection-flask:dev
#
# Two stages: the project and its dependencies are installed into /opt/venv in a build stage,
# and only that virtualenv is copied into a fresh slim stage (no pip cache, no build files).
# The base is pinned to a full Python patch release and Debian release; pin it by digest too
# (PYTHON_IMAGE=python:3.11.14-slim-trixie@sha256:...) where a registry can be queried.
ARG PYTHON_IMAGE=python:3.11.14-slim-trixie

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY service ./service
# Every dependency has a manylinux wheel for CPython 3.11 (google-re2, gevent, orjson),
# so no compiler is needed. pip byte-compiles the installed files, so the read-only runtime
# never needs to write a .pyc. connection_flask.selftest is what the chart's `helm test` pod runs.
RUN /opt/venv/bin/pip install --no-cache-dir /src \
    && /opt/venv/bin/python -c "import connection_flask.wsgi, connection_flask.gunicorn_conf, connection_flask.selftest"

FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="connection-flask" \
      org.opencontainers.image.description="Connection registry for DUNE DAQ applications" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/DUNE-DAQ/connectivityserver"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# A numeric, non-root user without a home or a login shell; Kubernetes' runAsNonRoot check
# needs the numeric USER below.
RUN groupadd --system --gid 10001 connection-flask \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin connection-flask
COPY --from=build /opt/venv /opt/venv
USER 10001:10001
EXPOSE 5000
STOPSIGNAL SIGTERM
# For docker/podman only; Kubernetes ignores HEALTHCHECK and uses the chart's probes.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:5000/healthz', timeout=2).status != 200)"]
# Exec form, no shell: Gunicorn's master is PID 1 and receives SIGTERM itself. Bind, workers,
# worker class, timeouts, access log and worker tmp dir all come from CONNECTION_FLASK_* variables
# (see connection_flask/gunicorn_conf.py). The image sets none of them, so an unset one means the
# default in settings.py, as everywhere else (tests/deploy/test_defaults.py). With a read-only
# root filesystem the heartbeat goes to /dev/shm by default; the Helm chart and Kustomize base
# mount an emptyDir at /tmp instead.
CMD ["gunicorn", "--config", "python:connection_flask.gunicorn_conf", "connection_flask.wsgi:app"]
