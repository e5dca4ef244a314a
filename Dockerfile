# chainwatch container image: one image for every role (worker, connector, CLI).
#
#   docker build -t chainwatch:0.1.0 .
#   docker run --rm chainwatch:0.1.0 --help
#   docker run --rm -v "$PWD/deploy:/etc/chainwatch:ro" chainwatch:0.1.0 \
#       config check /etc/chainwatch/chainwatch.compose.yaml
#
# The base image is pinned by version tag and by the digest of its multi-architecture index
# (python:3.11.14-slim-bookworm). To update: change both together, rebuild, run the tests.
# No secret is baked in: API tokens, webhook secrets etc. come from the environment at run
# time (see deploy/README.md). Needs BuildKit (the default builder since Docker 23) for the
# RUN --mount below.

# --- build: a wheel of chainwatch and of every dependency --------------------------------------
FROM python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY connectors ./connectors
COPY monitor ./monitor
COPY rules ./rules
RUN python -m pip wheel --wheel-dir /wheels .

# --- runtime: the wheels installed into a clean slim image, run as an unprivileged user -------
FROM python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d AS runtime

LABEL org.opencontainers.image.title="chainwatch" \
      org.opencontainers.image.description="Streaming transaction monitoring for virtual assets" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="0.1.0"

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CHAINWATCH_CONFIG=/etc/chainwatch/chainwatch.yaml \
    CHAINWATCH_STATE_DIR=/var/lib/chainwatch \
    CHAINWATCH_HEALTH_URL=http://127.0.0.1:6066/health

RUN groupadd --system --gid 10001 chainwatch \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/chainwatch \
       --no-create-home --shell /usr/sbin/nologin chainwatch \
    && mkdir -p /etc/chainwatch /var/lib/chainwatch \
    && chown 10001:10001 /var/lib/chainwatch

# The wheels are bind-mounted from the build stage, so they never become a layer of this image.
# Offline (--no-index): exactly what the build stage resolved; the version is pyproject.toml's.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m pip install --no-index --find-links=/wheels chainwatch==0.1.0 \
    && chainwatch --help > /dev/null

# Workers keep Faust's data directory under $CHAINWATCH_STATE_DIR (worker.state_dir): the state volume.
WORKDIR /var/lib/chainwatch
VOLUME ["/var/lib/chainwatch"]
USER 10001:10001

# 6066: the worker's HTTP API, /health and /metrics (api.port); 9464: a connector's metrics_port.
EXPOSE 6066 9464

# The worker's /health answers 200 once its watchlist replica has caught up. Connectors serve no
# /health: compose and Kubernetes give them their own check (see deploy/).
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=4 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['CHAINWATCH_HEALTH_URL'], timeout=4)"]

ENTRYPOINT ["chainwatch"]
CMD ["worker"]
