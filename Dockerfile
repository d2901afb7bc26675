# moonwire in a container: a build stage with the Debian -dev packages, and a runtime stage that
# holds only the shared libraries, the binary, the runtime's Lua files and the app in /app.
#
#   docker build -t moonwire .          (podman: podman build --format docker -t moonwire .,
#                                        the docker format keeps the HEALTHCHECK)
#   docker run --rm -p 8080:8080 moonwire
#
# Configuration is by environment (MOONWIRE_PORT, MOONWIRE_REDIS_URL, ...; README "Running it").
# moonwire runs as PID 1: its supervisor takes SIGTERM itself, drains, reaps its workers and
# exits 0 within limits.shutdownTimeout (8 s), inside Docker's 10 s stop grace.

FROM debian:bookworm-slim AS build
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends \
      build-essential cmake pkg-config libuv1-dev libluajit2-5.1-dev libwslay-dev zlib1g-dev node-llhttp \
      libhiredis-dev libjwt-dev libsqlite3-dev libpq-dev libssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# clients/js holds the browser client served at /moonwire.js; the install rule needs the folder.
RUN mkdir -p clients/js \
 && cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DMW_BUILD_TESTS=OFF \
      -DCMAKE_INSTALL_PREFIX=/opt/moonwire >/dev/null \
 && cmake --build /build --target moonwire -j"$(nproc)" \
 && cmake --install /build --strip >/dev/null \
 && /opt/moonwire/bin/moonwire version

FROM debian:bookworm-slim
ARG DEBIAN_FRONTEND=noninteractive
# lua-cjson is loaded by LuaJIT at run time; libssl3 provides the libcrypto the binary links.
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends \
      libuv1 libluajit2-5.1-2 libwslay1 zlib1g libhiredis0.14 libjwt0 libsqlite3-0 libpq5 libssl3 \
      lua-cjson \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log \
 && groupadd --gid 10001 moonwire \
 && useradd --uid 10001 --gid 10001 --home-dir /app --no-create-home \
      --shell /usr/sbin/nologin moonwire
# /opt/moonwire/bin/moonwire finds its lua/, controllers/ and clients/js/ in ../share/moonwire.
COPY --from=build /opt/moonwire /opt/moonwire
# The default app; mount yours over it (-v ./my-app:/app). It is owned by the server's user so
# the SQLite default (sqlite:/app/data/app.db) can be created; /data is an alternative home
# for the database when the mounted app is read-only (MOONWIRE_DATABASE_URL=sqlite:/data/app.db).
COPY --chown=10001:10001 examples/hello-world /app
RUN install -d -o 10001 -g 10001 /app/data /data
# Host and port are pinned by environment (it beats app.lua) so EXPOSE, the HEALTHCHECK and
# published ports hold for any app; -e MOONWIRE_PORT=... moves all of them together.
ENV PATH=/opt/moonwire/bin:$PATH \
    MOONWIRE_HOST=0.0.0.0 \
    MOONWIRE_PORT=8080
WORKDIR /app
USER 10001:10001
EXPOSE 8080
STOPSIGNAL SIGTERM
# bash's /dev/tcp instead of curl: no extra packages (curl would add libcurl and its TLS stack).
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${MOONWIRE_PORT:-8080} && printf 'GET /health HTTP/1.0\\r\\n\\r\\n' >&3 && read -r -t 2 proto status rest <&3 && [ \"$status\" = 200 ]"]
# Arguments after the image name replace CMD: `--workers 2` (serve flags), `check`, `version`.
ENTRYPOINT ["moonwire"]
CMD ["serve", "/app"]
