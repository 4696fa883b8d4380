#!/usr/bin/env bash
# matrix.sh: `make test-matrix`.  pg_vault's pg_regress suites (sql/ +
# expected/) and its pgTAP suite (test/pgtap/) against each PostgreSQL major
# version of the table below, each from Debian's own packages in a
# throwaway Debian root made with debootstrap.
#
# For each version:
#   1. the root .matrix/<release>/ is made once (debootstrap, then the
#      packages of ROOT_PACKAGES and postgresql-NN*) and reused afterwards:
#      .matrix/<release>/.pgv-matrix-stamp records what it was made with,
#      and a root whose stamp differs is completed (apt-get install), one
#      whose debootstrap never finished is made again;
#   2. the working tree (tracked and untracked files git does not ignore) is
#      copied to /src/pg_vault in the root;
#   3. OpenBao starts on this machine (test/lib/servers.sh, a fresh one for
#      each version, with a random root token id);
#   4. in the root, in a mount namespace of its own (/proc and /dev mounted
#      there, gone with it), `make all` and the fault proxy are built with
#      the root's pg_config, then `test/run $MATRIX_SUITES` runs: the same
#      harness as `make test`, which installs the extension, starts the
#      fault proxy and a PostgreSQL cluster (initdb/pg_ctl as the root's
#      postgres user), bootstraps the Vault (vault/bootstrap) and runs the
#      suites (pg_regress and pgTAP by default).  The root shares this
#      machine's network, so the cluster and the fault proxy in the root
#      reach OpenBao on 127.0.0.1, and OpenBao's database engine reaches
#      the cluster.
#
# The Debian mirror is the one this machine's apt uses: the URIs: line of
# the deb822 stanza (/etc/apt/sources.list.d/*.sources) whose Suites: has
# this machine's release, or a "deb URI RELEASE" line of a *.list file.
#
#   test/ci/matrix.sh [VERSION...]     default: every version of the table
#   PG_VERSIONS="15 17"                the same, from make
#   MATRIX_DIR                         where the roots live (default .matrix)
#   MATRIX_SUITES                      test/run's patterns (default
#                                      "pg_regress pgtap"); e.g. adding
#                                      extension.sh runs that suite too, with
#                                      what needs an OpenBao of its own
#                                      skipped (it is external to the root)
#
# Output: each version's test/run output, then one line per version,
# "PostgreSQL NN (release): PASS|FAIL (N passed, N failed)", and the total
# in test/run's form.  Exits non-zero when a version failed.  Needs root
# (debootstrap, chroot, mount).
set -uo pipefail

cd "$(dirname "$0")/../.." || exit 2
REPO=$(pwd)

# major version -> the Debian release whose own postgresql-NN it is
declare -A RELEASE=([13]=bullseye [15]=bookworm [17]=trixie [18]=forky)
VERSIONS_ALL=(13 15 17 18)

MATRIX_DIR=${MATRIX_DIR:-$REPO/.matrix}
MATRIX_SUITES=${MATRIX_SUITES:-pg_regress pgtap}
LOGS=$MATRIX_DIR/logs
# Besides postgresql-NN, postgresql-server-dev-NN and postgresql-NN-pgtap:
# what building the extension and the fault proxy, and test/run, need.
ROOT_PACKAGES=(build-essential libcurl4-openssl-dev libjansson-dev libssl-dev
	libmicrohttpd-dev curl openssl python3 ca-certificates
	libtap-parser-sourcehandler-pgtap-perl iproute2)
STAMP_FORMAT=1

say() { echo "matrix: $*"; }
die() { echo "matrix: $*" >&2; exit 2; }

[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, chroot, mount): sudo make test-matrix"

if [ $# -eq 0 ]; then
	# shellcheck disable=SC2086
	set -- ${PG_VERSIONS:-${VERSIONS_ALL[@]}}
fi
for v in "$@"; do
	[ -n "${RELEASE[$v]:-}" ] || die "PostgreSQL $v is not in the matrix (${VERSIONS_ALL[*]})"
done

# ---- the mirror, from this machine's apt sources ----

host_release() { . /etc/os-release && echo "$VERSION_CODENAME"; }

# Prints "URI KEYRING" (KEYRING may be empty) of the first source of deb
# packages for this machine's release.
host_mirror() {
	local rel
	rel=$(host_release)
	/usr/bin/python3 - "$rel" /etc/apt/sources.list.d/*.sources /etc/apt/sources.list \
		/etc/apt/sources.list.d/*.list <<-'EOF'
	import os, re, sys
	rel = sys.argv[1]
	for path in sys.argv[2:]:
	    if not os.path.isfile(path):
	        continue
	    text = open(path, encoding="utf-8", errors="replace").read()
	    if path.endswith(".sources"):
	        for stanza in re.split(r"\n\s*\n", text):
	            f = {}
	            for line in stanza.splitlines():
	                if line.startswith("#") or ":" not in line or line[:1].isspace():
	                    continue
	                k, v = line.split(":", 1)
	                f[k.strip().lower()] = v.strip()
	            if f.get("enabled", "yes").lower() == "no":
	                continue
	            if "deb" in f.get("types", "").split() and rel in f.get("suites", "").split():
	                print(f["uris"].split()[0], f.get("signed-by", ""))
	                sys.exit(0)
	    else:
	        for line in text.splitlines():
	            m = re.match(r"\s*deb\s+(\[[^]]*\]\s+)?(\S+)\s+(\S+)", line)
	            if m and m.group(3) == rel:
	                k = re.search(r"signed-by=(\S+?)[\s\]]", m.group(1) or "")
	                print(m.group(2), k.group(1) if k else "")
	                sys.exit(0)
	sys.exit("no deb source for %s in /etc/apt/sources.list.d/*.sources or *.list" % rel)
	EOF
}

# ---- roots ----

# in_root ROOT COMMAND...: run COMMAND chrooted in ROOT, in a private mount
# namespace where /proc and /dev are mounted; the namespace, and with it
# the mounts, end with the command (the trap unmounts them first).
in_root() {
	local root=$1
	shift
	# shellcheck disable=SC2016
	unshare --mount --propagation private -- /bin/bash -c '
		root=$1; shift
		trap "umount -R \"\$root/dev\" \"\$root/proc\" 2>/dev/null" EXIT
		mount -t proc proc "$root/proc" || exit 1
		mount --rbind /dev "$root/dev" || exit 1
		chroot "$root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
			HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
	' in_root "$root" "$@"
}

root_packages() { echo "postgresql-$1 postgresql-server-dev-$1 postgresql-$1-pgtap ${ROOT_PACKAGES[*]}"; }

# ensure_root VERSION: make or complete the root, or reuse it as it is.
ensure_root() {
	local v=$1 rel=${RELEASE[$1]} root=$MATRIX_DIR/${RELEASE[$1]} mirror keyring stamp
	local log=$LOGS/root-$rel.log
	read -r mirror keyring < <(host_mirror) || return 1
	stamp="format=$STAMP_FORMAT release=$rel mirror=$mirror packages=$(root_packages "$v")"
	if [ -f "$root/.pgv-matrix-stamp" ] && [ "$(cat "$root/.pgv-matrix-stamp")" = "$stamp" ]; then
		say "PostgreSQL $v: reusing the $rel root $root"
		return 0
	fi
	mkdir -p "$LOGS"
	if [ ! -f "$root/.pgv-debootstrap-done" ]; then
		command -v debootstrap >/dev/null || {
			say "installing debootstrap"
			apt-get install -y -qq --no-install-recommends debootstrap >/dev/null ||
				{ apt-get update -qq && apt-get install -y -qq --no-install-recommends debootstrap >/dev/null; } ||
				return 1
		}
		[ -e "$root" ] && rm -rf --one-file-system "$root"
		mkdir -p "$root"
		say "PostgreSQL $v: debootstrap $rel from $mirror into $root (log $log)"
		# debootstrap's scripts name releases up to its own; a later one is
		# made like sid.
		local script=()
		[ -e "/usr/share/debootstrap/scripts/$rel" ] || script=(/usr/share/debootstrap/scripts/sid)
		if ! debootstrap --variant=minbase ${keyring:+--keyring="$keyring"} \
			"$rel" "$root" "$mirror" "${script[@]}" >"$log" 2>&1; then
			tail -n 20 "$log"
			say "PostgreSQL $v: debootstrap failed (log $log)"
			return 1
		fi
		touch "$root/.pgv-debootstrap-done"
	fi
	say "PostgreSQL $v: installing $(root_packages "$v") into $root (log $log)"
	cp /etc/hosts /etc/resolv.conf "$root/etc/" 2>/dev/null
	# No service starts in the root, and postgresql-common makes no cluster.
	printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
	chmod 0755 "$root/usr/sbin/policy-rc.d"
	mkdir -p "$root/etc/postgresql-common"
	echo 'create_main_cluster = false' >"$root/etc/postgresql-common/createcluster.conf"
	if ! in_root "$root" apt-get update -qq >"$MATRIX_TMP/update.log" 2>&1; then
		cat "$MATRIX_TMP/update.log" >>"$log"
		# A mirror that is a snapshot serves testing's Release file past its
		# Valid-Until (stable releases have none): said, and accepted in
		# this root only.
		grep -q 'is expired' "$MATRIX_TMP/update.log" || { tail -n 20 "$log"; return 1; }
		say "PostgreSQL $v: $(grep -m1 'is expired' "$MATRIX_TMP/update.log")"
		say "PostgreSQL $v: the mirror is older than $rel's Release file allows; apt in this root skips that check"
		echo 'Acquire::Check-Valid-Until "false";' >"$root/etc/apt/apt.conf.d/99pgv-matrix-snapshot"
		in_root "$root" apt-get update -qq >>"$log" 2>&1 || { tail -n 20 "$log"; return 1; }
	fi
	# shellcheck disable=SC2046
	if ! in_root "$root" apt-get install -y -qq --no-install-recommends \
		-o Dpkg::Options::=--force-confold $(root_packages "$v") >>"$log" 2>&1; then
		tail -n 20 "$log"
		say "PostgreSQL $v: installing packages failed (log $log)"
		return 1
	fi
	echo "$stamp" >"$root/.pgv-matrix-stamp"
}

# ---- a version's run ----

TOTAL_PASSED=0
TOTAL_FAILED=0
RESULTS=()
ENV_FILE=

MATRIX_TMP=$(mktemp -d /tmp/pg_vault-matrix.XXXXXX)

cleanup() {
	[ -n "$ENV_FILE" ] && rm -f "$ENV_FILE"
	pgv_stop_all
	rm -rf "$MATRIX_TMP"
}

# The working tree, as git sees it, into ROOT/src/pg_vault.
copy_tree() {
	local dest=$1/src/pg_vault
	rm -rf "$dest"
	mkdir -p "$dest"
	git ls-files -z --cached --others --exclude-standard >"$MATRIX_TMP/files" ||
		{ say "git ls-files failed: is $REPO a git checkout git trusts?"; return 1; }
	tar --null -T "$MATRIX_TMP/files" --ignore-failed-read -cf - 2>/dev/null | tar -C "$dest" -xf -
}

# run_version VERSION: prints its test/run output; records its result.
run_version() {
	local v=$1 rel=${RELEASE[$1]} root=$MATRIX_DIR/${RELEASE[$1]} log=$LOGS/pg$1.log
	local pgc=/usr/lib/postgresql/$1/bin/pg_config got rc line p=0 f=1
	echo
	say "==== PostgreSQL $v ($rel root)"
	if ! ensure_root "$v"; then
		RESULTS+=("PostgreSQL $v ($rel): FAIL (the root could not be made)")
		TOTAL_FAILED=$((TOTAL_FAILED + 1))
		return
	fi
	got=$(chroot "$root" "$pgc" --version 2>&1)
	if [[ $got != "PostgreSQL $v."* ]]; then
		RESULTS+=("PostgreSQL $v ($rel): FAIL ($pgc says: $got)")
		TOTAL_FAILED=$((TOTAL_FAILED + 1))
		return
	fi
	if ! copy_tree "$root"; then
		RESULTS+=("PostgreSQL $v ($rel): FAIL (the tree could not be copied)")
		TOTAL_FAILED=$((TOTAL_FAILED + 1))
		return
	fi

	# A fresh OpenBao on this machine for each version.
	pgv_rundir
	PGV_ROOT_TOKEN=pgv-$(openssl rand -hex 20)
	export PGV_ROOT_TOKEN
	unset VAULT_ADDR VAULT_TOKEN PGV_VAULT_DIR
	if ! pgv_start_vault; then
		RESULTS+=("PostgreSQL $v ($rel): FAIL (OpenBao did not start)")
		TOTAL_FAILED=$((TOTAL_FAILED + 1))
		pgv_stop_all
		return
	fi
	# The address and the token reach the root in a 0600 file, not on a
	# command line.
	ENV_FILE=$(mktemp "$root/tmp/pgv-matrix-env.XXXXXX")
	printf 'export VAULT_ADDR=%q VAULT_TOKEN=%q\n' "$VAULT_ADDR" "$VAULT_TOKEN" >"$ENV_FILE"

	say "$(printf '%s, in %s with %s' "$got" "$root" "$(pgv_vault_version) at $VAULT_ADDR")"
	# shellcheck disable=SC2016
	in_root "$root" /bin/bash -c '
		. "$1" && rm -f "$1"
		cd /src/pg_vault || exit 1
		make --no-print-directory PG_CONFIG="$2" all vault/faultproxy/vault-faultproxy >build.log 2>&1 ||
			{ cat build.log; echo "** the build failed"; echo "0 passed, 1 failed"; exit 1; }
		echo "built with $("$2" --version), $(curl --version | head -n 1 | cut -d" " -f1,2)"
		# shellcheck disable=SC2086
		PG_CONFIG="$2" bash test/run $3
	' matrix "${ENV_FILE#"$root"}" "$pgc" "$MATRIX_SUITES" 2>&1 | pgv_redact | tee "$log"
	rc=${PIPESTATUS[0]}
	rm -f "$ENV_FILE"
	ENV_FILE=
	pgv_stop_all
	unset VAULT_ADDR VAULT_TOKEN

	line=$(tail -n 1 "$log")
	if [[ $line =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed ]]; then
		p=${BASH_REMATCH[1]}
		f=${BASH_REMATCH[2]}
	fi
	[ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
	TOTAL_PASSED=$((TOTAL_PASSED + p))
	TOTAL_FAILED=$((TOTAL_FAILED + f))
	if [ "$rc" -eq 0 ] && [ "$f" -eq 0 ] && [ "$p" -gt 0 ]; then
		RESULTS+=("PostgreSQL $v ($rel): PASS ($p passed, $f failed)")
	else
		RESULTS+=("PostgreSQL $v ($rel): FAIL ($p passed, $f failed; log $log)")
	fi
}

source test/lib/servers.sh
trap 'cleanup' EXIT
trap 'cleanup; trap - EXIT; exit 130' INT
trap 'cleanup; trap - EXIT; exit 143' TERM
mkdir -p "$LOGS"

[ -x "$PGV_BAO_BIN" ] || die "$PGV_BAO_BIN is missing: run make deps first"
START=$SECONDS
for v in "$@"; do
	run_version "$v"
done

echo
say "==== summary ($((SECONDS - START)) s)"
printf '  %s\n' "${RESULTS[@]}"
echo "$TOTAL_PASSED passed, $TOTAL_FAILED failed"
[ "$TOTAL_FAILED" -eq 0 ] && [ "$TOTAL_PASSED" -gt 0 ]
