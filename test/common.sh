#!/usr/bin/env bash
# common.sh: src/common's shared Vault-client rules (vault_client.c) as a
# plain program sees them: path escaping, the retry policy and backoff,
# the renewal schedule, secret files (test/c/vault_client_test.c).  Built
# with the programs' flags and run; each of its lines is one test.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
source test/lib/summary.sh

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
if cc -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -Isrc/common -o "$WORK/vault_client_test" \
	test/c/vault_client_test.c src/common/vault_client.c; then
	pgv_ok "test/c/vault_client_test.c builds with -Wall -Wextra -Werror"
	"$WORK/vault_client_test" >"$WORK/out"
	rc=$?
	while read -r line; do
		case $line in
		"ok - "*) pgv_ok "${line#ok - }" ;;
		"not ok - "*) pgv_not_ok "${line#not ok - }" ;;
		esac
	done <"$WORK/out"
	pgv_check "the test program exits 0" [ "$rc" = 0 ]
else
	pgv_not_ok "test/c/vault_client_test.c builds with -Wall -Wextra -Werror"
fi
pgv_done
