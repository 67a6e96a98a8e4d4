#!/usr/bin/env python3
"""HTTPS with --tls-cert/--tls-key (libmicrohttpd's GnuTLS): a self-signed
certificate made at test time (openssl, else certtool); curl trusts it with
--cacert and refuses it without; plain HTTP to the TLS port gets no answer."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import servetest  # noqa: E402
from servetest import Server  # noqa: E402


def make_cert(d):
    """A self-signed EC certificate for 127.0.0.1 and localhost: (cert, key)."""
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    if shutil.which("openssl"):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                        "-days", "2", "-subj", "/CN=localhost", "-addext",
                        "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                       check=True, capture_output=True)
    elif shutil.which("certtool"):
        tmpl = os.path.join(d, "cert.cfg")
        with open(tmpl, "w") as f:
            f.write('cn = "localhost"\nip_address = "127.0.0.1"\ndns_name = "localhost"\n'
                    "expiration_days = 2\nca\ntls_www_server\nsigning_key\n")
        subprocess.run(["certtool", "--generate-privkey", "--key-type", "ecdsa", "--outfile",
                        key], check=True, capture_output=True)
        subprocess.run(["certtool", "--generate-self-signed", "--load-privkey", key,
                        "--template", tmpl, "--outfile", cert], check=True, capture_output=True)
    else:
        return None
    return cert, key


class Tls(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        servetest.need_binaries()
        if not shutil.which("curl"):
            raise unittest.SkipTest("curl is not installed (Debian: curl)")
        cls.tmp = tempfile.mkdtemp(prefix="mcserve-tls.")
        made = make_cert(cls.tmp)
        if not made:
            raise unittest.SkipTest("neither openssl nor certtool is installed")
        cls.cert, cls.key = made
        cls.srv = Server(daemon=False, tls=(cls.cert, cls.key, cls.cert)).__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()
        shutil.rmtree(cls.tmp, True)

    def curl(self, *args):
        return subprocess.run(["curl", "-sS", "--max-time", "20"] + list(args),
                              capture_output=True, text=True)

    def test_https_with_curl(self):
        self.assertTrue(self.srv.url.startswith("https://127.0.0.1:"), self.srv.url)
        r = self.curl("--cacert", self.cert, "-w", "\n%{http_code} %{ssl_verify_result}",
                      self.srv.url + "/healthz")
        self.assertEqual(r.returncode, 0, r.stderr)
        body, status = r.stdout.rsplit("\n", 1)
        self.assertEqual(status, "200 0")
        self.assertIs(json.loads(body)["ok"], True)

    def test_untrusted_certificate_refused(self):
        r = self.curl(self.srv.url + "/healthz")
        self.assertEqual(r.returncode, 60, r)  # peer certificate cannot be authenticated

    def test_plain_http_to_tls_port(self):
        r = self.curl("http://127.0.0.1:%d/healthz" % self.srv.port)
        self.assertNotEqual(r.returncode, 0, r)
        self.assertNotIn('"ok"', r.stdout)

    def s_client(self, version):
        """openssl s_client's handshake at one protocol version (the client's own floor lowered,
        so only the server can refuse): its exit status and output."""
        r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % self.srv.port,
                            version, "-cipher", "DEFAULT@SECLEVEL=0", "-CAfile", self.cert],
                           input="", capture_output=True, text=True, timeout=20)
        return r.returncode, r.stdout + r.stderr

    def test_only_tls_12_and_13(self):
        if not shutil.which("openssl"):
            self.skipTest("openssl is not installed")
        for version in ("-tls1_2", "-tls1_3"):
            rc, out = self.s_client(version)
            self.assertEqual(rc, 0, out)
            self.assertRegex(out, r"New, TLSv1\.[23],")
        for version in ("-tls1_1", "-tls1"):
            rc, out = self.s_client(version)
            self.assertNotEqual(rc, 0, out)
            self.assertNotRegex(out, r"New, TLSv1(\.1)?,")

    def test_python_client_and_errors(self):
        st, h, body = self.srv.request("GET", "/no/such")
        self.assertEqual(st, 404)
        self.assertEqual(json.loads(body)["error"]["code"], "not_found")

    def test_key_that_is_not_the_certificates(self):
        other = tempfile.mkdtemp(dir=self.tmp)
        _, key2 = make_cert(other)
        with open(key2, "w") as f:
            f.write("-----BEGIN PRIVATE KEY-----\nnot base64 at all\n-----END PRIVATE KEY-----\n")
        r = subprocess.run([servetest.MCACHE_SERVE, "--store", os.path.join(self.tmp, "s2"),
                            "--listen", "127.0.0.1:0", "--tls-cert", self.cert, "--tls-key",
                            key2], capture_output=True, text=True, timeout=20)
        self.assertEqual(r.returncode, 1, r)
        self.assertIn("could not listen", r.stderr)
        self.assertIn("TLS", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
