"""GET /metrics (ours): Prometheus text with requests by route and status,
latency histograms, extractor time, items per instance and import progress."""
import os
import re
import time

from images import b64, encode, scene


def metrics(c):
    r = c.request("GET", "/metrics")
    assert r.status == 200 and r.headers["content-type"].startswith("text/plain"), r
    return r.body.decode()


def value(text, line_prefix):
    for line in text.splitlines():
        if line.startswith(line_prefix + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError("no line %r in:\n%s" % (line_prefix, text))


def test_metrics_items_and_imports(make_server):
    srv = make_server()
    c = srv.client()
    c.create_instance("one")
    c.create_instance("two")
    for i in range(3):
        assert c.v2("one", "data/add", {"item_id": "i%d" % i,
                                        "image_base64": b64(scene(i))}).status == 200
    d = os.path.join(srv.objects_dir, "m")
    os.makedirs(d)
    for i in range(4):
        with open(os.path.join(d, "%d.jpg" % i), "wb") as f:
            f.write(encode(scene(50 + i)))
    with open(os.path.join(d, "bad.jpg"), "wb") as f:
        f.write(b"junk")
    r = c.admin("POST", "/instances/two/imports", {"source": "obs://local/m/"})
    assert r.status == 202
    job = r.json["job_id"]
    for _ in range(600):
        if c.admin("GET", f"/instances/two/imports/{job}").json["status"] == "SUCCEEDED":
            break
        time.sleep(0.05)
    m = metrics(c)
    assert value(m, 'imgsearch_instance_items{project="proj1",instance="one"}') == 3
    assert value(m, 'imgsearch_instance_items{project="proj1",instance="two"}') == 4
    assert value(m, 'imgsearch_import_jobs{status="SUCCEEDED"}') == 1
    assert value(m, 'imgsearch_import_jobs{status="RUNNING"}') == 0
    assert value(m, 'imgsearch_import_images_total{result="done"}') == 4
    assert value(m, 'imgsearch_import_images_total{result="failed"}') == 1
    assert "# TYPE imgsearch_import_total gauge" in m
    # The pre-existing families are still there, with our routes labelled.
    assert re.search(r'route="admin_import_start"', m), m
    assert re.search(r'route="admin_import_get"', m)
    assert "histogram" in m
    # Every sample line is name{labels} value.
    for line in m.splitlines():
        if line and not line.startswith("#"):
            assert re.match(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? [-+0-9.eE]+(Inf)?$', line), line
