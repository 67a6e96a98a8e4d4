#!/usr/bin/env python3
"""Who may do what: bearer tokens (`mcache token add`) with roles, 401 with
WWW-Authenticate for a missing or bad token, 403 for a role too weak, open
access on loopback unless --require-tokens, the rule for other addresses,
a revoked token refused at once, and refusals of state changes in the
audit log with who tried."""
import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import servetest  # noqa: E402
from servetest import Server  # noqa: E402


def error(body):
    return json.loads(body)["error"]


class Tokens(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        servetest.need_binaries()
        cls.srv = Server(daemon=False, tokens=True).__enter__()
        cls.tok = {"admin": cls.srv.token}
        for role in ("reader", "publisher"):
            r = cls.srv.cli("token", "add", role, "--role", role, "--json")
            cls.tok[role] = json.loads(r.stdout)["token"]

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def test_open_routes_need_no_token(self):
        for path in ("/healthz", "/readyz"):
            st, h, body = self.srv.request("GET", path, token="")
            self.assertIn(st, (200, 503), body)  # no daemon here: readyz may be 503
            self.assertNotIn("www-authenticate", h)

    def test_missing_token_is_401(self):
        st, h, body = self.srv.request("GET", "/metrics", token="")
        self.assertEqual(st, 401, body)
        self.assertEqual(h["www-authenticate"], 'Bearer realm="mcache"')
        e = error(body)
        self.assertEqual((e["code"], e["status"]), ("unauthorized", 401))
        self.assertIn("mcache token add", e["message"])

    def test_bad_tokens_are_401(self):
        for auth in ("Bearer mct_" + "A" * 43, "Bearer ", "Basic dXNlcjpwYXNz", "mct_x"):
            with self.subTest(auth=auth):
                st, h, body = self.srv.request("GET", "/metrics", token="",
                                               headers={"Authorization": auth})
                self.assertEqual(st, 401, body)
                self.assertEqual(h["www-authenticate"], 'Bearer realm="mcache"')
                self.assertEqual(error(body)["code"], "unauthorized")

    def test_roles(self):
        # reader: reads; publisher and admin routes are 403 naming the roles.
        st, h, body = self.srv.request("GET", "/metrics", token=self.tok["reader"])
        self.assertEqual(st, 200, body)
        st, h, body = self.srv.request("POST", "/v1/snapshots", body={"name": "r1"},
                                       token=self.tok["reader"])
        self.assertEqual(st, 403, body)
        self.assertNotIn("www-authenticate", h)
        e = error(body)
        self.assertEqual(e["code"], "forbidden")
        self.assertIn("token:reader has role reader", e["message"])
        self.assertIn("needs publisher", e["message"])
        # publisher: may snapshot, may not manage tokens.
        st, h, body = self.srv.request("POST", "/v1/snapshots", body={"name": "p1"},
                                       token=self.tok["publisher"])
        self.assertIn(st, (200, 201), body)
        st, h, body = self.srv.request("GET", "/v1/tokens", token=self.tok["publisher"])
        self.assertEqual(st, 403, body)
        self.assertIn("needs admin", error(body)["message"])
        # admin: everything.
        st, h, body = self.srv.request("GET", "/v1/tokens", token=self.tok["admin"])
        self.assertEqual(st, 200, body)

    def test_refusals_are_audited(self):
        st, h, body = self.srv.request("POST", "/v1/snapshots", body={"name": "denied"},
                                       token=self.tok["reader"])
        self.assertEqual(st, 403)
        st, h, body = self.srv.request("POST", "/v1/snapshots", body={"name": "anon"}, token="")
        self.assertEqual(st, 401)
        audit = json.loads(self.srv.cli("audit", "--json").stdout)["audit"]
        refused = [a for a in audit if a["what"] == "POST /v1/snapshots"
                   and a["result"].startswith("error: ")]
        whos = {a["who"] for a in refused}
        self.assertIn("token:reader", whos, audit)
        self.assertIn("anonymous", whos, audit)
        for a in refused:
            self.assertRegex(a["from"], r"^127\.0\.0\.1:\d+$")
        # A change that went through carries its token as the actor.
        st, h, body = self.srv.request("POST", "/v1/snapshots", body={"name": "bypub"},
                                       token=self.tok["publisher"])
        self.assertIn(st, (200, 201), body)
        audit = json.loads(self.srv.cli("audit", "--json").stdout)["audit"]
        mine = [a for a in audit if "bypub" in a["what"] and a["result"] == "ok"]
        self.assertTrue(mine, audit)
        self.assertEqual(mine[-1]["who"], "token:publisher")

    def test_revoked_token_is_refused_at_once(self):
        r = self.srv.cli("token", "add", "shortlived", "--role", "reader", "--json")
        secret = json.loads(r.stdout)["token"]
        self.assertEqual(self.srv.request("GET", "/metrics", token=secret)[0], 200)
        self.srv.cli("token", "rm", "shortlived")
        st, h, body = self.srv.request("GET", "/metrics", token=secret)
        self.assertEqual(st, 401, body)


class OpenAccess(unittest.TestCase):
    def setUp(self):
        servetest.need_binaries()

    def test_loopback_is_open_but_checks_a_token_sent(self):
        with Server(daemon=False) as srv:
            st, h, body = srv.request("GET", "/v1/tokens")
            self.assertEqual(st, 200, body)  # anonymous is admin on loopback
            st, h, body = srv.request("GET", "/v1/tokens", token="mct_" + "B" * 43)
            self.assertEqual(st, 401, body)
            self.assertEqual(h["www-authenticate"], 'Bearer realm="mcache"')

    def test_require_tokens_without_tokens_refuses_to_start(self):
        with Server(daemon=False, wait=False) as srv:
            srv.stop_serve()
            r = subprocess.run([servetest.MCACHE_SERVE, "--store", srv.store, "--listen",
                                "127.0.0.1:0", "--require-tokens"], capture_output=True,
                               text=True, timeout=20, env=srv.env)
            self.assertEqual(r.returncode, 1, r)
            self.assertIn("has no tokens", r.stderr)
            self.assertIn("mcache token add", r.stderr)

    def test_other_address(self):
        """0.0.0.0 without tokens is refused; with a token in the store, tokens are needed even
        from loopback; --insecure-open opens it."""
        with Server(daemon=False, wait=False) as srv:
            srv.stop_serve()
            r = subprocess.run([servetest.MCACHE_SERVE, "--store", srv.store, "--listen",
                                "0.0.0.0:0"], capture_output=True, text=True, timeout=20,
                               env=srv.env)
            self.assertEqual(r.returncode, 1, r)
            self.assertIn("refusing to listen on 0.0.0.0:0 without tokens", r.stderr)

            tok = json.loads(srv.cli("token", "add", "ops", "--role", "admin",
                                     "--json").stdout)["token"]
            srv.listen = "0.0.0.0:0"
            srv.start_serve()
            self.assertIn("tokens required", srv.serve_log())
            srv.host = "127.0.0.1"
            self.assertEqual(srv.request("GET", "/v1/tokens", token="")[0], 401)
            self.assertEqual(srv.request("GET", "/v1/tokens", token=tok)[0], 200)
            srv.stop_serve()

            srv.start_serve(extra=["--insecure-open"])
            srv.host = "127.0.0.1"
            self.assertIn("open access: --insecure-open", srv.serve_log())
            self.assertEqual(srv.request("GET", "/v1/tokens", token="")[0], 200)


if __name__ == "__main__":
    unittest.main(verbosity=2)
