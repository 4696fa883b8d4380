# summary.sh: counting helpers for end-to-end suites in test/*.sh.
#
# A suite is any bash script test/NAME.sh.  test/run starts Vault and
# PostgreSQL first and exports their settings (VAULT_ADDR, VAULT_TOKEN,
# PGHOST, PGPORT, PGUSER, PGDATABASE, PGV_*); a suite never starts servers
# of its own.  Its last line of output must be the summary
#   N passed, N failed, N skipped
# which pgv_done prints, and it exits non-zero when anything failed:
#
#   source "$(dirname "$0")/lib/summary.sh"
#   pgv_check "vault answers" curl -sf "$VAULT_ADDR/v1/sys/health"
#   if pgv_need_own_vault "fault injection"; then ... else pgv_skip "faults"; fi
#   pgv_done

source "$(dirname "${BASH_SOURCE[0]}")/servers.sh"

PGV_PASSED=0
PGV_FAILED=0
PGV_SKIPPED=0

pgv_ok() { PGV_PASSED=$((PGV_PASSED + 1)); echo "ok - $*"; }
pgv_not_ok() { PGV_FAILED=$((PGV_FAILED + 1)); echo "not ok - $*"; }
pgv_skip() { PGV_SKIPPED=$((PGV_SKIPPED + 1)); echo "skip - $*"; }

# pgv_check DESCRIPTION COMMAND...: one test, passing when COMMAND succeeds.
pgv_check() {
	local desc=$1
	shift
	if "$@"; then pgv_ok "$desc"; else pgv_not_ok "$desc"; fi
}

# pgv_eventually SECONDS COMMAND...: COMMAND succeeds within SECONDS (tried
# every 0.1 s): for what happens in the background, without assuming how
# fast a busy machine does it.  Returns as soon as it succeeds.
pgv_eventually() {
	local end=$((SECONDS + $1))
	shift
	until "$@"; do
		[ "$SECONDS" -ge "$end" ] && return 1
		sleep 0.1
	done
}

# Exit failing unless test/run started the servers and exported their settings.
pgv_need_test_env() {
	if [ -z "${VAULT_ADDR:-}" ] || [ -z "${PGHOST:-}" ] || [ -z "${PGV_RUN:-}" ]; then
		echo "run through test/run (it starts Vault and PostgreSQL)"
		pgv_not_ok "environment from test/run"
		pgv_done
		exit 1
	fi
}

pgv_done() {
	echo "$PGV_PASSED passed, $PGV_FAILED failed, $PGV_SKIPPED skipped"
	[ "$PGV_FAILED" -eq 0 ]
}

# ---- helpers for suites that talk to Vault and to a database $DB ----

CURL_TLS=(${VAULT_CACERT:+--cacert "$VAULT_CACERT"})

# vault_api METHOD PATH [BODY]: the root token's view of Vault; prints the body.
vault_api() {
	curl -s "${CURL_TLS[@]}" -X "$1" -H "X-Vault-Token: $VAULT_TOKEN" \
		${3:+-d "$3"} "$VAULT_ADDR$2"
}

# json_get KEY.PATH: a field of the JSON document on stdin
json_get() { /usr/bin/python3 -c 'import json, sys
v = json.load(sys.stdin)
for k in sys.argv[1].split("."):
    v = v[k]
print(v)' "$1"; }

# vault_role_tokens ROLE: how many live tokens an AppRole role has (the
# root token lists every accessor and looks each up)
vault_role_tokens() {
	vault_api LIST /v1/auth/token/accessors | /usr/bin/python3 -c '
import json, os, sys, urllib.request
addr, token, role = os.environ["VAULT_ADDR"], os.environ["VAULT_TOKEN"], sys.argv[1]
n = 0
for accessor in json.load(sys.stdin)["data"]["keys"]:
    req = urllib.request.Request(addr + "/v1/auth/token/lookup-accessor", method="POST",
                                 data=json.dumps({"accessor": accessor}).encode(),
                                 headers={"X-Vault-Token": token})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            meta = json.load(r)["data"].get("meta") or {}
    except Exception:
        continue   # revoked since the list was made
    n += meta.get("role_name") == role
print(n)' "$1"
}

# q SQL...: run statements in one session of $DB, print the results
q() {
	local args=() s
	for s in "$@"; do args+=(-c "$s"); done
	psql -XAtq -d "$DB" "${args[@]}" 2>&1
}

# outcome SQL...: "ok", or the SQLSTATE of the first error
outcome() {
	local out args=() s
	for s in "$@"; do args+=(-c "$s"); done
	out=$(psql -XAtq -v VERBOSITY=sqlstate -d "$DB" "${args[@]}" 2>&1 >/dev/null)
	if [[ $out =~ ERROR:\ +([0-9A-Z]{5}) ]]; then echo "${BASH_REMATCH[1]}"; else echo ok; fi
}

# expect DESCRIPTION WANTED GOT: one test, passing when GOT equals WANTED
expect() {
	if [ "$2" = "$3" ]; then pgv_ok "$1"; else pgv_not_ok "$1 (wanted '$2', got '$3')"; fi
}
