# syntax=docker/dockerfile:1
# One image for every role (APP_ROLES), the migration step (node dist/database/migrate.js) and
# the provider sandbox (node dist/providers/sandbox/sandbox.main.js). See docs/deploy.md.
ARG NODE_IMAGE=node:24-bookworm-slim

FROM ${NODE_IMAGE} AS base
WORKDIR /app
# No telemetry or update checks from npm and packages' install scripts during the build.
ENV SCARF_ANALYTICS=false \
    NPM_CONFIG_UPDATE_NOTIFIER=false \
    NPM_CONFIG_FUND=false \
    NPM_CONFIG_AUDIT=false

# Compile with every dependency, dev included (TypeScript).
FROM base AS build
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm npm ci
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# Production dependencies only, installed afresh rather than pruned, so nothing from the dev tree
# (compilers, test tools, the npm-installed node binary) can linger.
FROM base AS prod-deps
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm npm ci --omit=dev

FROM ${NODE_IMAGE} AS runtime
# A container is reached through its own interface, never its loopback: listen on every address.
# With HOST=0.0.0.0 the service refuses to start without a real AUTH_JWT_SECRET (or a JWKS).
ENV NODE_ENV=production \
    HOST=0.0.0.0
WORKDIR /app
# The service never runs npm: removing it (and corepack) takes their dependencies out of the
# image's attack surface. The sample folder is the only place the app writes (STORAGE_DRIVER=local).
RUN rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack \
      /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack \
  && mkdir -p /app/data/samples \
  && chown -R 1000:1000 /app/data
# Code and dependencies stay owned by root: the app's user can read them, not change them.
COPY --from=prod-deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
# Numeric user (the image's "node"), so Kubernetes' runAsNonRoot can verify it.
USER 1000:1000
EXPOSE 3000
# Node itself is PID 1: main.ts handles SIGTERM/SIGINT from its first moment and the service
# starts no child processes, so no init process is needed for signals or zombie reaping.
CMD ["node", "dist/main.js"]
