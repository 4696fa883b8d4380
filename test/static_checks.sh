#!/usr/bin/env bash
# static_checks.sh: checks of the packaging and DevSecOps files that need no
# Docker engine and no servers, and proof that `make lint` and
# `make security-scan` fail when they should.  Run by `make test` (as a
# test/*.sh suite) and by `make static-checks`.
#
#   docker     hadolint-style rules for docker/Dockerfile.* (test/ci/static_checks.py)
#   compose    docker/docker-compose.yml: parses, health checks, ports on
#              127.0.0.1, pinned images, no literal secrets; and
#              `docker compose config -q` where the docker client has the
#              compose plugin (skipped, saying so, where it has not)
#   workflows  .github/workflows/*.yml parse and run only Makefile targets
#   meta       META.json is valid and agrees with pg_vault.control
#   kubernetes docker/kubernetes.yaml: parses, non-root, read-only root file
#              systems, resources, probes, pinned images, secrets only from
#              Secrets or Vault Agent, egress limited by NetworkPolicies
#   makefile   make help lists every target; shellcheck of the scripts
#   canfail    make lint fails on a planted bug and make security-scan on a
#              planted secret (in the tree, only in git history) and a
#              planted format-string bug, each in a temporary copy, after
#              passing on the clean copy
#
# STATIC_CHECKS=docker,compose,... runs only those groups.
# The last line is "N passed, N failed, N skipped".
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
# shellcheck source=test/lib/summary.sh
source test/lib/summary.sh

PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
GROUPS_WANTED=,${STATIC_CHECKS:-docker,compose,workflows,meta,kubernetes,makefile,canfail},
want() { [[ $GROUPS_WANTED == *",$1,"* ]]; }

TMP=$(mktemp -d /tmp/pg_vault-static.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

# Lines "ok|fail|skip<TAB>what<TAB>why" from static_checks.py.
count_py() {
	local status what why
	while IFS=$'\t' read -r status what why; do
		case $status in
		ok) pgv_ok "$what" ;;
		fail) echo "# $why"; pgv_not_ok "$what" ;;
		skip) pgv_skip "$what: $why" ;;
		*) pgv_not_ok "static_checks.py printed: $status $what" ;;
		esac
	done
}

py_groups=()
for g in docker compose workflows meta kubernetes; do
	want "$g" && py_groups+=("$g")
done
if [ ${#py_groups[@]} -gt 0 ]; then
	echo "== ${py_groups[*]}"
	"$PY" test/ci/static_checks.py "${py_groups[@]}" >"$TMP/py.out" 2>&1 ||
		echo "fail	static_checks.py exited non-zero	$(tail -n 3 "$TMP/py.out")" >>"$TMP/py.out"
	count_py <"$TMP/py.out"
fi

# ---- compose: the docker client's own check, when it can ----
if want compose; then
	if command -v docker >/dev/null && docker compose version >/dev/null 2>&1; then
		# config -q checks that the required variables are supplied, not what they are.
		if out=$(VAULT_DEV_ROOT_TOKEN=static-check POSTGRES_PASSWORD=static-check \
			docker compose -f docker/docker-compose.yml config -q 2>&1); then
			pgv_ok "docker compose config -q accepts docker/docker-compose.yml"
		else
			echo "# $out"
			pgv_not_ok "docker compose config -q accepts docker/docker-compose.yml"
		fi
		if docker compose -f docker/docker-compose.yml config -q >/dev/null 2>&1 </dev/null \
			&& [ -z "${VAULT_DEV_ROOT_TOKEN:-}" ]; then
			pgv_not_ok "docker compose refuses to start without VAULT_DEV_ROOT_TOKEN and POSTGRES_PASSWORD"
		else
			pgv_ok "docker compose refuses to start without VAULT_DEV_ROOT_TOKEN and POSTGRES_PASSWORD"
		fi
	elif command -v docker >/dev/null; then
		pgv_skip "docker compose config: the docker client here has no compose plugin (the images workflow runs it)"
	else
		pgv_skip "docker compose config: no docker client here (the images workflow runs it)"
	fi
fi

# ---- makefile: help, and the scripts' own lint ----
if want makefile; then
	echo "== makefile"
	make --no-print-directory help >"$TMP/help" 2>&1
	missing=()
	while read -r t; do
		grep -qE "^  $t( |$)" "$TMP/help" || missing+=("$t")
	done < <(sed -nE 's/^([a-zA-Z][a-zA-Z0-9_-]*)( [a-zA-Z][a-zA-Z0-9_-]*)*:([^=]|$).*/\1/p' Makefile | sort -u)
	for t in setup install build start stop status health logs vault-secrets vault-read-db \
		vault-read-api format lint security-scan test-coverage ci-local help; do
		grep -qE "^  $t " "$TMP/help" || missing+=("$t")
	done
	if [ ${#missing[@]} -eq 0 ] && ! grep -q '(no description)' "$TMP/help"; then
		pgv_ok "make help lists every target of the Makefile, each with a description"
	else
		echo "# missing from make help or undescribed: ${missing[*]} $(grep '(no description)' "$TMP/help" | awk '{print $1}' | tr '\n' ' ')"
		pgv_not_ok "make help lists every target of the Makefile, each with a description"
	fi
	if command -v shellcheck >/dev/null; then
		if out=$(shellcheck -x test/ci/*.sh test/static_checks.sh docker/*.sh 2>&1); then
			pgv_ok "shellcheck: test/ci/*.sh, test/static_checks.sh, docker/*.sh"
		else
			echo "$out" | sed 's/^/# /' | head -n 30
			pgv_not_ok "shellcheck: test/ci/*.sh, test/static_checks.sh, docker/*.sh"
		fi
	else
		pgv_skip "shellcheck is not installed"
	fi
fi

# ---- canfail: the checks fail when they should ----
# A copy with only what the target needs, so that the control run's result
# depends on the planted files alone and not on the code of the day.
minimal_copy() { # DIR FILE...
	local dir=$1 f
	shift
	mkdir -p "$dir"
	for f in "$@"; do
		mkdir -p "$dir/$(dirname "$f")"
		cp "$f" "$dir/$f"
	done
}

# expect_make DESC STATUS(0|fail) DIR TARGET [GREP...]: run make TARGET in
# DIR; it must succeed (0) or fail (fail), and its output must contain each
# GREP pattern.
expect_make() {
	local desc=$1 want=$2 dir=$3 target=$4 rc pat ok=1
	shift 4
	make --no-print-directory -C "$dir" "$target" PG_CONFIG="${PG_CONFIG:-pg_config}" >"$TMP/out" 2>&1
	rc=$?
	if [ "$want" = 0 ] && [ $rc -ne 0 ]; then ok=0; fi
	if [ "$want" = fail ] && [ $rc -eq 0 ]; then ok=0; fi
	for pat in "$@"; do
		grep -qE -- "$pat" "$TMP/out" || { echo "# output lacks /$pat/"; ok=0; }
	done
	if [ $ok = 1 ]; then
		pgv_ok "$desc (exit $rc)"
	else
		sed 's/^/# /' "$TMP/out" | tail -n 15
		pgv_not_ok "$desc (exit $rc)"
	fi
}

clean_c() {
	cat >"$1" <<-'EOF'
	#include <stddef.h>
	#include <string.h>

	size_t		clean_length(const char *s);

	size_t
	clean_length(const char *s)
	{
		return s == NULL ? 0 : strlen(s);
	}
	EOF
}

if want canfail; then
	echo "== canfail: make lint"
	if command -v cppcheck >/dev/null && command -v clang-tidy >/dev/null; then
		L=$TMP/lint
		minimal_copy "$L" Makefile pg_vault.control .clang-tidy \
			test/ci/lint.sh test/ci/cppcheck-jansson.cfg
		# The project's suppressions name its files, none of which is here.
		: >"$L/test/ci/lint.supp"
		mkdir -p "$L/src/common"
		clean_c "$L/src/clean.c"
		expect_make "make lint passes on a clean copy" 0 "$L" lint "lint: clean"
		# A use after free: clang-tidy's analyzer finds it.
		cat >"$L/src/planted.c" <<-'EOF'
		#include <stdlib.h>

		int			planted_read(int i);

		int
		planted_read(int i)
		{
			char	   *p = malloc(16);

			if (p == NULL)
				return 0;
			p[0] = 1;
			free(p);
			return p[i];
		}
		EOF
		expect_make "make lint fails on a planted use-after-free" fail "$L" lint \
			'src/planted\.c:.*\[clang-analyzer-unix\.Malloc\]'
		rm -f "$L/src/planted.c"
		# Past the end of an array: cppcheck's finding.
		cat >"$L/src/common/planted.c" <<-'EOF'
		int			planted_fill(void);

		int
		planted_fill(void)
		{
			int			a[4];
			int			i;

			for (i = 0; i <= 4; i++)
				a[i] = i;
			return a[0];
		}
		EOF
		expect_make "make lint fails on a planted out-of-bounds write in src/common" fail "$L" lint \
			'src/common/planted\.c:.*\[arrayIndexOutOfBounds\]'
	else
		pgv_skip "make lint can fail: cppcheck or clang-tidy is not installed (make deps installs them)"
	fi

	echo "== canfail: the container rules"
	B=$TMP/bad
	mkdir -p "$B/docker"
	# Everything the rules forbid, once each.
	cat >"$B/docker/Dockerfile.app" <<-'EOF'
	FROM debian:latest AS build
	ADD https://example.invalid/tool.tar.gz /tmp/
	ENV DB_PASSWORD=hunter2
	RUN apt-get install curl
	WORKDIR src
	COPY --from=builder /x /y
	COPY missing-file /opt/
	FROM debian
	CMD pg-vault-app --serve
	EOF
	cat >"$B/docker/docker-compose.yml" <<-'EOF'
	services:
	  vault:
	    image: hashicorp/vault:latest
	    ports: ["8200:8200"]
	  postgres:
	    image: postgres:15
	    ports: ["127.0.0.1:5432:5432"]
	    environment:
	      POSTGRES_PASSWORD: literal-password
	    healthcheck:
	      test: ["CMD", "pg_isready"]
	EOF
	"$PY" test/ci/static_checks.py --root "$B" docker compose >"$TMP/bad.out" 2>&1
	for rule in "base images pinned" "no ADD" "no secrets in ENV or ARG" "apt-get used cleanly" \
		"WORKDIR absolute" "COPY sources exist" "exec form" "HEALTHCHECK in the final image" \
		"deny-all" "non-root USER" "every long-running service has a health check" \
		"bound to 127.0.0.1" "only Vault \(8200\) and the app" "pulled images pinned" \
		"Vault is HashiCorp's image, 1.15" "environment values come from"; do
		if grep -qE "^fail	[^	]*$rule" "$TMP/bad.out"; then
			pgv_ok "the rule \"$rule\" fails on a file that breaks it"
		else
			grep -E "$rule" "$TMP/bad.out" | sed 's/^/# /'
			pgv_not_ok "the rule \"$rule\" fails on a file that breaks it"
		fi
	done

	echo "== canfail: the Kubernetes manifest rules"
	K=$TMP/badk8s
	mkdir -p "$K/docker"
	# Everything the rules forbid, once each.
	cat >"$K/docker/kubernetes.yaml" <<-'EOF'
	apiVersion: apps/v1
	kind: StatefulSet
	metadata:
	  name: db
	spec:
	  template:
	    metadata:
	      labels: {app: db}
	    spec:
	      hostNetwork: true
	      containers:
	        - name: postgres
	          image: postgres:latest
	          args: ["postgres", "-c", "vault.token_file=/run/vault/token"]
	          env:
	            - name: POSTGRES_PASSWORD
	              value: literal-password
	          securityContext:
	            runAsUser: 0
	          volumeMounts:
	            - {name: token, mountPath: /run/vault}
	      volumes:
	        - {name: token, emptyDir: {}}
	---
	apiVersion: networking.k8s.io/v1
	kind: NetworkPolicy
	metadata:
	  name: db
	spec:
	  podSelector:
	    matchLabels: {app: db}
	  policyTypes: ["Egress"]
	  egress:
	    - {}
	EOF
	"$PY" test/ci/static_checks.py --root "$K" kubernetes >"$TMP/badk8s.out" 2>&1
	for rule in "runs as non-root" "read-only root file system" "requests and limits" \
		"readiness and liveness probes" "images pinned" "no host namespaces" \
		"secrets only from Secrets or Vault Agent" "egress limited by NetworkPolicies" \
		"a StatefulSet, a Deployment"; do
		if grep -qE "^fail	kubernetes: [^	]*$rule" "$TMP/badk8s.out"; then
			pgv_ok "the Kubernetes rule \"$rule\" fails on a manifest that breaks it"
		else
			grep -E "$rule" "$TMP/badk8s.out" | sed 's/^/# /'
			pgv_not_ok "the Kubernetes rule \"$rule\" fails on a manifest that breaks it"
		fi
	done
	if grep -q "literal-password" "$TMP/badk8s.out"; then
		pgv_not_ok "the Kubernetes rules do not print the literal they found"
	else
		pgv_ok "the Kubernetes rules do not print the literal they found"
	fi

	echo "== canfail: make security-scan"
	if command -v git >/dev/null; then
		S=$TMP/sec
		minimal_copy "$S" Makefile pg_vault.control test/ci/security-scan.sh \
			test/ci/secret_scan.py test/ci/secret-scan.allow
		mkdir -p "$S/src" "$S/deploy"
		clean_c "$S/src/clean.c"
		gitc() { git -C "$S" -c user.name=static-checks -c user.email=static-checks@example.invalid \
			-c commit.gpgsign=false "$@" >/dev/null 2>&1; }
		gitc init -q && gitc add -A && gitc commit -q -m clean
		expect_make "make security-scan passes on a clean copy" 0 "$S" security-scan "security-scan: passed"

		# Built at run time, so that this file holds no token to find.
		token="hv""s.$(openssl rand -hex 16)"
		mkdir -p "$S/deploy"
		printf 'VAULT_ADDR=https://vault.example:8200\nVAULT_TOKEN=%s\n' "$token" >"$S/deploy/app.env"
		expect_make "make security-scan fails on a Vault token in the work tree" fail "$S" security-scan \
			'tree: deploy/app\.env:2: vault-token'
		if grep -qF "$token" "$TMP/out"; then
			pgv_not_ok "make security-scan does not print the token it found"
		else
			pgv_ok "make security-scan does not print the token it found"
		fi
		rm -f "$S/deploy/app.env"

		key="AK""IA$(openssl rand -hex 8 | tr a-f A-F)"
		printf '[default]\naws_access_key_id = %s\n' "$key" >"$S/deploy/credentials"
		gitc add -A && gitc commit -q -m "add credentials"
		gitc rm -q deploy/credentials && gitc commit -q -m "remove credentials"
		expect_make "make security-scan fails on an AWS key deleted from the tree but kept in history" fail \
			"$S" security-scan 'history: commit [0-9a-f]+ deploy/credentials: aws-access-key-id' \
			'work tree: 0 finding'

		# The same history without the key: a branch cut before it.
		gitc checkout -q -b before HEAD~2 && gitc branch -D master && gitc branch -D main
		gitc reflog expire --expire=now --all && gitc gc -q --prune=now
		pw=$(openssl rand -hex 8)
		mkdir -p "$S/deploy"
		printf 'database:\n  password: %s\n' "$pw" >"$S/deploy/values.yml"
		expect_make "make security-scan fails on a literal password in a deployment file" fail "$S" security-scan \
			'tree: deploy/values\.yml:2: credential'
		mkdir -p "$S/test"
		mv "$S/deploy/values.yml" "$S/test/values.yml"
		expect_make "make security-scan allows a literal password under test/ (allow-list)" 0 "$S" security-scan \
			'work tree: 0 finding' 'history: [0-9]+ commit\(s\), 0 finding'
		rm -f "$S/test/values.yml"

		cat >"$S/src/planted.c" <<-'EOF'
		#include <stdio.h>

		void		planted_log(const char *user_text);

		void
		planted_log(const char *user_text)
		{
			printf(user_text);
		}
		EOF
		expect_make "make security-scan fails on a planted format-string bug" fail "$S" security-scan \
			'src/planted\.c:.*format' 'fail the hardened compile'
	else
		pgv_skip "make security-scan can fail: git is not installed"
	fi
fi

pgv_done
