# syntax=docker/dockerfile:1.7
# One image for every process: `order-service api|relay|worker|migrate|dlq replay`.
# Build: docker build -t order-service:dev .   (compose and the Helm chart use the same image)

ARG PYTHON_VERSION=3.11.14
ARG UV_VERSION=0.13.9

FROM ghcr.io/astral-sh/uv:${UV_VERSION} AS uv

# ---- build stage: resolves nothing, installs exactly what uv.lock pins -------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/venv
WORKDIR /src
# Dependencies first (cached layer as long as the lock does not change), the project after.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --extra aws --no-install-project
COPY README.md ./
COPY src ./src
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --extra aws --no-editable

# ---- runtime stage: no compiler, no uv, no sources; only the venv ----------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
ARG APP_UID=10001
LABEL org.opencontainers.image.title="order-service" \
      org.opencontainers.image.source="https://github.com/order-service/order-service" \
      org.opencontainers.image.licenses="MIT"
RUN groupadd --system --gid ${APP_UID} app \
 && useradd --system --uid ${APP_UID} --gid app --home-dir /app --shell /usr/sbin/nologin app
COPY --from=build --chown=root:root /opt/venv /opt/venv
ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ENVIRONMENT=prod \
    LOG_FORMAT=json \
    HEALTHCHECK_PORT=8000
WORKDIR /app
# Numeric UID so Kubernetes `runAsNonRoot` can verify it without a passwd lookup.
USER 10001:10001
EXPOSE 8000 8001 8002
# Each process serves /healthz on its own port; compose/Helm set HEALTHCHECK_PORT per service.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('HEALTHCHECK_PORT', '8000'), timeout=2).close()"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["order-service"]
CMD ["api", "--host", "0.0.0.0", "--port", "8000"]
