# The commitlog node as a container image. Builds anywhere as is (the base defaults to
# the official Node image); scripts/image.sh passes a locally built base instead.
#
#   docker build -t commitlog .
#   docker run -p 8400:8400 -p 8080:8080 commitlog agent --insecure     # a dev node
ARG BASE=node:20-bookworm-slim

# Build: all dependencies (TypeScript, codegen tools), compile to dist/.
FROM ${BASE} AS build
ENV NPM_CONFIG_UPDATE_NOTIFIER=false
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` would compile before the sources are here.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY proto ./proto
COPY src ./src
RUN npx tsc -p tsconfig.json

# Run: production dependencies only, the compiled sources, a user without privileges.
FROM ${BASE}
ENV NODE_ENV=production NPM_CONFIG_UPDATE_NOTIFIER=false
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY bin ./bin
COPY proto ./proto
COPY --from=build /src/dist/src ./dist/src
COPY deploy/health-probe.mjs ./deploy/health-probe.mjs
RUN ln -s /app/bin/commitlog.js /usr/local/bin/commitlog \
 && groupadd --gid 10001 commitlog \
 && useradd --uid 10001 --gid 10001 --home-dir /var/lib/commitlog --shell /usr/sbin/nologin commitlog \
 && mkdir -p /var/lib/commitlog \
 && chown 10001:10001 /var/lib/commitlog
# Numeric, so Kubernetes' runAsNonRoot can check it.
USER 10001:10001
VOLUME /var/lib/commitlog
# Listen on every interface of the container. Without TLS files the agent refuses that
# unless told --insecure: a node on an open network must choose.
ENV COMMITLOG_DATA_DIR=/var/lib/commitlog \
    COMMITLOG_BIND_ADDR=0.0.0.0:8401
# gRPC and Raft; gossip (TCP and UDP); HTTP/JSON, /healthz, /readyz, /metrics.
EXPOSE 8400/tcp 8401/tcp 8401/udp 8080/tcp
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s \
  CMD ["node", "/app/deploy/health-probe.mjs", "--service", "log.v1.Log"]
# Node is PID 1: the agent handles SIGTERM itself (drains, closes the log, exits 0).
ENTRYPOINT ["commitlog"]
CMD ["agent"]
