# loophost image: built on Debian 12 with the same dependency script and build command as
# CI, run on slim Debian 12 with only the runtime libraries, as a non-root user, plugins
# installed beside loophost.
FROM debian:12 AS build
WORKDIR /src
COPY scripts/install-deps.sh scripts/
RUN scripts/install-deps.sh build
COPY . .
RUN scripts/build.sh /build

FROM debian:12-slim
COPY scripts/install-deps.sh /tmp/install-deps.sh
RUN /tmp/install-deps.sh runtime && rm -rf /var/lib/apt/lists/* /tmp/install-deps.sh \
 && useradd --system --uid 10001 --home-dir /var/lib/loophost --create-home loophost
COPY --from=build /build/bin/loophost /build/bin/loopctl /build/bin/loop-example /usr/local/bin/
USER loophost
WORKDIR /var/lib/loophost
ENV LOOPHOST_STATE_DIR=/var/lib/loophost \
    LOOPHOST_METRICS_ADDR=0.0.0.0:9091 \
    EXAMPLE_PLUGIN=true \
    EXAMPLE_PLUGIN_CMD=/usr/local/bin/loop-example
EXPOSE 9091
ENTRYPOINT ["/usr/local/bin/loophost"]
