"""A synthetic S3 bucket for listing tests: ListObjectsV2 (prefix,
continuation-token, start-after, max-keys) and GetObject over keys held in
memory, so a bucket of 100k objects costs no files. Signatures are not
checked (services.S3Server does that); `fail` answers every request with an
S3 error, `page_delay` slows each list page, `lists` records the queries."""
import bisect
import http.server
import threading
import urllib.parse
from xml.sax.saxutils import escape


class FakeS3:
    def __init__(self, bucket, keys, objects=None, page_delay=0.0):
        self.bucket = bucket
        self.keys = sorted(keys)  # ASCII keys: str order is byte order
        self.objects = objects or {}  # key -> bytes; other keys hold b"x"
        self.page_delay = page_delay
        self.fail = None  # (status, code) or None
        self.lists = []  # query dict of each list request, in order
        self.lock = threading.Lock()

    @property
    def endpoint(self):
        return "http://127.0.0.1:%d" % self.server.server_address[1]

    def config(self, name):
        return (f"[bucket:{name}]\ntype = s3\nendpoint = {self.endpoint}\nremote_bucket = {self.bucket}\n"
                "access_key = FAKEAK\nsecret_key = FAKESK\nregion = us-east-1\n")

    def list_count(self):
        with self.lock:
            return len(self.lists)

    def _page(self, q):
        prefix = q.get("prefix", "")
        after = q.get("start-after", "")
        if "continuation-token" in q:
            after = bytes.fromhex(q["continuation-token"]).decode()
        max_keys = int(q.get("max-keys", "1000"))
        i = max(bisect.bisect_left(self.keys, prefix), bisect.bisect_right(self.keys, after))
        page = []
        while i < len(self.keys) and self.keys[i].startswith(prefix) and len(page) < max_keys:
            page.append(self.keys[i])
            i += 1
        more = i < len(self.keys) and self.keys[i].startswith(prefix)
        parts = ['<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult>',
                 "<Name>%s</Name><Prefix>%s</Prefix><KeyCount>%d</KeyCount>" % (
                     escape(self.bucket), escape(prefix), len(page)),
                 "<IsTruncated>%s</IsTruncated>" % ("true" if more else "false")]
        for k in page:
            parts.append("<Contents><Key>%s</Key><Size>%d</Size></Contents>" % (
                escape(k), len(self.objects.get(k, b"x"))))
        if more:
            parts.append("<NextContinuationToken>%s</NextContinuationToken>" %
                         page[-1].encode().hex())
        parts.append("</ListBucketResult>")
        return "".join(parts).encode()

    def __enter__(self):
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _send(self, status, body, ctype="application/xml"):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _error(self, status, code):
                self._send(status, ("<Error><Code>%s</Code><Message>fake</Message></Error>"
                                    % code).encode())

            def do_GET(self):
                url = urllib.parse.urlsplit(self.path)
                path = urllib.parse.unquote(url.path)
                bucket, _, key = path.lstrip("/").partition("/")
                q = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
                if fake.fail:
                    return self._error(*fake.fail)
                if bucket != fake.bucket:
                    return self._error(404, "NoSuchBucket")
                if not key:
                    with fake.lock:
                        fake.lists.append(q)
                    if fake.page_delay:
                        threading.Event().wait(fake.page_delay)
                    return self._send(200, fake._page(q))
                i = bisect.bisect_left(fake.keys, key)
                if i == len(fake.keys) or fake.keys[i] != key:
                    return self._error(404, "NoSuchKey")
                self._send(200, fake.objects.get(key, b"x"), "application/octet-stream")

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)
        return False
