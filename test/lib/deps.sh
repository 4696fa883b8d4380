#!/usr/bin/env bash
# deps.sh: make sure the Debian packages that building and testing pg_vault
# need are present.  Silent when they all are; as root it installs only the
# missing ones, otherwise it prints the apt-get line to run and fails.
set -euo pipefail

PACKAGES=(
	postgresql-15 postgresql-server-dev-15 postgresql-15-pgtap
	libcurl4-openssl-dev libjansson-dev libmicrohttpd-dev libssl-dev libpq-dev
	python3-hvac python3-psycopg2 libtap-parser-sourcehandler-pgtap-perl
	wrk curl openssl make gcc
	# lint, security-scan, static checks, test-coverage and format (test/ci/)
	cppcheck clang-tidy clang-format shellcheck python3-yaml git lcov
)

missing=()
for pkg in "${PACKAGES[@]}"; do
	status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
	[ "$status" = installed ] || missing+=("$pkg")
done

[ ${#missing[@]} -eq 0 ] && exit 0

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
