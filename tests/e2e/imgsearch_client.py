"""HTTP client for the end-to-end tests: plain, X-Auth-Token, or AK/SK signed
exactly like the Huawei Cloud SDKs (SDK-HMAC-SHA256), using only the stdlib."""
import hashlib
import hmac
import http.client
import json
import re
import time
import urllib.parse


def sdk_date(t=None):
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(t if t is not None else time.time()))


def _escape(s):
    return urllib.parse.quote(s, safe="-_.~")


def canonical_request(method, path, query, headers, signed, body):
    segs = [_escape(urllib.parse.unquote(p)) for p in path.split("/")]
    uri = "/".join(segs)
    if not uri.endswith("/"):
        uri += "/"
    q = "&".join(f"{_escape(k)}={_escape(v)}" for k, v in sorted(query))
    lower = {k.lower(): v for k, v in headers.items()}
    ch = "".join(f"{h}:{lower[h].strip()}\n" for h in signed)
    return "\n".join([method, uri, q, ch, ";".join(signed),
                      hashlib.sha256(body).hexdigest()])


def sign(method, path, headers, body, ak, sk, query=()):
    """Adds Authorization to headers (which must hold X-Sdk-Date and Host)."""
    signed = sorted(h.lower() for h in headers if "_" not in h)
    creq = canonical_request(method, path, query, headers, signed, body)
    sts = "SDK-HMAC-SHA256\n%s\n%s" % (headers["X-Sdk-Date"],
                                       hashlib.sha256(creq.encode()).hexdigest())
    sig = hmac.new(sk.encode(), sts.encode(), hashlib.sha256).hexdigest()
    headers["Authorization"] = (f"SDK-HMAC-SHA256 Access={ak}, "
                                f"SignedHeaders={';'.join(signed)}, Signature={sig}")
    return headers


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<Response {self.status} {self.body[:300]!r}>"


class Client:
    """auth: None, ("token", TOKEN) or ("aksk", AK, SK)."""

    def __init__(self, host, port, auth=None, project="proj1", timeout=60, keepalive=False):
        self.host, self.port, self.auth, self.project = host, port, auth, project
        self.timeout = timeout
        # keepalive: one HTTP/1.1 connection reused across requests, as the SDKs' sessions
        # do; by default every request has a connection of its own.
        self.keepalive = keepalive
        self._conn = None

    def with_auth(self, auth, project=None):
        return Client(self.host, self.port, auth, project or self.project, self.timeout,
                      self.keepalive)

    def request(self, method, path, body=None, headers=None, raw=None, sign_date=None):
        if raw is not None:
            data = raw
        elif body is None:
            data = b""
        else:
            data = json.dumps(body).encode()
        h = {"Content-Type": "application/json", "Host": f"{self.host}:{self.port}"}
        if self.auth and self.auth[0] == "token":
            h["X-Auth-Token"] = self.auth[1]
        elif self.auth and self.auth[0] == "aksk":
            h["X-Sdk-Date"] = sign_date or sdk_date()
            h["X-Project-Id"] = self.project
            sign(method, path.split("?")[0], h, data, self.auth[1], self.auth[2],
                 urllib.parse.parse_qsl(path.split("?")[1]) if "?" in path else ())
        h.update(headers or {})
        body = data if (data or method in ("POST", "PUT")) else None
        if self.keepalive:
            return self._keepalive_request(method, path, body, h)
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            conn.request(method, path, body=body, headers=h)
            r = conn.getresponse()
            return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        finally:
            conn.close()

    def _keepalive_request(self, method, path, body, h):
        # A reused connection the server closed while idle fails before any answer: send
        # again once on a new one (what urllib3 does); a fresh connection's failure is final.
        for attempt in (0, 1):
            reused = self._conn is not None
            if not reused:
                self._conn = http.client.HTTPConnection(self.host, self.port,
                                                        timeout=self.timeout)
            try:
                self._conn.request(method, path, body=body, headers=h)
                r = self._conn.getresponse()
                resp = Response(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
                if r.will_close:
                    self.close()
                return resp
            except (http.client.RemoteDisconnected, BrokenPipeError):
                # The server closed the idle connection before reading this request (no
                # answer, or the send itself failed). A reset after the request went out
                # may follow a processed write: that one is not sent again.
                self.close()
                if not reused or attempt:
                    raise
            except Exception:
                self.close()
                raise

    def close(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # Cloud API helpers.
    def v2(self, service, op, body, **kw):
        return self.request("POST", f"/v2/{self.project}/mms/{service}/{op}", body, **kw)

    def v1(self, method, suffix, body=None, **kw):
        return self.request(method, f"/v1/{self.project}{suffix}", body, **kw)

    def admin(self, method, suffix, body=None, **kw):
        return self.request(method, f"/admin/v1/{self.project}{suffix}", body, **kw)

    def existed(self, service, item_id):
        """data/check's answer: whether the item exists (the call must succeed)."""
        r = self.v2(service, "data/check", {"item_id": item_id})
        assert r.status == 200, r
        return r.json["data"]["existed"]

    def metric(self, name):
        """Sum of every series of a /metrics counter or gauge (0 when absent)."""
        text = self.request("GET", "/metrics").body.decode()
        return sum(float(v) for v in
                   re.findall(r"^%s(?:\{[^}]*\})? (\S+)$" % re.escape(name), text, re.M))

    def wait_metric(self, name, value, timeout=60):
        """Polls a metric until it equals value (e.g. imgsearch_index_exact
        reaching 0 once a background switch to the ANN index has swapped)."""
        deadline = time.time() + timeout
        while True:
            got = self.metric(name)
            if got == value or time.time() > deadline:
                return got
            time.sleep(0.05)

    def create_instance(self, name, tags=(), num_tags=(), search_types=None):
        body = {"name": name, "custom_tags": list(tags), "custom_num_tags": list(num_tags)}
        if search_types:
            body["search_types"] = search_types
        r = self.admin("POST", "/instances", body)
        assert r.status == 201, r
        return r.json
