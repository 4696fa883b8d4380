# shellcheck shell=bash
# tree.sh: sourced by the test/ci scripts that build the project a second
# way (coverage, sanitizers, valgrind) without touching the work tree's own
# build products.
#
#   ci_copy_tree DEST   copy the files git tracks, or would track (untracked
#                       and not ignored), to DEST: sources without build
#                       products, including work not yet committed.  DEST
#                       is a git clone sharing this repository's objects
#                       (its index at HEAD), so that the suites that read
#                       git history (upgrade.sh builds 0.1.0 from it) or
#                       ask git what it ignores run there as here.

ci_copy_tree() {
	local dest=$1
	rm -rf "$dest"
	if ! git clone --quiet --shared --no-checkout "$(git rev-parse --show-toplevel)" "$dest" ||
		! git -C "$dest" reset --quiet; then
		echo "cloning the repository to $dest failed" >&2
		return 1
	fi
	git ls-files -z --cached --others --exclude-standard |
		while IFS= read -r -d '' f; do [ -f "$f" ] && printf '%s\0' "$f"; done |
		tar --null -T - -cf - | tar -C "$dest" -xf -
	[ -f "$dest/Makefile" ] || { echo "copying the source tree to $dest failed" >&2; return 1; }
}
