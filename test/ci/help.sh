#!/usr/bin/env bash
# help.sh: `make help`.  Every target the Makefile defines, one line each.
#
# A target's line comes from, in order: a "## text" comment after its rule
# (the operations section writes them so), the "#   make TARGET   text"
# lines of the Makefile's header comment, or the table below for the
# targets PGXS defines.  A target found in none of them is still listed,
# so that nothing is hidden.
set -uo pipefail

cd "$(dirname "$0")/../.." || exit 2
MAKEFILE=${1:-Makefile}

# PGXS's own targets, which the Makefile gets from $(PGXS), and the
# foundation's targets that the header comment does not describe.
declare -A PGXS_DESC=(
	[deps]="install the Debian packages building and testing need (as root; else prints the apt-get line), and OpenBao into .venv"
	[bench]="benchmarks (bench/run) against servers it starts itself"
	[all]="build the extension, and only it (the default target)"
	[programs]="build the app and the tests' fault proxy (make test, demo and bench do it)"
	[install]="install the extension into PostgreSQL (PG_CONFIG honoured)"
	[uninstall]="remove what make install installed"
	[installcheck]="pg_regress suites in sql/ + expected/ against a running, configured server"
	[clean]="remove build products"
)

awk -v pgxs="$(for k in "${!PGXS_DESC[@]}"; do printf '%s=%s\x1f' "$k" "${PGXS_DESC[$k]}"; done)" '
	BEGIN {
		n = split(pgxs, kv, "\x1f")
		for (i = 1; i <= n; i++) {
			if (kv[i] == "") continue
			eq = index(kv[i], "=")
			table[substr(kv[i], 1, eq - 1)] = substr(kv[i], eq + 1)
		}
	}
	# Header comment: "#   make NAME   description"; a bare "make" is "all".
	/^#[ \t]+make([ ][ ]+|\t)/ && !header_done {
		line = $0
		sub(/^#[ \t]+make[ \t]+/, "", line)
		if (!("all" in header)) { header["all"] = line; last = "all" }
		next
	}
	/^#[ \t]+make[ \t]+[a-z][a-z0-9_-]*([ ][ ]+|\t)/ && !header_done {
		line = $0
		sub(/^#[ \t]+make[ \t]+/, "", line)
		name = line; sub(/[ \t].*/, "", name)
		desc = line; sub(/^[^ \t]+[ \t]+/, "", desc)
		if (!(name in header)) { header[name] = desc; last = name }
		next
	}
	# A wrapped description: a deeply indented comment line.
	/^#[ \t][ \t][ \t][ \t][ \t][ \t][ \t][ \t][ \t][ \t]+[^ \t]/ && !header_done && last != "" {
		line = $0
		sub(/^#[ \t]+/, "", line)
		header[last] = header[last] " " line
		next
	}
	/^#/ { last = "" }
	/^[^#]/ { header_done = 1 }
	# Rules: "name [name...]: ..." but not variable assignments.
	/^[a-zA-Z][a-zA-Z0-9_.-]*([ \t]+[a-zA-Z][a-zA-Z0-9_.-]*)*[ \t]*:([^=]|$)/ {
		targets = $0
		sub(/:.*/, "", targets)
		desc = ""
		if (match($0, /##[ \t]*.*/)) {
			desc = substr($0, RSTART + 2)
			sub(/^[ \t]+/, "", desc)
		}
		m = split(targets, t, /[ \t]+/)
		for (i = 1; i <= m; i++) {
			name = t[i]
			if (name ~ /^\./ || name ~ /\// || name ~ /%/) continue
			if (!(name in seen)) { order[++count] = name; seen[name] = 1 }
			if (desc != "") tagged[name] = desc
		}
	}
	END {
		for (name in table)
			if (!(name in seen)) { order[++count] = name; seen[name] = 1 }
		for (i = 1; i <= count; i++) {
			name = order[i]
			if (name in tagged) d = tagged[name]
			else if (name in header) d = header[name]
			else if (name in table) d = table[name]
			else d = "(no description)"
			printf "  %-16s %s\n", name, d
		}
	}
' "$MAKEFILE"
