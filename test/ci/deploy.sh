#!/usr/bin/env bash
# deploy.sh: `make deploy DEPLOY_ENV=staging|production`, the CI workflow's
# deploy step.  It logs in to Vault with the CI/CD AppRole cicd-role (its
# role_id in CICD_ROLE_ID, its secret_id in the file CICD_SECRET_ID_FILE or
# in CICD_SECRET_ID, as CI secrets give it), reads the environment's
# secret/<env>/database and secret/<env>/api, checks that they are
# complete, and writes what a deployment of the app needs to know of them
# to DEPLOY_OUT (default .deploy/<env>.env, mode 0600), in .env.example's
# names: APP_ENV, and the database's host, port and name as APP_DATABASE_URL.
# No secret is written or printed: the deployed app reads them through
# Vault itself.  The CI/CD token is revoked at the end.
#
# VAULT_ADDR (and VAULT_CACERT, VAULT_NAMESPACE) name the Vault.
set -euo pipefail
cd "$(dirname "$0")/../.." || exit 2

ENV_NAME=${DEPLOY_ENV:?deploy: set DEPLOY_ENV (staging or production)}
case $ENV_NAME in staging | production) ;; *) echo "deploy: DEPLOY_ENV must be staging or production" >&2; exit 2 ;; esac
: "${VAULT_ADDR:?deploy: set VAULT_ADDR}"
: "${CICD_ROLE_ID:?deploy: set CICD_ROLE_ID (the role_id of cicd-role)}"
OUT=${DEPLOY_OUT:-.deploy/$ENV_NAME.env}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

WORK=$(mktemp -d)
HDR=$WORK/headers
cleanup() {
	# give the token back: it would live its 10 minutes otherwise
	if [ -s "$HDR" ]; then
		curl -s -o /dev/null -X POST -H @"$HDR" "${TLS[@]}" "$VAULT_ADDR/v1/auth/token/revoke-self" || true
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT
TLS=()
[ -n "${VAULT_CACERT:-}" ] && TLS+=(--cacert "$VAULT_CACERT")
NS=()
[ -n "${VAULT_NAMESPACE:-}" ] && NS+=(-H "X-Vault-Namespace: $VAULT_NAMESPACE")

# The login body and the token go through 0600 files, never a command line.
(umask 077 && CICD_SECRET_ID_FILE=${CICD_SECRET_ID_FILE:-} "$PY" - >"$WORK/login.json" <<-'EOF2'
	import json, os, sys
	sid = os.environ.get("CICD_SECRET_ID", "")
	if os.environ["CICD_SECRET_ID_FILE"]:
	    sid = open(os.environ["CICD_SECRET_ID_FILE"]).read().strip()
	if not sid:
	    sys.exit("deploy: set CICD_SECRET_ID_FILE or CICD_SECRET_ID")
	print(json.dumps({"role_id": os.environ["CICD_ROLE_ID"], "secret_id": sid}))
EOF2
)
code=$(curl -s -o "$WORK/auth.json" -w '%{http_code}' "${TLS[@]}" "${NS[@]}" -X POST \
	--data-binary @"$WORK/login.json" "$VAULT_ADDR/v1/auth/approle/login") || code=000
rm -f "$WORK/login.json"
[ "$code" = 200 ] || { echo "deploy: AppRole login as cicd-role refused (HTTP $code)" >&2; exit 1; }
(umask 077 && "$PY" -c 'import json, sys; print("X-Vault-Token: " + json.load(open(sys.argv[1]))["auth"]["client_token"])' \
	"$WORK/auth.json" >"$HDR" && printf 'X-Vault-Request: true\n' >>"$HDR")
[ ${#NS[@]} -gt 0 ] && printf 'X-Vault-Namespace: %s\n' "$VAULT_NAMESPACE" >>"$HDR"
rm -f "$WORK/auth.json"

read_secret() { # read_secret NAME: secret/<env>/NAME into $WORK/NAME.json
	local code
	code=$(curl -s -o "$WORK/$1.json" -w '%{http_code}' "${TLS[@]}" -H @"$HDR" \
		"$VAULT_ADDR/v1/secret/data/$ENV_NAME/$1") || code=000
	[ "$code" = 200 ] || { echo "deploy: cannot read secret/$ENV_NAME/$1 (HTTP $code)" >&2; exit 1; }
}
read_secret database
read_secret api

mkdir -p "$(dirname "$OUT")"
(umask 077 && "$PY" - "$WORK/database.json" "$WORK/api.json" "$ENV_NAME" >"$OUT.tmp" <<-'EOF2'
	import json, sys
	db = json.load(open(sys.argv[1]))["data"]["data"]
	api = json.load(open(sys.argv[2]))["data"]["data"]
	missing = [k for k in ("host", "port", "database", "username", "password") if not db.get(k)]
	missing += ["api." + k for k in ("key", "endpoint") if not api.get(k)]
	if missing:
	    sys.exit("deploy: incomplete secrets: " + ", ".join(missing))
	print("APP_ENV=%s" % sys.argv[3])
	print("APP_DATABASE_URL=host=%s port=%s dbname=%s" % (db["host"], db["port"], db["database"]))
EOF2
)
mv "$OUT.tmp" "$OUT"
rm -f "$WORK/database.json" "$WORK/api.json"
echo "deploy: $ENV_NAME settings checked and written to $OUT (no secret in it)"
