# OrmAI Proxy container image: compiled JavaScript on Node 20, production dependencies only, run
# as a numeric non-root user. Build: docker build -t ormai-proxy:0.1.0 .
#
# The base image is pinned to a full version tag. Pin it by digest too where you build
# (`docker buildx imagetools inspect node:20.20.2-bookworm-slim` prints it, then write
# node:20.20.2-bookworm-slim@sha256:…): the digest could not be looked up where this file was
# written (no registry access), so none is given rather than an unverified one.
ARG NODE_IMAGE=node:20.20.2-bookworm-slim

# Compile: every dependency (TypeScript among them); no install scripts, so no embedded PostgreSQL download.
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY src ./src
RUN npm run build

# Production dependencies only: none of them has an install script.
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

FROM ${NODE_IMAGE}
# A numeric user the Kubernetes manifests name (runAsUser/runAsGroup 10001, runAsNonRoot), with
# an /etc/passwd entry for the libraries that look one up.
RUN groupadd --system --gid 10001 ormai \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin ormai
WORKDIR /app
ENV NODE_ENV=production
# package.json: the version /version and ormai_build_info report. Nothing from config/: the
# quickstart's plaintext users file and the demo stay out of the image (the demo needs the dev
# install and says so); mount the configuration at /etc/ormai (deploy/, docs/deploy.md).
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
USER 10001:10001
EXPOSE 6432 9090
# Liveness for plain Docker (Kubernetes ignores HEALTHCHECK and uses the pod's probes). The slim
# image has no curl: Node asks /healthz on the admin port, the port of ORMAI_ADMIN_LISTEN if set, else 9090.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "const p=(process.env.ORMAI_ADMIN_LISTEN||':9090').split(':').pop();require('http').get({host:'127.0.0.1',port:p,path:'/healthz',timeout:4000},(r)=>process.exit(r.statusCode===200?0:1)).on('error',()=>process.exit(1)).on('timeout',()=>process.exit(1))"]
ENTRYPOINT ["node", "dist/cli.js"]
CMD ["serve", "--config", "/etc/ormai/config/ormai.yaml"]
