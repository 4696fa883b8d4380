#!/bin/sh
# app-entrypoint.sh: start pg-vault-app in its container.
#
# The app takes its AppRole role_id as VAULT_ROLE_ID.  vault/bootstrap writes
# it to a file in a volume shared with this container, so with
# VAULT_ROLE_ID_FILE set (and VAULT_ROLE_ID not) it is read from there.  The
# secret_id stays a file: the app reads VAULT_SECRET_ID_FILE itself.
set -eu

if [ -z "${VAULT_ROLE_ID:-}" ] && [ -n "${VAULT_ROLE_ID_FILE:-}" ]; then
	if [ ! -r "$VAULT_ROLE_ID_FILE" ]; then
		echo "app-entrypoint: cannot read VAULT_ROLE_ID_FILE $VAULT_ROLE_ID_FILE" >&2
		exit 1
	fi
	VAULT_ROLE_ID=$(cat "$VAULT_ROLE_ID_FILE")
	export VAULT_ROLE_ID
fi
unset VAULT_ROLE_ID_FILE

exec /usr/local/bin/pg-vault-app "$@"
