"""pgvtest: what every Python suite in test/vault/ shares.

A suite is a script test/vault/test_NAME.py of unittest test cases ending in

    if __name__ == "__main__":
        pgvtest.main()

test/run starts the Vault server first (a real OpenBao, `bao server` with
raft storage, initialised and unsealed by test/lib/servers.sh, behind the
fault proxy vault/faultproxy) and exports VAULT_ADDR (the proxy) and
VAULT_TOKEN (the run's root token); suites never start the run's server
themselves.  main() runs the tests and prints, as the last line of output,
the summary that test/run counts:

    N passed, N failed, N skipped

and exits non-zero when anything failed.  Tests that need an OpenBao the
harness started (sealing with its unseal key, restarts, instances of a
suite's own, its files such as the audit log) carry @needs_own_vault and
skip, saying why, when test/run uses an external Vault (VAULT_ADDR and
VAULT_TOKEN set by the caller, PGV_EXTERNAL_VAULT=1).  The fault switches
need no such thing: the proxy sits in front of an external Vault too.
"""

import json
import os
import subprocess
import sys
import unittest
import urllib.request

import hvac

VAULT_ADDR = os.environ.get("VAULT_ADDR", "http://127.0.0.1:8200")
VAULT_TOKEN = os.environ.get("VAULT_TOKEN", "")
EXTERNAL_VAULT = os.environ.get("PGV_EXTERNAL_VAULT", "0") == "1"
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

needs_own_vault = unittest.skipIf(
    EXTERNAL_VAULT,
    "needs an OpenBao the harness started (an external Vault is in use)")


def client(token=None):
    """An hvac client for the Vault under test; the root token by default."""
    return hvac.Client(url=VAULT_ADDR,
                       token=VAULT_TOKEN if token is None else token)


def _dev_request(method, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(VAULT_ADDR + "/_dev/faults", data=data,
                                 method=method,
                                 headers={"X-Vault-Token": VAULT_TOKEN,
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status


def faults(**switches):
    """Set the fault proxy's switches, e.g. faults(fail_next=2,
    fail_status=503); see vault/faultproxy/faultproxy.c for the full list."""
    return _dev_request("POST", switches)


def clear_faults():
    return _dev_request("DELETE")


def restart_vault():
    """Stop and start the run's OpenBao on the same port and raft storage
    and unseal it, through the shared fixtures (pgv_restart_vault, which
    returns once the server is the active node again)."""
    subprocess.run(["bash", "-c",
                    'source "$PGV_REPO/test/lib/servers.sh" && pgv_restart_vault'],
                   check=True, stdout=subprocess.DEVNULL)


def main():
    """Run the calling script's tests; print the summary line; exit."""
    suite = unittest.defaultTestLoader.loadTestsFromModule(
        sys.modules["__main__"])
    result = unittest.TextTestRunner(stream=sys.stdout, verbosity=2).run(suite)
    failed = (len(result.failures) + len(result.errors)
              + len(result.unexpectedSuccesses))
    skipped = len(result.skipped)
    passed = result.testsRun - failed - skipped
    sys.stdout.flush()
    print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
    sys.exit(1 if failed or result.testsRun == 0 else 0)
