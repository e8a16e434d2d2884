"""The web console (ours): static files served safely from console_dir, the
thumbnail-by-query route it uses, and a real browser run: headless Chromium
(Debian's chromium, driven by playwright-core from npm, cached outside the
repo tree) creates an instance, imports a folder, watches the progress bar
finish and finds the expected first result. Chromium missing is a failure."""
import json
import os
import shutil
import subprocess

import pytest
from conftest import ROOT, TOKEN
from images import encode, scene

# The newest playwright-core that still runs on Debian 12's own Node.js (18):
# 1.62 and later stop at start-up on anything older than Node 20.
PLAYWRIGHT_VERSION = "1.61.1"
CACHE = os.environ.get("IMGSEARCH_CACHE", os.path.join(ROOT, ".cache"))
NPM_DIR = os.path.join(CACHE, "npm-playwright-" + PLAYWRIGHT_VERSION)
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
LOG_DIR = os.path.join(ROOT, "build", "test-logs")


def test_static_files(make_server):
    srv = make_server()
    c = srv.client()
    for path, ctype in [("/console/", "text/html"), ("/console", "text/html"),
                        ("/console/index.html", "text/html"),
                        ("/console/app.js", "text/javascript"),
                        ("/console/style.css", "text/css")]:
        r = c.request("GET", path)
        assert r.status == 200 and r.headers["content-type"].startswith(ctype), (path, r)
    assert b"app.js" in c.request("GET", "/console/").body
    # Nothing outside the directory, nothing hidden, nothing unknown.
    for path in ("/console/../Makefile", "/console/%2e%2e/Makefile", "/console/..%2fMakefile",
                 "/console/%2e%2e%2fserver%2fmain.c", "/console/.gitignore", "/console/nope.js",
                 "/console/sub/app.js", "/console/index.c"):
        r = c.request("GET", path)
        assert r.status == 404, (path, r)
        assert b"#include" not in r.body and b"CFLAGS" not in r.body


def test_thumbnail_by_query(make_server):
    srv = make_server(auth="token")
    c = srv.client(auth=("token", TOKEN))
    c.create_instance("t")
    from images import b64
    assert c.v2("t", "data/add", {"item_id": "a/b.jpg", "image_base64": b64(scene(1))}).status == 200
    r = c.admin("GET", "/instances/t/thumbnail?item_id=a%2Fb.jpg")
    assert r.status == 200 and r.headers["content-type"] == "image/jpeg" and r.body[:2] == b"\xff\xd8"
    assert c.admin("GET", "/instances/t/thumbnail?item_id=zz").status == 400
    assert c.admin("GET", "/instances/t/thumbnail").status == 400
    assert srv.client().admin("GET", "/instances/t/thumbnail?item_id=a%2Fb.jpg").status == 401


def ensure_playwright():
    if os.path.isdir(os.path.join(NPM_DIR, "node_modules", "playwright-core")):
        return
    os.makedirs(NPM_DIR, exist_ok=True)
    subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", NPM_DIR,
                    f"playwright-core@{PLAYWRIGHT_VERSION}"], check=True, timeout=600,
                   capture_output=True)


@pytest.mark.slow
def test_browser_import_and_search(make_server):
    assert os.path.exists(CHROMIUM), f"{CHROMIUM} missing: apt-get install chromium"
    assert shutil.which("node"), "node missing"
    ensure_playwright()
    srv = make_server(auth="token")
    d = os.path.join(srv.objects_dir, "gallery")
    os.makedirs(d)
    for i in range(8):
        with open(os.path.join(d, "photo%02d.jpg" % i), "wb") as f:
            f.write(encode(scene(700 + i)))
    query = os.path.join(srv.tmp, "query.png")
    with open(query, "wb") as f:
        f.write(encode(scene(705), "PNG"))
    os.makedirs(LOG_DIR, exist_ok=True)
    shot = os.path.join(LOG_DIR, "console.png")
    cfg = {"base": f"http://127.0.0.1:{srv.port}", "project": "proj1", "token": TOKEN,
           "instance": "webcon", "source": "obs://local/gallery/", "query": query,
           "expect_first": "gallery/photo05.jpg", "expect_done": 8, "screenshot": shot,
           "chromium": CHROMIUM}
    env = dict(os.environ, NODE_PATH=os.path.join(NPM_DIR, "node_modules"))
    p = subprocess.run(["node", os.path.join(os.path.dirname(__file__), "console_check.js"),
                        json.dumps(cfg)], capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 0 and "OK" in p.stdout, p.stdout + p.stderr
    assert os.path.getsize(shot) > 1000
