# syntax=docker/dockerfile:1
# The APX worker image: `docker build -t apx-worker .`
# The same image can be built without a container engine: scripts/build-oci-image.sh (umoci).
# Runs as the non-root user 10001 with a read-only root filesystem: mount writable volumes at
# /tmp, /var/lib/apx/state (the worker's trusted state: keep it) and /var/cache/apx.
#   docker run --read-only --tmpfs /tmp -v apx-state:/var/lib/apx/state --tmpfs /var/cache/apx \
#     -e APX_STORE=gs://bucket/policies -e APX_ENV=production ... -p 8080:8080 apx-worker

ARG NODE_MAJOR=24

# 1. Build: the whole workspace, compiled.
FROM node:${NODE_MAJOR}-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.base.json tsconfig.json biome.json ./
COPY packages ./packages
COPY types ./types
# --ignore-scripts: no install script runs, so pkcs11js (HSM keys, pkcs11:) is not compiled and
# the image has no compiler; workers trusting a key file, a secret or a cloud KMS key need neither.
RUN npm ci --no-audit --no-fund --ignore-scripts \
 && npx tsc -b

# 2. Production dependencies only, with the compiled packages and without their tests.
FROM build AS prune
RUN npm prune --omit=dev --no-audit --no-fund \
 && find packages -path '*/dist/*' \( -name '*.test.js' -o -name '*.test.js.map' -o -name '*.test.d.ts' -o -name '*.test.d.ts.map' \) -delete \
 && rm -rf packages/*/src packages/*/dist/e2e packages/*/dist/testing packages/*/dist/test-support node_modules/.bin

# 3. Run: Node and the worker, nothing else of the build.
FROM node:${NODE_MAJOR}-bookworm-slim
RUN groupadd --system --gid 10001 apx \
 && useradd --system --uid 10001 --gid apx --home-dir /home/apx --shell /usr/sbin/nologin apx \
 && mkdir -p /var/lib/apx/state /var/cache/apx /home/apx \
 && chown apx:apx /var/lib/apx/state /var/cache/apx /home/apx
WORKDIR /app
COPY --from=prune /src/package.json /src/package-lock.json ./
COPY --from=prune /src/node_modules ./node_modules
COPY --from=prune /src/packages ./packages
ENV NODE_ENV=production \
    APX_HOST=0.0.0.0 \
    APX_PORT=8080 \
    APX_STATE_DIR=/var/lib/apx/state \
    APX_CACHE_DIR=/var/cache/apx
USER 10001:10001
EXPOSE 8080 9191
VOLUME ["/var/lib/apx/state", "/var/cache/apx"]
# Liveness (the process serves HTTP); readiness (/readyz) is the orchestrator's to probe.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.APX_PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# SIGTERM drains for APX_DRAIN_SECONDS (/readyz 503, requests still served), then exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "/app/packages/cli/dist/main.js"]
CMD ["worker"]
