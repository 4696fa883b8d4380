"""Vault's database secrets engine for PostgreSQL: dynamic credentials and
their leases (issue 5), against the Vault under test (the OpenBao that
test/run starts, or an external Vault) and the run's PostgreSQL cluster.
What is asserted is what OpenBao's database engine and its built-in
postgresql-database-plugin really do, since pg_vault relies on it.

What is checked: connections (config/:name: stored without its password on
read, verified by connecting, refused with a clear error when the database
cannot be reached), roles and their statement formats, creds/:role (the
plugin's default username template and Vault's default password policy, a
real libpq login, the grants of the creation statements, VALID UNTIL),
lease renewal (VALID UNTIL moves, capped at max_ttl), revocation (the role
is dropped at once, even with a session of it connected: that session
keeps its connection but loses every privilege, as with Vault's default
statements, and cannot log in again), revocation when the lease expires
with no request, also across a restart of the server on its raft storage,
revocation with the token (asynchronous in OpenBao: the token's leases are
queued for revocation), and the failures that must leave no PostgreSQL role
behind: an unknown role, a role not in allowed_roles, a database that is
down, a failing statement (the plugin's transaction is rolled back; its
error text, PostgreSQL's own, can carry the generated password).

The run's cluster trusts 127.0.0.1 except for database pgv_password_auth
(test/lib/servers.sh), where logins need their password: that is where a
password is shown to be the one that works.  On a cluster without that rule
the check skips, and the SCRAM verifier PostgreSQL stored is compared with
the issued password instead (which is done everywhere).

Timers, restarts, instances of the suite's own and the audit log need an
OpenBao the harness started and skip with an external Vault.  Every test
works under its own mount and role names and removes what it made; no
password or token is ever printed.
"""

import base64
import datetime
import hashlib
import hmac
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse
import uuid

import psycopg2
import psycopg2.errors
import requests

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import pgvtest  # noqa: E402

SERVERS_SH = os.path.join(pgvtest.REPO, "test", "lib", "servers.sh")
PGHOST = os.environ.get("PGHOST", "127.0.0.1")
PGPORT = int(os.environ.get("PGPORT", "5432"))
PGUSER = os.environ.get("PGUSER", "postgres")
PGPASSWORD = os.environ.get("PGPASSWORD", "")
PGDATABASE = os.environ.get("PGDATABASE", "postgres")
PASSWORD_DB = "pgv_password_auth"
PLUGIN = "postgresql-database-plugin"
CREATE = ["CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' "
          "VALID UNTIL '{{expiration}}';",
          "GRANT SELECT ON ALL TABLES IN SCHEMA public TO \"{{name}}\";"]
PASSWORD_RE = re.compile(r"^[A-Za-z0-9-]{20}$")
LEASE_RE = r"^%s/creds/%s/[A-Za-z0-9]{24}$"
# Vault sets VALID UNTIL this much after the lease's end.
SLACK = 5


def rfc3339(text):
    """Epoch seconds of Vault's RFC 3339 times ("2026-01-02T03:04:05.123456789Z"
    or with an offset); sub-microsecond digits are dropped."""
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$",
                 text)
    if m is None:
        raise ValueError("not an RFC 3339 time: %r" % text)
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    frac = (m.group(2) or "")[:6].ljust(6, "0")
    return datetime.datetime.fromisoformat(
        "%s.%s%s" % (m.group(1), frac, zone)).timestamp()


def uid():
    return uuid.uuid4().hex[:10]


def dead_port():
    """A port on 127.0.0.1 that nothing listens on."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def connection_url(port=None, dbname=PGDATABASE):
    """The templated connection_url Vault uses to reach the run's cluster
    (over its socket directory when PGHOST is one)."""
    if port is None and PGHOST.startswith("/"):
        return ("postgresql://{{username}}:{{password}}@:%d/%s?host=%s"
                % (PGPORT, dbname, urllib.parse.quote(PGHOST, safe="")))
    return ("postgresql://{{username}}:{{password}}@127.0.0.1:%d/%s"
            "?sslmode=disable" % (port or PGPORT, dbname))


def admin(dbname=PGDATABASE):
    conn = psycopg2.connect(host=PGHOST, port=PGPORT, user=PGUSER,
                            password=PGPASSWORD or None, dbname=dbname,
                            connect_timeout=10)
    conn.autocommit = True
    return conn


def login(user, password, dbname=PGDATABASE):
    """A real libpq login over TCP, as an application would make it."""
    return psycopg2.connect(host="127.0.0.1", port=PGPORT, user=user,
                            password=password, dbname=dbname,
                            connect_timeout=10)


def scram_matches(verifier, password):
    """Does PostgreSQL's SCRAM-SHA-256 verifier belong to password?"""
    m = re.match(r"^SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):(.+)$",
                 verifier or "")
    if not m:
        return False
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(),
                                 base64.b64decode(m.group(2)),
                                 int(m.group(1)))
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    return hmac.compare_digest(hashlib.sha256(client_key).digest(),
                               base64.b64decode(m.group(3)))


class Api:
    """Raw requests to one Vault: status and decoded body, nothing hidden."""

    def __init__(self, addr, token):
        self.addr = addr.rstrip("/")
        self.token = token

    def call(self, method, path, body=None, token=None):
        headers = {"X-Vault-Request": "true"}
        tok = self.token if token is None else token
        if tok:
            headers["X-Vault-Token"] = tok
        resp = requests.request(method, "%s/v1/%s" % (self.addr, path),
                                headers=headers, json=body, timeout=60)
        try:
            data = resp.json() if resp.content else None
        except ValueError:
            data = None
        return resp.status_code, data

    def ok(self, method, path, body=None, token=None):
        status, data = self.call(method, path, body, token)
        if status not in (200, 204):
            raise AssertionError("%s %s: HTTP %d: %s" % (
                method, path, status, ", ".join((data or {}).get("errors", []))))
        return data


def errors(data):
    return " | ".join((data or {}).get("errors", []))


def fixture(func, directory, env):
    """Run one of servers.sh's pgv_vault_instance_* functions; returns the
    last line it printed (the server's address)."""
    full = dict(os.environ)
    for name in ("PGV_VAULT_TLS_CERT", "PGV_VAULT_TLS_KEY", "VAULT_CACERT"):
        full.pop(name, None)
    full.update(env)
    done = subprocess.run(
        ["bash", "-c", 'source "$1" && "$2" "$3"', "fixture", SERVERS_SH,
         func, directory],
        env=full, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError("%s failed (status %d): %s"
                           % (func, done.returncode, done.stderr[-2000:]))
    lines = done.stdout.strip().splitlines()
    return lines[-1] if lines else ""


class DatabaseCase(unittest.TestCase):
    """Each test gets its own database mount on the run's Vault; what it
    issues is revoked and dropped afterwards."""

    @classmethod
    def setUpClass(cls):
        cls.admin = admin()
        cur = cls.admin.cursor()
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                    (PASSWORD_DB,))
        if cur.fetchone() is None:
            cur.execute('CREATE DATABASE "%s"' % PASSWORD_DB)
        cls.table = "pgv_dbcreds_" + uid()
        cur.execute('CREATE TABLE public."%s" (id int PRIMARY KEY, v text)'
                    % cls.table)
        cur.execute('INSERT INTO public."%s" VALUES (1, %%s)' % cls.table,
                    ("one",))
        cls.password_enforced = cls._probe_password_auth()

    @classmethod
    def tearDownClass(cls):
        cur = cls.admin.cursor()
        cur.execute('DROP TABLE IF EXISTS public."%s"' % cls.table)
        cls.admin.close()

    @classmethod
    def _probe_password_auth(cls):
        """Does a wrong password fail on PASSWORD_DB over 127.0.0.1?"""
        name = "pgv_probe_" + uid()
        cur = cls.admin.cursor()
        cur.execute("CREATE ROLE \"%s\" LOGIN PASSWORD %%s" % name,
                    ("right-" + uid(),))
        try:
            login(name, "wrong-" + uid(), PASSWORD_DB).close()
            return False
        except psycopg2.OperationalError:
            return True
        finally:
            cur.execute("DROP ROLE \"%s\"" % name)

    def setUp(self):
        self.api = Api(pgvtest.VAULT_ADDR, pgvtest.VAULT_TOKEN)
        self.mount = "db-" + uid()
        self.leases = []
        self.usernames = []
        self.api.ok("POST", "sys/mounts/" + self.mount, {"type": "database"})
        self.addCleanup(self._cleanup)

    def _cleanup(self):
        for lease in self.leases:
            self.api.call("PUT", "sys/leases/revoke", {"lease_id": lease})
        self.api.call("DELETE", "sys/mounts/" + self.mount)
        cur = self.admin.cursor()
        for name in self.usernames:
            if self.role_exists(name):
                cur.execute('DROP OWNED BY "%s"' % name)
                cur.execute('DROP ROLE "%s"' % name)

    # ---- helpers ----

    def configure(self, name="pg", allowed_roles="*", api=None, mount=None,
                  **extra):
        body = {"plugin_name": PLUGIN, "connection_url": connection_url(),
                "username": PGUSER, "password": PGPASSWORD,
                "allowed_roles": allowed_roles}
        body.update(extra)
        (api or self.api).ok("POST", "%s/config/%s" % (mount or self.mount,
                                                        name), body)

    def make_role(self, name, db_name="pg", creation=None, api=None,
                  mount=None, **extra):
        body = {"db_name": db_name,
                "creation_statements": CREATE if creation is None else creation,
                "default_ttl": "1h", "max_ttl": "24h"}
        body.update(extra)
        (api or self.api).ok("POST", "%s/roles/%s" % (mount or self.mount,
                                                       name), body)

    def creds(self, role, token=None, api=None, mount=None):
        status, data = (api or self.api).call(
            "GET", "%s/creds/%s" % (mount or self.mount, role), token=token)
        if status == 200:
            self.leases.append(data["lease_id"])
            self.usernames.append(data["data"]["username"])
        return status, data

    def issue(self, role, **kw):
        status, data = self.creds(role, **kw)
        self.assertEqual(status, 200, errors(data))
        return data

    def role_exists(self, name):
        cur = self.admin.cursor()
        cur.execute("SELECT count(*) FROM pg_roles WHERE rolname = %s",
                    (name,))
        return cur.fetchone()[0] == 1

    def valid_until(self, name):
        cur = self.admin.cursor()
        cur.execute("SELECT extract(epoch FROM rolvaliduntil)::bigint "
                    "FROM pg_roles WHERE rolname = %s", (name,))
        row = cur.fetchone()
        return row[0] if row else None

    def roles_for(self, role):
        """PostgreSQL roles issued for a Vault role (by the default
        username template's role part)."""
        cur = self.admin.cursor()
        cur.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE %s",
                    ("v-%%-%s-%%" % role[:8],))
        return [r[0] for r in cur.fetchall()]

    def wait_gone(self, name, deadline):
        while time.time() < deadline:
            if not self.role_exists(name):
                return True
            time.sleep(0.1)
        return not self.role_exists(name)

    def lease_expiry(self, lease_id, api=None):
        """The lease's expire_time as Vault recorded it (epoch seconds)."""
        data = (api or self.api).ok("PUT", "sys/leases/lookup",
                                    {"lease_id": lease_id})["data"]
        return rfc3339(data["expire_time"])

    def assertRevokedAtExpiry(self, name, expires, within=120):
        """The role is dropped once its lease expires (Vault's expire_time),
        and not before: polled until it is gone, for at most `within`
        seconds after expiry (generous: a busy machine only makes it later).
        Every look that finds it gone is timed after the look, so finding it
        gone while the clock still reads before expiry is an early
        revocation, however slow the machine."""
        while True:
            exists = self.role_exists(name)
            now = time.time()
            if not exists:
                self.assertGreaterEqual(
                    now, expires - 0.5, "role dropped %.1f s before its lease "
                    "expired" % (expires - now))
                return
            self.assertLess(now, expires + within, "role still there %d s "
                            "after its lease expired" % within)
            time.sleep(0.1)


class ConfigTest(DatabaseCase):

    def test_read_hides_password_and_lists(self):
        self.configure(allowed_roles="app-*,other", password="pgv-pw-" + uid())
        data = self.api.ok("GET", self.mount + "/config/pg")["data"]
        self.assertEqual(data["plugin_name"], PLUGIN)
        self.assertEqual(data["allowed_roles"], ["app-*", "other"])
        details = data["connection_details"]
        self.assertEqual(details["connection_url"], connection_url())
        self.assertEqual(details["username"], PGUSER)
        self.assertNotIn("password", details)
        keys = self.api.ok("LIST", self.mount + "/config")["data"]["keys"]
        self.assertEqual(keys, ["pg"])
        self.api.ok("DELETE", self.mount + "/config/pg")
        status, _ = self.api.call("GET", self.mount + "/config/pg")
        self.assertEqual(status, 404)

    def test_unreachable_database_is_refused_and_not_stored(self):
        secret = "pgv-pw-" + uid()
        status, data = self.api.call("POST", self.mount + "/config/down", {
            "plugin_name": PLUGIN,
            "connection_url": connection_url(port=dead_port()),
            "username": PGUSER, "password": secret, "allowed_roles": "*"})
        self.assertEqual(status, 400)
        self.assertIn("error verifying connection", errors(data))
        self.assertNotIn(secret, json.dumps(data))
        status, _ = self.api.call("GET", self.mount + "/config/down")
        self.assertEqual(status, 404)

    def test_update_merges_and_keeps_password(self):
        self.configure(allowed_roles="nobody")
        self.make_role("app-role")
        # a partial update: the password and URL stay as they were
        self.api.ok("POST", self.mount + "/config/pg",
                    {"allowed_roles": ["app-role"]})
        self.issue("app-role")

    def test_bad_settings(self):
        """Each is refused with 400 and nothing is stored.  A plugin not in
        OpenBao's catalog is named in the error; OpenBao does have a MySQL
        plugin, which cannot parse a PostgreSQL URL and fails verifying."""
        cases = [
            ({"plugin_name": ""}, "empty plugin name"),
            ({"plugin_name": "pgv-no-such-plugin"},
             "plugin not found in the catalog: pgv-no-such-plugin"),
            ({"plugin_name": "mysql-database-plugin"},
             "error verifying - connection: unable to parse connectionURL"),
            ({"connection_url": ""}, "connection_url cannot be empty"),
            ({"username_template": "{{ nosuchfunction }}"},
             "unable to initialize username template"),
            ({"password_authentication": "md5"},
             "is not a valid password authentication type"),
        ]
        for extra, message in cases:
            body = {"plugin_name": PLUGIN, "connection_url": connection_url(),
                    "username": PGUSER, "password": PGPASSWORD}
            body.update(extra)
            status, data = self.api.call("POST", self.mount + "/config/bad",
                                         body)
            self.assertEqual(status, 400, extra)
            self.assertIn(message, errors(data), extra)
        status, _ = self.api.call("GET", self.mount + "/config/bad")
        self.assertEqual(status, 404)

    def test_reset(self):
        self.configure()
        self.assertEqual(self.api.call("POST", self.mount + "/reset/pg")[0],
                         204)
        status, data = self.api.call("POST", self.mount + "/reset/nope")
        self.assertEqual(status, 500)
        self.assertIn('failed to find entry for connection with name: "nope"',
                      errors(data))


class RoleTest(DatabaseCase):

    def test_read_list_delete(self):
        self.configure()
        self.make_role("app-role", default_ttl="30m", max_ttl=7200,
                       revocation_statements=["DROP ROLE \"{{name}}\";", ""])
        data = self.api.ok("GET", self.mount + "/roles/app-role")["data"]
        self.assertEqual(data["db_name"], "pg")
        self.assertEqual(data["creation_statements"], CREATE)
        self.assertEqual(data["revocation_statements"],
                         ["DROP ROLE \"{{name}}\";"])
        self.assertEqual(data["renew_statements"], [])
        self.assertEqual(data["rollback_statements"], [])
        self.assertEqual(data["default_ttl"], 1800)
        self.assertEqual(data["max_ttl"], 7200)
        keys = self.api.ok("LIST", self.mount + "/roles")["data"]["keys"]
        self.assertEqual(keys, ["app-role"])
        self.api.ok("DELETE", self.mount + "/roles/app-role")
        self.assertEqual(self.api.call("GET", self.mount + "/roles/app-role")[0],
                         404)
        status, data = self.api.call("POST", self.mount + "/roles/nodb",
                                     {"creation_statements": CREATE})
        self.assertEqual(status, 400)
        self.assertIn("database name is required", errors(data))

    def test_statement_formats(self):
        """A list, one ';'-separated string, a JSON array in a string, and
        base64 of either (with line breaks too): each creates a working
        role."""
        self.configure()
        joined = " ".join(CREATE)
        as_json = json.dumps(CREATE)
        formats = {
            "f-list": CREATE,
            "f-semi": joined,
            "f-json": as_json,
            "f-b64j": base64.b64encode(as_json.encode()).decode(),
            "f-b64s": base64.b64encode(joined.encode()).decode(),
            # as base64(1) writes it: lines of 76 characters
            "f-b64n": base64.encodebytes(as_json.encode()).decode(),
        }
        for name, creation in formats.items():
            self.make_role(name, creation=creation)
            data = self.issue(name)["data"]
            with login(data["username"], data["password"]) as conn:
                cur = conn.cursor()
                cur.execute('SELECT v FROM public."%s"' % self.table)
                self.assertEqual(cur.fetchone()[0], "one", name)
            conn.close()


class CredsTest(DatabaseCase):

    def test_issue_and_log_in(self):
        self.configure()
        self.make_role("app-role")
        before = time.time()
        resp = self.issue("app-role")
        after = time.time()
        user, password = resp["data"]["username"], resp["data"]["password"]
        self.assertRegex(resp["lease_id"], LEASE_RE % (self.mount, "app-role"))
        self.assertTrue(resp["renewable"])
        self.assertEqual(resp["lease_duration"], 3600)
        # The PostgreSQL plugin's default username template:
        #   v-<display name|truncate 8>-<role|truncate 8>-<random 20>-<unix
        #   time>, the whole truncated to 63,
        # where the display name is the requesting token's own (the run's
        # token: "token-" + the display_name it was created with, sanitised
        # to [A-Za-z0-9-], so the truncated part can itself carry a "-").
        display = self.api.ok("GET", "auth/token/lookup-self")[
            "data"]["display_name"]
        m = re.match(r"^v-%s-app-role-([A-Za-z0-9]{20})-(\d+)$"
                     % re.escape(display[:8]), user)
        self.assertIsNotNone(m, "username does not follow the plugin's "
                             "default template")
        self.assertLessEqual(len(user), 63)
        # the unix time of the issue, whatever the call took
        self.assertGreaterEqual(int(m.group(2)), int(before))
        self.assertLessEqual(int(m.group(2)), after + 1)
        self.assertRegex(password, PASSWORD_RE)
        for cls in ("[a-z]", "[A-Z]", "[0-9]", "-"):
            self.assertRegex(password, cls)

        cur = self.admin.cursor()
        cur.execute("SELECT rolpassword, rolcanlogin FROM pg_authid "
                    "WHERE rolname = %s", (user,))
        verifier, canlogin = cur.fetchone()
        self.assertTrue(canlogin)
        self.assertTrue(scram_matches(verifier, password),
                        "PostgreSQL stores another password than the one issued")
        until = self.valid_until(user)
        self.assertLessEqual(abs(until - (self.lease_expiry(resp["lease_id"])
                                          + SLACK)), 2)

        conn = login(user, password)
        cur = conn.cursor()
        cur.execute('SELECT current_user, v FROM public."%s"' % self.table)
        self.assertEqual(cur.fetchone(), (user, "one"))
        conn.close()

        lookup = self.api.ok("PUT", "sys/leases/lookup",
                             {"lease_id": resp["lease_id"]})["data"]
        self.assertEqual(lookup["id"], resp["lease_id"])
        self.assertTrue(lookup["renewable"])
        self.assertGreater(lookup["ttl"], 3500)

    def test_password_is_enforced(self):
        if not self.password_enforced:
            self.skipTest("the cluster trusts 127.0.0.1 for %s" % PASSWORD_DB)
        self.configure()
        self.make_role("app-role")
        data = self.issue("app-role")["data"]
        login(data["username"], data["password"], PASSWORD_DB).close()
        with self.assertRaises(psycopg2.OperationalError):
            login(data["username"], "wrong-" + uid(), PASSWORD_DB)

    def test_scram_password_authentication(self):
        """password_authentication=scram-sha-256: PostgreSQL gets a verifier,
        the password still logs in."""
        self.configure(password_authentication="scram-sha-256")
        self.make_role("app-role")
        data = self.issue("app-role")["data"]
        cur = self.admin.cursor()
        cur.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s",
                    (data["username"],))
        self.assertTrue(scram_matches(cur.fetchone()[0], data["password"]))
        dbname = PASSWORD_DB if self.password_enforced else PGDATABASE
        login(data["username"], data["password"], dbname).close()

    def test_username_template(self):
        self.configure(username_template='{{ printf "app_%s_%s" '
                       '(.RoleName | replace "-" "_") (random 6) | lowercase }}')
        self.make_role("App-Role")
        user = self.issue("App-Role")["data"]["username"]
        self.assertRegex(user, r"^app_app_role_[a-z0-9]{6}$")

    def test_approle_login_display_name(self):
        """The username carries the requesting token's display name: an
        AppRole login's is its mount path."""
        self.configure()
        self.make_role("app-role")
        auth = "approle-" + uid()
        policy = "pgv-db-" + uid()
        self.api.ok("POST", "sys/auth/" + auth, {"type": "approle"})
        self.addCleanup(self.api.call, "DELETE", "sys/auth/" + auth)
        self.api.ok("PUT", "sys/policies/acl/" + policy, {
            "policy": 'path "%s/creds/app-role" { capabilities = ["read"] }'
                      % self.mount})
        self.addCleanup(self.api.call, "DELETE", "sys/policies/acl/" + policy)
        self.api.ok("POST", "auth/%s/role/app" % auth,
                    {"token_policies": [policy]})
        role_id = self.api.ok("GET", "auth/%s/role/app/role-id" % auth)[
            "data"]["role_id"]
        secret_id = self.api.ok("POST", "auth/%s/role/app/secret-id" % auth,
                                {})["data"]["secret_id"]
        token = self.api.ok("POST", "auth/%s/login" % auth,
                            {"role_id": role_id, "secret_id": secret_id},
                            token="")["auth"]["client_token"]
        user = self.issue("app-role", token=token)["data"]["username"]
        self.assertTrue(user.startswith("v-approle--app-role-"), user[:20])
        # the policy grants creds/app-role and nothing else
        status, _ = self.api.call("GET", self.mount + "/roles/app-role",
                                  token=token)
        self.assertEqual(status, 403)


class LeaseTest(DatabaseCase):

    def test_renew_moves_valid_until_capped_at_max_ttl(self):
        self.configure()
        self.make_role("app-role", default_ttl="1h", max_ttl="2h")
        resp = self.issue("app-role")
        user, lease = resp["data"]["username"], resp["lease_id"]

        renewed = self.api.ok("PUT", "sys/leases/renew",
                              {"lease_id": lease, "increment": 5400})
        self.assertEqual(renewed["lease_id"], lease)
        self.assertEqual(renewed["lease_duration"], 5400)
        # VALID UNTIL follows the lease's end as Vault recorded it (not the
        # test's clock: a busy machine may take its time between calls)
        self.assertLessEqual(abs(self.valid_until(user)
                                 - (self.lease_expiry(lease) + SLACK)), 2)

        capped = self.api.ok("PUT", "sys/leases/renew",
                             {"lease_id": lease, "increment": 3 * 3600})
        self.assertLessEqual(capped["lease_duration"], 7200)
        self.assertTrue(any("capped" in w for w in capped.get("warnings") or []))
        looked = self.api.ok("PUT", "sys/leases/lookup",
                             {"lease_id": lease})["data"]
        expires = rfc3339(looked["expire_time"])
        self.assertLessEqual(abs(expires - (rfc3339(looked["issue_time"]) + 7200)), 1)
        self.assertLessEqual(abs(self.valid_until(user) - (expires + SLACK)), 2)

    def test_revoke_drops_role_with_a_live_session(self):
        self.configure()
        self.make_role("app-role")
        resp = self.issue("app-role")
        user, password = resp["data"]["username"], resp["data"]["password"]
        live = login(user, password)
        live.autocommit = True
        cur = live.cursor()
        cur.execute('SELECT v FROM public."%s"' % self.table)
        self.assertEqual(cur.fetchone()[0], "one")

        status, _ = self.api.call("PUT", "sys/leases/revoke",
                                  {"lease_id": resp["lease_id"]})
        self.assertEqual(status, 204)
        # at once, with no waiting for the session to end
        self.assertFalse(self.role_exists(user))
        # the session is still connected but its grants are gone
        with self.assertRaises(psycopg2.errors.InsufficientPrivilege):
            cur.execute('SELECT v FROM public."%s"' % self.table)
        live.close()
        with self.assertRaises(psycopg2.OperationalError):
            login(user, password)
        status, data = self.api.call("PUT", "sys/leases/lookup",
                                     {"lease_id": resp["lease_id"]})
        self.assertEqual(status, 400)

    def test_custom_revocation_statements(self):
        self.configure()
        self.make_role("app-role", revocation_statements=[
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE usename = '{{name}}';",
            "REVOKE ALL PRIVILEGES ON ALL TABLES IN SCHEMA public FROM \"{{name}}\";",
            "DROP ROLE IF EXISTS \"{{name}}\";"])
        resp = self.issue("app-role")
        user = resp["data"]["username"]
        live = login(user, resp["data"]["password"])
        self.api.ok("PUT", "sys/leases/revoke/" + resp["lease_id"])
        self.assertFalse(self.role_exists(user))
        # these statements also end the session
        with self.assertRaises(psycopg2.Error):
            live.cursor().execute("SELECT 1")
        live.close()

    def test_revoking_the_token_revokes_its_credentials(self):
        """The token is revoked at once; its leases are not revoked inside
        that request: OpenBao's ExpirationManager.RevokeByToken marks each
        one expired now (lazyRevokeInternal) and its revocation workers
        drop the role shortly after.  So this waits, at most 10 s."""
        self.configure()
        self.make_role("app-role")
        token = self.api.ok("POST", "auth/token/create",
                            {"ttl": "1h"})["auth"]["client_token"]
        resp = self.issue("app-role", token=token)
        user = resp["data"]["username"]
        self.assertTrue(user.startswith("v-token-app-role-"), user[:20])
        self.assertTrue(self.role_exists(user))
        self.api.ok("POST", "auth/token/revoke", {"token": token})
        status, _ = self.api.call("GET", "auth/token/lookup-self",
                                  token=token)
        self.assertEqual(status, 403)
        deadline = time.time() + 120
        self.assertTrue(self.wait_gone(user, deadline),
                        "role still there 120 s after its token was revoked")
        # and the lease goes with it (its entry is deleted right after the
        # plugin has dropped the role)
        while True:
            status, _ = self.api.call("PUT", "sys/leases/lookup",
                                      {"lease_id": resp["lease_id"]})
            if status != 200 or time.time() >= deadline:
                break
            time.sleep(0.1)
        self.assertEqual(status, 400)

    @pgvtest.needs_own_vault
    def test_expiry_revokes_without_a_request(self):
        self.configure()
        self.make_role("short", default_ttl=3, max_ttl=60)
        resp = self.issue("short")
        expires = self.lease_expiry(resp["lease_id"])
        user = resp["data"]["username"]
        self.assertEqual(resp["lease_duration"], 3)
        # no request to Vault from here on: its timer must do it
        self.assertRevokedAtExpiry(user, expires)


class FailureTest(DatabaseCase):
    """Each failure answers with a clear message and creates no role."""

    def test_unknown_role(self):
        self.configure()
        status, data = self.creds("nosuchrole")
        self.assertEqual(status, 400)
        self.assertEqual(errors(data), "unknown role: nosuchrole")
        self.assertEqual(self.roles_for("nosuchrole"), [])

    def test_role_not_in_allowed_roles(self):
        self.configure(allowed_roles=["app-*"])
        self.make_role("app-role")
        self.make_role("denied")
        status, data = self.creds("denied")
        self.assertEqual(status, 500)
        self.assertIn('"denied" is not an allowed role', errors(data))
        self.assertEqual(self.roles_for("denied"), [])
        self.issue("app-role")  # the glob allows this one

    def test_database_down(self):
        """The plugin opens its connection pool lazily: the first use, the
        BEGIN of the creation transaction, is what fails, and the error
        names the address and libpq's (pgx's) reason, not the password."""
        secret = "pgv-pw-" + uid()
        port = dead_port()
        self.api.ok("POST", self.mount + "/config/down", {
            "plugin_name": PLUGIN,
            "connection_url": connection_url(port=port),
            "username": PGUSER, "password": secret, "allowed_roles": "*",
            "verify_connection": False})
        self.make_role("downrole", db_name="down")
        status, data = self.creds("downrole")
        self.assertEqual(status, 500)
        self.assertIn("unable to start transaction: failed to connect to",
                      errors(data))
        self.assertIn("127.0.0.1:%d" % port, errors(data))
        self.assertIn("connection refused", errors(data))
        self.assertNotIn(secret, json.dumps(data))
        self.assertEqual(self.roles_for("downrole"), [])

    def test_failing_statement_rolls_back(self):
        """A statement that fails after CREATE ROLE: the plugin runs the
        creation statements in one transaction, which is rolled back, so no
        role is left.  The role's rollback_statements are stored and shown,
        but OpenBao's PostgreSQL plugin never runs them (its NewUser only
        rolls the transaction back; they are "not supported by every
        plugin"): the table they would write to stays empty."""
        self.configure()
        log = "pgv_rollback_" + uid()
        cur = self.admin.cursor()
        cur.execute('CREATE TABLE public."%s" (name text)' % log)
        self.addCleanup(cur.execute, 'DROP TABLE public."%s"' % log)
        rollback = ['INSERT INTO public."%s" VALUES (\'{{name}}\');' % log]
        self.make_role("broken", creation=CREATE + [
            "SELECT * FROM pgv_no_such_table_%s;" % uid()],
            rollback_statements=rollback)
        self.assertEqual(self.api.ok("GET", self.mount + "/roles/broken")[
            "data"]["rollback_statements"], rollback)
        status, data = self.creds("broken")
        self.assertEqual(status, 500)
        self.assertIn("failed to execute query", errors(data))
        self.assertIn("42P01", errors(data))
        self.assertEqual(self.roles_for("broken"), [])
        cur.execute('SELECT name FROM public."%s"' % log)
        self.assertEqual(cur.fetchall(), [])

    def test_password_echoed_by_postgresql(self):
        """PostgreSQL quotes the value it fails on (here the password, cast
        to an integer after the role was created).  OpenBao passes
        PostgreSQL's error through verbatim ("failed to execute query: " +
        pgx's error), so the generated password IS in the error text Vault
        returns to the client, and (the audit device does not HMAC the
        "error" field) in the audit log too.  The role is rolled back, so
        that password never worked; still, pg_vault must never pass Vault's
        creds error text on unredacted (to SQL errors, logs or the app's
        answers): it can carry a password."""
        self.configure()
        self.make_role("echo", creation=CREATE + ["SELECT '{{password}}'::int;"])
        status, data = self.creds("echo")
        # The error carries a password: assertions here never show it.
        self.assertEqual(status, 500)
        text = errors(data)
        m = re.search(r'failed to execute query: ERROR: invalid input syntax '
                      r'for type integer: "([^"]*)" \(SQLSTATE 22P02\)', text)
        self.assertTrue(m, "PostgreSQL's error is not passed through")
        echoed = m.group(1)
        # the value quoted is a password of Vault's default policy, not the
        # template or a placeholder
        self.assertTrue(PASSWORD_RE.match(echoed),
                        "the quoted value is not a generated password")
        for cls in ("[a-z]", "[A-Z]", "[0-9]", "-"):
            self.assertTrue(re.search(cls, echoed),
                            "the quoted value has no %s" % cls)
        self.assertFalse("[password]" in text, "the error is redacted")
        self.assertEqual(self.roles_for("echo"), [])
        audit = os.environ.get("PGV_AUDIT_FILE", "")
        if not pgvtest.EXTERNAL_VAULT and audit and os.path.exists(audit):
            with open(audit) as f:
                self.assertTrue(echoed in f.read(),
                                "the audit log does not record the error")

    def test_no_creation_statements(self):
        self.configure()
        self.make_role("empty", creation=[])
        status, data = self.creds("empty")
        self.assertEqual(status, 500)
        self.assertIn("empty creation statements", errors(data))


@pgvtest.needs_own_vault
class PersistenceTest(DatabaseCase):
    """An OpenBao of the suite's own (servers.sh's pgv_vault_instance_*),
    stopped and started again on its raft storage, and unsealed, between
    issue and expiry: the lease is still revoked on time."""

    def setUp(self):
        super().setUp()
        self.dir = tempfile.mkdtemp(prefix="pgv-dbcreds-")
        # The instance makes this id a root token of its own (servers.sh's
        # pgv_vault_add_root_token).  OpenBao refuses custom token ids with
        # its "hvs."/"s." prefixes or any "."; the harness's are "pgv-...".
        self.token = "pgv-" + os.urandom(24).hex()
        self.env = {"PGV_ROOT_TOKEN": self.token}
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.addCleanup(fixture, "pgv_vault_instance_stop", self.dir, self.env)
        self.own = Api(fixture("pgv_vault_instance_start", self.dir, self.env),
                       self.token)

    def restart(self):
        self.own = Api(fixture("pgv_vault_instance_restart", self.dir,
                               self.env), self.token)

    def test_restart_before_expiry_still_revokes_on_time(self):
        self.own.ok("POST", "sys/mounts/database", {"type": "database"})
        self.configure(api=self.own, mount="database")
        # A lease that outlives the restart: 8 s is plenty on an idle
        # machine; when the restart took longer (Vault's own expire_time
        # says), the lease is left to expire and a longer one tried.
        for ttl in (8, 40, 200):
            self.make_role("restart-%d" % ttl, api=self.own, mount="database",
                           default_ttl=ttl, max_ttl=max(ttl, 60))
            status, resp = self.creds("restart-%d" % ttl, api=self.own,
                                      mount="database")
            self.assertEqual(status, 200, errors(resp))
            lease = resp["lease_id"]
            self.leases.remove(lease)	# not the run's server's
            expires = self.lease_expiry(lease, api=self.own)
            user, password = resp["data"]["username"], resp["data"]["password"]
            self.restart()
            # the lease as the restarted server has it, before it expires
            status, looked = self.own.call("PUT", "sys/leases/lookup",
                                           {"lease_id": lease})
            exists = self.role_exists(user)
            if time.time() < expires - 1:
                break
        else:
            self.skipTest("every restart outlasted its lease (8, 40, 200 s)")
        self.assertEqual(status, 200, errors(looked))
        self.assertEqual(rfc3339(looked["data"]["expire_time"]), expires)
        self.assertTrue(exists, "the role went with the restart")

        # the raft storage is private and holds no issued password in clear
        # (OpenBao keeps the lease, with the response's data, behind its
        # encrypting barrier)
        self.assertStorageHides(os.path.join(self.dir, "data"), password)
        # the connection and role came back; the password is not shown
        data = self.own.ok("GET", "database/config/pg")["data"]
        self.assertNotIn("password", data["connection_details"])

        # no request from here on: the restored expiration timer drops the
        # role at its expiry, not before
        self.assertRevokedAtExpiry(user, expires)

    def assertStorageHides(self, top, password):
        needle = password.encode()
        files = 0
        for root, dirs, names in os.walk(top):
            for d in dirs:
                mode = stat.S_IMODE(os.stat(os.path.join(root, d)).st_mode)
                self.assertEqual(mode & 0o077, 0, "directory %s is %o" % (
                    os.path.relpath(os.path.join(root, d), top), mode))
            for name in names:
                path = os.path.join(root, name)
                mode = stat.S_IMODE(os.stat(path).st_mode)
                self.assertEqual(mode & 0o077, 0, "file %s is %o"
                                 % (os.path.relpath(path, top), mode))
                with open(path, "rb") as f:
                    self.assertFalse(needle in f.read(),
                                     "%s holds the issued password"
                                     % os.path.relpath(path, top))
                files += 1
        self.assertGreater(files, 0, "no raft storage under %s" % top)


@pgvtest.needs_own_vault
class AuditTest(DatabaseCase):

    def test_passwords_never_in_the_audit_log(self):
        audit = os.environ.get("PGV_AUDIT_FILE", "")
        if not audit or not os.path.exists(audit):
            self.skipTest("no audit log of the run's server")
        secret = "pgv-pw-" + uid()
        status, _ = self.api.call("POST", self.mount + "/config/down", {
            "plugin_name": PLUGIN,
            "connection_url": connection_url(port=dead_port()),
            "username": PGUSER, "password": secret, "allowed_roles": "*"})
        self.assertEqual(status, 400)
        self.configure()
        self.make_role("app-role")
        resp = self.issue("app-role")
        self.api.ok("PUT", "sys/leases/renew", {"lease_id": resp["lease_id"]})
        self.api.ok("PUT", "sys/leases/revoke", {"lease_id": resp["lease_id"]})
        with open(audit) as f:
            text = f.read()
        self.assertNotIn(resp["data"]["password"], text)
        self.assertNotIn(secret, text)


if __name__ == "__main__":
    pgvtest.main()
