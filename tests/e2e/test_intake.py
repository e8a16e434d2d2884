"""Image intake end to end: every source (base64, http(s) URL, local object
store, S3-compatible store) and every error class, against the real
imgsearchd, a real S3-compatible server (s3rver) and a fixture HTTP server,
all on 127.0.0.1 and started by the tests."""
import base64
import os
import time
import urllib.parse

import pytest
from images import b64, encode, scene
from services import FixtureHTTP, S3Server

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FIX = os.path.join(ROOT, "tests", "fixtures", "images")


@pytest.fixture(scope="module")
def env():
    from conftest import Server
    files = {"photo.jpg": encode(scene(1, 400, 300)), "photo.png": encode(scene(2), "PNG"),
             "photo.bmp": encode(scene(3), "BMP"), "photo.webp": encode(scene(4), "WEBP"),
             "huge.png": open(os.path.join(FIX, "png_huge_header.png"), "rb").read()}
    big = b"\xff\xd8\xff\xe0" + os.urandom(5 * 1024 * 1024 - 3)
    with S3Server(buckets=["s3b"]) as s3, FixtureHTTP() as http:
        for k, v in files.items():
            http.add("/" + k, v, "image/" + k.split(".")[1])
            s3.put_object("s3b", "dir/" + k, v)
        http.add("/big5.jpg", big, "image/jpeg")
        s3.put_object("s3b", "big5.jpg", big)
        local = os.path.join(os.path.dirname(s3.root_dir), "local-" + str(os.getpid()))
        os.makedirs(os.path.join(local, "sub"), exist_ok=True)
        for k, v in files.items():
            with open(os.path.join(local, "sub", k), "wb") as f:
                f.write(v)
        with open(os.path.join(local, "big5.jpg"), "wb") as f:
            f.write(big)
        extra = (f"[bucket:photos]\ntype = local\nroot = {local}\n"
                 f"[bucket:s3b]\ntype = s3\nendpoint = {s3.endpoint}\n"
                 f"access_key = {s3.access_key}\nsecret_key = {s3.secret_key}\n"
                 f"region = {s3.region}\n"
                 "[fetch]\nallow = 127.0.0.1/32\nconnect_timeout_ms = 2000\n"
                 "timeout_ms = 3000\n")
        srv = Server(extra=extra).start()
        c = srv.client()
        c.create_instance("intake", tags=["src"])
        c.v1("POST", "/service", {"name": "intakev1", "model": "common-search"})
        yield {"c": c, "http": http, "s3": s3, "local": local, "srv": srv}
        srv.stop()


def add(env, url, item="x"):
    return env["c"].v2("intake", "data/add", {"item_id": item, "image_url": url, "force": True})


def search_first(env, img):
    r = env["c"].v2("intake", "search", {"search_type": "IMAGE", "image_base64": b64(img),
                                         "limit": 1})
    return r.json["data"]["items"][0]["id"]


def test_http_url_every_format(env):
    for i, ext in enumerate(("jpg", "png", "bmp", "webp")):
        r = add(env, env["http"].url("/photo." + ext), "http-" + ext)
        assert r.status == 200, (ext, r)
    assert search_first(env, scene(4)) == "http-webp"


def test_local_object_store_every_format_both_forms(env):
    for ext in ("jpg", "png", "bmp", "webp"):
        r = add(env, "obs://photos/sub/photo." + ext, "local-obs-" + ext)
        assert r.status == 200, (ext, r)
        r = add(env, "https://photos.obs.cn-north-4.myhuaweicloud.com/sub/photo." + ext,
                "local-https-" + ext)
        assert r.status == 200, (ext, r)
    assert search_first(env, scene(2)) in ("local-https-png", "local-obs-png", "http-png")


def test_s3_object_store_every_format(env):
    for ext in ("jpg", "png", "bmp", "webp"):
        r = add(env, "obs://s3b/dir/photo." + ext, "s3-" + ext)
        assert r.status == 200, (ext, r)
    r = add(env, "https://s3b.obs.cn-north-4.myhuaweicloud.com/dir/photo.webp", "s3-https")
    assert r.status == 200, r


def test_search_by_url(env):
    r = env["c"].v2("intake", "search", {"search_type": "IMAGE", "limit": 1,
                                         "image_url": "obs://s3b/dir/photo.jpg"})
    assert r.status == 200 and r.json["data"]["items"][0]["score"] > 0.99


def test_data_uri_prefix_and_whitespace(env):
    raw = b64(scene(5))
    wrapped = "data:image/jpeg;base64," + "\n".join(raw[i:i + 76] for i in range(0, len(raw), 76))
    r = env["c"].v2("intake", "data/add", {"item_id": "datauri", "image_base64": wrapped})
    assert r.status == 200, r


def expect(r, code, status=400):
    assert r.status == status and r.json["error_code"] == code, r


def test_url_errors(env):
    h = env["http"]
    expect(add(env, "ftp://127.0.0.1/a.jpg"), "ModelArts.4601")
    expect(add(env, "file:///etc/passwd"), "ModelArts.4601")
    expect(add(env, h.url("/404")), "ModelArts.4603")
    expect(add(env, h.url("/text")), "ModelArts.4603")
    expect(add(env, h.url("/redirect-loop")), "ModelArts.4603")
    expect(add(env, h.url("/redirect/5")), "ModelArts.4603")
    two_hops = h.url("/redirect-to?u=" + urllib.parse.quote("/redirect-to?u=/photo.jpg"))
    assert add(env, two_hops).status == 200
    expect(add(env, h.url("/big")), "ModelArts.4603")
    expect(add(env, h.url("/big5.jpg")), "ModelArts.4603")
    t0 = time.time()
    expect(add(env, h.url("/stall")), "ModelArts.4603")
    assert time.time() - t0 < 10
    expect(add(env, "http://127.0.0.1:1/nothing.jpg"), "ModelArts.4603")
    r = add(env, h.url("/text"))
    assert r.json["error_msg"] == "Obtaining the file from the URL failed."


def test_url_decode_errors(env):
    r = add(env, env["http"].url("/huge.png"))
    assert r.status == 400 and r.json["error_msg"] == "Invalid parameter: image_url"


def test_loopback_denied_by_default(make_server):
    with FixtureHTTP() as h:
        s = make_server()
        c = s.client()
        c.create_instance("deny")
        r = c.v2("deny", "data/add", {"item_id": "a", "image_url": h.url("/image.jpg")})
        expect(r, "ModelArts.4601")
        assert not h.requests  # the server never connected


def test_object_store_errors(env):
    expect(add(env, "obs://nosuchbucket/a.jpg"), "ModelArts.4703")
    expect(add(env, "https://nosuch.obs.cn-north-4.myhuaweicloud.com/a.jpg"), "ModelArts.4703")
    expect(add(env, "obs://photos/../etc/passwd"), "ModelArts.4703")
    expect(add(env, "obs://photos/sub/%2e%2e/%2e%2e/x"), "ModelArts.4703")
    expect(add(env, "obs://photos/missing.jpg"), "ModelArts.4706")
    expect(add(env, "obs://s3b/missing.jpg"), "ModelArts.4706")
    expect(add(env, "obs://photos/big5.jpg"), "ModelArts.4705")
    expect(add(env, "obs://s3b/big5.jpg"), "ModelArts.4705")
    r = add(env, "obs://photos/missing.jpg")
    assert r.json["error_msg"] == "The Obs file is not exist."


def test_symlink_escape_refused(env):
    os.symlink("/etc/hostname", os.path.join(env["local"], "escape.jpg"))
    r = add(env, "obs://photos/escape.jpg")
    assert r.status == 400 and r.json["error_code"].startswith("ModelArts.47")


def test_decode_limits_via_base64(env):
    c = env["c"]
    huge = open(os.path.join(FIX, "png_huge_header.png"), "rb").read()
    for blob in (huge, b"GIF89a" + b"\0" * 100, encode(scene(7))[:2000], b"\0" * 5000):
        r = c.v2("intake", "data/add", {"item_id": "bad", "image_base64":
                                        base64.b64encode(blob).decode()})
        assert r.status == 400 and r.json["error_msg"] == "Invalid parameter: image_base64", r
    # 5 MB + 1 decoded bytes
    over = base64.b64encode(b"\xff\xd8" + b"\0" * (5 * 1024 * 1024 - 1)).decode()
    r = c.v2("intake", "data/add", {"item_id": "bad", "image_base64": over})
    assert r.status == 400 and r.json["error_msg"] == "Invalid parameter: image_base64"


def test_v1_sources_and_errors(env):
    c = env["c"]
    r = c.v1("POST", "/intakev1/image", {"path": "obs://photos/sub/photo.jpg"})
    assert r.status == 200 and r.json == {"result": "success"}, r
    r = c.v1("POST", "/intakev1/image", {"path": "obs://s3b/dir/photo.png"})
    assert r.status == 200, r
    r = c.v1("POST", "/intakev1/image", {"path": "obs://photos/missing.jpg"})
    assert r.status == 400 and r.json["error_code"] == "IS.0016"
    r = c.v1("POST", "/intakev1/image", {"path": "obs://nosuch/x.jpg"})
    assert r.status == 400 and r.json["error_code"] == "IS.0016"
    r = c.v1("POST", "/intakev1/image", {"path": "obs://photos/big5.jpg"})
    assert r.status == 400 and r.json["error_code"] == "IS.0006"
    # v1 limits: 100..2048 px
    for size, status in (((99, 300), 400), ((2049, 300), 400), ((100, 2048), 200)):
        r = c.v1("POST", "/intakev1/image", {"path": "id-%dx%d" % size,
                                             "file": b64(scene(9, *size), "PNG")})
        assert r.status == status, (size, r)
    r = c.v1("POST", "/intakev1/image", {"path": "junk", "file": "@@@"})
    assert r.status == 400 and r.json["error_code"] == "IS.0002"


def test_sigterm_finishes_in_flight_request(make_server):
    """A request in flight when SIGTERM arrives still gets its answer, and
    the server then exits 0 (Server.stop checks the exit code)."""
    import threading
    with FixtureHTTP() as h:
        s = make_server(extra="[fetch]\nallow = 127.0.0.1/32\ntimeout_ms = 3000\n")
        c = s.client()
        c.create_instance("shut")
        out = {}

        def slow():
            out["r"] = c.v2("shut", "data/add", {"item_id": "a", "image_url": h.url("/stall")})

        t = threading.Thread(target=slow)
        t.start()
        while "/stall" not in h.requests:
            time.sleep(0.05)
        s.proc.send_signal(__import__("signal").SIGTERM)
        t.join(30)
        assert out["r"].status == 400 and out["r"].json["error_code"] == "ModelArts.4603"
        assert s.proc.wait(30) == 0
        s.proc = None
        s.log.close()
        assert "stopped" in s.read_log()
