# syntax=docker/dockerfile:1
# The Herald node for the aws shape (lib/constructs/sse-service.ts runs it on
# Fargate, linux/arm64). Build: `docker build --platform linux/arm64 .`
#
# Stage 1 bundles services/node/main.ts with scripts/build.mjs, exactly as
# `npm start` does. It runs on the build machine's own platform: the bundle is
# plain JavaScript, so an x86 laptop or CI runner need not emulate ARM for it.
FROM --platform=$BUILDPLATFORM node:24-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY scripts/build.mjs ./scripts/
COPY docs/openapi.yaml ./docs/
COPY services ./services
RUN node scripts/build.mjs

# Stage 2 is what runs. The bundle carries the production dependencies it uses
# (hono, jose, the AWS SDK clients) and nothing else: no node_modules, no dev
# dependencies, no sources, no npm run at start. Their licences ship beside it
# in herald-node.mjs.LEGAL.txt (scripts/build.mjs), which the bundle names.
FROM node:24-bookworm-slim
ENV NODE_ENV=production \
    HERALD_MODE=aws \
    HERALD_PORT=8080
WORKDIR /app
COPY --from=build /src/dist/herald-node.mjs /src/dist/herald-node.mjs.map /src/dist/herald-node.mjs.LEGAL.txt ./dist/
# The image's unprivileged user (uid 1000); the files stay root-owned and read-only to it.
USER node
EXPOSE 8080
# Exec form: node is PID 1 and receives ECS's SIGTERM itself, which starts the drain.
# The same command `npm start` runs (scripts/start.mjs), minus the install and build.
CMD ["node", "--enable-source-maps", "dist/herald-node.mjs"]
