#!/usr/bin/env bash
# test/roles.sh: CREATE EXTENSION never adopts a privilege role silently.
# pg_vault grants decrypt, HMAC, KV and credentials access to its NOLOGIN
# roles (vault_decryptor, ...); a role of that name made in advance, one
# that can log in or that someone else controls, would receive them.  On a
# fresh cluster of its own (the run's already has the roles), this suite
# makes such roles and checks that CREATE EXTENSION refuses each with 42710
# and a hint, then that the roles pg_vault makes itself are taken again by
# a second database and after DROP EXTENSION.
#
# Run by test/run, which starts the servers and exports their settings.
set -uo pipefail
source "$(dirname "$0")/lib/summary.sh"

pgv_need_test_env
DIR=$PGV_RUN/roles-cluster
PORT=

cleanup() { pgv_pg_instance_stop "$DIR"; }
trap cleanup EXIT

if ! PORT=$(pgv_pg_instance_start "$DIR"); then
	pgv_not_ok "a fresh cluster for this suite"
	pgv_done
	exit 1
fi
pgv_ok "a fresh cluster, without pg_vault's roles"

# sql DB STATEMENT...: run on the suite's cluster, print results or errors
sql() {
	local db=$1 args=() s
	shift
	for s in "$@"; do args+=(-c "$s"); done
	PGOPTIONS='-c client_min_messages=warning' psql -XAtq -v ON_ERROR_STOP=1 \
		-v VERBOSITY=verbose -p "$PORT" -d "$db" "${args[@]}" 2>&1
}

# refused DESCRIPTION ROLE WHY SETUP...: the setup makes ROLE unfit, CREATE
# EXTENSION is refused naming it and WHY, and nothing of the extension stays
refused() {
	local desc=$1 role=$2 why=$3 got
	shift 3
	sql postgres "$@" >/dev/null
	got=$(sql postgres 'CREATE EXTENSION pg_vault')
	if [[ $got == *"ERROR:  42710: role \"$role\" already exists, and pg_vault cannot take it over"* &&
		$got == *"DETAIL:  $why"* && $got == *"HINT:  Drop the role (DROP ROLE $role)"* ]] &&
		[ "$(sql postgres "SELECT count(*) FROM pg_extension WHERE extname = 'pg_vault'")" = 0 ]; then
		pgv_ok "$desc: refused ($why)"
	else
		pgv_not_ok "$desc: $got"
	fi
	sql postgres "REASSIGN OWNED BY $role TO postgres" "DROP OWNED BY $role" "DROP ROLE $role" >/dev/null
}

refused "a squatted role that can log in, with a password" vault_decryptor "It can log in" \
	"CREATE ROLE vault_decryptor LOGIN PASSWORD 'squatter-pw'"
refused "a NOLOGIN role with a password" vault_hasher "It has a password" \
	"CREATE ROLE vault_hasher NOLOGIN PASSWORD 'squatter-pw'"
refused "a role with CREATEROLE" vault_admin "It has role attributes" \
	"CREATE ROLE vault_admin NOLOGIN CREATEROLE"
refused "a role that is a member of another" vault_kv_reader "It is a member of other roles" \
	"CREATE ROLE pgv_elsewhere NOLOGIN" "CREATE ROLE vault_kv_reader NOLOGIN" "GRANT pgv_elsewhere TO vault_kv_reader"
sql postgres "DROP ROLE pgv_elsewhere" >/dev/null
refused "a role someone else can grant (ADMIN OPTION)" vault_credentials \
	"A role other than a superuser holds ADMIN OPTION on it" \
	"CREATE ROLE pgv_squatter LOGIN" "CREATE ROLE vault_credentials NOLOGIN" \
	"GRANT vault_credentials TO pgv_squatter WITH ADMIN OPTION"
refused "a role made in advance with a member" vault_encryptor "It has members, and pg_vault did not make it" \
	"CREATE ROLE vault_encryptor NOLOGIN" "GRANT vault_encryptor TO pgv_squatter"
refused "a role holding a privilege in this database" vault_kv_writer \
	"It owns objects or holds privileges in this database" \
	"CREATE ROLE vault_kv_writer NOLOGIN" "CREATE TABLE pgv_loot (x text)" "GRANT SELECT ON pgv_loot TO vault_kv_writer"
sql postgres "DROP TABLE pgv_loot" "DROP ROLE pgv_squatter" >/dev/null

# ---- what pg_vault may take over ----
expect "a bare NOLOGIN role made in advance is taken over" "ok" \
	"$(sql postgres "CREATE ROLE vault_decryptor NOLOGIN" "CREATE EXTENSION pg_vault" >/dev/null && echo ok)"
expect "the roles pg_vault made or took over carry its mark" 7 \
	"$(sql postgres "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'vault\\_%' AND shobj_description(oid, 'pg_authid') LIKE 'pg_vault%'")"
sql postgres "CREATE ROLE pgv_app LOGIN" "GRANT vault_encryptor, vault_decryptor TO pgv_app" \
	"CREATE DATABASE pgv_second" >/dev/null
expect "a second database takes the roles, members and all" "ok" \
	"$(sql pgv_second "CREATE EXTENSION pg_vault" >/dev/null && echo ok)"
expect "DROP EXTENSION, then CREATE EXTENSION again in the same database" "ok" \
	"$(sql postgres "DROP EXTENSION pg_vault" "CREATE EXTENSION pg_vault" >/dev/null && echo ok)"
expect "the members keep their grants" "t|t" \
	"$(sql postgres "SELECT pg_has_role('pgv_app', 'vault_encryptor', 'MEMBER')" \
		"SELECT has_function_privilege('pgv_app', 'vault_decrypt(text, text, text)', 'EXECUTE')" | paste -sd'|')"

pgv_done
