# syntax=docker/dockerfile:1
# callgate image: `docker build -t callgate .`, then `docker run callgate gateway|worker|migrate`.
#
# Stage 1 builds a virtualenv with compilers at hand (wheels that need them: hiredis, asyncpg,
# pycryptodome on platforms without binary wheels). Stage 2 copies only that virtualenv onto a
# clean slim image: no compiler, no pip cache, no source tree, and a non-root user.

ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# Build stage only, thrown away: the distribution's current compiler is what we want (DL3008).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/callgate
WORKDIR /src
COPY pyproject.toml README.md ./
COPY callgate ./callgate
COPY gateway ./gateway
COPY workers ./workers
COPY shared ./shared
RUN /opt/callgate/bin/pip install --upgrade pip \
    && /opt/callgate/bin/pip install . \
    && /opt/callgate/bin/callgate --help >/dev/null

FROM python:${PYTHON_VERSION}-slim AS runtime
LABEL org.opencontainers.image.title="callgate" \
      org.opencontainers.image.description="Inbound callback gateway for crypto custody providers" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/callgate/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CALLGATE_HOST=0.0.0.0 \
    CALLGATE_SPOOL_DIR=/var/lib/callgate/spool
RUN groupadd --system --gid 10001 callgate \
    && useradd --system --uid 10001 --gid callgate --home-dir /var/lib/callgate --shell /usr/sbin/nologin callgate \
    && mkdir -p /var/lib/callgate/spool \
    && chown -R callgate:callgate /var/lib/callgate
COPY --from=build /opt/callgate /opt/callgate
COPY deploy/policy.example.yaml /etc/callgate/policy.example.yaml
USER 10001:10001
WORKDIR /var/lib/callgate
# The spool must survive a restart (un-acked-by-Redis callbacks wait there): mount a volume.
VOLUME ["/var/lib/callgate/spool"]
EXPOSE 8080 9091
ENTRYPOINT ["callgate"]
CMD ["gateway"]
