# syntax=docker/dockerfile:1.7
# The one-shot migration image: every service's Alembic history, applied in order (safe to run
# concurrently: each schema migrates under an advisory lock). Build from the repository root:
#   docker build -f deploy/docker/migrate.Dockerfile -t pulse/migrate .
FROM python:3.11-slim AS build
ENV UV_PYTHON_DOWNLOADS=never UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy
RUN pip install --no-cache-dir uv==0.13.9
WORKDIR /src
COPY pyproject.toml uv.lock ./
COPY shared shared
COPY services services
RUN uv sync --frozen --no-dev --no-editable --all-packages

FROM python:3.11-slim
RUN groupadd --system --gid 10001 pulse && useradd --system --uid 10001 --gid pulse --no-create-home pulse
COPY --from=build --chown=10001:10001 /src/.venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
HEALTHCHECK NONE
ENTRYPOINT ["/bin/sh", "-c", "python -m ingest migrate && python -m scoring migrate && python -m alerts migrate && python -m crm_sync migrate"]
