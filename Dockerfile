# leadgen runtime image: the package, Alembic migrations and celeryconfig; no test tools.
FROM python:3.12-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md celeryconfig.py ./
COPY leadgen ./leadgen
RUN python -m venv /opt/venv && /opt/venv/bin/pip install .

FROM python:3.12-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN groupadd --system leadgen && useradd --system --gid leadgen --home-dir /app leadgen
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --chown=leadgen:leadgen alembic.ini celeryconfig.py ./
COPY --chown=leadgen:leadgen alembic ./alembic
COPY --chown=leadgen:leadgen docker ./docker
RUN mkdir -p /app/var /run/leadgen && chown leadgen:leadgen /app/var /run/leadgen
USER leadgen
# Each compose service picks its command (worker, beat, flower, migrate).
CMD ["celery", "-A", "leadgen", "worker", "--loglevel=INFO"]
