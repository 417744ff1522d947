# vidprod on Fly.io: LiteFS (as root, for FUSE) prepares the volume and runs migrations,
# then the app as an unprivileged user (litefs.yml). `deploy/install.sh` runs the same
# install steps on a host in CI; tests/test_deploy.py runs the entry sequence.

# MediaPipe's libmediapipe.so needs libEGL.so.1 and libGLESv2.so.2, which slim images
# lack; tests/test_deploy.py checks every library the wheels need against this list.
ARG RUNTIME_PACKAGES="ca-certificates fuse3 libegl1 libgles2"

# --- build: resolve and install the locked dependencies into /app/.venv --------------
FROM python:3.11-slim-bookworm AS build
ARG RUNTIME_PACKAGES
COPY --from=ghcr.io/astral-sh/uv:0.9 /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
RUN apt-get update -y \
 && apt-get install -y --no-install-recommends $RUNTIME_PACKAGES \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml uv.lock README.md LICENSE ./
COPY vidprod ./vidprod
COPY templates ./templates
COPY static ./static
COPY deploy/install.sh deploy/install.sh
RUN deploy/install.sh /app

# --- runtime: Python, the venv, LiteFS; nothing to build with ------------------------
FROM python:3.11-slim-bookworm
ARG RUNTIME_PACKAGES
RUN apt-get update -y \
 && apt-get install -y --no-install-recommends $RUNTIME_PACKAGES \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 vidprod \
 && useradd --system --uid 10001 --gid 10001 --home-dir /data --shell /usr/sbin/nologin vidprod
COPY --from=flyio/litefs:0.5 /usr/local/bin/litefs /usr/local/bin/litefs
COPY --from=build /app /app
COPY deploy/prepare-volume.sh /usr/local/bin/vidprod-prepare-volume
COPY litefs.yml /etc/litefs.yml
ENV PATH="/app/.venv/bin:$PATH" \
    PYTHONUNBUFFERED=1 \
    VIDPROD_DATA_DIR=/data \
    TMPDIR=/data/tmp
# The shipped stage itself loads every native library (fails the build otherwise).
RUN vidprod check
WORKDIR /data
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s \
  CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=4); sys.exit(0)"
# LiteFS mounts /litefs, waits for the lease, runs `exec` from litefs.yml. A CMD, not an
# ENTRYPOINT: each fly.toml process group's command replaces it (Fly hands a group's
# command to the ENTRYPOINT as arguments), so a render worker runs without LiteFS.
CMD ["litefs", "mount"]
