"""secret_scan.py: look for committed secrets in the work tree and in git history.

Run by `make security-scan` (test/ci/security-scan.sh) as
    /usr/bin/python3 test/ci/secret_scan.py [--no-history] [ROOT]
and exits 1 when it finds anything, 0 when it finds nothing.

What counts as a secret:
  vault-token          Vault service, batch and recovery tokens (hvs., hvb., hvr.)
  vault-legacy-token   pre-1.10 Vault tokens (s. + 24 random base62 characters)
  aws-access-key-id    AKIA..., ASIA... access key ids
  aws-secret-key       aws_secret_access_key = <40 characters>
  private-key          a PEM private key block
  credential           a literal value given to password=, VAULT_TOKEN=,
                       secret_id=, api_key= and the like (quoted, or as a
                       key=value / YAML / env line), or user:password@ in a URL

The first four are reported wherever they are.  "credential" is expected in
tests and documentation, whose examples use throwaway values: the paths in
test/ci/secret-scan.allow are exempt from it.  A single finding judged
harmless can be accepted there too, by its fingerprint (printed with it).

A finding never shows the value itself: file, line, rule and fingerprint
(the first 12 hex digits of the value's SHA-256) only.
"""

import fnmatch
import hashlib
import os
import re
import subprocess
import sys

MAX_FILE = 2 * 1024 * 1024

TOKEN_RULES = [
    ("vault-token", re.compile(r"(?<![A-Za-z0-9_])(hv[sbr]\.[A-Za-z0-9_-]{24,})")),
    ("vault-legacy-token", re.compile(r"(?<![A-Za-z0-9_.])s\.([A-Za-z0-9]{24})(?![A-Za-z0-9_])")),
    ("aws-access-key-id", re.compile(r"(?<![A-Z0-9])((?:AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA)[A-Z0-9]{16})(?![A-Z0-9])")),
    ("aws-secret-key", re.compile(r"(?i)aws_?secret_?access_?key[\"']?\s*[:=]\s*[\"']?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])")),
    ("private-key", re.compile(r"(-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----)")),
]

# Names whose values are credentials.  Matched as whole words, any case.
KEY = (r"(?:[A-Za-z0-9_.-]*(?:password|passwd|passphrase|secret_id|secret_key|"
       r"api_key|apikey|access_key|private_key|client_secret|auth_token|root_token)|"
       r"pgpassword|vault_token|vault_dev_root_token_id|x-vault-token)")
# A literal value: no quoting, variable, template or call syntax in it.
VAL = r"([^\s\"'`$%{}<>()\[\];,\\]{4,})"
CRED_RULES = [
    # password: "literal", "password": "literal", password='literal'
    re.compile(r"(?i)(?<![A-Za-z0-9_])" + KEY + r"[\"']?\s*[:=]\s*([\"'])" + VAL + r"\1"),
    # password=literal, as in connection strings and env files
    re.compile(r"(?i)(?<![A-Za-z0-9_])" + KEY + r"=" + VAL + r"(?![(\w.-])"),
    # YAML, env and ini lines: password: literal
    re.compile(r"(?i)^\s*(?:-\s*)?(?:export\s+)?" + KEY + r"\s*[:=]\s*" + VAL + r"\s*(?:#.*)?$"),
    # scheme://user:literal@host
    re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://[^/\s:@\"'$]+:" + VAL + r"@"),
]
CODE_EXT = (".c", ".h", ".py", ".pl", ".go", ".js", ".ts", ".rb", ".java", ".rs")
# Values that are plainly not secrets: empty-ish words and masks.
PLACEHOLDER = re.compile(r"(?i)^(null|none|nil|true|false|undefined|required|redacted|"
                         r"example|[*x.]+|<[^>]*>|\.\.\.)$")


def fingerprint(value):
    return hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()[:12]


def load_allow(root):
    paths, findings = [], set()
    path = os.path.join(root, "test/ci/secret-scan.allow")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.split("#", 1)[0].strip()
                if not line:
                    continue
                parts = line.split()
                if parts[0] == "path" and len(parts) == 2:
                    paths.append(parts[1])
                elif parts[0] == "finding" and len(parts) == 4:
                    findings.add((parts[1], parts[2], parts[3]))
                else:
                    sys.exit("secret-scan: bad line in test/ci/secret-scan.allow: " + line)
    return paths, findings


def path_allowed(path, patterns):
    return any(fnmatch.fnmatchcase(path, p) for p in patterns)


def legacy_token_like(v):
    # Random base62: real tokens mix digits and both cases.
    return (re.search(r"[0-9]", v) and re.search(r"[a-z]", v) and re.search(r"[A-Z]", v))


def scan_line(path, line, allow_paths, allow_findings):
    """Yield (rule, fingerprint) for each secret on one line."""
    for rule, rx in TOKEN_RULES:
        for m in rx.finditer(line):
            v = m.group(1)
            if rule == "vault-legacy-token" and not legacy_token_like(v):
                continue
            fp = fingerprint(v)
            if (rule, path, fp) not in allow_findings:
                yield rule, fp
    if path_allowed(path, allow_paths):
        return
    code = path.endswith(CODE_EXT)
    for i, rx in enumerate(CRED_RULES):
        # In program source, a bare name = value is an assignment or a
        # keyword argument from a variable: only the quoted form, and
        # key=value inside a string literal (a connection string), count.
        if code and i == 2:
            continue
        for m in rx.finditer(line):
            if code and i == 1 and not in_string(line, m.start()):
                continue
            v = m.group(m.lastindex)
            if PLACEHOLDER.match(v):
                continue
            fp = fingerprint(v)
            if ("credential", path, fp) not in allow_findings:
                yield "credential", fp


def in_string(line, pos):
    """Is pos inside a quoted string, judging by the quotes before it?"""
    before = line[:pos]
    return before.count('"') % 2 == 1 or before.count("'") % 2 == 1


def is_text(data):
    return b"\0" not in data[:8192]


def tree_files(root):
    try:
        out = subprocess.run(["git", "-C", root, "ls-files", "-z", "--cached", "--others",
                              "--exclude-standard"], check=True, capture_output=True).stdout
        return sorted(set(p for p in out.decode("utf-8", "replace").split("\0") if p))
    except (subprocess.CalledProcessError, FileNotFoundError):
        files = []
        for d, dirs, names in os.walk(root):
            dirs[:] = [x for x in dirs if x not in (".git", ".demo", ".test")]
            for n in names:
                files.append(os.path.relpath(os.path.join(d, n), root))
        return sorted(files)


def scan_tree(root, allow_paths, allow_findings):
    hits = []
    for rel in tree_files(root):
        full = os.path.join(root, rel)
        if not os.path.isfile(full) or os.path.islink(full) or os.path.getsize(full) > MAX_FILE:
            continue
        with open(full, "rb") as f:
            data = f.read()
        if not is_text(data):
            continue
        for n, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
            for rule, fp in scan_line(rel, line, allow_paths, allow_findings):
                hits.append("%s:%d: %s (fingerprint %s)" % (rel, n, rule, fp))
    return hits


def scan_history(root, allow_paths, allow_findings):
    """Every line ever added, in every commit reachable from any ref."""
    if subprocess.run(["git", "-C", root, "rev-parse", "--git-dir"],
                      capture_output=True).returncode != 0:
        return None, []
    if subprocess.run(["git", "-C", root, "rev-parse", "--verify", "-q", "HEAD"],
                      capture_output=True).returncode != 0:
        return 0, []
    shallow = subprocess.run(["git", "-C", root, "rev-parse", "--is-shallow-repository"],
                             capture_output=True, text=True).stdout.strip() == "true"
    proc = subprocess.Popen(["git", "-C", root, "log", "--all", "-p", "--no-color", "--no-ext-diff",
                             "--no-renames", "--unified=0", "--format=commit %H", "--text"],
                            stdout=subprocess.PIPE)
    hits, seen, commits = [], set(), 0
    commit = path = None
    for raw in proc.stdout:
        line = raw.decode("utf-8", "replace").rstrip("\n")
        if line.startswith("commit ") and len(line) == 47:
            commit, path, commits = line[7:], None, commits + 1
        elif line.startswith("+++ "):
            path = line[6:] if line.startswith("+++ b/") else None
        elif line.startswith("+") and path is not None:
            for rule, fp in scan_line(path, line[1:], allow_paths, allow_findings):
                if (rule, path, fp) in seen:
                    continue
                seen.add((rule, path, fp))
                hits.append("%s %s: %s (fingerprint %s)" % (commit[:12], path, rule, fp))
    proc.wait()
    if shallow:
        print("secret-scan: this clone is shallow: only the history it has was scanned "
              "(CI: fetch-depth: 0)", file=sys.stderr)
    return commits, hits


def main():
    args = [a for a in sys.argv[1:] if a != "--no-history"]
    history = "--no-history" not in sys.argv[1:]
    root = os.path.abspath(args[0] if args else ".")
    allow_paths, allow_findings = load_allow(root)

    failed = False
    hits = scan_tree(root, allow_paths, allow_findings)
    for h in hits:
        print("secret-scan: tree: " + h)
    failed |= bool(hits)
    print("secret-scan: work tree: %d finding(s)" % len(hits))

    if history:
        commits, hits = scan_history(root, allow_paths, allow_findings)
        for h in hits:
            print("secret-scan: history: commit " + h)
        failed |= bool(hits)
        if commits is None:
            print("secret-scan: history: not a git repository, skipped")
        else:
            print("secret-scan: history: %d commit(s), %d finding(s)" % (commits, len(hits)))
            if hits:
                print("secret-scan: a secret in history stays readable after it is deleted: "
                      "revoke or rotate it, then rewrite the history")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
