"""Live tests of storage/ (source_get/put/list) against a real S3-compatible
server (s3rver behind a SigV4-checking proxy) and a fixture HTTP server.

The C side is tests/storage/test_source_live.c (built by make); it reads its
configuration and cases from the environment (see that file). Binaries:
$SOURCE_LIVE_BIN (colon-separated) if set; else the one matching $IMGSEARCHD
(release, or asan when it ends in "-asan"); else every build that exists.
"""

import os
import subprocess
import time
import urllib.parse

import pytest

from services import FixtureHTTP, S3Server, REPO

JPEG = FixtureHTTP.JPEG


def _binaries():
    if os.environ.get("SOURCE_LIVE_BIN"):
        return os.environ["SOURCE_LIVE_BIN"].split(":")
    builds = ["release", "asan"]
    d = os.environ.get("IMGSEARCHD")
    if d:
        builds = ["asan"] if d.endswith("-asan") else ["release"]
    return [p for p in (os.path.join(REPO, "build", b, "tests", "storage", "test_source_live")
                        for b in builds) if os.path.exists(p)]


BINARIES = _binaries()
pytestmark = pytest.mark.skipif(not BINARIES, reason="test_source_live is not built")


@pytest.fixture(scope="module")
def s3():
    with S3Server(buckets=["b1", "pages"]) as s:
        s.put_object("b1", "a.jpg", JPEG)
        s.put_object("b1", "dir/x y&z+%.jpg", b"abc")
        s.put_object("b1", "big.bin", b"x" * 5000)
        yield s


@pytest.fixture(scope="module")
def web():
    with FixtureHTTP() as h:
        yield h


def run_cases(binary, cases, buckets="", allow="", fetch="2000,2000,3", timeout=120):
    env = dict(os.environ)
    env.update(SOURCE_LIVE_URLS="\n".join(cases), SOURCE_LIVE_BUCKETS=buckets,
               SOURCE_LIVE_ALLOW=allow, SOURCE_LIVE_FETCH=fetch)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    r = subprocess.run([binary], env=env, cwd=REPO, capture_output=True, text=True,
                       timeout=timeout)
    report = r.stdout + r.stderr
    assert r.returncode == 0 and "%d passed, 0 failed" % len(cases) in r.stdout, report
    return report


def s3_buckets(s3, secret=None):
    return "b|%s|b1|%s|%s;p|%s|pages|%s|%s" % (
        s3.endpoint, s3.access_key, secret or s3.secret_key,
        s3.endpoint, s3.access_key, secret or s3.secret_key)


@pytest.mark.parametrize("binary", BINARIES)
def test_s3_get_put_list(binary, s3):
    enc = urllib.parse.quote("dir/x y&z+%.jpg")
    run_cases(binary, [
        "get obs://b/a.jpg OK len=%d" % len(JPEG),
        "get https://b.obs.cn-north-4.myhuaweicloud.com/a.jpg OK len=%d" % len(JPEG),
        "get obs://b/%s OK len=3" % enc,
        "get obs://b/nope.jpg OBS_MISSING",
        "get obs://b/dir/nope/a.jpg OBS_MISSING",
        "get obs://b/big.bin OBS_TOO_BIG max=1000",
        "get obs://b/big.bin OK max=5000 len=5000",
        "get obs://unknown/a.jpg OBS_BAD_URL",
        "get obs://b/%2e%2e/a.jpg OBS_BAD_URL",
        "put obs://b/up/p.bin OK size=70000",
        "get obs://b/up/p.bin OK len=70000",
        "put obs://b/up/empty OK size=0",
        "get obs://b/up/empty OK len=0",
        "list obs://b/ OK keys=a.jpg,big.bin,dir/x%20y&z+%25.jpg,up/empty,up/p.bin",
        "list obs://b/up/ OK keys=up/empty,up/p.bin",
        "list obs://b/d OK keys=dir/x%20y&z+%25.jpg",
        "list obs://b/none/ OK keys=",
    ], buckets=s3_buckets(s3))
    # What the C side wrote is what the server stores.
    assert s3.get_object("b1", "up/p.bin") == bytes((i * 7) & 0xff for i in range(70000))


@pytest.mark.parametrize("binary", BINARIES)
def test_s3_wrong_secret(binary, s3):
    run_cases(binary, [
        "get obs://b/a.jpg OBS_FAILED",
        "put obs://b/denied.bin OBS_FAILED data=x",
        "list obs://b/ OBS_FAILED",
    ], buckets=s3_buckets(s3, secret="not-the-secret"))
    assert s3.get_object("b1", "denied.bin") is None


@pytest.mark.parametrize("binary", BINARIES)
def test_s3_unreachable(binary, s3):
    run_cases(binary, ["get obs://b/a.jpg OBS_FAILED ms<=10000"],
              buckets="b|http://127.0.0.1:9|b1|k|s")


def test_s3_list_pages(s3):
    # s3rver pages at 1000 keys: 1003 objects need a continuation token.
    names = ["k%04d" % i for i in range(1003)]
    if s3.get_object("pages", names[-1]) is None:
        for n in names:
            s3.put_object("pages", n, b"1")
    for binary in BINARIES:
        report = run_cases(binary, ["list obs://p/ OK keys=" + ",".join(names)],
                           buckets=s3_buckets(s3))
        assert "ok - list" in report


def fetch_cases(web):
    u = web.url
    return [
        "get %s OK len=%d" % (u("/image.jpg"), len(JPEG)),
        "get %s OK" % u("/image.jpg?ct=application/octet-stream"),
        "get %s URL_FAILED" % u("/text"),
        # image/* is trusted whatever the body (the decoder judges it later)
        "get %s OK" % u("/text?ct=image/jpeg"),
        "get %s URL_FAILED ms<=4000" % u("/stall"),
        "get %s URL_FAILED ms<=3000" % u("/redirect-loop"),
        "get %s OK" % u("/redirect/2"),
        "get %s OK" % u("/redirect/3"),
        "get %s URL_FAILED" % u("/redirect/5"),
        "get %s URL_FAILED max=1000000 ms<=3000" % u("/big"),
        "get %s URL_FAILED max=1000000 ms<=3000" % u("/big-declared"),
        "get %s URL_FAILED" % u("/404"),
        "get %s URL_NOT_ALLOWED" % u("/redirect-to?u=" + urllib.parse.quote(
            "ftp://127.0.0.1/a.jpg", safe="")),
        "get %s URL_NOT_ALLOWED" % u("/redirect-to?u=" + urllib.parse.quote(
            "http://127.0.0.2:%d/image.jpg" % web.port, safe="")),
        "get ftp://127.0.0.1/a.jpg URL_NOT_ALLOWED",
        "get file:///etc/passwd URL_NOT_ALLOWED",
        "get http://127.0.0.1:9/closed.jpg URL_FAILED ms<=3000",
    ]


@pytest.mark.parametrize("binary", BINARIES)
def test_fetch(binary, web):
    cases = fetch_cases(web)
    t0 = time.monotonic()
    run_cases(binary, cases, allow="127.0.0.1/32", fetch="2000,2000,3")
    assert time.monotonic() - t0 < 30
    # The endless bodies were dropped early, not buffered.
    assert web.bytes_sent("/big") < 64 << 20
    assert web.bytes_sent("/big-declared") < 64 << 20


@pytest.mark.parametrize("binary", BINARIES)
def test_fetch_denied_by_default(binary, web):
    before = list(web.requests)
    run_cases(binary, [
        "get %s URL_NOT_ALLOWED" % web.url("/image.jpg?denied=1"),
        "get http://localhost:%d/image.jpg URL_NOT_ALLOWED" % web.port,
        "get http://[::ffff:127.0.0.1]:%d/image.jpg URL_NOT_ALLOWED" % web.port,
    ])
    assert web.requests == before  # no connection was even made


@pytest.mark.parametrize("binary", BINARIES)
def test_fetch_redirect_limit_zero(binary, web):
    run_cases(binary, [
        "get %s URL_FAILED" % web.url("/redirect/1"),
        "get %s OK" % web.url("/redirect/0"),
    ], allow="127.0.0.0/8", fetch="2000,2000,0")
