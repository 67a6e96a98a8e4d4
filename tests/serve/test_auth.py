#!/usr/bin/env python3
"""Who may do what: bearer tokens (`mcache token add`) with roles, 401 with
WWW-Authenticate for a missing or bad token, 403 for a role too weak, open
access on loopback unless --require-tokens, the rule for other addresses,
a revoked token refused at once, and refusals of state changes in the
audit log with who tried."""
import json
import os
import shutil
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
        self.assertNotIn("anonymous", whos, audit)  # a 401 is not recorded
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

    def test_anonymous_refusals_write_nothing(self):
        """100 anonymous DELETEs: no journal record (size unchanged, so no generation moves
        and mcached has nothing to resync), no audit entry; counted in /metrics, logged at
        most once a second."""
        journal = os.path.join(self.srv.store, "journal")
        size = os.path.getsize(journal)
        naudit = len(json.loads(self.srv.cli("audit", "--json").stdout)["audit"])
        log_before = self.srv.serve_log().count("401 DELETE")
        for i in range(100):
            st, h, body = self.srv.request("DELETE", "/v1/models/m%d" % i, token="")
            self.assertEqual(st, 401, body)
        self.assertEqual(os.path.getsize(journal), size)
        self.assertEqual(len(json.loads(self.srv.cli("audit", "--json").stdout)["audit"]), naudit)
        logged = self.srv.serve_log().count("401 DELETE") - log_before
        self.assertGreaterEqual(logged, 1)
        self.assertLess(logged, 20, "every 401 was logged")
        st, h, body = self.srv.request("GET", "/metrics")
        n = sum(float(line.rsplit(" ", 1)[1]) for line in body.decode().splitlines()
                if line.startswith("mcache_http_requests_total{") and 'method="DELETE"' in line
                and 'code="401"' in line)
        self.assertGreaterEqual(n, 100)
        # A token's refusal (403) is still recorded.
        st, h, body = self.srv.request("DELETE", "/v1/models/m0", token=self.tok["reader"])
        self.assertEqual(st, 403, body)
        self.assertGreater(os.path.getsize(journal), size)

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

    def test_unreadable_store_same_status_with_a_token_or_without(self):
        """When the registry cannot be read, a token check answers as a handler does (it was
        500 internal with a token where the handler said 422 corrupt)."""
        with Server(daemon=False, tokens=True, args=["--insecure-open"]) as srv:
            self.assertEqual(srv.request("GET", "/v1/models", token="")[0], 200)
            journal = os.path.join(srv.store, "journal")
            os.rename(journal, journal + ".good")
            with open(journal, "wb") as f:
                f.write(b"not a journal line\n" * 10)
            anon = srv.request("GET", "/v1/models", token="")
            tok = srv.request("GET", "/v1/models")
            self.assertGreaterEqual(anon[0], 400, anon)
            self.assertEqual((tok[0], error(tok[2])["code"]), (anon[0], error(anon[2])["code"]),
                             (anon, tok))
            self.assertIn("damaged", error(tok[2])["message"])
            os.replace(journal + ".good", journal)

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


class WebPages(unittest.TestCase):
    """Open access makes anything that reaches the port admin, so what a web page can send
    is refused: a Host that is not loopback (DNS rebinding: 421), a change from another
    site's page (Origin: 403), a change that is not application/json (a form: 415)."""

    @classmethod
    def setUpClass(cls):
        servetest.need_binaries()
        cls.srv = Server(daemon=False).__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def tokens(self):
        return [t["name"] for t in self.srv.json("GET", "/v1/tokens")["tokens"]]

    def test_host_that_is_not_loopback_is_421(self):
        for host in ("evil.example", "evil.example:%d" % self.srv.port, "127.0.0.1.evil.example",
                     "localhost.evil.example", "10.1.2.3", "[::2]:80", "localhost:x"):
            with self.subTest(host=host):
                st, h, body = self.srv.request("GET", "/v1/models", headers={"Host": host})
                self.assertEqual(st, 421, body)
                e = error(body)
                self.assertEqual(e["code"], "misdirected_request")
                self.assertIn("--require-tokens", e["message"])
        # The rebinding attack of the review: a token minted through a foreign name.
        st, h, body = self.srv.request("POST", "/v1/tokens", body={"name": "rebound",
                                                                    "role": "admin"},
                                       headers={"Host": "rebind.evil.example:%d" % self.srv.port})
        self.assertEqual(st, 421, body)
        self.assertNotIn("rebound", self.tokens())

    def test_loopback_hosts_are_served(self):
        for host in ("127.0.0.1", "127.0.0.1:%d" % self.srv.port, "localhost", "LOCALHOST:1",
                     "[::1]", "[::1]:%d" % self.srv.port, "127.0.0.2:8420"):
            with self.subTest(host=host):
                st, h, body = self.srv.request("GET", "/v1/models", headers={"Host": host})
                self.assertEqual(st, 200, body)

    def test_change_from_another_sites_page_is_403(self):
        for origin in ("http://evil.example", "https://evil.example:%d" % self.srv.port, "null"):
            with self.subTest(origin=origin):
                st, h, body = self.srv.request("POST", "/v1/tokens",
                                               body={"name": "csrf", "role": "admin"},
                                               headers={"Origin": origin})
                self.assertEqual(st, 403, body)
                self.assertEqual(error(body)["code"], "cross_origin")
                self.assertNotIn("csrf", self.tokens())
        # Bodiless, as the review's rollback: refused before the route is looked at.
        st, h, body = self.srv.request("POST", "/v1/models/m/aliases/prod/rollback",
                                       headers={"Origin": "http://evil"})
        self.assertEqual(st, 403, body)
        # A read from another site is not a change; the server's own pages may change things.
        st, h, body = self.srv.request("GET", "/v1/models", headers={"Origin": "http://evil"})
        self.assertEqual(st, 200, body)
        for origin in ("http://127.0.0.1:%d" % self.srv.port, "http://localhost:3000"):
            st, h, body = self.srv.request("POST", "/v1/snapshots/nosuch/restore",
                                           headers={"Origin": origin})
            self.assertEqual(st, 404, body)

    def test_changes_need_json_content_type_even_without_a_body(self):
        path = "/v1/snapshots/nosuch/restore"
        for ct in (None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                   "application/jsonx"):
            with self.subTest(ct=ct):
                h = {"Content-Type": ct} if ct else {}
                c = self.srv.connection()
                try:  # servetest's request() would add application/json
                    c.request("POST", path, body=b"x=1" if ct else None, headers=h)
                    r = c.getresponse()
                    st, body = r.status, r.read()
                finally:
                    c.close()
                self.assertEqual(st, 415, body)
                e = error(body)
                self.assertEqual(e["code"], "unsupported_media_type")
                self.assertIn("application/json", e["message"])
        for ct in ("application/json", "Application/JSON; charset=utf-8"):
            st, h, body = self.srv.request("POST", path, headers={"Content-Type": ct})
            self.assertEqual(st, 404, body)  # past the checks: no such snapshot
        st, h, body = self.srv.request("DELETE", "/v1/tokens/nosuch",
                                       headers={"Content-Type": "text/plain"})
        self.assertEqual(st, 415, body)

    def test_curl_from_the_docs_works(self):
        if not shutil.which("curl"):
            self.skipTest("curl is not installed")
        url = "http://127.0.0.1:%d" % self.srv.port
        r = subprocess.run(["curl", "-s", "-X", "POST", url + "/v1/snapshots", "-H",
                            "Content-Type: application/json", "-d", '{"name": "bycurl"}', "-w",
                            "\n%{http_code}"], capture_output=True, text=True, timeout=30)
        self.assertTrue(r.stdout.endswith("\n201") or r.stdout.endswith("\n200"), r)
        r = subprocess.run(["curl", "-s", "-X", "DELETE", url + "/v1/snapshots/bycurl", "-H",
                            "Content-Type: application/json", "-w", "\n%{http_code}"],
                           capture_output=True, text=True, timeout=30)
        self.assertTrue(r.stdout.endswith("\n200"), r)

    def test_tokens_required_take_any_host(self):
        with Server(daemon=False, tokens=True) as srv:
            st, h, body = srv.request("GET", "/v1/models", headers={"Host": "models.example"})
            self.assertEqual(st, 200, body)
            # ...but not a change from another site's page.
            st, h, body = srv.request("POST", "/v1/snapshots", body={"name": "x"},
                                      headers={"Origin": "http://evil.example"})
            self.assertEqual(st, 403, body)


if __name__ == "__main__":
    unittest.main(verbosity=2)
