"""vault/bootstrap: the state it leaves, that a second run changes nothing,
and that its policies grant what they say and nothing more.

test/run has already run vault/bootstrap once against the Vault under test
(the development server, or an external Vault).
"""

import os
import shutil
import subprocess
import tempfile
import unittest

import hvac

import pgvtest

BOOTSTRAP = os.path.join(pgvtest.REPO, "vault", "bootstrap")
POLICIES = os.path.join(pgvtest.REPO, "vault", "policies")
SECRETS = ["app/database", "app/api",
           "app/development/database", "app/development/api",
           "staging/app/database", "staging/app/api",
           "production/app/database", "production/app/api"]


def run_bootstrap(*args):
    return subprocess.run(["bash", BOOTSTRAP] + list(args),
                          capture_output=True, text=True, timeout=120)


class BootstrapTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.vault = pgvtest.client()
        cls.before = {p: cls.vault.secrets.kv.v2.read_secret_version(
            path=p, mount_point="secret")["data"]["data"] for p in SECRETS}
        cls.outdir = tempfile.mkdtemp(prefix="pgv-approle-")
        cls.second = run_bootstrap("--out", cls.outdir)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.outdir, ignore_errors=True)

    def login_app(self):
        with open(os.path.join(self.outdir, "role_id")) as f:
            role_id = f.read()
        with open(os.path.join(self.outdir, "secret_id")) as f:
            secret_id = f.read()
        app = hvac.Client(url=pgvtest.VAULT_ADDR)
        app.auth.approle.login(role_id=role_id, secret_id=secret_id)
        return app

    def test_second_run_changes_nothing(self):
        self.assertEqual(self.second.returncode, 0, self.second.stderr)
        lines = self.second.stdout.splitlines()
        self.assertTrue(lines)
        for line in lines:
            if "approle credentials" in line:
                continue
            self.assertTrue(line.endswith("already present"), line)

    def test_secrets_kept_across_runs(self):
        for path in SECRETS:
            now = self.vault.secrets.kv.v2.read_secret_version(
                path=path, mount_point="secret")["data"]["data"]
            self.assertEqual(now, self.before[path], path)

    def test_secret_shapes(self):
        for path in SECRETS:
            keys = set(self.before[path])
            if path.endswith("database"):
                self.assertEqual(keys, {"host", "port", "username", "password",
                                        "database"}, path)
                self.assertGreaterEqual(len(self.before[path]["password"]), 20)
            else:
                self.assertEqual(keys, {"key", "endpoint"}, path)

    def test_output_carries_no_secret(self):
        out = self.second.stdout + self.second.stderr
        for path in SECRETS:
            for key in ("password", "key"):
                if key in self.before[path]:
                    self.assertNotIn(self.before[path][key], out)
        self.assertNotIn(pgvtest.VAULT_TOKEN, out)
        with open(os.path.join(self.outdir, "secret_id")) as f:
            self.assertNotIn(f.read(), out)

    def test_transit_keys(self):
        user = self.vault.secrets.transit.read_key(name="user-data")["data"]
        self.assertEqual(user["type"], "aes256-gcm96")
        pay = self.vault.secrets.transit.read_key(name="payment-data")["data"]
        self.assertEqual(pay["auto_rotate_period"], 720 * 3600)

    def test_policies_match_files(self):
        for name in ("app", "cicd", "admin"):
            with open(os.path.join(POLICIES, name + ".hcl")) as f:
                text = f.read()
            got = self.vault.adapter.get(
                "/v1/sys/policies/acl/" + name)["data"]["policy"]
            self.assertEqual(got, text, name)

    def test_approle_files_private(self):
        for name in ("role_id", "secret_id"):
            mode = os.stat(os.path.join(self.outdir, name)).st_mode & 0o777
            self.assertEqual(mode, 0o600, name)

    def test_app_policy(self):
        app = self.login_app()
        self.assertIn("app", app.auth.token.lookup_self()["data"]["policies"])
        secret = app.secrets.kv.v2.read_secret_version(
            path="app/database", mount_point="secret")
        self.assertEqual(secret["data"]["data"], self.before["app/database"])
        ct = app.secrets.transit.encrypt_data(
            name="user-data", plaintext="aGVsbG8=")["data"]["ciphertext"]
        pt = app.secrets.transit.decrypt_data(
            name="user-data", ciphertext=ct)["data"]["plaintext"]
        self.assertEqual(pt, "aGVsbG8=")
        with self.assertRaises(hvac.exceptions.Forbidden):
            app.secrets.kv.v2.read_secret_version(
                path="staging/app/database", mount_point="secret")
        with self.assertRaises(hvac.exceptions.Forbidden):
            app.secrets.transit.encrypt_data(name="other-key",
                                             plaintext="aGVsbG8=")
        with self.assertRaises(hvac.exceptions.Forbidden):
            app.secrets.transit.rotate_key(name="user-data")

    def test_cicd_policy(self):
        token = self.vault.auth.token.create(policies=["cicd"], ttl="10m")
        cicd = pgvtest.client(token["auth"]["client_token"])
        for env in ("staging", "production"):
            got = cicd.secrets.kv.v2.read_secret_version(
                path=env + "/app/api", mount_point="secret")
            self.assertEqual(got["data"]["data"], self.before[env + "/app/api"])
        with self.assertRaises(hvac.exceptions.Forbidden):
            cicd.secrets.kv.v2.read_secret_version(
                path="app/database", mount_point="secret")
        cicd.auth.token.renew_self()


if __name__ == "__main__":
    pgvtest.main()
