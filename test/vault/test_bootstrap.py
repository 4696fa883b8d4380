"""vault/bootstrap: the state it leaves, that a second run changes nothing,
that its policies grant what they say and nothing more, and the CI/CD
AppRole cicd-role as the reference design has it.

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
ENVS = ("development", "staging", "production")
SECRETS = ["app/database", "app/api"] + [
    "%s/%s" % (env, what) for env in ENVS for what in ("database", "api", "features")]


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
        cls.cicddir = tempfile.mkdtemp(prefix="pgv-cicd-")
        cls.second = run_bootstrap("--out", cls.outdir, "--cicd-out", cls.cicddir)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.outdir, ignore_errors=True)
        shutil.rmtree(cls.cicddir, ignore_errors=True)

    @staticmethod
    def login(directory):
        with open(os.path.join(directory, "role_id")) as f:
            role_id = f.read()
        with open(os.path.join(directory, "secret_id")) as f:
            secret_id = f.read()
        client = hvac.Client(url=pgvtest.VAULT_ADDR)
        client.auth.approle.login(role_id=role_id, secret_id=secret_id)
        return client

    def login_app(self):
        return self.login(self.outdir)

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
            elif path.endswith("features"):
                self.assertEqual(keys, {"user_registration", "ssn_lookup",
                                        "debug_logging", "beta_features"}, path)
                self.assertTrue(set(self.before[path].values()) <= {"true", "false"}, path)
            else:
                self.assertEqual(keys, {"key", "endpoint"}, path)
        self.assertEqual(self.before["production/features"]["debug_logging"], "false")
        self.assertEqual(self.before["development/features"]["debug_logging"], "true")

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
        for d in (self.outdir, self.cicddir):
            for name in ("role_id", "secret_id"):
                mode = os.stat(os.path.join(d, name)).st_mode & 0o777
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
        listed = app.secrets.kv.v2.list_secrets(path="development", mount_point="secret")
        self.assertEqual(sorted(listed["data"]["keys"]), ["api", "database", "features"])
        self.assertEqual(app.secrets.kv.v2.read_secret_version(
            path="development/features", mount_point="secret")["data"]["data"],
            self.before["development/features"])
        for path in ("staging/database", "production/api"):
            with self.assertRaises(hvac.exceptions.Forbidden):
                app.secrets.kv.v2.read_secret_version(path=path, mount_point="secret")
        with self.assertRaises(hvac.exceptions.Forbidden):
            app.secrets.kv.v2.create_or_update_secret(
                path="app/database", secret={"x": "y"}, mount_point="secret")
        with self.assertRaises(hvac.exceptions.Forbidden):
            app.secrets.transit.encrypt_data(name="other-key",
                                             plaintext="aGVsbG8=")
        with self.assertRaises(hvac.exceptions.Forbidden):
            app.secrets.transit.rotate_key(name="user-data")

    def test_cicd_role(self):
        role = self.vault.auth.approle.read_role(role_name="cicd-role")["data"]
        self.assertEqual(role["token_policies"], ["cicd"])
        self.assertEqual(role["token_ttl"], 600)
        self.assertEqual(role["token_max_ttl"], 1800)
        self.assertEqual(role["secret_id_ttl"], 86400)
        self.assertEqual(role["secret_id_num_uses"], 100)
        cicd = self.login(self.cicddir)
        me = cicd.auth.token.lookup_self()["data"]
        self.assertIn("cicd", me["policies"])
        self.assertLessEqual(me["ttl"], 600)
        self.assertGreater(me["ttl"], 0)
        fresh = self.vault.auth.approle.generate_secret_id(role_name="cicd-role")["data"]
        self.assertEqual(fresh["secret_id_num_uses"], 100)
        self.assertEqual(fresh["secret_id_ttl"], 86400)
        self.vault.auth.approle.destroy_secret_id(role_name="cicd-role",
                                                  secret_id=fresh["secret_id"])

    def test_cicd_policy(self):
        cicd = self.login(self.cicddir)
        for env in ("staging", "production"):
            for what in ("database", "api"):
                got = cicd.secrets.kv.v2.read_secret_version(
                    path=env + "/" + what, mount_point="secret")
                self.assertEqual(got["data"]["data"], self.before[env + "/" + what])
        for path in ("app/database", "development/database", "app/clients"):
            with self.assertRaises(hvac.exceptions.Forbidden):
                cicd.secrets.kv.v2.read_secret_version(path=path, mount_point="secret")
        with self.assertRaises(hvac.exceptions.Forbidden):
            cicd.secrets.kv.v2.create_or_update_secret(
                path="staging/api", secret={"x": "y"}, mount_point="secret")
        with self.assertRaises(hvac.exceptions.Forbidden):
            cicd.secrets.transit.encrypt_data(name="user-data", plaintext="aGVsbG8=")
        cicd.auth.token.renew_self()


if __name__ == "__main__":
    pgvtest.main()
