"""vault_kv.py: list and read KV v2 secrets for the operations targets.

    /usr/bin/python3 test/ci/vault_kv.py list [PREFIX]   every secret path under PREFIX
    /usr/bin/python3 test/ci/vault_kv.py read PATH       one secret, sensitive fields masked

`make vault-secrets`, `make vault-read-db` and `make vault-read-api` call it.
It talks to Vault's HTTP API with the standard library only and takes
Vault's own variables: VAULT_ADDR, VAULT_TOKEN, VAULT_NAMESPACE,
VAULT_CACERT, VAULT_SKIP_VERIFY; KV_MOUNT names the KV v2 mount (default
secret).  The token travels in a header, never on a command line.

Values of fields named like password, key, token, secret or secret_id are
printed as ******** so that the output can be pasted into a ticket.
"""

import json
import os
import re
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request

SENSITIVE = re.compile(r"(?i)(pass|key|token|secret|credential|private|ssn)")
MASK = "********"


def fail(msg):
    print("vault: " + msg, file=sys.stderr)
    sys.exit(1)


def context():
    ctx = ssl.create_default_context(cafile=os.environ.get("VAULT_CACERT") or None)
    if os.environ.get("VAULT_SKIP_VERIFY", "").lower() in ("1", "true", "yes"):
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def call(method, path):
    addr = os.environ.get("VAULT_ADDR", "").rstrip("/")
    token = os.environ.get("VAULT_TOKEN", "")
    if not addr or not token:
        fail("VAULT_ADDR and VAULT_TOKEN must be set (make start writes them to .demo/env)")
    req = urllib.request.Request(addr + "/v1/" + path, method=method)
    req.add_header("X-Vault-Token", token)
    req.add_header("X-Vault-Request", "true")
    if os.environ.get("VAULT_NAMESPACE"):
        req.add_header("X-Vault-Namespace", os.environ["VAULT_NAMESPACE"])
    try:
        with urllib.request.urlopen(req, timeout=10,
                                    context=context() if addr.startswith("https") else None) as r:
            body = r.read()
            return r.status, json.loads(body) if body else {}
    except urllib.error.HTTPError as e:
        try:
            errors = json.loads(e.read()).get("errors") or []
        except ValueError:
            errors = []
        return e.code, {"errors": errors}
    except (urllib.error.URLError, OSError) as e:
        fail("cannot reach %s: %s" % (addr, getattr(e, "reason", e)))


def list_paths(mount, prefix):
    status, body = call("LIST", "%s/metadata/%s" % (mount, urllib.parse.quote(prefix)))
    if status == 404:
        return []
    if status != 200:
        fail("LIST %s/metadata/%s: HTTP %d %s" % (mount, prefix, status, "; ".join(body.get("errors", []))))
    out = []
    for key in body.get("data", {}).get("keys", []):
        if key.endswith("/"):
            out.extend(list_paths(mount, prefix + key))
        else:
            out.append(prefix + key)
    return out


def show(value, name):
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    if SENSITIVE.search(name) and value not in (None, ""):
        return MASK
    return str(value)


def main():
    mount = os.environ.get("KV_MOUNT", "secret").strip("/")
    if len(sys.argv) < 2 or sys.argv[1] not in ("list", "read"):
        fail("usage: vault_kv.py list [PREFIX] | read PATH")
    if sys.argv[1] == "list":
        prefix = sys.argv[2] if len(sys.argv) > 2 else ""
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        paths = list_paths(mount, prefix)
        for p in paths:
            print("%s/%s" % (mount, p))
        print("(%d secret(s) under %s/%s)" % (len(paths), mount, prefix), file=sys.stderr)
        return
    if len(sys.argv) != 3:
        fail("usage: vault_kv.py read PATH")
    path = sys.argv[2].strip("/")
    status, body = call("GET", "%s/data/%s" % (mount, urllib.parse.quote(path)))
    if status == 404:
        fail("%s/%s: not found" % (mount, path))
    if status != 200:
        fail("GET %s/data/%s: HTTP %d %s" % (mount, path, status, "; ".join(body.get("errors", []))))
    data = (body.get("data") or {}).get("data") or {}
    meta = (body.get("data") or {}).get("metadata") or {}
    print("%s/%s (version %s, created %s)" % (mount, path, meta.get("version"), meta.get("created_time")))
    width = max([len(k) for k in data] + [1])
    for k in sorted(data):
        print("  %-*s  %s" % (width, k, show(data[k], k)))


if __name__ == "__main__":
    main()
