"""Live helper services for tests, on 127.0.0.1 free ports (stdlib only).

Two context managers, usable from pytest fixtures or plain code:

    with S3Server(buckets=["b1"]) as s3:
        s3.endpoint        # "http://127.0.0.1:PORT" (path-style S3, SigV4-checked)
        s3.backend_endpoint  # s3rver itself (no signature check)
        s3.access_key      # "S3RVER"
        s3.secret_key      # "S3RVER"
        s3.region          # "us-east-1"
        s3.root_dir        # s3rver's data directory (a temp dir, removed on exit)
        s3.put_object("b1", "dir/a.jpg", data)      # SigV4-signed PUT
        s3.get_object("b1", "dir/a.jpg") -> bytes   # None when missing
        s3.delete_object("b1", "dir/a.jpg")
        s3.create_bucket("b2")

    with FixtureHTTP(files_dir=None) as h:
        h.url("/image.jpg")  # "http://127.0.0.1:PORT/image.jpg"
        h.add("/x.png", data, "image/png")  # serve bytes at a path
        h.requests           # list of request paths seen, in order
        h.bytes_sent("/big") # body bytes written for a route so far

FixtureHTTP routes (any route takes ?ct=TYPE to override Content-Type):
    /image.jpg          a small valid JPEG (FixtureHTTP.JPEG), image/jpeg
    /file/REL           REL under files_dir; Content-Type guessed from the name
    /stall              200 + image/jpeg headers and 10 body bytes, then silence
                        (until the server stops or ?s=SECONDS, default 60)
    /redirect-loop      302 to itself, forever
    /redirect/N         302 to /redirect/N-1; /redirect/0 serves /image.jpg
    /redirect-to?u=URL  302 to URL (any scheme or host)
    /big                200 image/jpeg, no Content-Length, endless body
    /big-declared       200 image/jpeg with Content-Length: 10 GiB, endless body
    /text               200 text/html, an HTML page (not an image)
    /404                404
    anything added with add(); anything else is 404.

    with PgCluster() as pg:
        pg.dsn                 # "host=127.0.0.1 port=PORT user=imgsearch dbname=postgres"
        pg.create_database("x")  # fresh (dropped first if it exists)
        pg.dsn_for("x")        # pg.dsn naming database x instead
        pg.psql("x", "SELECT 1") -> stdout text
        pg.pause(); pg.resume()  # the server goes away and comes back (same port, data)

PgCluster is a throwaway PostgreSQL cluster (tests/pg_cluster.sh: initdb in
a temp dir, 127.0.0.1 only, trust auth, fsync off), stopped and removed on
exit. With dsn= it wraps an existing server instead and starts nothing.

s3rver 3.7.1 checks only the access key of a SigV4 request, never the
signature. So by default (verify_signatures=True) S3Server puts a small proxy
in front of it that recomputes every request's SigV4 signature with
secret_key (and checks x-amz-content-sha256 against the body) and answers
403 SignatureDoesNotMatch on a mismatch; s3.endpoint is that proxy.

S3Server installs s3rver@3.7.1 with npm on first use into
$IMGSEARCH_CACHE/npm-s3rver, or <repo>/.cache/npm-s3rver (gitignored), and
runs it with node. ensure_s3rver() does just the install and returns the
script path (handy to pre-install in CI).
"""

import base64
import datetime
import fcntl
import hashlib
import hmac
import http.client
import http.server
import mimetypes
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
S3RVER_VERSION = "3.7.1"


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cache_dir():
    root = os.environ.get("IMGSEARCH_CACHE")
    if root:
        return os.path.join(root, "npm-s3rver")
    return os.path.join(REPO, ".cache", "npm-s3rver")


def ensure_s3rver():
    """Installs s3rver into the cache once (file-locked); returns bin path."""
    d = cache_dir()
    script = os.path.join(d, "node_modules", "s3rver", "bin", "s3rver.js")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, ".install.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        pkg = os.path.join(d, "node_modules", "s3rver", "package.json")
        installed = None
        if os.path.exists(pkg):
            import json

            with open(pkg) as f:
                installed = json.load(f).get("version")
        if installed != S3RVER_VERSION:
            subprocess.run(
                ["npm", "install", "--prefix", d, "--no-audit", "--no-fund",
                 "--loglevel=error", "s3rver@" + S3RVER_VERSION],
                check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
    return script


def _wait_port(port, proc, timeout, log_path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            with open(log_path, errors="replace") as f:
                raise RuntimeError("s3rver exited: " + f.read()[-2000:])
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/")
            conn.getresponse().read()
            conn.close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("s3rver did not answer on port %d" % port)


def _sigv4_key(secret, day, region, service="s3"):
    k = ("AWS4" + secret).encode()
    for part in (day, region, service, "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    return k


def _uri_encode(s, keep_slash):
    return urllib.parse.quote(s, safe="-_.~" + ("/" if keep_slash else ""))


def sigv4_check(method, raw_path, headers, body, secret):
    """None when the request's SigV4 Authorization is right, else a reason."""
    auth = headers.get("authorization", "")
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        return "no SigV4 authorization"
    fields = {}
    for part in auth[len("AWS4-HMAC-SHA256 "):].split(","):
        k, _, v = part.strip().partition("=")
        fields[k] = v
    try:
        _, day, region, service, _ = fields["Credential"].split("/")
        signed = fields["SignedHeaders"].split(";")
        given = fields["Signature"]
    except (KeyError, ValueError):
        return "malformed authorization"
    payload = headers.get("x-amz-content-sha256", "")
    if payload != "UNSIGNED-PAYLOAD" and payload != hashlib.sha256(body).hexdigest():
        return "x-amz-content-sha256 does not match the body"
    path, _, query = raw_path.partition("?")
    # S3 canonical URI: each segment URI-encoded once.
    curi = "/".join(_uri_encode(urllib.parse.unquote(seg), False) for seg in path.split("/"))
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
    cq = "&".join("%s=%s" % (_uri_encode(k, False), _uri_encode(v, False))
                  for k, v in sorted(pairs))
    ch = "".join("%s:%s\n" % (h, " ".join(headers.get(h, "").split())) for h in signed)
    canon = "\n".join([method, curi, cq, ch, ";".join(signed), payload])
    scope = "/".join([day, region, service, "aws4_request"])
    to_sign = "\n".join(["AWS4-HMAC-SHA256", headers.get("x-amz-date", ""), scope,
                         hashlib.sha256(canon.encode()).hexdigest()])
    want = hmac.new(_sigv4_key(secret, day, region, service), to_sign.encode(),
                    hashlib.sha256).hexdigest()
    if not hmac.compare_digest(want, given):
        return "signature mismatch; canonical request was:\n" + canon
    return None


class _SigV4Proxy:
    """Checks SigV4 on each request, then forwards it to s3rver."""

    def __init__(self, backend_port, secret):
        proxy = self
        self.backend_port = backend_port
        self.secret = secret
        self.rejected = []  # reasons, for debugging failed tests

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _any(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                hdrs = {k.lower(): v for k, v in self.headers.items()}
                why = sigv4_check(self.command, self.path, hdrs, body, proxy.secret)
                if why:
                    proxy.rejected.append(why)
                    err = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>'
                           b"SignatureDoesNotMatch</Code><Message>The request signature we "
                           b"calculated does not match the signature you provided."
                           b"</Message></Error>")
                    self.send_response(403)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(err)))
                    self.end_headers()
                    self.wfile.write(err)
                    return
                conn = http.client.HTTPConnection("127.0.0.1", proxy.backend_port, timeout=60)
                try:
                    fwd = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("connection", "expect")}
                    conn.request(self.command, self.path, body=body or None, headers=fwd)
                    resp = conn.getresponse()
                    data = resp.read()
                finally:
                    conn.close()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("connection", "transfer-encoding", "content-length",
                                         "keep-alive", "date", "server"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any

        self.server = _FixtureServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


class S3Server:
    """An s3rver process with the given buckets; see the module docstring."""

    def __init__(self, buckets=("b1",), access_key="S3RVER", secret_key="S3RVER",
                 region="us-east-1", startup_timeout=30, verify_signatures=True):
        self.buckets = list(buckets)
        # s3rver's built-in credentials; other values would be refused.
        self.access_key = access_key
        self.secret_key = secret_key
        self.region = region
        self.startup_timeout = startup_timeout
        self.verify_signatures = verify_signatures
        self.proxy = None
        self.backend_endpoint = None
        self.proc = None
        self.root_dir = None
        self.port = None
        self.endpoint = None
        self._log = None

    def __enter__(self):
        script = ensure_s3rver()
        self.root_dir = tempfile.mkdtemp(prefix="imgsearch-s3rver-")
        log_path = os.path.join(self.root_dir, ".s3rver.log")
        last_err = None
        for _ in range(3):  # another process may grab the port first
            self.port = free_port()
            # s3rver's ListObjectsV2 continuation tokens use DES, which
            # OpenSSL 3 only offers through its legacy provider.
            args = ["node", "--openssl-legacy-provider", script, "-d", self.root_dir, "-p", str(self.port), "-a", "127.0.0.1",
                    "--no-vhost-buckets"]
            for b in self.buckets:
                args += ["--configure-bucket", b]
            self._log = open(log_path, "ab")
            self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
            try:
                _wait_port(self.port, self.proc, self.startup_timeout, log_path)
                self.backend_endpoint = "http://127.0.0.1:%d" % self.port
                self.endpoint = self.backend_endpoint
                if self.verify_signatures:
                    self.proxy = _SigV4Proxy(self.port, self.secret_key)
                    self.endpoint = "http://127.0.0.1:%d" % self.proxy.port
                return self
            except RuntimeError as e:
                last_err = e
                self._stop_proc()
        shutil.rmtree(self.root_dir, ignore_errors=True)
        raise last_err

    def _stop_proc(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self._log:
            self._log.close()
            self._log = None

    def __exit__(self, *exc):
        if self.proxy:
            self.proxy.close()
            self.proxy = None
        self._stop_proc()
        if self.root_dir:
            shutil.rmtree(self.root_dir, ignore_errors=True)
        return False

    # --- a minimal SigV4 client (path-style) -------------------------------

    def request(self, method, bucket, key="", body=b"", query=None, secret_key=None):
        """Signed request; returns (status, body bytes)."""
        path = "/" + urllib.parse.quote(bucket, safe="")
        if key:
            path += "/" + urllib.parse.quote(key, safe="/~")
        q = sorted((query or {}).items())
        cq = "&".join("%s=%s" % (urllib.parse.quote(k, safe="~"), urllib.parse.quote(v, safe="~"))
                      for k, v in q)
        now = datetime.datetime.now(datetime.timezone.utc)
        amz_date = now.strftime("%Y%m%dT%H%M%SZ")
        day = now.strftime("%Y%m%d")
        payload = hashlib.sha256(body).hexdigest()
        port = int(self.endpoint.rsplit(":", 1)[1])
        host = "127.0.0.1:%d" % port
        headers = {"host": host, "x-amz-content-sha256": payload, "x-amz-date": amz_date}
        signed = ";".join(sorted(headers))
        canon = "\n".join([method, path, cq] + ["%s:%s" % (k, headers[k]) for k in sorted(headers)]
                          + ["", signed, payload])
        scope = "%s/%s/s3/aws4_request" % (day, self.region)
        to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                             hashlib.sha256(canon.encode()).hexdigest()])
        k = ("AWS4" + (secret_key or self.secret_key)).encode()
        for part in (day, self.region, "s3", "aws4_request"):
            k = hmac.new(k, part.encode(), hashlib.sha256).digest()
        sig = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
        headers["Authorization"] = ("AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, "
                                    "Signature=%s" % (self.access_key, scope, signed, sig))
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            conn.request(method, path + ("?" + cq if cq else ""), body=body or None,
                         headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def put_object(self, bucket, key, data):
        status, body = self.request("PUT", bucket, key, data)
        if status != 200:
            raise RuntimeError("PUT %s/%s: %d %r" % (bucket, key, status, body[:300]))

    def get_object(self, bucket, key):
        status, body = self.request("GET", bucket, key)
        if status == 404:
            return None
        if status != 200:
            raise RuntimeError("GET %s/%s: %d %r" % (bucket, key, status, body[:300]))
        return body

    def delete_object(self, bucket, key):
        self.request("DELETE", bucket, key)

    def create_bucket(self, bucket):
        status, body = self.request("PUT", bucket)
        if status != 200:
            raise RuntimeError("create bucket %s: %d %r" % (bucket, status, body[:300]))


class _FixtureServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class FixtureHTTP:
    """A threaded HTTP server with test routes; see the module docstring."""

    JPEG = base64.b64decode(
        "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDABALDA4MChAODQ4SERATGCgaGBYWGDEjJR0oOjM9PDkzODdASFxOQERX"
        "RTc4UG1RV19iZ2hnPk1xeXBkeFxlZ2P/2wBDARESEhgVGC8aGi9jQjhCY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2Nj"
        "Y2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2P/wAARCAAIAAgDASIAAhEBAxEB/8QAHwAAAQUBAQEBAQEAAAAAAAAA"
        "AAECAwQFBgcICQoL/8QAtRAAAgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAk"
        "M2JyggkKFhcYGRolJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKT"
        "lJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/8QA"
        "HwEAAwEBAQEBAQEBAQAAAAAAAAECAwQFBgcICQoL/8QAtREAAgECBAQDBAcFBAQAAQJ3AAECAxEEBSExBhJBUQdh"
        "cRMiMoEIFEKRobHBCSMzUvAVYnLRChYkNOEl8RcYGRomJygpKjU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVmZ2hp"
        "anN0dXZ3eHl6goOEhYaHiImKkpOUlZaXmJmaoqOkpaanqKmqsrO0tba3uLm6wsPExcbHyMnK0tPU1dbX2Nna4uPk"
        "5ebn6Onq8vP09fb3+Pn6/9oADAMBAAIRAxEAPwDHooorhPqD/9k=")

    def __init__(self, files_dir=None):
        self.files_dir = files_dir
        self.requests = []
        self.routes = {}
        self.port = None
        self._sent = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = None
        self._thread = None

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def add(self, path, data, content_type="application/octet-stream"):
        self.routes[path] = (data, content_type)

    def bytes_sent(self, path):
        with self._lock:
            return self._sent.get(path, 0)

    def _count(self, path, n):
        with self._lock:
            self._sent[path] = self._sent.get(path, 0) + n

    def __enter__(self):
        fixture = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # one response per connection

            def log_message(self, *args):
                pass

            def do_GET(self):
                u = urllib.parse.urlsplit(self.path)
                q = dict(urllib.parse.parse_qsl(u.query))
                with fixture._lock:
                    fixture.requests.append(u.path)
                try:
                    fixture._route(self, u.path, q)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up, as it should for /big

            do_HEAD = do_GET

        self._server = _FixtureServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
        return False

    def _send(self, h, status, body, ctype, path, length=True, extra=None):
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        if length:
            h.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            h.send_header(k, v)
        h.end_headers()
        if h.command != "HEAD" and body:
            h.wfile.write(body)
            self._count(path, len(body))

    def _route(self, h, path, q):
        ct = q.get("ct")
        if path in self.routes:
            data, rct = self.routes[path]
            return self._send(h, 200, data, ct or rct, path)
        if path == "/image.jpg":
            return self._send(h, 200, self.JPEG, ct or "image/jpeg", path)
        if path.startswith("/file/") and self.files_dir:
            rel = urllib.parse.unquote(path[len("/file/"):])
            full = os.path.realpath(os.path.join(self.files_dir, rel))
            root = os.path.realpath(self.files_dir)
            if full.startswith(root + os.sep) and os.path.isfile(full):
                with open(full, "rb") as f:
                    data = f.read()
                guess = mimetypes.guess_type(full)[0] or "application/octet-stream"
                return self._send(h, 200, data, ct or guess, path)
            return self._send(h, 404, b"not found", "text/plain", path)
        if path == "/stall":
            h.send_response(200)
            h.send_header("Content-Type", ct or "image/jpeg")
            h.send_header("Content-Length", "100000")
            h.end_headers()
            h.wfile.write(self.JPEG[:10])
            h.wfile.flush()
            self._stopping.wait(float(q.get("s", "60")))
            return None
        if path == "/redirect-loop":
            return self._send(h, 302, b"", "text/plain", path,
                              extra={"Location": "/redirect-loop"})
        if path == "/redirect-to":
            return self._send(h, 302, b"", "text/plain", path, extra={"Location": q.get("u", "/")})
        if path.startswith("/redirect/"):
            try:
                n = int(path[len("/redirect/"):])
            except ValueError:
                return self._send(h, 404, b"bad n", "text/plain", path)
            if n <= 0:
                return self._send(h, 200, self.JPEG, ct or "image/jpeg", path)
            return self._send(h, 302, b"", "text/plain", path,
                              extra={"Location": "/redirect/%d" % (n - 1)})
        if path in ("/big", "/big-declared"):
            h.send_response(200)
            h.send_header("Content-Type", ct or "image/jpeg")
            if path == "/big-declared":
                h.send_header("Content-Length", str(10 << 30))
            h.end_headers()
            chunk = self.JPEG + b"\0" * (65536 - len(self.JPEG))
            while not self._stopping.is_set():
                h.wfile.write(chunk)
                self._count(path, len(chunk))
                chunk = b"\0" * 65536
            return None
        if path == "/text":
            return self._send(h, 200, b"<html><body>not an image</body></html>",
                              ct or "text/html; charset=utf-8", path)
        return self._send(h, 404, b"not found", "text/plain", path)


class PgCluster:
    """A throwaway PostgreSQL cluster; see the module docstring."""

    SCRIPT = os.path.join(REPO, "tests", "pg_cluster.sh")

    def __init__(self, dsn=None):
        self.dsn = dsn
        self.owned = dsn is None
        self.dir = None

    def __enter__(self):
        if self.owned:
            # Readable by the postgres user the server runs as (mkdtemp's
            # 0700 is not); pg_cluster.sh makes the cluster dir inside it.
            self.parent = tempfile.mkdtemp(prefix="imgsearch-pg-", dir="/tmp")
            os.chmod(self.parent, 0o755)
            self.dir = os.path.join(self.parent, "c")
            out = subprocess.run([self.SCRIPT, "start", self.dir], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, timeout=120)
            if out.returncode != 0:
                shutil.rmtree(self.parent, ignore_errors=True)
                raise RuntimeError("pg_cluster.sh start failed: " + out.stderr.decode()[-2000:])
            self.dsn = out.stdout.decode().strip().splitlines()[-1]
        return self

    def __exit__(self, *exc):
        if self.owned and self.dir:
            subprocess.run([self.SCRIPT, "stop", self.dir], timeout=120)
            shutil.rmtree(self.parent, ignore_errors=True)
            self.dir = None
        return False

    def pause(self):
        subprocess.run([self.SCRIPT, "pause", self.dir], check=True, timeout=120)

    def resume(self):
        subprocess.run([self.SCRIPT, "resume", self.dir], check=True, timeout=120)

    def dsn_for(self, db):
        return "%s dbname=%s" % (self.dsn, db)

    def psql(self, db, sql):
        out = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                              self.dsn_for(db), "-c", sql], check=True, timeout=60,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        return out.stdout.decode().strip()

    def create_database(self, db, fresh=True):
        """Creates database db; fresh=False keeps one that exists."""
        if not fresh and self.psql("postgres", "SELECT 1 FROM pg_database WHERE datname = '%s'"
                                   % db) == "1":
            return
        self.psql("postgres", "DROP DATABASE IF EXISTS %s WITH (FORCE)" % db)
        self.psql("postgres", "CREATE DATABASE %s" % db)
