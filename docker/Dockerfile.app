# syntax=docker/dockerfile:1
#
# docker/Dockerfile.app: pg-vault-app, the companion HTTP service, in a slim
# image that runs as an unprivileged user; and, as the `bootstrap` target,
# the image that runs vault/bootstrap once against a Vault.  Build from the
# repository root:
#
#   docker build -f docker/Dockerfile.app -t pg-vault/app .
#   docker build -f docker/Dockerfile.app --target bootstrap -t pg-vault/bootstrap .
#
# The app reads its settings from the environment (VAULT_ADDR, VAULT_ROLE_ID
# or VAULT_ROLE_ID_FILE, VAULT_SECRET_ID_FILE, APP_LISTEN, APP_DATABASE_URL,
# APP_DB_ROLE, APP_ENV, ...); docker-compose.yml shows a complete set.
# Nothing secret is baked in: credentials arrive as files at run time.
#
# Both run-time images use uid/gid 999, the uid of the postgres user in the
# official PostgreSQL image, so that the AppRole files vault/bootstrap
# writes (mode 0600) into a shared volume are readable by the app and by
# PostgreSQL alike, and by nobody else.

FROM debian:12.8-slim AS build

RUN apt-get update \
	&& apt-get install -y --no-install-recommends \
		gcc \
		libc6-dev \
		make \
		postgresql-server-dev-15 \
		libcurl4-openssl-dev \
		libjansson-dev \
		libmicrohttpd-dev \
		libpq-dev \
		libssl-dev \
	&& rm -rf /var/lib/apt/lists/*

WORKDIR /build
COPY Makefile pg_vault.control ./
COPY src/common/ src/common/
COPY app/ app/

# Hardened: fortified libc calls, stack protector, position-independent,
# full RELRO, non-executable stack.
RUN make app/pg-vault-app \
	PROG_CFLAGS="-O2 -g0 -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fstack-clash-protection -fPIE -pie -Wl,-z,relro,-z,now,-z,noexecstack"

# ---- bootstrap: vault/bootstrap and the policies it loads ----
FROM debian:12.8-slim AS bootstrap

RUN apt-get update \
	&& apt-get install -y --no-install-recommends \
		bash \
		ca-certificates \
		curl \
		python3 \
	&& rm -rf /var/lib/apt/lists/* \
	&& groupadd --system --gid 999 pgvault \
	&& useradd --system --uid 999 --gid 999 --home-dir /nonexistent --shell /usr/sbin/nologin pgvault \
	&& install -d -o 999 -g 999 -m 0700 /run/pg-vault/approle

COPY vault/bootstrap /opt/pg-vault/vault/bootstrap
COPY vault/policies/ /opt/pg-vault/vault/policies/

USER 999:999
ENTRYPOINT ["bash", "/opt/pg-vault/vault/bootstrap"]
CMD ["--help"]

# ---- the app (the default target) ----
FROM debian:12.8-slim

LABEL org.opencontainers.image.title="pg-vault-app" \
	org.opencontainers.image.description="pg_vault's companion HTTP service" \
	org.opencontainers.image.licenses="PostgreSQL"

# Run-time libraries only; curl for the health check.
RUN apt-get update \
	&& apt-get install -y --no-install-recommends \
		ca-certificates \
		curl \
		libcurl4 \
		libjansson4 \
		libmicrohttpd12 \
		libpq5 \
		libssl3 \
	&& rm -rf /var/lib/apt/lists/* \
	&& groupadd --system --gid 999 pgvault \
	&& useradd --system --uid 999 --gid 999 --home-dir /nonexistent --shell /usr/sbin/nologin pgvault \
	&& install -d -o 999 -g 999 -m 0700 /run/pg-vault/approle

COPY --from=build /build/app/pg-vault-app /usr/local/bin/pg-vault-app
COPY docker/app-entrypoint.sh /usr/local/bin/app-entrypoint.sh

ENV APP_LISTEN=0.0.0.0:5000 \
	APP_ENV=production

USER 999:999
EXPOSE 5000

HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
	CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:5000/health"]

ENTRYPOINT ["/usr/local/bin/app-entrypoint.sh"]
