"""Offline import jobs (ours): /admin/v1/{project}/instances/{name}/imports.
A folder in the local object store becomes a searchable instance; bad images
are listed, not fatal; manifests carry metadata; jobs cancel, and resume
exactly after kill -9."""
import os
import threading
import time

import pytest
from images import b64, encode, scene


def write_folder(server, prefix, seeds, fmt="JPEG"):
    d = os.path.join(server.objects_dir, prefix)
    os.makedirs(d, exist_ok=True)
    for s in seeds:
        with open(os.path.join(d, "img%03d.jpg" % s), "wb") as f:
            f.write(encode(scene(s), fmt))
    return d


def start(c, name, body):
    r = c.admin("POST", f"/instances/{name}/imports", body)
    assert r.status == 202, r
    assert r.json["status"] == "QUEUED" and r.json["job_id"]
    # A manifest is all the keys; a prefix is listed in the background.
    assert r.json["listing_done"] is ("manifest" in body), r.json
    return r.json["job_id"]


def wait_job(c, name, job_id, timeout=120, until=("SUCCEEDED", "FAILED", "CANCELLED")):
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = c.admin("GET", f"/instances/{name}/imports/{job_id}")
        assert r.status == 200, r
        if r.json["status"] in until:
            return r.json
        time.sleep(0.1)
    raise AssertionError("job did not finish: %r" % r.json)


def search_first(c, name, img):
    r = c.v2(name, "search", {"search_type": "IMAGE", "image_base64": b64(img), "limit": 3})
    assert r.status == 200, r
    return r.json["data"]["items"]


def test_folder_import_bad_images_listed(make_server):
    srv = make_server()
    c = srv.client()
    c.create_instance("photos")
    d = write_folder(srv, "photos", range(10))
    with open(os.path.join(d, "zz_corrupt.jpg"), "wb") as f:
        f.write(b"\xff\xd8\xff\xe0 this is not really a jpeg" + b"\0" * 100)
    with open(os.path.join(d, "zz_tiny.png"), "wb") as f:
        f.write(encode(scene(99, 40, 30), "PNG"))
    job = start(c, "photos", {"source": "obs://local/photos/"})
    j = wait_job(c, "photos", job)
    assert j["status"] == "SUCCEEDED", j
    assert (j["total"], j["done"], j["failed"]) == (12, 10, 2), j
    assert j["errors_total"] == 2
    errs = {e["key"]: e for e in j["errors"]}
    assert set(errs) == {"photos/zz_corrupt.jpg", "photos/zz_tiny.png"}
    for e in errs.values():
        assert e["error_code"] == "MMS.0003" and e["error_msg"], e
    assert j["source"] == "obs://local/photos/" and j["instance"] == "photos"
    assert j["started_at"] and j["finished_at"] and j["images_per_second"] >= 0
    # Paging of the error list.
    r = c.admin("GET", f"/instances/photos/imports/{job}?errors_offset=1&errors_limit=1")
    assert [e["key"] for e in r.json["errors"]] == ["photos/zz_tiny.png"]
    assert c.admin("GET", f"/instances/photos/imports/{job}?errors_limit=x").status == 400
    # Everything good is searchable, under its object key.
    inst = c.admin("GET", "/instances/photos").json
    assert inst["item_count"] == 10
    for s in (0, 4, 9):
        items = search_first(c, "photos", scene(s))
        assert items[0]["id"] == "photos/img%03d.jpg" % s and items[0]["score"] > 0.98
    # Listed, newest first.
    r = c.admin("GET", "/instances/photos/imports")
    assert r.status == 200 and r.json["count"] == 1 and r.json["jobs"][0]["job_id"] == job
    # A second import without force: every key exists -> all failed, job still succeeds.
    j2 = wait_job(c, "photos", start(c, "photos", {"source": "obs://local/photos/img00"}))
    assert j2["status"] == "SUCCEEDED" and j2["total"] == 10 and j2["failed"] == 10, j2
    assert j2["errors"][0]["error_code"] == "MMS.1013"
    # With force they are replaced.
    j3 = wait_job(c, "photos", start(c, "photos", {"source": "obs://local/photos/img00",
                                                   "force": True}))
    assert j3["done"] == 10 and j3["failed"] == 0, j3
    assert c.admin("GET", "/instances/photos").json["item_count"] == 10


def test_item_id_from_path_and_https_form(make_server):
    srv = make_server()
    c = srv.client()
    c.create_instance("p")
    write_folder(srv, "a/b", range(3))
    j = wait_job(c, "p", start(c, "p", {"source": "obs://local/a/b/", "item_id_from": "path"}))
    assert j["done"] == 3, j
    items = search_first(c, "p", scene(1))
    assert items[0]["id"] == "obs://local/a/b/img001.jpg"
    j = wait_job(c, "p", start(c, "p", {
        "source": "https://local.obs.cn-north-4.myhuaweicloud.com/a/b/", "force": True}))
    assert j["done"] == 3, j
    # Same images under both ids now: the two tie at the top.
    assert {it["id"] for it in search_first(c, "p", scene(2))[:2]} == {
        "a/b/img002.jpg", "obs://local/a/b/img002.jpg"}
    assert c.admin("GET", "/instances/p").json["item_count"] == 6


def test_manifest_with_metadata(make_server):
    srv = make_server()
    c = srv.client()
    c.create_instance("m", tags=["color"], num_tags=["year"])
    write_folder(srv, "cat", range(4))
    lines = [
        '{"key": "cat/img000.jpg", "item_id": "first", "desc": "zero",'
        ' "custom_tags": {"color": "red"}, "custom_num_tags": {"year": 2001},'
        ' "keywords": ["sun", "sea"]}',
        '{"key": "cat/img001.jpg"}',
        '',
        '{"key": "cat/img002.jpg", "custom_tags": {"nope": "x"}}',
        '{"key": "cat/missing.jpg"}',
    ]
    with open(os.path.join(srv.objects_dir, "m.jsonl"), "w") as f:
        f.write("\n".join(lines) + "\n")
    j = wait_job(c, "m", start(c, "m", {"source": "obs://local/cat/",
                                        "manifest": "obs://local/m.jsonl"}))
    assert (j["status"], j["total"], j["done"], j["failed"]) == ("SUCCEEDED", 4, 2, 2), j
    codes = {e["key"]: e["error_code"] for e in j["errors"]}
    assert codes == {"cat/img002.jpg": "MMS.0003", "cat/missing.jpg": "ModelArts.4706"}
    assert j["manifest"] == "obs://local/m.jsonl"
    items = search_first(c, "m", scene(0))
    assert items[0]["id"] == "first"
    src = items[0]["source"]
    assert src["desc"] == "zero" and src["custom_tags"] == {"color": "red"}
    assert src["custom_num_tags"] == {"year": 2001} and sorted(src["keywords"]) == ["sea", "sun"]
    r = c.v2("m", "search", {"search_type": "KEYWORD", "keywords": ["sun"]})
    assert [it["id"] for it in r.json["data"]["items"]] == ["first"]
    assert c.admin("GET", "/instances/m").json["item_count"] == 2   # img003 not in manifest
    # A malformed manifest line is a 400 before anything runs.
    with open(os.path.join(srv.objects_dir, "bad.jsonl"), "w") as f:
        f.write('{"key": "cat/img000.jpg"}\nnot json\n')
    r = c.admin("POST", "/instances/m/imports", {"source": "obs://local/cat/",
                                                 "manifest": "obs://local/bad.jsonl"})
    assert r.status == 400 and r.json["error_code"] == "MMS.0003", r
    assert "manifest line 2" in r.json["error_msg"]
    # Blank lines count: the message names the file's own line number.
    with open(os.path.join(srv.objects_dir, "bad.jsonl"), "w") as f:
        f.write('{"key": "cat/img000.jpg"}\n\n\r\n{"key": "../b.jpg"}\n')
    r = c.admin("POST", "/instances/m/imports", {"source": "obs://local/cat/",
                                                 "manifest": "obs://local/bad.jsonl"})
    assert r.status == 400 and "manifest line 4" in r.json["error_msg"], r


def test_bad_requests(make_server):
    srv = make_server()
    c = srv.client()
    c.create_instance("x")
    write_folder(srv, "ok", range(1))
    for body, field in [({}, "source"),
                        ({"source": "http://example.com/x/"}, "source"),
                        ({"source": "obs://nobucket/x/"}, "source"),
                        ({"source": "obs://local/empty-prefix/"}, "source"),
                        ({"source": "obs://local/ok/", "item_id_from": "name"}, "item_id_from"),
                        ({"source": "obs://local/ok/", "force": "yes"}, "force"),
                        ({"source": "obs://local/ok/", "manifest": "obs://local/none.jsonl"},
                         "manifest")]:
        r = c.admin("POST", "/instances/x/imports", body)
        assert r.status == 400, (body, r)
        assert r.json["error_code"] == "MMS.0003" and field in r.json["error_msg"], (body, r)
    r = c.admin("POST", "/instances/nope/imports", {"source": "obs://local/ok/"})
    assert r.status == 400 and r.json["error_code"] == "MMS.1001"
    r = c.admin("GET", "/instances/x/imports/imp-000")
    assert r.status == 400 and r.json["error_code"] == "MMS.1014"
    assert c.admin("DELETE", "/instances/x/imports/imp-000").status == 400
    # The cloud's paths know nothing about imports.
    r = c.request("POST", "/v2/proj1/mms/x/imports", {"source": "obs://local/ok/"})
    assert r.status == 404


def many_images(server, prefix, n):
    d = os.path.join(server.objects_dir, prefix)
    os.makedirs(d, exist_ok=True)
    for i in range(n):
        with open(os.path.join(d, "k%04d.jpg" % i), "wb") as f:
            f.write(encode(scene(1000 + i, 200, 150), quality=80))


def test_cancel(make_server):
    srv = make_server()
    c = srv.client()
    c.create_instance("c")
    many_images(srv, "big", 80)
    job = start(c, "c", {"source": "obs://local/big/"})
    r = c.admin("DELETE", f"/instances/c/imports/{job}")
    assert r.status == 200 and r.json["status"] == "CANCELLED", r
    j = wait_job(c, "c", job)
    # Cancelled maybe before the background listing appended any key.
    assert j["status"] == "CANCELLED" and j["done"] < 80 and j["total"] <= 80, j
    time.sleep(0.5)
    j2 = c.admin("GET", f"/instances/c/imports/{job}").json
    assert j2["done"] == j["done"] or j2["done"] <= j["done"] + 1  # at most the in-flight image
    # Idempotent.
    r = c.admin("DELETE", f"/instances/c/imports/{job}")
    assert r.status == 200 and r.json["status"] == "CANCELLED"
    # A finished job stays what it was.
    many_images(srv, "small", 2)
    j = wait_job(c, "c", start(c, "c", {"source": "obs://local/small/"}))
    r = c.admin("DELETE", f"/instances/c/imports/{j['job_id']}")
    assert r.json["status"] == "SUCCEEDED"


@pytest.mark.slow
def test_kill9_resumes_exactly_and_searches_stay_responsive(make_server):
    from conftest import Server
    srv = make_server()
    c = srv.client()
    c.create_instance("r")
    c.v2("r", "data/add", {"item_id": "probe", "image_base64": b64(scene(5))})
    n = 160
    many_images(srv, "lib", n)
    job = start(c, "r", {"source": "obs://local/lib/"})
    # Searches answer while the import runs.
    lat = []
    while True:
        t = time.time()
        items = search_first(c, "r", scene(5))
        lat.append(time.time() - t)
        assert items[0]["id"] == "probe"
        j = c.admin("GET", f"/instances/r/imports/{job}").json
        if j["done"] >= 20:
            break
        assert j["status"] in ("QUEUED", "RUNNING"), j
        time.sleep(0.05)
    assert max(lat) < 5, lat
    m = c.request("GET", "/metrics").body.decode()
    assert 'imgsearch_import_total{project="proj1",instance="r",job_id="%s"} %d' % (job, n) in m
    assert 'imgsearch_import_jobs{status="RUNNING"} 1' in m
    j = c.admin("GET", f"/instances/r/imports/{job}").json
    assert 1 <= j["done"] < n - 1, j
    srv.kill9()
    srv2 = Server(data_dir=srv.data_dir)
    srv2.objects_dir = srv.objects_dir
    # Same objects dir: rewrite the config to point at it.
    with open(srv2.config) as f:
        cfg = f.read().replace(os.path.join(srv2.tmp, "objects"), srv.objects_dir)
    with open(srv2.config, "w") as f:
        f.write(cfg)
    srv2.start()
    try:
        c2 = srv2.client()
        j = wait_job(c2, "r", job, timeout=300)
        assert (j["status"], j["total"], j["done"], j["failed"]) == ("SUCCEEDED", n, n, 0), j
        assert c2.admin("GET", "/instances/r").json["item_count"] == n + 1
        # Every key exactly once: check finds each id, and the count above has no extras.
        for i in (0, n // 2, n - 1):
            items = search_first(c2, "r", scene(1000 + i, 200, 150))
            assert items[0]["id"] == "lib/k%04d.jpg" % i, items
    finally:
        srv2.stop()


def test_instance_deleted_mid_import_fails_job(make_server):
    srv = make_server()
    c = srv.client()
    c.create_instance("gone")
    many_images(srv, "g", 60)
    job = start(c, "gone", {"source": "obs://local/g/"})
    for _ in range(200):
        j = c.admin("GET", f"/instances/gone/imports/{job}").json
        if j["done"] >= 1:
            break
        time.sleep(0.02)
    assert c.admin("DELETE", "/instances/gone").status == 200
    # The job is no longer reachable through the instance, but the pool moves
    # on: a new job on another instance still runs.
    c.create_instance("next")
    many_images(srv, "n", 2)
    j = wait_job(c, "next", start(c, "next", {"source": "obs://local/n/"}))
    assert j["status"] == "SUCCEEDED" and j["done"] == 2, j
    m = c.request("GET", "/metrics").body.decode()
    assert 'imgsearch_import_jobs{status="RUNNING"} 0' in m, m
    # The deleted instance's jobs went with it: a re-created one starts clean.
    c.create_instance("gone")
    assert c.admin("GET", "/instances/gone/imports").json["count"] == 0


def test_import_refused_without_model(make_server, tmp_path):
    """An import cannot do anything without the model: 503 up front instead of
    a job whose every image fails."""
    srv = make_server()
    with open(srv.config) as f:
        text = f.read()
    srv.stop()
    import re
    with open(srv.config, "w") as f:
        f.write(re.sub(r"model = .*", "model = " + str(tmp_path / "missing.bin"), text))
    srv.start()
    c = srv.client()
    c.create_instance("nomodel")
    r = c.admin("POST", "/instances/nomodel/imports", {"source": "obs://local/x/"})
    assert r.status == 503 and r.json["error_code"] == "ModelArts.4508", r
    assert c.request("GET", "/healthz").json["model"] is False
