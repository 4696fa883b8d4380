#!/usr/bin/env bash
# deploy.sh: `make deploy`, the CI workflow's deploy step, against the
# run's Vault: vault/bootstrap --cicd-out gives cicd-role's role_id and a
# secret_id; the step logs in with them, reads staging's (and
# production's) database and api secrets and writes the settings file,
# 0600, with no secret in it or in its output; development's are refused
# to it (the cicd policy), and so is a wrong secret_id.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
source test/lib/summary.sh

pgv_need_test_env
WORK=$(mktemp -d)
chmod 0700 "$WORK"
trap 'rm -rf "$WORK"' EXIT

if bash vault/bootstrap --cicd-out "$WORK/cicd" >"$WORK/bootstrap.log" 2>&1; then
	pgv_ok "vault/bootstrap --cicd-out writes cicd-role's role_id and a secret_id"
else
	pgv_redact <"$WORK/bootstrap.log"
	pgv_not_ok "vault/bootstrap --cicd-out writes cicd-role's role_id and a secret_id"
	pgv_done
	exit 1
fi
ROLE_ID=$(cat "$WORK/cicd/role_id")

# deploy ENV OUT [SECRET_ID_FILE]: make deploy's status; its output in $WORK/deploy.log
deploy() {
	make -s --no-print-directory deploy DEPLOY_ENV="$1" DEPLOY_OUT="$2" CICD_ROLE_ID="$ROLE_ID" \
		CICD_SECRET_ID_FILE="${3:-$WORK/cicd/secret_id}" >"$WORK/deploy.log" 2>&1
}
secret() { vault_api GET "/v1/secret/data/$1" | json_get "data.data.$2"; }

for env in staging production; do
	deploy "$env" "$WORK/$env.env"
	pgv_check "make deploy DEPLOY_ENV=$env: logs in as cicd-role and writes the settings" [ $? = 0 ]
	pgv_check "... APP_ENV and the database of secret/$env/database" \
		bash -c "grep -qx 'APP_ENV=$env' '$WORK/$env.env' &&
			grep -qx 'APP_DATABASE_URL=host=$(secret "$env/database" host) port=$(secret "$env/database" port) dbname=$(secret "$env/database" database)' '$WORK/$env.env'"
	pgv_check "... a 0600 file" [ "$(stat -c %a "$WORK/$env.env")" = 600 ]
	leaks=0
	for s in "$(secret "$env/database" password)" "$(secret "$env/api" key)" "$(cat "$WORK/cicd/secret_id")"; do
		grep -qF -- "$s" "$WORK/$env.env" "$WORK/deploy.log" && leaks=$((leaks + 1))
	done
	pgv_check "... with no password, API key or secret_id in the file or the output" [ "$leaks" = 0 ]
done
deploy development "$WORK/dev.env"
pgv_check "development is not a deploy target" bash -c "[ $? != 0 ] && [ ! -e '$WORK/dev.env' ]"
printf 'not-the-secret-id\n' >"$WORK/wrong"
deploy staging "$WORK/wrong.env" "$WORK/wrong"
pgv_check "a wrong secret_id: refused, nothing written" bash -c "[ $? != 0 ] && [ ! -e '$WORK/wrong.env' ]"
pgv_check "... saying the login was refused" grep -q "login as cicd-role refused" "$WORK/deploy.log"
pgv_done
