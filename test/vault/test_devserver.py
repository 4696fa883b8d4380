"""The development Vault server's own tests: what hvac cannot reach.

ACL priority rules, persistence across a restart, TLS, the audit log, the
fault switches, and the wire details of Vault's HTTP API (200 vs 204, the
response envelope, sys/ data repeated at top level, headers).  Everything
here needs the development server itself, so it all skips, saying so, when
test/run uses an external Vault.

The suite talks to the run's server (VAULT_ADDR, root VAULT_TOKEN,
PGV_AUDIT_FILE) and, for restarts and TLS, to servers of its own started
and stopped through test/lib/servers.sh (pgv_vault_instance_*), so that
server start-up stays in one place.  Names are unique per run and objects
are removed, so it can run twice against the same server.  No token,
secret_id or secret value is ever printed.
"""

import base64
import http.client
import json
import os
import re
import shutil
import socket
import ssl
import stat
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse
import uuid

import hvac
import requests

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import pgvtest  # noqa: E402

SERVERS_SH = os.path.join(pgvtest.REPO, "test", "lib", "servers.sh")
UUID_RE = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
HMAC_RE = re.compile(r"^hmac-sha256:[0-9a-f]{64}$")


def uid():
    return uuid.uuid4().hex[:12]


def b64(raw):
    return base64.b64encode(raw).decode()


def new_root_token():
    return "hvs." + os.urandom(24).hex()


class Reply:
    """One raw HTTP exchange: status, headers (lower-case names), body."""

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)

    def errors(self):
        return ", ".join(self.json().get("errors", []))


def call(method, path, body=None, token=None, headers=None, addr=None,
         cafile=None, query=None, timeout=30):
    """A raw request with http.client, so that any verb, header or broken
    connection can be seen as it is.  token=None sends the root token;
    token="" sends none."""
    url = urllib.parse.urlsplit(addr or pgvtest.VAULT_ADDR)
    if url.scheme == "https":
        ctx = ssl.create_default_context(cafile=cafile)
        conn = http.client.HTTPSConnection(url.hostname, url.port,
                                           timeout=timeout, context=ctx)
    else:
        conn = http.client.HTTPConnection(url.hostname, url.port,
                                          timeout=timeout)
    hdrs = dict(headers or {})
    tok = pgvtest.VAULT_TOKEN if token is None else token
    if tok and "Authorization" not in hdrs:
        hdrs["X-Vault-Token"] = tok
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    target = path
    if query:
        target += "?" + urllib.parse.urlencode(query)
    try:
        conn.request(method, target, body=data, headers=hdrs)
        resp = conn.getresponse()
        payload = resp.read()
        return Reply(resp.status,
                     {k.lower(): v for k, v in resp.getheaders()}, payload)
    finally:
        conn.close()


def faults(body=None, token=None, method="POST"):
    return call(method, "/_dev/faults", body=body, token=token)


def fixture(func, directory, env=None):
    """Run one of servers.sh's pgv_vault_instance_* functions; returns the
    last line it printed (the server's address)."""
    full = dict(os.environ)
    for name in ("PGV_VAULT_TLS_CERT", "PGV_VAULT_TLS_KEY", "VAULT_CACERT"):
        full.pop(name, None)
    full.update(env or {})
    done = subprocess.run(
        ["bash", "-c", 'source "$1" && "$2" "$3"', "fixture", SERVERS_SH,
         func, directory],
        env=full, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError("%s failed (status %d): %s"
                           % (func, done.returncode, done.stderr[-2000:]))
    lines = done.stdout.strip().splitlines()
    return lines[-1] if lines else ""


class Instance:
    """A development server of the suite's own, under a temporary
    directory, started and stopped through servers.sh."""

    def __init__(self, tls_cert=None, tls_key=None, cafile=None):
        self.dir = tempfile.mkdtemp(prefix="pgv-devserver-")
        self.token = new_root_token()
        self.env = {"PGV_ROOT_TOKEN": self.token}
        if tls_cert:
            self.env.update(PGV_VAULT_TLS_CERT=tls_cert,
                            PGV_VAULT_TLS_KEY=tls_key, VAULT_CACERT=cafile)
        self.cafile = cafile
        self.addr = None

    def start(self):
        self.addr = fixture("pgv_vault_instance_start", self.dir, self.env)
        return self.addr

    def restart(self):
        self.addr = fixture("pgv_vault_instance_restart", self.dir, self.env)
        return self.addr

    def pid(self):
        with open(os.path.join(self.dir, "vault.pid")) as f:
            return int(f.read())

    def stop(self):
        try:
            fixture("pgv_vault_instance_stop", self.dir, self.env)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def client(self, token=None, verify=None):
        return hvac.Client(url=self.addr,
                           token=self.token if token is None else token,
                           verify=self.cafile if verify is None else verify)


def capabilities(client, paths):
    """sys/capabilities-self for these paths, as {path: set(caps)}."""
    got = client.adapter.post("/v1/sys/capabilities-self",
                              json={"paths": paths})["data"]
    return {p: set(got[p]) for p in paths}


# ---------------------------------------------------------------- ACL

@pgvtest.needs_devserver
class AclPriorityTest(unittest.TestCase):
    """Vault's rules when several patterns match one path: the highest
    priority pattern alone applies; P1 is lower than P2 when its first
    + or * comes earlier, when it ends in * and P2 does not, when it has
    more + segments, when it is shorter, when it is lexicographically
    smaller.  An exact pattern beats every glob; the same pattern in
    several policies unions, and deny there wins."""

    @classmethod
    def setUpClass(cls):
        cls.vault = pgvtest.client()
        cls.tag = "pgvacl-" + uid()
        cls.base = "secret/data/" + cls.tag
        b = cls.base
        cls.rules_a = "\n".join([
            'path "%s/*"          { capabilities = ["read"] }' % b,
            'path "%s/app/*"      { capabilities = ["read", "create", "update"] }' % b,
            'path "%s/app/+/x"    { capabilities = ["deny"] }' % b,
            'path "%s/app/exact"  { capabilities = ["delete"] }' % b,
            'path "%s/f/+/y"      { capabilities = ["read"] }' % b,
            'path "%s/f/a/+"      { capabilities = ["update"] }' % b,
            'path "%s/n/+/+/z"    { capabilities = ["read"] }' % b,
            'path "%s/n/+/y/z"    { capabilities = ["update"] }' % b,
            'path "%s/l/+/a*"     { capabilities = ["read"] }' % b,
            'path "%s/l/+/ab*"    { capabilities = ["update"] }' % b,
            'path "%s/x/+/+/d"    { capabilities = ["read"] }' % b,
            'path "%s/x/+/c/+"    { capabilities = ["update"] }' % b,
            'path "%s/g/ab*"      { capabilities = ["read"] }' % b,
            'path "%s/g/abc*"     { capabilities = ["update"] }' % b,
            'path "%s/u/*"        { capabilities = ["read"] }' % b,
            'path "%s/d/*"        { capabilities = ["read", "update"] }' % b,
            'path "%s/s/*"        { capabilities = ["read", "sudo"] }' % b,
        ]) + "\n"
        cls.rules_b = "\n".join([
            'path "%s/u/*"        { capabilities = ["update", "list"] }' % b,
            'path "%s/d/*"        { capabilities = ["deny"] }' % b,
            'path "%s/s/+"        { capabilities = ["deny"] }' % b,
        ]) + "\n"
        cls.pol_a = "pgv-acl-a-" + uid()
        cls.pol_b = "pgv-acl-b-" + uid()
        for name, text in ((cls.pol_a, cls.rules_a), (cls.pol_b, cls.rules_b)):
            r = call("PUT", "/v1/sys/policies/acl/" + name, {"policy": text})
            assert r.status == 204, "policy write: %d" % r.status
        auth = cls.vault.auth.token.create(policies=[cls.pol_a, cls.pol_b],
                                           ttl="15m")["auth"]
        cls.user = pgvtest.client(auth["client_token"])
        cls.user_token = auth["client_token"]
        cls.secrets = ["app/foo/x", "app/foo/y", "other", "app/exact"]
        for leaf in cls.secrets:
            cls.vault.secrets.kv.v2.create_or_update_secret(
                path=cls.tag + "/" + leaf, secret={"v": leaf},
                mount_point="secret")

    @classmethod
    def tearDownClass(cls):
        for leaf in cls.secrets + ["app/new"]:
            call("DELETE", "/v1/secret/metadata/%s/%s" % (cls.tag, leaf))
        for name in (cls.pol_a, cls.pol_b):
            call("DELETE", "/v1/sys/policies/acl/" + name)

    def caps(self, rel):
        return capabilities(self.user, [self.base + "/" + rel])[self.base + "/" + rel]

    def test_trailing_glob_loses_to_segment_pattern(self):
        # app/+/x and app/* have their first wildcard at the same place; the
        # one ending in * is lower, so the deny applies
        self.assertEqual(self.caps("app/foo/x"), {"deny"})
        self.assertEqual(self.caps("app/foo/y"), {"read", "create", "update"})

    def test_longer_prefix_glob_wins(self):
        self.assertEqual(self.caps("app/zzz"), {"read", "create", "update"})
        self.assertEqual(self.caps("other"), {"read"})
        self.assertEqual(self.caps("g/abcd"), {"update"})
        self.assertEqual(self.caps("g/abd"), {"read"})

    def test_exact_beats_globs(self):
        self.assertEqual(self.caps("app/exact"), {"delete"})

    def test_first_wildcard_position(self):
        self.assertEqual(self.caps("f/a/y"), {"update"})
        self.assertEqual(self.caps("f/b/y"), {"read"})

    def test_number_of_plus_segments(self):
        self.assertEqual(self.caps("n/a/y/z"), {"update"})
        self.assertEqual(self.caps("n/a/q/z"), {"read"})

    def test_length(self):
        self.assertEqual(self.caps("l/q/abc"), {"update"})
        self.assertEqual(self.caps("l/q/ax"), {"read"})

    def test_lexicographic(self):
        # same first wildcard, no glob, two + each, same length: "+/c/+" is
        # lexicographically greater than "+/+/d", so it wins
        self.assertEqual(self.caps("x/a/c/d"), {"update"})
        self.assertEqual(self.caps("x/a/q/d"), {"read"})

    def test_same_pattern_unions_across_policies(self):
        self.assertEqual(self.caps("u/k"), {"read", "update", "list"})

    def test_deny_wins(self):
        self.assertEqual(self.caps("d/k"), {"deny"})
        # a higher-priority deny beats sudo too
        self.assertEqual(self.caps("s/k"), {"deny"})
        self.assertEqual(self.caps("s/k/deeper"), {"read", "sudo"})

    def test_no_match_is_deny(self):
        got = capabilities(self.user, ["secret/data/pgv-nothing-" + uid()])
        self.assertEqual(list(got.values())[0], {"deny"})

    def test_root_has_root(self):
        got = capabilities(self.vault, [self.base + "/anything"])
        self.assertEqual(list(got.values())[0], {"root"})

    def test_single_path_also_answers_capabilities(self):
        path = self.base + "/other"
        got = self.user.adapter.post("/v1/sys/capabilities-self",
                                     json={"paths": [path]})["data"]
        self.assertEqual(set(got["capabilities"]), {"read"})
        self.assertEqual(set(got[path]), {"read"})

    def test_real_requests_follow_the_rules(self):
        kv = self.user.secrets.kv.v2
        with self.assertRaises(hvac.exceptions.Forbidden):
            kv.read_secret_version(path=self.tag + "/app/foo/x",
                                   mount_point="secret")
        got = kv.read_secret_version(path=self.tag + "/app/foo/y",
                                     mount_point="secret")
        self.assertEqual(got["data"]["data"], {"v": "app/foo/y"})
        kv.create_or_update_secret(path=self.tag + "/app/foo/y",
                                   secret={"v": "2"}, mount_point="secret")
        kv.create_or_update_secret(path=self.tag + "/app/new",
                                   secret={"v": "1"}, mount_point="secret")
        got = kv.read_secret_version(path=self.tag + "/other",
                                     mount_point="secret")
        self.assertEqual(got["data"]["data"], {"v": "other"})
        with self.assertRaises(hvac.exceptions.Forbidden):
            kv.create_or_update_secret(path=self.tag + "/other",
                                       secret={"v": "2"}, mount_point="secret")
        # the exact rule grants delete only: no read
        with self.assertRaises(hvac.exceptions.Forbidden):
            kv.read_secret_version(path=self.tag + "/app/exact",
                                   mount_point="secret")

    def test_create_versus_update(self):
        pol = "pgv-acl-c-" + uid()
        tag = "pgvacl-" + uid()
        call("PUT", "/v1/sys/policies/acl/" + pol, {"policy":
             'path "secret/data/%s/*" { capabilities = ["update", "read"] }' % tag})
        self.addCleanup(call, "DELETE", "/v1/sys/policies/acl/" + pol)
        self.addCleanup(call, "DELETE", "/v1/secret/metadata/%s/one" % tag)
        user = pgvtest.client(self.vault.auth.token.create(
            policies=[pol], ttl="5m")["auth"]["client_token"])
        # KV v2 data writes have an existence check: a new secret needs create
        with self.assertRaises(hvac.exceptions.Forbidden):
            user.secrets.kv.v2.create_or_update_secret(
                path=tag + "/one", secret={"v": "1"}, mount_point="secret")
        self.vault.secrets.kv.v2.create_or_update_secret(
            path=tag + "/one", secret={"v": "1"}, mount_point="secret")
        user.secrets.kv.v2.create_or_update_secret(
            path=tag + "/one", secret={"v": "2"}, mount_point="secret")

    def test_default_policy(self):
        got = capabilities(self.user, ["auth/token/lookup-self",
                                       "auth/token/renew-self",
                                       "auth/token/revoke-self"])
        self.assertEqual(got["auth/token/lookup-self"], {"read"})
        self.assertEqual(got["auth/token/renew-self"], {"update"})
        self.assertEqual(got["auth/token/revoke-self"], {"update"})
        self.assertIn(self.pol_a, self.user.auth.token.lookup_self()["data"]["policies"])

        bare = self.vault.auth.token.create(policies=[self.pol_a],
                                            no_default_policy=True,
                                            ttl="5m")["auth"]
        self.assertNotIn("default", bare["policies"])
        with self.assertRaises(hvac.exceptions.Forbidden):
            pgvtest.client(bare["client_token"]).auth.token.lookup_self()

    def test_list_is_checked_with_a_trailing_slash(self):
        pol = "pgv-acl-l-" + uid()
        tag = "pgvacl-" + uid()
        call("PUT", "/v1/sys/policies/acl/" + pol, {"policy":
             'path "secret/metadata/%s/" { capabilities = ["list"] }' % tag})
        self.addCleanup(call, "DELETE", "/v1/sys/policies/acl/" + pol)
        self.addCleanup(call, "DELETE", "/v1/secret/metadata/%s/k" % tag)
        self.vault.secrets.kv.v2.create_or_update_secret(
            path=tag + "/k", secret={"v": "1"}, mount_point="secret")
        user = pgvtest.client(self.vault.auth.token.create(
            policies=[pol], ttl="5m")["auth"]["client_token"])
        listed = user.secrets.kv.v2.list_secrets(path=tag, mount_point="secret")
        self.assertEqual(listed["data"]["keys"], ["k"])
        with self.assertRaises(hvac.exceptions.Forbidden):
            user.secrets.kv.v2.read_secret_metadata(path=tag + "/k",
                                                    mount_point="secret")


# ---------------------------------------------------------------- restart

@pgvtest.needs_devserver
class PersistenceTest(unittest.TestCase):
    """--state: what the server knew before a restart it knows after."""

    def setUp(self):
        self.inst = Instance()
        self.inst.start()
        self.addCleanup(self.inst.stop)

    def test_state_survives_restart(self):
        vault = self.inst.client()
        plain = b"written before the restart " + os.urandom(8).hex().encode()
        vault.secrets.transit.create_key(name="keep")
        old_ct = vault.secrets.transit.encrypt_data(
            name="keep", plaintext=b64(plain))["data"]["ciphertext"]
        vault.secrets.transit.rotate_key(name="keep")
        new_ct = vault.secrets.transit.encrypt_data(
            name="keep", plaintext=b64(plain))["data"]["ciphertext"]
        vault.secrets.transit.create_key(name="derived", derived=True)
        ctx = b64(b"tenant")
        der_ct = vault.secrets.transit.encrypt_data(
            name="derived", plaintext=b64(plain), context=ctx)["data"]["ciphertext"]
        mac = vault.secrets.transit.generate_hmac(
            name="keep", hash_input=b64(plain))["data"]["hmac"]
        kv = vault.secrets.kv.v2
        kv.create_or_update_secret(path="app/db", secret={"n": "1"},
                                   mount_point="secret")
        kv.create_or_update_secret(path="app/db", secret={"n": "2"},
                                   mount_point="secret")
        kv.delete_secret_versions(path="app/db", versions=[1],
                                  mount_point="secret")
        policy = 'path "secret/data/app/*" { capabilities = ["read"] }\n'
        vault.sys.create_or_update_policy(name="reader", policy=policy)
        auth = vault.auth.token.create(policies=["reader"], ttl="1h")["auth"]
        child_token = auth["client_token"]
        ttl_before = hvac.Client(url=self.inst.addr, token=child_token) \
            .auth.token.lookup_self()["data"]["ttl"]
        vault.sys.enable_auth_method(method_type="approle")
        vault.auth.approle.create_or_update_approle(
            role_name="app", token_policies=["reader"])
        role_id = vault.auth.approle.read_role_id(role_name="app")["data"]["role_id"]
        secret_id = vault.auth.approle.generate_secret_id(
            role_name="app")["data"]["secret_id"]

        state = os.path.join(self.inst.dir, "state.json")
        self.assertEqual(stat.S_IMODE(os.stat(state).st_mode), 0o600)
        pid_before = self.inst.pid()
        self.inst.restart()
        self.assertNotEqual(self.inst.pid(), pid_before)
        self.assertEqual(stat.S_IMODE(os.stat(state).st_mode), 0o600)

        vault = self.inst.client()
        transit = vault.secrets.transit
        key = transit.read_key(name="keep")["data"]
        self.assertEqual(key["latest_version"], 2)
        for ct in (old_ct, new_ct):
            got = transit.decrypt_data(name="keep", ciphertext=ct)
            self.assertEqual(base64.b64decode(got["data"]["plaintext"]), plain)
        got = transit.decrypt_data(name="derived", ciphertext=der_ct, context=ctx)
        self.assertEqual(base64.b64decode(got["data"]["plaintext"]), plain)
        ok = transit.verify_signed_data(name="keep", hash_input=b64(plain),
                                        hmac=mac)
        self.assertIs(ok["data"]["valid"], True)
        self.assertTrue(transit.encrypt_data(
            name="keep", plaintext=b64(plain))["data"]["ciphertext"]
            .startswith("vault:v2:"))

        kv = vault.secrets.kv.v2
        self.assertEqual(kv.read_secret_version(
            path="app/db", mount_point="secret")["data"]["data"], {"n": "2"})
        with self.assertRaises(hvac.exceptions.InvalidPath):
            kv.read_secret_version(path="app/db", version=1, mount_point="secret")
        meta = kv.read_secret_metadata(path="app/db", mount_point="secret")["data"]
        self.assertEqual(meta["current_version"], 2)
        self.assertNotEqual(meta["versions"]["1"]["deletion_time"], "")

        read = vault.sys.read_policy(name="reader")
        self.assertEqual(read.get("rules") or read["data"]["rules"], policy)

        child = hvac.Client(url=self.inst.addr, token=child_token)
        me = child.auth.token.lookup_self()["data"]
        self.assertIn("reader", me["policies"])
        self.assertLessEqual(me["ttl"], ttl_before)
        self.assertGreater(me["ttl"], 3000)
        self.assertEqual(child.secrets.kv.v2.read_secret_version(
            path="app/db", mount_point="secret")["data"]["data"], {"n": "2"})

        anon = hvac.Client(url=self.inst.addr, token="")
        login = anon.auth.approle.login(role_id=role_id, secret_id=secret_id,
                                        use_token=False)
        self.assertIn("reader", login["auth"]["policies"])

    def test_revocation_survives_restart(self):
        vault = self.inst.client()
        auth = vault.auth.token.create(policies=["default"], ttl="1h")["auth"]
        child = hvac.Client(url=self.inst.addr, token=auth["client_token"])
        child.auth.token.revoke_self()
        vault.secrets.transit.create_key(name="gone")
        vault.secrets.transit.update_key_configuration(name="gone",
                                                       deletion_allowed=True)
        vault.secrets.transit.delete_key(name="gone")
        self.inst.restart()
        child = hvac.Client(url=self.inst.addr, token=auth["client_token"])
        with self.assertRaises(hvac.exceptions.Forbidden):
            child.auth.token.lookup_self()
        with self.assertRaises(hvac.exceptions.InvalidPath):
            self.inst.client().secrets.transit.read_key(name="gone")


# ---------------------------------------------------------------- TLS

def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pgvtest.needs_devserver
class TlsTest(unittest.TestCase):
    """A CA and a server certificate for 127.0.0.1 made here with openssl;
    vault-dev serves HTTPS with them."""

    @classmethod
    def setUpClass(cls):
        cls.pki = tempfile.mkdtemp(prefix="pgv-tls-")
        d = cls.pki
        with open(os.path.join(d, "san.cnf"), "w") as f:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                    "basicConstraints=CA:FALSE\n"
                    "keyUsage=digitalSignature,keyEncipherment\n"
                    "extendedKeyUsage=serverAuth\n")
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes",
                "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
                "-subj", "/CN=pg_vault test CA",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key",
                "-out", "server.csr", "-subj", "/CN=127.0.0.1", cwd=d)
        openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem",
                "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem",
                "-days", "2", "-extfile", "san.cnf", cwd=d)
        os.chmod(os.path.join(d, "server.key"), 0o600)
        cls.ca = os.path.join(d, "ca.pem")
        cls.inst = Instance(tls_cert=os.path.join(d, "server.pem"),
                            tls_key=os.path.join(d, "server.key"),
                            cafile=cls.ca)
        try:
            cls.inst.start()
        except Exception:
            cls.inst.stop()
            shutil.rmtree(cls.pki, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        cls.inst.stop()
        shutil.rmtree(cls.pki, ignore_errors=True)

    def test_address_is_https(self):
        self.assertTrue(self.inst.addr.startswith("https://127.0.0.1:"))

    def test_trusted_ca(self):
        vault = self.inst.client(verify=self.ca)
        self.assertFalse(vault.sys.read_seal_status()["sealed"])
        vault.secrets.kv.v2.create_or_update_secret(
            path="tls/check", secret={"over": "tls"}, mount_point="secret")
        got = vault.secrets.kv.v2.read_secret_version(path="tls/check",
                                                      mount_point="secret")
        self.assertEqual(got["data"]["data"], {"over": "tls"})
        ct = vault.secrets.transit.encrypt_data(
            name="tls-key", plaintext=b64(b"x"))["data"]["ciphertext"]
        self.assertTrue(ct.startswith("vault:v1:"))
        r = call("GET", "/v1/sys/health", token="", addr=self.inst.addr,
                 cafile=self.ca)
        self.assertEqual(r.status, 200)

    def test_untrusted_certificate_is_refused(self):
        vault = self.inst.client(verify=True)
        with self.assertRaises(requests.exceptions.SSLError):
            vault.sys.read_seal_status()

    def test_plain_http_gets_no_vault_answer(self):
        plain = "http://" + self.inst.addr[len("https://"):]
        vault = hvac.Client(url=plain, token=self.inst.token, timeout=5)
        try:
            result = vault.adapter.get("/v1/sys/health", raise_exception=False)
        except requests.exceptions.RequestException:
            return
        self.assertNotEqual(getattr(result, "status_code", 200), 200)


# ---------------------------------------------------------------- audit

AUDIT_FILE = os.environ.get("PGV_AUDIT_FILE", "")


def walk_strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from walk_strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from walk_strings(v)


@pgvtest.needs_devserver
@unittest.skipUnless(AUDIT_FILE, "PGV_AUDIT_FILE is not set (no audit log)")
class AuditTest(unittest.TestCase):
    """The run's server writes PGV_AUDIT_FILE: no secret in clear, ever."""

    @classmethod
    def setUpClass(cls):
        cls.vault = pgvtest.client()
        cls.tag = uid()
        cls.key = "pgv-audit-" + cls.tag
        cls.plain = ("pgv-audit-plaintext-" + cls.tag).encode()
        cls.password = "pgv-audit-password-" + os.urandom(12).hex()
        transit = cls.vault.secrets.transit
        transit.create_key(name=cls.key)
        cls.ct = transit.encrypt_data(name=cls.key,
                                      plaintext=b64(cls.plain))["data"]["ciphertext"]
        transit.decrypt_data(name=cls.key, ciphertext=cls.ct)
        cls.kv_path = "pgv-test/audit-" + cls.tag
        kv = cls.vault.secrets.kv.v2
        kv.create_or_update_secret(path=cls.kv_path,
                                   secret={"password": cls.password},
                                   mount_point="secret")
        kv.read_secret_version(path=cls.kv_path, mount_point="secret")
        child = cls.vault.auth.token.create(policies=["default"],
                                            ttl="5m")["auth"]
        cls.child_token = child["client_token"]
        pgvtest.client(cls.child_token).auth.token.lookup_self()
        devices = cls.vault.adapter.get("/v1/sys/audit")
        devices = devices.get("data", devices)
        cls.device = [k for k, v in devices.items()
                      if isinstance(v, dict) and v.get("type") == "file"][0]
        with open(AUDIT_FILE) as f:
            cls.text = f.read()
        cls.lines = [json.loads(line) for line in cls.text.splitlines() if line]

    @classmethod
    def tearDownClass(cls):
        call("POST", "/v1/transit/keys/%s/config" % cls.key,
             {"deletion_allowed": True})
        call("DELETE", "/v1/transit/keys/" + cls.key)
        call("DELETE", "/v1/secret/metadata/" + cls.kv_path)

    def audit_hash(self, value):
        got = self.vault.adapter.post(
            "/v1/sys/audit-hash/" + self.device.rstrip("/"),
            json={"input": value})
        return got["data"]["hash"]

    def entries(self, path):
        return [e for e in self.lines if e.get("request", {}).get("path") == path]

    def test_no_secret_in_clear(self):
        forbidden = {
            "plaintext": self.plain.decode(),
            "base64 plaintext": b64(self.plain),
            "KV password": self.password,
            "root token": pgvtest.VAULT_TOKEN,
            "child token": self.child_token,
        }
        # assertFalse, not assertNotIn: a failure must not print the log
        for what, value in forbidden.items():
            self.assertFalse(value in self.text,
                             "%s found in the audit log" % what)

    @unittest.skipUnless(os.environ.get("PGV_VAULT_LOG"),
                         "PGV_VAULT_LOG is not set (no server log)")
    def test_server_log_has_no_secret(self):
        with open(os.environ["PGV_VAULT_LOG"], errors="replace") as f:
            log = f.read()
        for what, value in (("plaintext", self.plain.decode()),
                            ("base64 plaintext", b64(self.plain)),
                            ("KV password", self.password),
                            ("root token", pgvtest.VAULT_TOKEN),
                            ("child token", self.child_token)):
            self.assertFalse(value in log, "%s found in the server log" % what)

    def test_request_and_response_share_an_id(self):
        got = self.entries("transit/encrypt/" + self.key)
        self.assertEqual(sorted(e["type"] for e in got), ["request", "response"])
        self.assertEqual(got[0]["request"]["id"], got[1]["request"]["id"])
        self.assertRegex(got[0]["request"]["id"], UUID_RE)
        for e in got:
            self.assertRegex(e["time"],
                             r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
            self.assertIn(e["request"]["operation"], ("update", "create"))
            self.assertEqual(e["request"]["mount_type"], "transit")
        response = [e for e in got if e["type"] == "response"][0]
        self.assertTrue(HMAC_RE.match(response["response"]["data"]["ciphertext"]))

    def test_data_strings_are_hmacs(self):
        for path in ("transit/encrypt/" + self.key,
                     "transit/decrypt/" + self.key,
                     "secret/data/" + self.kv_path):
            got = self.entries(path)
            self.assertTrue(got, path)
            for e in got:
                for part in ("request", "response"):
                    data = e.get(part, {}).get("data")
                    for s in walk_strings(data):
                        self.assertRegex(s, HMAC_RE, "%s %s data" % (path, part))

    def test_audit_hash_matches_the_log(self):
        want = self.audit_hash(self.password)
        self.assertRegex(want, HMAC_RE)
        writes = [e for e in self.entries("secret/data/" + self.kv_path)
                  if e["type"] == "request"
                  and e["request"]["operation"] in ("create", "update")]
        self.assertEqual(writes[0]["request"]["data"]["data"]["password"], want)
        reads = [e for e in self.entries("secret/data/" + self.kv_path)
                 if e["type"] == "response" and e["request"]["operation"] == "read"]
        self.assertEqual(reads[0]["response"]["data"]["data"]["password"], want)
        pt = [e for e in self.entries("transit/encrypt/" + self.key)
              if e["type"] == "request"][0]
        self.assertEqual(pt["request"]["data"]["plaintext"],
                         self.audit_hash(b64(self.plain)))

    def test_token_is_hashed(self):
        want = self.audit_hash(pgvtest.VAULT_TOKEN)
        got = self.entries("transit/encrypt/" + self.key)[0]
        self.assertEqual(got["auth"]["client_token"], want)
        self.assertEqual(got["request"]["client_token"], want)
        lookups = [e for e in self.entries("auth/token/lookup-self")
                   if (e.get("auth") or {}).get("client_token")
                   == self.audit_hash(self.child_token)]
        self.assertTrue(lookups, "the child token's lookup-self lines")

    def test_health_is_not_audited(self):
        call("GET", "/v1/sys/health", token="")
        with open(AUDIT_FILE) as f:
            tail = [json.loads(line) for line in f.read().splitlines()[len(self.lines):]
                    if line]
        self.assertFalse([e for e in tail
                          if e.get("request", {}).get("path") == "sys/health"])


# ---------------------------------------------------------------- faults

@pgvtest.needs_devserver
class FaultSwitchTest(unittest.TestCase):
    """/_dev/faults, the development-only switches outside the Vault API."""

    def setUp(self):
        self.assertEqual(faults(method="DELETE").status, 204)
        self.addCleanup(faults, method="DELETE")

    def lookup(self):
        return call("GET", "/v1/auth/token/lookup-self")

    def test_fail_next(self):
        self.assertEqual(faults({"fail_next": 2, "fail_status": 503}).status, 204)
        for _ in range(2):
            r = self.lookup()
            self.assertEqual(r.status, 503)
            self.assertEqual(r.headers.get("content-type"), "application/json")
            self.assertTrue(r.json()["errors"])
        self.assertEqual(self.lookup().status, 200)

    def test_fail_next_through_hvac(self):
        faults({"fail_next": 1, "fail_status": 503})
        vault = pgvtest.client()
        with self.assertRaises(hvac.exceptions.VaultDown):
            vault.auth.token.lookup_self()
        faults({"fail_next": 1, "fail_status": 500})
        with self.assertRaises(hvac.exceptions.InternalServerError):
            vault.auth.token.lookup_self()
        vault.auth.token.lookup_self()

    def test_retry_after(self):
        faults({"fail_next": 1, "fail_status": 429, "retry_after": 3})
        r = self.lookup()
        self.assertEqual(r.status, 429)
        self.assertEqual(r.headers.get("retry-after"), "3")

    def test_path_prefix(self):
        faults({"fail_next": 1, "fail_status": 502, "path_prefix": "transit/"})
        self.assertEqual(self.lookup().status, 200)
        r = call("GET", "/v1/transit/keys", query={"list": "true"})
        self.assertEqual(r.status, 502)
        self.assertEqual(self.lookup().status, 200)

    def test_latency(self):
        faults({"latency_ms": 400})
        start = time.monotonic()
        self.assertEqual(self.lookup().status, 200)
        self.assertGreaterEqual(time.monotonic() - start, 0.4)
        faults(method="DELETE")
        start = time.monotonic()
        self.lookup()
        self.assertLess(time.monotonic() - start, 0.4)

    def test_close_next(self):
        faults({"close_next": 1})
        with self.assertRaises((http.client.HTTPException, ConnectionError,
                                socket.timeout, OSError)):
            self.lookup()
        # urllib3 1.x does not enforce Content-Length: hvac may get the cut
        # body instead of an exception, but never a whole answer
        faults({"close_next": 1})
        try:
            result = pgvtest.client().auth.token.lookup_self()
        except requests.exceptions.RequestException:
            result = None
        self.assertNotIsInstance(result, dict,
                                 "a whole answer came through a cut connection")
        self.assertEqual(self.lookup().status, 200)

    def test_malformed_next(self):
        faults({"malformed_next": 1})
        r = self.lookup()
        with self.assertRaises(ValueError):
            json.loads(r.body)
        self.assertEqual(self.lookup().json()["data"]["policies"], ["root"])

    def test_settings_can_be_read(self):
        faults({"latency_ms": 5, "fail_next": 0})
        got = faults(method="GET")
        self.assertEqual(got.status, 200)
        self.assertEqual(got.json()["latency_ms"], 5)

    def test_needs_root(self):
        token = pgvtest.client().auth.token.create(
            policies=["default"], ttl="5m")["auth"]["client_token"]
        self.assertEqual(faults({"fail_next": 5}, token=token).status, 403)
        self.assertEqual(faults({"fail_next": 5}, token="").status, 403)
        self.assertEqual(faults({"fail_next": 5}, token="hvs.bogus").status, 403)
        self.assertEqual(self.lookup().status, 200)


# ---------------------------------------------------------------- wire

@pgvtest.needs_devserver
class WireTest(unittest.TestCase):
    """Envelopes, statuses and headers as Vault's HTTP layer sends them."""

    ENVELOPE = {"request_id", "lease_id", "renewable", "lease_duration",
                "data", "wrap_info", "warnings", "auth", "mount_type"}

    def setUp(self):
        self.path = "pgv-test/wire-" + uid()
        self.addCleanup(call, "DELETE", "/v1/secret/metadata/" + self.path)

    def assertJsonHeaders(self, r):
        self.assertEqual(r.headers.get("content-type"), "application/json")
        self.assertEqual(r.headers.get("cache-control"), "no-store")

    def test_envelope(self):
        r = call("POST", "/v1/secret/data/" + self.path, {"data": {"k": "v"}})
        self.assertEqual(r.status, 200)
        self.assertJsonHeaders(r)
        r = call("GET", "/v1/secret/data/" + self.path)
        self.assertEqual(r.status, 200)
        env = r.json()
        self.assertEqual(set(env), self.ENVELOPE)
        self.assertRegex(env["request_id"], UUID_RE)
        self.assertEqual(env["lease_id"], "")
        self.assertIs(env["renewable"], False)
        self.assertEqual(env["lease_duration"], 0)
        self.assertIsNone(env["wrap_info"])
        self.assertIsNone(env["warnings"])
        self.assertIsNone(env["auth"])
        self.assertEqual(env["mount_type"], "kv")
        self.assertEqual(env["data"]["data"], {"k": "v"})
        self.assertNotEqual(call("GET", "/v1/secret/data/" + self.path)
                            .json()["request_id"], env["request_id"])

    def test_auth_envelope(self):
        r = call("POST", "/v1/auth/token/create",
                 {"policies": ["default"], "ttl": "5m"})
        self.assertEqual(r.status, 200)
        env = r.json()
        self.assertIsNone(env["data"])
        for field in ("client_token", "accessor", "policies", "token_policies",
                      "metadata", "lease_duration", "renewable", "entity_id",
                      "token_type", "orphan", "num_uses"):
            self.assertIn(field, env["auth"])
        self.assertEqual(env["auth"]["lease_duration"], 300)
        self.assertEqual(env["auth"]["token_type"], "service")

    def test_204_and_200(self):
        pol = "pgv-wire-" + uid()
        r = call("PUT", "/v1/sys/policies/acl/" + pol,
                 {"policy": 'path "x/*" { capabilities = ["read"] }'})
        self.addCleanup(call, "DELETE", "/v1/sys/policies/acl/" + pol)
        self.assertEqual(r.status, 204)
        self.assertEqual(r.body, b"")
        self.assertEqual(r.headers.get("cache-control"), "no-store")
        call("POST", "/v1/secret/data/" + self.path, {"data": {"k": "v"}})
        r = call("DELETE", "/v1/secret/data/" + self.path)
        self.assertEqual(r.status, 204)
        self.assertEqual(r.body, b"")
        r = call("DELETE", "/v1/sys/policies/acl/" + pol)
        self.assertEqual(r.status, 204)

    def test_204_has_json_content_type(self):
        # Vault's respondOk sets Content-Type before writing the 204, so
        # even an empty answer says application/json
        pol = "pgv-wire-" + uid()
        r = call("PUT", "/v1/sys/policies/acl/" + pol,
                 {"policy": 'path "x/*" { capabilities = ["read"] }'})
        self.addCleanup(call, "DELETE", "/v1/sys/policies/acl/" + pol)
        self.assertEqual(r.status, 204)
        self.assertJsonHeaders(r)

    def test_errors(self):
        r = call("GET", "/v1/secret/data/" + self.path)
        self.assertEqual(r.status, 404)
        self.assertEqual(r.json(), {"errors": []})
        self.assertJsonHeaders(r)
        r = call("GET", "/v1/pgv-no-mount-%s/x" % uid())
        self.assertEqual(r.status, 404)
        self.assertIn("no handler for route", r.errors())
        self.assertJsonHeaders(r)
        r = call("POST", "/v1/secret/data/" + self.path, b"{not json")
        self.assertEqual(r.status, 400)
        self.assertTrue(r.json()["errors"])
        r = call("POST", "/v1/secret/data/" + self.path, {"options": {}})
        self.assertEqual(r.status, 400)
        self.assertIn("no data provided", r.errors())
        r = call("GET", "/v1/transit/pgv-no-such-path/" + uid())
        self.assertEqual(r.status, 404)
        self.assertIn("unsupported path", r.errors())

    def test_wrong_method(self):
        r = call("GET", "/v1/transit/encrypt/some-key")
        self.assertEqual(r.status, 405)
        self.assertIn("unsupported operation", r.errors())
        self.assertJsonHeaders(r)
        r = call("BREW", "/v1/secret/data/x")
        self.assertEqual(r.status, 405)

    # sys/health and sys/seal-status have their own handlers in Vault
    # (http/sys_health.go, http/sys_seal.go): any other method is a 405
    # with an empty errors list

    def test_wrong_method_on_health(self):
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            r = call(method, "/v1/sys/health", {"x": 1}, token="")
            self.assertEqual(r.status, 405, method)
            self.assertEqual(r.json(), {"errors": []}, method)

    def test_wrong_method_on_seal_status(self):
        for method in ("POST", "PUT", "DELETE"):
            r = call(method, "/v1/sys/seal-status", {"x": 1}, token="")
            self.assertEqual(r.status, 405, method)
            self.assertEqual(r.json(), {"errors": []}, method)

    def test_bad_tokens(self):
        r = call("GET", "/v1/auth/token/lookup-self", token="hvs.pgv-bogus")
        self.assertEqual(r.status, 403)
        self.assertIn("permission denied", r.errors())
        self.assertIn("invalid token", r.errors())
        r = call("GET", "/v1/auth/token/lookup-self", token="")
        self.assertEqual(r.status, 403)
        self.assertIn("permission denied", r.errors())

    def test_sys_reads_repeat_data_at_top_level(self):
        r = call("GET", "/v1/sys/policies/acl/default")
        self.assertEqual(r.status, 200)
        env = r.json()
        self.assertEqual(env["data"]["name"], "default")
        self.assertEqual(env["name"], "default")
        self.assertEqual(env["policy"], env["data"]["policy"])
        self.assertTrue(self.ENVELOPE <= set(env))
        mounts = call("GET", "/v1/sys/mounts").json()
        self.assertEqual(mounts["secret/"], mounts["data"]["secret/"])
        # but only for sys/: a KV read does not
        call("POST", "/v1/secret/data/" + self.path, {"data": {"k": "v"}})
        env = call("GET", "/v1/secret/data/" + self.path).json()
        self.assertNotIn("metadata", env)

    def test_health_and_seal_status_are_bare(self):
        r = call("GET", "/v1/sys/health", token="")
        self.assertEqual(r.status, 200)
        self.assertJsonHeaders(r)
        self.assertNotIn("request_id", r.json())
        r = call("GET", "/v1/sys/seal-status", token="")
        self.assertEqual(r.status, 200)
        self.assertNotIn("request_id", r.json())
        r = call("HEAD", "/v1/sys/health", token="")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, b"")

    def test_namespace_header_accepted(self):
        call("POST", "/v1/secret/data/" + self.path, {"data": {"k": "v"}})
        r = call("GET", "/v1/secret/data/" + self.path,
                 headers={"X-Vault-Namespace": "root"})
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json()["data"]["data"], {"k": "v"})
        ns = hvac.Client(url=pgvtest.VAULT_ADDR, token=pgvtest.VAULT_TOKEN,
                         namespace="root")
        got = ns.secrets.kv.v2.read_secret_version(path=self.path,
                                                   mount_point="secret")
        self.assertEqual(got["data"]["data"], {"k": "v"})

    def test_bearer_token(self):
        r = call("GET", "/v1/auth/token/lookup-self", token="",
                 headers={"Authorization": "Bearer " + pgvtest.VAULT_TOKEN})
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json()["data"]["policies"], ["root"])
        r = call("GET", "/v1/auth/token/lookup-self", token="",
                 headers={"Authorization": "Bearer hvs.pgv-bogus"})
        self.assertEqual(r.status, 403)
        # X-Vault-Token wins over the Authorization header
        r = call("GET", "/v1/auth/token/lookup-self",
                 headers={"X-Vault-Token": pgvtest.VAULT_TOKEN,
                          "Authorization": "Bearer hvs.pgv-bogus"})
        self.assertEqual(r.status, 200)

    def test_list_verb_and_query(self):
        for leaf in ("a", "b/c"):
            call("POST", "/v1/secret/data/%s/%s" % (self.path, leaf),
                 {"data": {"k": "v"}})
            self.addCleanup(call, "DELETE",
                            "/v1/secret/metadata/%s/%s" % (self.path, leaf))
        by_verb = call("LIST", "/v1/secret/metadata/" + self.path)
        by_query = call("GET", "/v1/secret/metadata/" + self.path,
                        query={"list": "true"})
        for r in (by_verb, by_query):
            self.assertEqual(r.status, 200)
            self.assertEqual(sorted(r.json()["data"]["keys"]), ["a", "b/"])
        r = call("LIST", "/v1/secret/metadata/%s/none" % self.path)
        self.assertEqual(r.status, 404)
        self.assertEqual(r.json(), {"errors": []})

    def test_query_parameters_are_request_data(self):
        for n in ("1", "2"):
            call("POST", "/v1/secret/data/" + self.path, {"data": {"n": n}})
        r = call("GET", "/v1/secret/data/" + self.path, query={"version": "1"})
        self.assertEqual(r.json()["data"]["data"], {"n": "1"})

    def test_deleted_version_is_404_with_envelope(self):
        call("POST", "/v1/secret/data/" + self.path, {"data": {"k": "v"}})
        call("DELETE", "/v1/secret/data/" + self.path)
        r = call("GET", "/v1/secret/data/" + self.path)
        self.assertEqual(r.status, 404)
        env = r.json()
        self.assertTrue(self.ENVELOPE <= set(env))
        self.assertIsNone(env["data"]["data"])
        self.assertNotEqual(env["data"]["metadata"]["deletion_time"], "")

    def test_batch_failure_is_400_with_envelope(self):
        key = "pgv-wire-" + uid()
        call("POST", "/v1/transit/keys/" + key, {})
        self.addCleanup(call, "DELETE", "/v1/transit/keys/" + key)
        self.addCleanup(call, "POST", "/v1/transit/keys/%s/config" % key,
                        {"deletion_allowed": True})
        r = call("POST", "/v1/transit/decrypt/" + key,
                 {"batch_input": [{"ciphertext": "vault:v1:AAAA"}]})
        self.assertEqual(r.status, 400)
        env = r.json()
        self.assertNotIn("errors", env)
        self.assertTrue(env["data"]["batch_results"][0]["error"])

    def test_keep_alive(self):
        url = urllib.parse.urlsplit(pgvtest.VAULT_ADDR)
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
        try:
            for _ in range(3):
                conn.request("GET", "/v1/auth/token/lookup-self",
                             headers={"X-Vault-Token": pgvtest.VAULT_TOKEN})
                resp = conn.getresponse()
                resp.read()
                self.assertEqual(resp.status, 200)
                self.assertNotEqual((resp.getheader("Connection") or "").lower(),
                                    "close")
        finally:
            conn.close()


if __name__ == "__main__":
    pgvtest.main()
