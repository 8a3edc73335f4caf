# One image for both daemons: `openelb controller` and `openelb speaker`.
# Build: docker build -t openelb/openelb:0.1.0 .
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim-bookworm
# iproute2: route lookups for can_reach interfaces in debugging sessions;
# netcat-openbsd: the pipe between ExaBGP's API and the speaker (announce/bgp/engine.py);
# keepalived: VIP mode's VRRP daemon, run by the speaker only while it holds VIP instances.
RUN apt-get update \
    && apt-get install -y --no-install-recommends iproute2 netcat-openbsd keepalived \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /install /usr/local
ENTRYPOINT ["openelb"]
CMD ["--help"]
