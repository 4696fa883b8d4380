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
#   if pgv_need_devserver "fault injection"; then ... else pgv_skip "faults"; fi
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

pgv_done() {
	echo "$PGV_PASSED passed, $PGV_FAILED failed, $PGV_SKIPPED skipped"
	[ "$PGV_FAILED" -eq 0 ]
}
