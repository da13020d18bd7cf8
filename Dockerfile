# Cepheus as a container: built from this checkout on Debian bookworm, run
# as a non-root user with the state directory on a volume and the metrics
# port exposed. docs/operations.md ("Deployment") shows how to run it.
#
#   docker build -t cepheus .
#   docker run --rm -v cepheus-state:/var/lib/cepheus -v $PWD/pipeline:/etc/cepheus:ro \
#     -p 9464:9464 cepheus run /etc/cepheus/pipeline.yaml

# --- build: the same packages and flags as a developer build, without tests
FROM debian:bookworm AS build
WORKDIR /src
COPY scripts/install-deps.sh scripts/runtime-packages.sh scripts/
RUN bash scripts/install-deps.sh && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DCEPHEUS_BUILD_TESTS=OFF \
        -DCEPHEUS_BUILD_BENCH=OFF \
    && cmake --build /build -j"$(nproc)" --target cepheus \
    && install -D -m 0755 /build/app/cepheus /out/usr/local/bin/cepheus \
    && bash scripts/runtime-packages.sh /build/app/cepheus > /out/runtime-packages.txt

# --- runtime: the binary and exactly the shared libraries it links against
FROM debian:bookworm-slim
COPY --from=build /out/runtime-packages.txt /tmp/runtime-packages.txt
RUN apt-get update -qq \
    && xargs -a /tmp/runtime-packages.txt apt-get install -y -qq --no-install-recommends \
    && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages.txt \
    && useradd --system --home-dir /var/lib/cepheus --create-home --uid 10001 cepheus
COPY --from=build /out/usr/local/bin/cepheus /usr/local/bin/cepheus
USER cepheus
WORKDIR /var/lib/cepheus
# Checkpoints and RocksDB state: keep them across container restarts.
VOLUME ["/var/lib/cepheus"]
# /metrics, /healthz, /readyz. The pipeline must listen on all interfaces
# inside the container: metrics: { listen: 0.0.0.0:9464 }.
EXPOSE 9464
# SIGTERM (docker stop) ends the run at a checkpoint; give it time to.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/cepheus"]
CMD ["--help"]
