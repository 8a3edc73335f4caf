# One image for both daemons: `openelb controller` and `openelb speaker`.
#
# Built from wheels, never from the network inside a build step, so a build is
# reproducible and works where the build cannot reach a package index:
#     bash hack/build-image.sh            # pip wheel + podman build, see docs/image.md
# or by hand, with Docker and the official Python base (the default BASE):
#     pip wheel --wheel-dir build/wheels . && docker build -t openelb/openelb:0.1.0 .
# BASE may be any Debian bookworm image with Python 3.11 (hack/build-image.sh makes
# one with mmdebstrap that already holds the Debian packages below).
ARG BASE=python:3.11-slim-bookworm

FROM ${BASE} AS build
COPY build/wheels /wheels
# A virtualenv, so the same path works on the official image (/usr/local/bin/python3)
# and on Debian's python3; --no-index: only the wheels built outside.
RUN python3 -m venv /opt/openelb \
    && /opt/openelb/bin/pip install --no-cache-dir --no-index --find-links /wheels openelb \
    && /opt/openelb/bin/pip uninstall --quiet --yes pip setuptools

FROM ${BASE}
# iproute2: route lookups for can_reach interfaces in debugging sessions;
# netcat-openbsd: the pipe between ExaBGP's API and the speaker (announce/bgp/engine.py);
# keepalived: VIP mode's VRRP daemon, run by the speaker only while it holds VIP instances.
# Installed only when the base lacks them (a base made by hack/build-image.sh has them).
RUN missing=""; \
    for pkg in iproute2 netcat-openbsd keepalived; do \
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" \
            || missing="$missing $pkg"; \
    done; \
    if [ -n "$missing" ]; then \
        apt-get update && apt-get install -y --no-install-recommends $missing \
        && rm -rf /var/lib/apt/lists/*; \
    fi
COPY --from=build /opt/openelb /opt/openelb
ENV PATH=/opt/openelb/bin:$PATH PYTHONDONTWRITEBYTECODE=1
ENTRYPOINT ["openelb"]
CMD ["--help"]
