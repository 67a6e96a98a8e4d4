#!/usr/bin/env python3
"""test_openapi.py - /v1/openapi.json held against what mcache-serve does.

The document is OpenAPI 3; every route in the server's own table (the
document's x-mcache-routes, built from the table at run time) is documented
with its method and role, and nothing is documented that the server does not
route; every documented operation, called on a real store (success paths
with sample bodies, refusals without), answers with a status the document
lists for it, and a JSON answer where it says JSON.
"""
import json
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from servetest import Server, need_binaries  # noqa: E402

METHODS = ("get", "put", "post", "delete", "head", "patch", "options")

# What {param} stands for when an operation is called.
PARAMS = {"name": "m", "ref": "1.0.0", "version": "1.0.0", "alias": "prod", "snap": "snap1",
          "tname": "tk1"}

# Sample requests that succeed; anything else is called with no body (a refusal is fine,
# as long as the document lists its status).
SAMPLES = {
    ("put", "/v1/models/{name}/versions/{version}"): ("3.0.0", b"pushed by the test",
                                                      "application/octet-stream"),
    ("put", "/v1/models/{name}/aliases/{alias}"): (None, {"targets": "1.0.0"}, None),
    ("post", "/v1/models/{name}/deployments"): (None, {"version": "2.0.0", "alias": "blue",
                                                       "strategy": "direct"}, None),
    ("post", "/v1/gc"): (None, {"keep": 5, "dry_run": True}, None),
    ("post", "/v1/fsck"): (None, {}, None),
    ("post", "/v1/snapshots"): (None, {"name": "snap1"}, None),
    ("post", "/v1/tokens"): (None, {"name": "tk1", "role": "reader"}, None),
}


class OpenAPI(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.s = Server()
        cls.s.__enter__()
        for v in ("1.0.0", "2.0.0"):
            cls.s.cli("push", "m", v, cls.s.file("m" + v, (v * 1000).encode()))
        cls.s.cli("alias", "m", "prod", "1.0.0", "--no-gate")
        st, h, body = cls.s.request("GET", "/v1/openapi.json", token="")
        assert st == 200, (st, body)
        cls.ctype = h.get("content-type", "")
        cls.doc = json.loads(body)

    @classmethod
    def tearDownClass(cls):
        cls.s.__exit__(None, None, None)

    def test_is_openapi_3(self):
        d = self.doc
        self.assertTrue(self.ctype.startswith("application/json"), self.ctype)
        self.assertRegex(d["openapi"], r"^3\.\d+\.\d+$")
        self.assertTrue(d["info"]["title"] and d["info"]["version"])
        self.assertTrue(d["paths"])
        for path, item in d["paths"].items():
            self.assertTrue(path.startswith("/"), path)
            for method, op in item.items():
                self.assertIn(method, METHODS, path)
                self.assertTrue(op.get("summary"), (method, path))
                self.assertTrue(op["responses"], (method, path))
                for status, r in op["responses"].items():
                    self.assertRegex(status, r"^[1-5]\d\d$")
                    if "$ref" in r:  # refs resolve
                        name = r["$ref"].rsplit("/", 1)[1]
                        self.assertIn(name, d["components"]["responses"])
                    else:
                        self.assertIn("description", r)
                names = re.findall(r"{(\w+)}", path)
                declared = [p["name"] for p in op.get("parameters", []) if p["in"] == "path"]
                self.assertEqual(sorted(names), sorted(declared), (method, path))

    def test_every_route_documented_and_nothing_else(self):
        routes = self.doc["x-mcache-routes"]
        self.assertTrue(routes)
        served = {(r["method"].lower(), r["path"]) for r in routes}
        documented = {(m, p) for p, item in self.doc["paths"].items() for m in item}
        self.assertEqual(sorted(served - documented), [], "routes the document leaves out")
        self.assertEqual(sorted(documented - served), [], "documented but not routed")
        for r in routes:
            op = self.doc["paths"][r["path"]][r["method"].lower()]
            self.assertEqual(op["x-mcache-role"], r["role"], r)

    def call(self, method, path):
        url = re.sub(r"{(\w+)}", lambda m: PARAMS[m.group(1)], path)
        sample = SAMPLES.get((method, path))
        headers, body = {}, None
        if sample:
            version, body, ctype = sample
            if version:
                url = url.replace("/versions/1.0.0", "/versions/" + version)
            if ctype:
                headers["Content-Type"] = ctype
        return url, self.s.request(method.upper(), url, body=body, headers=headers)

    def test_every_operation_answers_as_documented(self):
        ops = [(m, p) for p, item in self.doc["paths"].items() for m in item]
        # reads first, then changes, removals last (they take what the others use)
        order = {"get": 0, "head": 0, "put": 1, "post": 2, "delete": 3}
        ops.sort(key=lambda x: (order[x[0]], x[1].count("/"), x[1]))
        ops.sort(key=lambda x: x[0] == "delete" and x[1] == "/v1/models/{name}")
        for method, path in ops:
            op = self.doc["paths"][path][method]
            url, (st, h, body) = self.call(method, path)
            with self.subTest(method=method, path=path, status=st):
                self.assertIn(str(st), op["responses"],
                              "%s %s answered %d: %s" % (method.upper(), url, st, body[:300]))
                doc = op["responses"][str(st)]
                if "$ref" in doc:
                    doc = self.doc["components"]["responses"][doc["$ref"].rsplit("/", 1)[1]]
                kinds = list(doc.get("content", {}))
                if st != 304 and method != "head" and kinds:
                    got = h.get("content-type", "").split(";")[0]
                    self.assertIn(got, kinds, (method, path, st))
                    if got == "application/json":
                        j = json.loads(body)
                        if st >= 400:
                            self.assertEqual(j["error"]["status"], st)

    def test_undocumented_paths_are_404(self):
        for path in ("/v1/nothing", "/v1/models/m/versions/1.0.0/artifact/more", "/v2/models"):
            st, h, body = self.s.request("GET", path)
            self.assertEqual(st, 404, path)


if __name__ == "__main__":
    need_binaries()
    unittest.main(verbosity=2)
