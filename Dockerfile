# Lifeboat's DR-site image: `dr gateway`, `dr worker` and `dr serve` (see docker-compose.yml).
# The agent runs on the protected servers themselves: see docs/deployment.md (systemd).

# Node 24, an LTS line (Node 20 left support in April 2026); `npm run test:node24` tests Lifeboat on it.
FROM node:24-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY bin ./bin
COPY cli ./cli
COPY bot ./bot
COPY engine ./engine
COPY replicator ./replicator
COPY core ./core
RUN npm run build

FROM node:24-bookworm-slim
# sqlite3 for health checks of recovered demo apps; e2fsprogs for fsck of recovered ext4 images.
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      sqlite3 e2fsprogs ca-certificates \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/lifeboat
ENV NODE_ENV=production DR_HOME=/var/lib/lifeboat
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /src/dist ./dist
COPY bin ./bin
COPY scripts/healthcheck.mjs ./scripts/healthcheck.mjs
# the shipped default policies: `dr init` copies them into the home
COPY policies ./policies
# store/ exists in the image so a fresh volume mounted there (docker-compose.yml) is the node user's too
RUN mkdir -p /var/lib/lifeboat/store && chown -R node:node /var/lib/lifeboat
USER node
VOLUME ["/var/lib/lifeboat"]
ENTRYPOINT ["node", "/opt/lifeboat/bin/dr.js"]
CMD ["--help"]
