# shellcheck shell=bash
# tree.sh: sourced by the test/ci scripts that build the project a second
# way (coverage, sanitizers, valgrind) without touching the work tree's own
# build products.
#
#   ci_copy_tree DEST   copy the files git tracks, or would track (untracked
#                       and not ignored), to DEST: sources without build
#                       products, including work not yet committed

ci_copy_tree() {
	local dest=$1
	mkdir -p "$dest"
	git ls-files -z --cached --others --exclude-standard |
		while IFS= read -r -d '' f; do [ -f "$f" ] && printf '%s\0' "$f"; done |
		tar --null -T - -cf - | tar -C "$dest" -xf -
	[ -f "$dest/Makefile" ] || { echo "copying the source tree to $dest failed" >&2; return 1; }
}
