"""The Vault server under test, driven through hvac's real API.

Each test asserts what the server really answers (OpenBao's behaviour,
which is what pg_vault must live with) and what hvac makes of it: return
values, and hvac's own exceptions for error statuses (400 InvalidRequest,
403 Forbidden, 404 InvalidPath, 503 VaultDown, anything unmapped
UnexpectedError).  It runs against the OpenBao that test/run starts (behind
its fault proxy), or against HashiCorp Vault / OpenBao when VAULT_ADDR and
VAULT_TOKEN point at one; what needs a server the harness started (seal
and unseal with its unseal key file, waiting out a short token TTL) skips
then.

Every test makes its objects under unique names and removes them, so the
suite can run again against the same server.  No token, secret_id or
secret value is ever printed: assertion messages name fields, not values.
"""

import base64
import inspect
import os
import re
import sys
import time
import unittest
import uuid

import hvac

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import pgvtest  # noqa: E402

CIPHERTEXT_RE = re.compile(r"^vault:v(\d+):([A-Za-z0-9+/]+=*)$")
UNSEAL_KEY_FILE = os.environ.get("PGV_UNSEAL_KEY_FILE", "")


def uid():
    return uuid.uuid4().hex[:12]


def b64(raw):
    return base64.b64encode(raw).decode()


def unb64(text):
    return base64.b64decode(text, validate=True)


def status_of(result):
    """HTTP status of an hvac result: JSONAdapter gives a dict for 200 and
    the requests.Response for anything else."""
    return 200 if isinstance(result, dict) else result.status_code


def body_of(result):
    return result if isinstance(result, dict) else result.json()


class VaultTestCase(unittest.TestCase):
    """A root client, plus helpers that register their own clean-up."""

    def setUp(self):
        self.vault = pgvtest.client()

    def token_client(self, policies, **kwargs):
        """A client holding a fresh child token with these policies."""
        kwargs.setdefault("ttl", "10m")
        auth = self.vault.auth.token.create(policies=policies, **kwargs)["auth"]
        return pgvtest.client(auth["client_token"])

    def transit_key(self, **kwargs):
        name = "pgv-test-" + uid()
        self.vault.secrets.transit.create_key(name=name, **kwargs)
        self.addCleanup(self.drop_transit_key, name)
        return name

    def drop_transit_key(self, name):
        try:
            self.vault.secrets.transit.read_key(name=name)
        except hvac.exceptions.InvalidPath:
            return
        self.vault.secrets.transit.update_key_configuration(
            name=name, deletion_allowed=True)
        self.vault.secrets.transit.delete_key(name=name)

    def kv_path(self, prefix="pgv-test"):
        path = "%s/%s" % (prefix, uid())
        self.addCleanup(self.drop_kv, path)
        return path

    def drop_kv(self, path):
        try:
            self.vault.secrets.kv.v2.delete_metadata_and_all_versions(
                path=path, mount_point="secret")
        except hvac.exceptions.InvalidPath:
            pass

    def policy(self, text):
        name = "pgv-test-" + uid()
        self.vault.sys.create_or_update_policy(name=name, policy=text)
        self.addCleanup(self.vault.sys.delete_policy, name=name)
        return name


# ---------------------------------------------------------------- KV v2

class KVv2Test(VaultTestCase):

    def kv(self):
        return self.vault.secrets.kv.v2

    def read_allowing_deleted(self, path, version=None):
        """hvac's raise_on_deleted_version=False where this hvac has it;
        otherwise the same GET without raising, as older hvac must do."""
        kv = self.kv()
        params = inspect.signature(kv.read_secret_version).parameters
        if "raise_on_deleted_version" in params:
            return kv.read_secret_version(path=path, version=version,
                                          mount_point="secret",
                                          raise_on_deleted_version=False)
        query = {} if version is None else {"version": version}
        resp = self.vault.adapter.get("/v1/secret/data/" + path, params=query,
                                      raise_exception=False)
        self.assertEqual(resp.status_code, 404, "deleted version status")
        return resp.json()

    def test_round_trip_and_versions(self):
        path = self.kv_path()
        w1 = self.kv().create_or_update_secret(
            path=path, secret={"user": "u1", "port": 5432}, mount_point="secret")
        self.assertEqual(w1["data"]["version"], 1)
        self.assertFalse(w1["data"]["destroyed"])
        self.assertEqual(w1["data"]["deletion_time"], "")
        w2 = self.kv().create_or_update_secret(
            path=path, secret={"user": "u2"}, mount_point="secret")
        self.assertEqual(w2["data"]["version"], 2)

        latest = self.kv().read_secret_version(path=path, mount_point="secret")
        self.assertEqual(latest["data"]["data"], {"user": "u2"})
        self.assertEqual(latest["data"]["metadata"]["version"], 2)
        first = self.kv().read_secret_version(path=path, version=1,
                                              mount_point="secret")
        self.assertEqual(first["data"]["data"], {"user": "u1", "port": 5432})
        self.assertEqual(first["data"]["metadata"]["version"], 1)
        self.assertRegex(first["data"]["metadata"]["created_time"],
                         r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
        with self.assertRaises(hvac.exceptions.InvalidPath):
            self.kv().read_secret_version(path=path, version=7,
                                          mount_point="secret")

    def test_missing_secret(self):
        with self.assertRaises(hvac.exceptions.InvalidPath):
            self.kv().read_secret_version(path="pgv-test/none-" + uid(),
                                          mount_point="secret")

    def test_cas(self):
        path = self.kv_path()
        self.kv().create_or_update_secret(path=path, secret={"a": "1"}, cas=0,
                                          mount_point="secret")
        with self.assertRaises(hvac.exceptions.InvalidRequest) as cm:
            self.kv().create_or_update_secret(path=path, secret={"a": "2"},
                                              cas=0, mount_point="secret")
        self.assertIn("check-and-set parameter did not match the current version",
                      str(cm.exception))
        with self.assertRaises(hvac.exceptions.InvalidRequest):
            self.kv().create_or_update_secret(path=path, secret={"a": "2"},
                                              cas=5, mount_point="secret")
        w = self.kv().create_or_update_secret(path=path, secret={"a": "2"},
                                              cas=1, mount_point="secret")
        self.assertEqual(w["data"]["version"], 2)

    def test_delete_undelete_destroy(self):
        path = self.kv_path()
        for n in range(3):
            self.kv().create_or_update_secret(path=path, secret={"n": str(n)},
                                              mount_point="secret")

        resp = self.kv().delete_latest_version_of_secret(path=path,
                                                         mount_point="secret")
        self.assertEqual(status_of(resp), 204)
        with self.assertRaises(hvac.exceptions.InvalidPath):
            self.kv().read_secret_version(path=path, mount_point="secret")
        deleted = self.read_allowing_deleted(path)
        self.assertIsNone(deleted["data"]["data"])
        self.assertNotEqual(deleted["data"]["metadata"]["deletion_time"], "")
        self.assertFalse(deleted["data"]["metadata"]["destroyed"])
        self.assertEqual(deleted["data"]["metadata"]["version"], 3)
        # the older versions are untouched
        v2 = self.kv().read_secret_version(path=path, version=2,
                                           mount_point="secret")
        self.assertEqual(v2["data"]["data"], {"n": "1"})

        self.kv().undelete_secret_versions(path=path, versions=[3],
                                           mount_point="secret")
        back = self.kv().read_secret_version(path=path, mount_point="secret")
        self.assertEqual(back["data"]["data"], {"n": "2"})
        self.assertEqual(back["data"]["metadata"]["deletion_time"], "")

        self.kv().delete_secret_versions(path=path, versions=[1],
                                         mount_point="secret")
        with self.assertRaises(hvac.exceptions.InvalidPath):
            self.kv().read_secret_version(path=path, version=1,
                                          mount_point="secret")

        self.kv().destroy_secret_versions(path=path, versions=[2],
                                          mount_point="secret")
        with self.assertRaises(hvac.exceptions.InvalidPath):
            self.kv().read_secret_version(path=path, version=2,
                                          mount_point="secret")
        destroyed = self.read_allowing_deleted(path, version=2)
        self.assertIsNone(destroyed["data"]["data"])
        self.assertTrue(destroyed["data"]["metadata"]["destroyed"])
        # destroyed is final: undelete does not bring it back
        self.kv().undelete_secret_versions(path=path, versions=[2],
                                           mount_point="secret")
        with self.assertRaises(hvac.exceptions.InvalidPath):
            self.kv().read_secret_version(path=path, version=2,
                                          mount_point="secret")

        meta = self.kv().read_secret_metadata(path=path, mount_point="secret")
        versions = meta["data"]["versions"]
        self.assertEqual(sorted(versions), ["1", "2", "3"])
        self.assertNotEqual(versions["1"]["deletion_time"], "")
        self.assertTrue(versions["2"]["destroyed"])
        self.assertEqual(versions["3"]["deletion_time"], "")

    def test_list_and_metadata(self):
        base = "pgv-test/list-" + uid()
        for leaf in ("a", "b", "sub/c"):
            self.addCleanup(self.drop_kv, base + "/" + leaf)
            self.kv().create_or_update_secret(path=base + "/" + leaf,
                                              secret={"x": "1"},
                                              mount_point="secret")
        listed = self.kv().list_secrets(path=base, mount_point="secret")
        self.assertEqual(sorted(listed["data"]["keys"]), ["a", "b", "sub/"])

        meta = self.kv().read_secret_metadata(path=base + "/a",
                                              mount_point="secret")["data"]
        self.assertEqual(meta["current_version"], 1)
        self.assertEqual(meta["oldest_version"], 0)
        for field in ("cas_required", "created_time", "updated_time",
                      "max_versions", "delete_version_after", "versions"):
            self.assertIn(field, meta)
        self.assertEqual(sorted(meta["versions"]), ["1"])

        self.kv().delete_metadata_and_all_versions(path=base + "/a",
                                                   mount_point="secret")
        with self.assertRaises(hvac.exceptions.InvalidPath):
            self.kv().read_secret_metadata(path=base + "/a",
                                           mount_point="secret")
        with self.assertRaises(hvac.exceptions.InvalidPath):
            self.kv().read_secret_version(path=base + "/a",
                                          mount_point="secret")
        listed = self.kv().list_secrets(path=base, mount_point="secret")
        self.assertEqual(sorted(listed["data"]["keys"]), ["b", "sub/"])

    def test_list_empty_is_404(self):
        with self.assertRaises(hvac.exceptions.InvalidPath):
            self.kv().list_secrets(path="pgv-test/empty-" + uid(),
                                   mount_point="secret")

    def test_list_verb_and_query_agree(self):
        base = "pgv-test/verb-" + uid()
        for leaf in ("one", "two"):
            self.addCleanup(self.drop_kv, base + "/" + leaf)
            self.kv().create_or_update_secret(path=base + "/" + leaf,
                                              secret={"x": "1"},
                                              mount_point="secret")
        by_verb = self.kv().list_secrets(path=base, mount_point="secret")
        strict = hvac.Client(url=pgvtest.VAULT_ADDR, token=pgvtest.VAULT_TOKEN,
                             strict_http=True)
        by_query = strict.secrets.kv.v2.list_secrets(path=base,
                                                     mount_point="secret")
        by_get = self.vault.adapter.get("/v1/secret/metadata/" + base,
                                        params={"list": "true"})
        self.assertEqual(sorted(by_verb["data"]["keys"]), ["one", "two"])
        self.assertEqual(sorted(by_query["data"]["keys"]), ["one", "two"])
        self.assertEqual(sorted(by_get["data"]["keys"]), ["one", "two"])


# ---------------------------------------------------------------- transit

class TransitTest(VaultTestCase):

    def transit(self):
        return self.vault.secrets.transit

    def encrypt(self, key, raw, **kwargs):
        return self.transit().encrypt_data(name=key, plaintext=b64(raw),
                                           **kwargs)["data"]["ciphertext"]

    def decrypt(self, key, ciphertext, **kwargs):
        return unb64(self.transit().decrypt_data(
            name=key, ciphertext=ciphertext, **kwargs)["data"]["plaintext"])

    def test_read_key_fields(self):
        key = self.transit_key()
        data = self.transit().read_key(name=key)["data"]
        self.assertEqual(data["name"], key)
        self.assertEqual(data["type"], "aes256-gcm96")
        self.assertEqual(data["latest_version"], 1)
        self.assertEqual(data["min_decryption_version"], 1)
        self.assertEqual(data["min_encryption_version"], 0)
        self.assertIn(data["min_available_version"], (0, 1))
        for flag in ("derived", "deletion_allowed", "exportable",
                     "allow_plaintext_backup", "supports_signing"):
            self.assertIs(data[flag], False, flag)
        for flag in ("supports_encryption", "supports_decryption",
                     "supports_derivation"):
            self.assertIs(data[flag], True, flag)
        self.assertEqual(data["auto_rotate_period"], 0)
        self.assertEqual(list(data["keys"]), ["1"])
        self.assertIsInstance(data["keys"]["1"], int)
        self.assertLess(abs(data["keys"]["1"] - time.time()), 600)
        self.assertIn(key, self.transit().list_keys()["data"]["keys"])

    def test_create_existing_key_changes_nothing(self):
        """Writing transit/keys/NAME again is not an error and changes
        nothing, even when it asks for another type: 200 with the existing
        key's description and no warning.  (pathPolicyWrite would warn "key
        NAME already existed", but the transit backend's getPolicy always
        reports the policy as upserted, a wrapper OpenBao inherited from
        HashiCorp Vault, so neither ever does.)  Whoever needs to know
        whether a key exists reads it first, as vault/bootstrap does."""
        key = self.transit_key()
        before = self.transit().read_key(name=key)["data"]
        for body in ({}, {"type": "rsa-2048"}):
            again = self.vault.adapter.post("/v1/transit/keys/" + key,
                                            json=body)
            self.assertEqual(status_of(again), 200, body)
            again = body_of(again)
            self.assertFalse(again.get("warnings"), body)
            self.assertEqual(again["data"]["name"], key)
            self.assertEqual(again["data"]["type"], "aes256-gcm96")
            self.assertEqual(again["data"]["keys"], before["keys"])
        after = self.transit().read_key(name=key)["data"]
        self.assertEqual(after["type"], "aes256-gcm96")
        self.assertEqual(after["latest_version"], 1)
        self.assertEqual(after["keys"], before["keys"])

    def test_encrypt_key_version(self):
        key = self.transit_key()
        with self.assertRaises(hvac.exceptions.InvalidRequest) as cm:
            self.transit().encrypt_data(name=key, plaintext=b64(b"x"),
                                        key_version=2)
        self.assertIn("requested version for encryption is higher than the "
                      "latest key version", str(cm.exception))

    def test_datakey_bad_type(self):
        key = self.transit_key()
        with self.assertRaises(hvac.exceptions.InvalidRequest) as cm:
            self.vault.adapter.post("/v1/transit/datakey/both/" + key, json={})
        self.assertIn("Invalid path, must be 'plaintext' or 'wrapped'",
                      str(cm.exception))

    def test_missing_key(self):
        with self.assertRaises(hvac.exceptions.InvalidPath):
            self.transit().read_key(name="pgv-test-none-" + uid())

    def test_encrypt_decrypt_format(self):
        key = self.transit_key()
        for raw in (b"", b"x", b"hello, transit", os.urandom(1000)):
            ct = self.encrypt(key, raw)
            m = CIPHERTEXT_RE.match(ct)
            self.assertIsNotNone(m, "ciphertext format")
            self.assertEqual(m.group(1), "1")
            self.assertEqual(len(unb64(m.group(2))), 12 + len(raw) + 16)
            self.assertEqual(self.decrypt(key, ct), raw)
        # a random nonce: the same plaintext never gives the same ciphertext
        self.assertNotEqual(self.encrypt(key, b"same"),
                            self.encrypt(key, b"same"))
        resp = self.transit().encrypt_data(name=key, plaintext=b64(b"v"))
        self.assertEqual(resp["data"]["key_version"], 1)

    def test_decrypt_errors(self):
        key = self.transit_key()
        ct = self.encrypt(key, b"tamper me")
        m = CIPHERTEXT_RE.match(ct)
        raw = bytearray(unb64(m.group(2)))
        raw[-1] ^= 1
        cases = {
            "invalid ciphertext: no prefix": "v1:" + m.group(2),
            "invalid ciphertext: wrong number of fields": "vault:v1" + m.group(2),
            "invalid ciphertext: version number could not be decoded":
                "vault:vx:" + m.group(2),
            "invalid ciphertext: could not decode base64": "vault:v1:!!not base64!!",
            "cipher: message authentication failed":
                "vault:v1:" + b64(bytes(raw)),
            "invalid ciphertext: version is too new": "vault:v9:" + m.group(2),
        }
        for message, bad in cases.items():
            with self.assertRaises(hvac.exceptions.InvalidRequest) as cm:
                self.transit().decrypt_data(name=key, ciphertext=bad)
            self.assertIn(message, str(cm.exception))

    def test_rotate_and_rewrap(self):
        key = self.transit_key()
        old = self.encrypt(key, b"rotate me")
        self.transit().rotate_key(name=key)
        data = self.transit().read_key(name=key)["data"]
        self.assertEqual(data["latest_version"], 2)
        self.assertEqual(sorted(data["keys"]), ["1", "2"])
        self.assertTrue(self.encrypt(key, b"new").startswith("vault:v2:"))
        rewrapped = self.transit().rewrap_data(name=key, ciphertext=old)["data"]
        self.assertTrue(rewrapped["ciphertext"].startswith("vault:v2:"))
        self.assertEqual(rewrapped["key_version"], 2)
        self.assertEqual(self.decrypt(key, rewrapped["ciphertext"]), b"rotate me")
        self.assertEqual(self.decrypt(key, old), b"rotate me")

    def test_batch_encrypt_decrypt(self):
        key = self.transit_key()
        items = [{"plaintext": b64(b"one")}, {"plaintext": b64(b"two")}]
        enc = self.transit().encrypt_data(name=key, plaintext=None,
                                          batch_input=items)
        results = enc["data"]["batch_results"]
        self.assertEqual(len(results), 2)
        for r in results:
            self.assertRegex(r["ciphertext"], CIPHERTEXT_RE)
            self.assertNotIn("error", r)
        dec = self.transit().decrypt_data(
            name=key, ciphertext=None,
            batch_input=[{"ciphertext": r["ciphertext"]} for r in results])
        got = [unb64(r["plaintext"]) for r in dec["data"]["batch_results"]]
        self.assertEqual(got, [b"one", b"two"])

    def test_batch_with_a_bad_item(self):
        key = self.transit_key()
        good = self.encrypt(key, b"good")
        batch = [{"plaintext": b64(b"ok")}, {"plaintext": "%%% not base64"}]

        # hvac raises on the 400 ...
        with self.assertRaises(hvac.exceptions.InvalidRequest):
            self.transit().encrypt_data(name=key, plaintext=None,
                                        batch_input=batch)
        # ... whose body is the whole envelope with per-item results
        url = "/v1/transit/encrypt/" + key
        resp = self.vault.adapter.post(url, json={"batch_input": batch},
                                       raise_exception=False)
        self.assertEqual(resp.status_code, 400)
        body = resp.json()
        self.assertNotIn("errors", body)
        results = body["data"]["batch_results"]
        self.assertRegex(results[0]["ciphertext"], CIPHERTEXT_RE)
        self.assertNotIn("error", results[0])
        self.assertTrue(results[1]["error"])
        self.assertNotIn("ciphertext", results[1])

        partial = self.vault.adapter.post(
            url, json={"batch_input": batch,
                       "partial_failure_response_code": 200})
        results = partial["data"]["batch_results"]
        self.assertRegex(results[0]["ciphertext"], CIPHERTEXT_RE)
        self.assertTrue(results[1]["error"])

        # decrypt: the same rules
        url = "/v1/transit/decrypt/" + key
        batch = [{"ciphertext": good}, {"ciphertext": "not-a-ciphertext"}]
        resp = self.vault.adapter.post(url, json={"batch_input": batch},
                                       raise_exception=False)
        self.assertEqual(resp.status_code, 400)
        results = resp.json()["data"]["batch_results"]
        self.assertEqual(unb64(results[0]["plaintext"]), b"good")
        self.assertIn("invalid ciphertext", results[1]["error"])
        partial = self.vault.adapter.post(
            url, json={"batch_input": batch,
                       "partial_failure_response_code": 200})
        self.assertIn("error", partial["data"]["batch_results"][1])

        # every item failing: partial_failure_response_code does not apply
        resp = self.vault.adapter.post(
            url, json={"batch_input": batch[1:],
                       "partial_failure_response_code": 200},
            raise_exception=False)
        self.assertEqual(resp.status_code, 400)

    def test_hmac_and_verify(self):
        key = self.transit_key()
        data = b64(b"message to authenticate")
        mac = self.transit().generate_hmac(name=key, hash_input=data)["data"]["hmac"]
        m = re.match(r"^vault:v1:([A-Za-z0-9+/]+=*)$", mac)
        self.assertIsNotNone(m, "hmac format")
        self.assertEqual(len(unb64(m.group(1))), 32)
        again = self.transit().generate_hmac(name=key, hash_input=data)
        self.assertEqual(again["data"]["hmac"], mac)
        mac512 = self.transit().generate_hmac(name=key, hash_input=data,
                                              algorithm="sha2-512")["data"]["hmac"]
        self.assertEqual(len(unb64(mac512.split(":", 2)[2])), 64)

        ok = self.transit().verify_signed_data(name=key, hash_input=data, hmac=mac)
        self.assertIs(ok["data"]["valid"], True)
        bad = self.transit().verify_signed_data(
            name=key, hash_input=b64(b"another message"), hmac=mac)
        self.assertIs(bad["data"]["valid"], False)
        ok512 = self.transit().verify_signed_data(
            name=key, hash_input=data, hmac=mac512, hash_algorithm="sha2-512")
        self.assertIs(ok512["data"]["valid"], True)

    def test_derived_key(self):
        key = self.transit_key(derived=True)
        data = self.transit().read_key(name=key)["data"]
        self.assertIs(data["derived"], True)
        self.assertEqual(data["kdf"], "hkdf_sha256")
        with self.assertRaises(hvac.exceptions.InvalidRequest) as cm:
            self.transit().encrypt_data(name=key, plaintext=b64(b"x"))
        self.assertIn("missing 'context' for key derivation", str(cm.exception))

        ctx = b64(b"tenant-1")
        ct = self.encrypt(key, b"per tenant", context=ctx)
        self.assertEqual(self.decrypt(key, ct, context=ctx), b"per tenant")
        with self.assertRaises(hvac.exceptions.InvalidRequest) as cm:
            self.transit().decrypt_data(name=key, ciphertext=ct,
                                        context=b64(b"tenant-2"))
        self.assertIn("message authentication failed", str(cm.exception))
        with self.assertRaises(hvac.exceptions.InvalidRequest):
            self.transit().decrypt_data(name=key, ciphertext=ct)

    def test_convergent_encryption(self):
        # hvac refuses this itself, so send it through its adapter
        with self.assertRaises(hvac.exceptions.InvalidRequest) as cm:
            self.vault.adapter.post("/v1/transit/keys/pgv-test-" + uid(),
                                    json={"convergent_encryption": True})
        self.assertIn("convergent encryption requires derivation",
                      str(cm.exception))

        key = self.transit_key(derived=True, convergent_encryption=True)
        data = self.transit().read_key(name=key)["data"]
        self.assertIs(data["convergent_encryption"], True)
        ctx = b64(b"context-a")
        one = self.encrypt(key, b"deterministic", context=ctx)
        two = self.encrypt(key, b"deterministic", context=ctx)
        self.assertEqual(one, two)
        self.assertNotEqual(one, self.encrypt(key, b"deterministic",
                                              context=b64(b"context-b")))
        self.assertNotEqual(one, self.encrypt(key, b"other", context=ctx))
        self.assertEqual(self.decrypt(key, one, context=ctx), b"deterministic")

    def test_min_decryption_version(self):
        key = self.transit_key()
        v1 = self.encrypt(key, b"old data")
        self.transit().rotate_key(name=key)
        v2 = self.encrypt(key, b"new data")
        with self.assertRaises(hvac.exceptions.InvalidRequest) as cm:
            self.transit().update_key_configuration(name=key,
                                                    min_decryption_version=5)
        self.assertIn("cannot set min decryption version", str(cm.exception))

        self.transit().update_key_configuration(name=key,
                                                min_decryption_version=2)
        self.assertEqual(
            self.transit().read_key(name=key)["data"]["min_decryption_version"], 2)
        with self.assertRaises(hvac.exceptions.InvalidRequest) as cm:
            self.transit().decrypt_data(name=key, ciphertext=v1)
        self.assertIn("disallowed by policy", str(cm.exception))
        self.assertEqual(self.decrypt(key, v2), b"new data")
        with self.assertRaises(hvac.exceptions.InvalidRequest):
            self.transit().rewrap_data(name=key, ciphertext=v1)

    def test_min_encryption_version(self):
        key = self.transit_key()
        self.transit().rotate_key(name=key)
        self.transit().update_key_configuration(name=key,
                                                min_encryption_version=2)
        with self.assertRaises(hvac.exceptions.InvalidRequest):
            self.transit().encrypt_data(name=key, plaintext=b64(b"x"),
                                        key_version=1)
        self.assertTrue(self.encrypt(key, b"x").startswith("vault:v2:"))

    def test_delete_key(self):
        name = "pgv-test-" + uid()
        self.transit().create_key(name=name)
        self.addCleanup(self.drop_transit_key, name)
        with self.assertRaises(hvac.exceptions.InvalidRequest) as cm:
            self.transit().delete_key(name=name)
        self.assertIn("deletion is not allowed for this key", str(cm.exception))
        self.transit().update_key_configuration(name=name, deletion_allowed=True)
        self.assertIs(self.transit().read_key(name=name)["data"]["deletion_allowed"],
                      True)
        resp = self.transit().delete_key(name=name)
        self.assertEqual(status_of(resp), 204)
        with self.assertRaises(hvac.exceptions.InvalidPath):
            self.transit().read_key(name=name)

    def test_generate_data_key(self):
        key = self.transit_key()
        plain = self.transit().generate_data_key(name=key, key_type="plaintext")
        data = plain["data"]
        self.assertRegex(data["ciphertext"], CIPHERTEXT_RE)
        self.assertEqual(data["key_version"], 1)
        raw = unb64(data["plaintext"])
        self.assertEqual(len(raw), 32)
        self.assertEqual(self.decrypt(key, data["ciphertext"]), raw)

        wrapped = self.transit().generate_data_key(name=key, key_type="wrapped",
                                                   bits=512)["data"]
        self.assertNotIn("plaintext", wrapped)
        self.assertEqual(len(self.decrypt(key, wrapped["ciphertext"])), 64)

    def test_generate_random_bytes(self):
        out = self.transit().generate_random_bytes(n_bytes=24)
        self.assertEqual(len(unb64(out["data"]["random_bytes"])), 24)
        out = self.transit().generate_random_bytes(n_bytes=16, output_format="hex")
        self.assertRegex(out["data"]["random_bytes"], r"^[0-9a-f]{32}$")
        default = self.transit().generate_random_bytes()
        self.assertEqual(len(unb64(default["data"]["random_bytes"])), 32)


# ---------------------------------------------------------------- AppRole

class AppRoleTest(VaultTestCase):

    def setUp(self):
        super().setUp()
        self.mount = "pgv-test-approle-" + uid()
        self.vault.sys.enable_auth_method(method_type="approle", path=self.mount)
        self.addCleanup(self.vault.sys.disable_auth_method, path=self.mount)
        self.pol = self.policy('path "secret/data/pgv-test/approle/*" '
                               '{ capabilities = ["read"] }')

    def role(self, **kwargs):
        name = "role-" + uid()
        self.vault.auth.approle.create_or_update_approle(
            role_name=name, token_policies=[self.pol], token_ttl="10m",
            mount_point=self.mount, **kwargs)
        role_id = self.vault.auth.approle.read_role_id(
            role_name=name, mount_point=self.mount)["data"]["role_id"]
        return name, role_id

    def secret_id(self, name):
        return self.vault.auth.approle.generate_secret_id(
            role_name=name, mount_point=self.mount)["data"]["secret_id"]

    def login(self, role_id, secret_id):
        anon = hvac.Client(url=pgvtest.VAULT_ADDR, token="")
        return anon.auth.approle.login(role_id=role_id, secret_id=secret_id,
                                       use_token=False, mount_point=self.mount)

    def test_enabled(self):
        methods = self.vault.sys.list_auth_methods()
        listing = methods.get("data", methods)
        self.assertEqual(listing[self.mount + "/"]["type"], "approle")
        with self.assertRaises(hvac.exceptions.InvalidRequest):
            self.vault.sys.enable_auth_method(method_type="approle",
                                              path=self.mount)

    def test_login(self):
        name, role_id = self.role()
        gen = self.vault.auth.approle.generate_secret_id(role_name=name,
                                                         mount_point=self.mount)
        self.assertTrue(gen["data"]["secret_id_accessor"])
        auth = self.login(role_id, gen["data"]["secret_id"])["auth"]
        self.assertIn(self.pol, auth["policies"])
        self.assertIn("default", auth["policies"])
        self.assertIn(self.pol, auth["token_policies"])
        self.assertEqual(auth["metadata"], {"role_name": name})
        self.assertTrue(auth["renewable"])
        self.assertGreater(auth["lease_duration"], 0)
        self.assertLessEqual(auth["lease_duration"], 600)

        app = pgvtest.client(auth["client_token"])
        me = app.auth.token.lookup_self()["data"]
        self.assertIn(self.pol, me["policies"])
        self.assertEqual(me["meta"], {"role_name": name})
        # the token is limited by its policy
        with self.assertRaises(hvac.exceptions.Forbidden):
            app.secrets.kv.v2.read_secret_version(path="pgv-test/other/x",
                                                  mount_point="secret")
        path = self.kv_path("pgv-test/approle")
        self.vault.secrets.kv.v2.create_or_update_secret(
            path=path, secret={"k": "v"}, mount_point="secret")
        got = app.secrets.kv.v2.read_secret_version(path=path,
                                                    mount_point="secret")
        self.assertEqual(got["data"]["data"], {"k": "v"})

    def test_secret_id_num_uses(self):
        name, role_id = self.role(secret_id_num_uses=1)
        sid = self.secret_id(name)
        self.login(role_id, sid)
        with self.assertRaises(hvac.exceptions.InvalidRequest):
            self.login(role_id, sid)

    def test_bad_credentials(self):
        name, role_id = self.role()
        sid = self.secret_id(name)
        with self.assertRaises(hvac.exceptions.InvalidRequest):
            self.login(role_id, "00000000-0000-0000-0000-000000000000")
        with self.assertRaises(hvac.exceptions.InvalidRequest):
            self.login("00000000-0000-0000-0000-000000000000", sid)
        with self.assertRaises(hvac.exceptions.InvalidRequest) as cm:
            self.login(role_id, None)
        self.assertIn("missing secret_id", str(cm.exception))
        # a failed attempt does not use the good secret_id up
        self.login(role_id, sid)


# ---------------------------------------------------------------- policies

class PolicyTest(VaultTestCase):

    def test_allow_one_path_deny_the_next(self):
        base = "pgv-test/pol-" + uid()
        allowed = base + "/app/db"
        other = base + "/other/db"
        for path in (allowed, other):
            self.addCleanup(self.drop_kv, path)
            self.vault.secrets.kv.v2.create_or_update_secret(
                path=path, secret={"k": path}, mount_point="secret")
        name = self.policy('path "secret/data/%s/app/*" {\n'
                           '  capabilities = ["read"]\n}\n' % base)
        read = self.vault.sys.read_policy(name=name)
        text = read.get("rules") or read["data"]["rules"]
        self.assertIn("secret/data/%s/app/*" % base, text)
        self.assertIn(name, self.vault.sys.list_policies()["data"]["policies"])

        app = self.token_client([name])
        got = app.secrets.kv.v2.read_secret_version(path=allowed,
                                                    mount_point="secret")
        self.assertEqual(got["data"]["data"], {"k": allowed})
        with self.assertRaises(hvac.exceptions.Forbidden) as cm:
            app.secrets.kv.v2.read_secret_version(path=other,
                                                  mount_point="secret")
        self.assertIn("permission denied", str(cm.exception))
        # read only: no writes, not even under the allowed prefix
        with self.assertRaises(hvac.exceptions.Forbidden):
            app.secrets.kv.v2.create_or_update_secret(
                path=allowed, secret={"k": "x"}, mount_point="secret")
        # the default policy still lets it look itself up
        self.assertIn(name, app.auth.token.lookup_self()["data"]["policies"])

    def test_encrypt_auto_creates_only_with_create(self):
        prefix = "pgv-test-auto-" + uid()
        update_only = self.token_client([self.policy(
            'path "transit/encrypt/%s-*" { capabilities = ["update"] }' % prefix)])
        # a missing key makes the write a create (the encrypt path has an
        # existence check), and the ACL refuses it before the engine runs
        # (vault/request_handling.go), so this is a 403, not a 400
        with self.assertRaises(hvac.exceptions.Forbidden):
            update_only.secrets.transit.encrypt_data(name=prefix + "-a",
                                                     plaintext=b64(b"x"))
        with self.assertRaises(hvac.exceptions.InvalidPath):
            self.vault.secrets.transit.read_key(name=prefix + "-a")

        creator = self.token_client([self.policy(
            'path "transit/encrypt/%s-*" { capabilities = ["create", "update"] }'
            % prefix)])
        for name, ctx in ((prefix + "-plain", None),
                          (prefix + "-derived", b64(b"ctx"))):
            self.addCleanup(self.drop_transit_key, name)
            ct = creator.secrets.transit.encrypt_data(
                name=name, plaintext=b64(b"x"), context=ctx)["data"]["ciphertext"]
            self.assertRegex(ct, CIPHERTEXT_RE)
            key = self.vault.secrets.transit.read_key(name=name)["data"]
            self.assertEqual(key["type"], "aes256-gcm96")
            self.assertIs(key["derived"], ctx is not None, name)

    def test_root_and_default_are_builtin(self):
        policies = self.vault.sys.list_policies()["data"]["policies"]
        self.assertIn("root", policies)
        self.assertIn("default", policies)
        with self.assertRaises(hvac.exceptions.InvalidRequest):
            self.vault.sys.delete_policy(name="default")
        with self.assertRaises(hvac.exceptions.InvalidRequest):
            self.vault.sys.create_or_update_policy(
                name="root", policy='path "*" { capabilities = ["read"] }')


# ---------------------------------------------------------------- tokens

class TokenTest(VaultTestCase):

    def test_create_lookup_renew_revoke(self):
        pol = self.policy('path "secret/data/pgv-test/tok/*" '
                          '{ capabilities = ["read"] }')
        created = self.vault.auth.token.create(policies=[pol], ttl="1h",
                                               meta={"purpose": "test"})
        self.assertIsNone(created["data"])
        auth = created["auth"]
        self.assertIn(pol, auth["policies"])
        self.assertEqual(auth["lease_duration"], 3600)
        self.assertTrue(auth["renewable"])
        self.assertTrue(auth["accessor"])

        child = pgvtest.client(auth["client_token"])
        me = child.auth.token.lookup_self()["data"]
        self.assertEqual(sorted(me["policies"]), sorted([pol, "default"]))
        self.assertEqual(me["meta"], {"purpose": "test"})
        self.assertEqual(me["accessor"], auth["accessor"])
        self.assertEqual(me["creation_ttl"], 3600)
        self.assertGreater(me["ttl"], 3500)
        self.assertLessEqual(me["ttl"], 3600)
        self.assertTrue(me["expire_time"])

        renewed = child.auth.token.renew_self(increment="2h")["auth"]
        self.assertGreater(renewed["lease_duration"], 3600)
        self.assertLessEqual(renewed["lease_duration"], 7200)
        self.assertGreater(child.auth.token.lookup_self()["data"]["ttl"], 3600)

        resp = child.auth.token.revoke_self()
        self.assertEqual(status_of(resp), 204)
        with self.assertRaises(hvac.exceptions.Forbidden):
            child.auth.token.lookup_self()

    def test_root_lookup_self(self):
        me = self.vault.auth.token.lookup_self()["data"]
        self.assertEqual(me["policies"], ["root"])
        self.assertEqual(me["ttl"], 0)
        self.assertIsNone(me["expire_time"])

    def test_unknown_token(self):
        stranger = pgvtest.client("hvs.pgv-test-" + uid())
        with self.assertRaises(hvac.exceptions.Forbidden) as cm:
            stranger.auth.token.lookup_self()
        self.assertIn("permission denied", str(cm.exception))

    def test_num_uses(self):
        child = self.token_client(["default"], num_uses=2)
        child.auth.token.lookup_self()
        child.auth.token.lookup_self()
        with self.assertRaises(hvac.exceptions.Forbidden):
            child.auth.token.lookup_self()

    @pgvtest.needs_own_vault
    def test_expiry(self):
        child = self.token_client(["default"], ttl="2s")
        try:
            self.assertLessEqual(child.auth.token.lookup_self()["data"]["ttl"], 2)
        except hvac.exceptions.Forbidden:
            pass	# a busy machine took more than 2 s to get here
        # refused once expired: polled, with a deadline no load reaches
        deadline = time.time() + 60
        while True:
            try:
                child.auth.token.lookup_self()
            except hvac.exceptions.Forbidden:
                break
            self.assertLess(time.time(), deadline,
                            "the token still works 60 s after its 2 s TTL")
            time.sleep(0.2)


# ---------------------------------------------------------------- sys

class SysTest(VaultTestCase):

    def test_health(self):
        health = self.vault.sys.read_health_status(method="GET")
        self.assertEqual(status_of(health), 200)
        body = body_of(health)
        self.assertIs(body["initialized"], True)
        self.assertIs(body["sealed"], False)
        self.assertIs(body["standby"], False)
        self.assertIsInstance(body["server_time_utc"], int)
        self.assertTrue(body["version"])

        custom = self.vault.sys.read_health_status(method="GET", active_code=299)
        self.assertEqual(status_of(custom), 299)
        self.assertIs(body_of(custom)["sealed"], False)
        head = self.vault.sys.read_health_status(method="HEAD")
        self.assertEqual(status_of(head), 200)
        self.assertEqual(head.content, b"")
        bad = self.vault.adapter.get("/v1/sys/health",
                                     params={"activecode": "abc"},
                                     raise_exception=False)
        self.assertEqual(status_of(bad), 400)

    def test_seal_status(self):
        status = self.vault.sys.read_seal_status()
        self.assertIs(status["sealed"], False)
        self.assertIs(status["initialized"], True)
        self.assertEqual(status["type"], "shamir")
        for field in ("t", "n", "progress", "version"):
            self.assertIn(field, status)

    def test_unknown_mount(self):
        with self.assertRaises(hvac.exceptions.InvalidPath) as cm:
            self.vault.adapter.get("/v1/pgv-no-such-mount-%s/x" % uid())
        self.assertIn("no handler for route", str(cm.exception))

    def test_wrong_method(self):
        key = self.transit_key()
        for call in (self.vault.adapter.get, self.vault.adapter.delete):
            with self.assertRaises(hvac.exceptions.UnexpectedError) as cm:
                call("/v1/transit/encrypt/" + key)
            self.assertIn("unsupported operation", str(cm.exception))
            resp = call("/v1/transit/encrypt/" + key, raise_exception=False)
            self.assertEqual(resp.status_code, 405)

    def test_unknown_lease(self):
        with self.assertRaises(hvac.exceptions.InvalidRequest):
            self.vault.sys.read_lease(lease_id="database/creds/none/" + uid())

    def test_list_transit_keys_both_ways(self):
        key = self.transit_key()
        by_verb = self.vault.secrets.transit.list_keys()["data"]["keys"]
        by_get = self.vault.adapter.get("/v1/transit/keys",
                                        params={"list": "true"})["data"]["keys"]
        self.assertIn(key, by_verb)
        self.assertEqual(sorted(by_verb), sorted(by_get))

    def test_mounts(self):
        mounts = self.vault.sys.list_mounted_secrets_engines()
        listing = mounts.get("data", mounts)
        self.assertEqual(listing["secret/"]["type"], "kv")
        self.assertEqual(listing["secret/"]["options"]["version"], "2")
        self.assertEqual(listing["transit/"]["type"], "transit")


@unittest.skipIf(pgvtest.EXTERNAL_VAULT,
                 "sealing needs the unseal key of an OpenBao the harness "
                 "started (an external Vault is in use)")
@unittest.skipUnless(UNSEAL_KEY_FILE and os.path.exists(UNSEAL_KEY_FILE),
                     "no unseal key file (PGV_UNSEAL_KEY_FILE)")
class SealTest(VaultTestCase):
    """Seals the run's OpenBao and unseals it with the key share the
    harness keeps (one share, threshold one).

    An unseal that answers sealed=false does not make the node usable at
    once: with raft storage it comes back as a standby and has to win the
    leader election of its one-node cluster first.  Until then sys/health
    answers 429 (standby, the default standbycode) and other requests fail
    with 500 "local node not active but active cluster node not found".
    So every unseal here waits, at most ACTIVE_WITHIN seconds, for health
    to say active (200), and checks that nothing but 429 came before."""

    ACTIVE_WITHIN = 120

    def unseal(self):
        with open(UNSEAL_KEY_FILE) as f:
            key = f.read().strip()
        status = self.vault.sys.submit_unseal_key(key=key)
        if not status["sealed"]:
            self.wait_active()
        return status

    def wait_active(self):
        deadline = time.time() + self.ACTIVE_WITHIN
        while True:
            health = self.vault.sys.read_health_status(method="GET")
            code = status_of(health)
            if code == 200:
                body = body_of(health)
                self.assertIs(body["sealed"], False)
                self.assertIs(body["standby"], False)
                return
            self.assertEqual(code, 429, "sys/health while becoming active")
            self.assertIs(body_of(health)["standby"], True)
            self.assertLess(time.time(), deadline,
                            "not the active node %d s after unsealing"
                            % self.ACTIVE_WITHIN)
            time.sleep(0.1)

    def test_seal_and_unseal(self):
        key = self.transit_key()
        ct = self.vault.secrets.transit.encrypt_data(
            name=key, plaintext=b64(b"kept while sealed"))["data"]["ciphertext"]
        path = self.kv_path()
        self.vault.secrets.kv.v2.create_or_update_secret(
            path=path, secret={"k": "v"}, mount_point="secret")

        # sealing needs sudo on sys/seal
        with self.assertRaises(hvac.exceptions.Forbidden):
            self.token_client(["default"]).sys.seal()

        self.addCleanup(self.unseal_if_sealed)
        resp = self.vault.sys.seal()
        self.assertEqual(status_of(resp), 204)
        self.assertIs(self.vault.sys.read_seal_status()["sealed"], True)
        with self.assertRaises(hvac.exceptions.VaultDown) as cm:
            self.vault.secrets.kv.v2.read_secret_version(path=path,
                                                         mount_point="secret")
        self.assertIn("Vault is sealed", str(cm.exception))
        with self.assertRaises(hvac.exceptions.VaultDown):
            self.vault.secrets.transit.decrypt_data(name=key, ciphertext=ct)
        health = self.vault.sys.read_health_status(method="GET")
        self.assertEqual(status_of(health), 503)
        self.assertIs(body_of(health)["sealed"], True)
        custom = self.vault.sys.read_health_status(method="GET", sealed_code=299)
        self.assertEqual(status_of(custom), 299)

        status = self.unseal()  # and wait until active
        self.assertIs(status["sealed"], False)
        self.assertIs(self.vault.sys.read_seal_status()["sealed"], False)
        self.assertEqual(status_of(self.vault.sys.read_health_status(method="GET")),
                         200)
        got = self.vault.secrets.kv.v2.read_secret_version(path=path,
                                                           mount_point="secret")
        self.assertEqual(got["data"]["data"], {"k": "v"})
        pt = self.vault.secrets.transit.decrypt_data(name=key, ciphertext=ct)
        self.assertEqual(unb64(pt["data"]["plaintext"]), b"kept while sealed")

    def test_wrong_unseal_key(self):
        self.addCleanup(self.unseal_if_sealed)
        self.vault.sys.seal()
        with self.assertRaises(hvac.exceptions.InvalidRequest):
            self.vault.sys.submit_unseal_key(key=b64(os.urandom(32)))
        self.assertIs(self.vault.sys.read_seal_status()["sealed"], True)
        self.assertIs(self.unseal()["sealed"], False)

    def unseal_if_sealed(self):
        """Clean-up: leave the run's server unsealed and active for the
        tests that follow, whatever point a failing test stopped at."""
        if self.vault.sys.read_seal_status()["sealed"]:
            self.unseal()
        else:
            self.wait_active()


if __name__ == "__main__":
    pgvtest.main()
