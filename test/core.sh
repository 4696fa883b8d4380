#!/usr/bin/env bash
# test/core.sh: what Vault sent a backend does not outlive its use.  A
# backend has an encrypt canceled by statement_timeout (the fault proxy
# holds the answer back), decrypts a marker and reads a KV secret holding
# another, then a core of it is taken (gcore) while its session is still
# open, and searched
# for what only pg_vault's own buffers ever held: the marker's base64 (as
# Transit returns it, in the response buffer and in jansson's parsed tree)
# and the secret as Vault's compact JSON writes it ("v":"<marker>").  The
# plain markers themselves are not searched: PostgreSQL keeps the values a
# function returned in memory of its own, which pg_vault cannot wipe.
#
# The read of the secret is the last request before the dump: nothing has
# overwritten its buffers since.  Without the wiping (pg_vault's response
# buffer after parsing, jansson's and libcurl's frees) both are found.
#
# Run by test/run, which starts the servers and exports their settings.
set -uo pipefail
source "$(dirname "$0")/lib/summary.sh"

pgv_need_test_env
if ! command -v gcore >/dev/null; then
	pgv_skip "gcore (gdb) is not installed"
	pgv_done
	exit 0
fi

DB=pg_vault_core_test
WORK=$(mktemp -d)
chmod 0755 "$WORK"
KEY=core_$(openssl rand -hex 6)
KV=regress/core-$(openssl rand -hex 6)
DEC_MARK=PGV-CORE-DECRYPT-$(openssl rand -hex 12)
CANCEL_MARK=PGV-CORE-CANCELED-$(openssl rand -hex 12)
KV_MARK=PGV-CORE-KV-$(openssl rand -hex 12)
trap 'rm -rf "$WORK"; psql -qX -d postgres -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1' EXIT

PGOPTIONS='-c client_min_messages=warning' psql -qX -d postgres \
	-c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" >/dev/null
psql -qX -d "$DB" -c 'CREATE EXTENSION pg_vault' >/dev/null
vault_api POST "/v1/transit/keys/$KEY" >/dev/null

got=$(psql -XAtq -d "$DB" 2>&1 <<-EOF
	SELECT pg_backend_pid() AS pid \gset
	\setenv BPID :pid
	\! curl -s -o /dev/null -X POST -H "X-Vault-Token: \$VAULT_TOKEN" -d '{"latency_ms":3000,"path_prefix":"transit/encrypt/"}' "\$VAULT_ADDR/_dev/faults"
	SET statement_timeout = '300ms';
	SELECT vault_encrypt('$CANCEL_MARK', '$KEY');
	RESET statement_timeout;
	\! curl -s -o /dev/null -X DELETE -H "X-Vault-Token: \$VAULT_TOKEN" "\$VAULT_ADDR/_dev/faults"
	SELECT length(vault_decrypt(vault_encrypt('$DEC_MARK', '$KEY'), '$KEY'));
	SELECT vault_kv_put('$KV', jsonb_build_object('v', '$KV_MARK')) > 0;
	SELECT length(vault_kv('$KV')::text) > 0;
	\! gcore -o "$WORK/core" "\$BPID" >"$WORK/gcore.log" 2>&1; echo "gcore \$?"
EOF
)
expect "a canceled encrypt, a decrypt and a KV read, then the dump" \
	"ERROR:  canceling statement due to statement timeout|${#DEC_MARK}|t|t|gcore 0" \
	"$(echo "$got" | paste -sd'|')"
core=$(ls "$WORK"/core.* 2>/dev/null | head -n 1)
if [ -z "$core" ] || [ ! -s "$core" ]; then
	pgv_not_ok "no core file ($(tail -n 3 "$WORK/gcore.log" 2>/dev/null | paste -sd' '))"
	pgv_done
	exit 1
fi
b64=$(printf '%s' "$DEC_MARK" | base64 -w0)
# canary: the session's own query text is in there, so the dump is of the
# right process and the search can find things
if grep -qaF -- "$KV" "$core"; then
	pgv_ok "the core is the session's backend (its query text is found)"
else
	pgv_not_ok "the session's query text is nowhere in the core: the search proves nothing"
fi
expect "the decrypted value's base64 is in no buffer (response, jansson)" 0 \
	"$(grep -caF -- "$b64" "$core")"
expect "the secret as Vault's JSON carried it is in no buffer" 0 \
	"$(grep -caF -- "\"v\":\"$KV_MARK\"" "$core")"
rm -f "$core"
vault_api DELETE "/v1/secret/metadata/$KV" >/dev/null

pgv_done
