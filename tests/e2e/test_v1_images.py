"""v1 picture API: add (file or path), check, modify, delete (DELETE with a
JSON body), search (file, path, tags, paging, is_crop + box)."""
import pytest
from images import b64, scene


@pytest.fixture(scope="module")
def lib(server):
    c = server.client()
    r = c.v1("POST", "/service", {"name": "gallery", "model": "common-search",
                                  "tags": ["color", "shape"]})
    assert r.status == 200, r
    for i in range(8):
        r = c.v1("POST", "/gallery/image", {
            "path": "https://bucket.obs.cn-north-4.myhuaweicloud.com/p%d.jpg" % i,
            "file": b64(scene(300 + i, 400, 300)),
            "tags": {"color": "red" if i < 4 else "blue", "shape": "s%d" % (i % 2)}})
        assert r.status == 200 and r.json == {"result": "success"}, r
    return c


def path(i):
    return "https://bucket.obs.cn-north-4.myhuaweicloud.com/p%d.jpg" % i


def test_check(lib):
    r = lib.v1("POST", "/gallery/image/check", {"path": path(1)})
    assert r.status == 200 and r.json == {"exist": "true"}
    r = lib.v1("POST", "/gallery/image/check", {"path": path(99)})
    assert r.json == {"exist": "false"}
    r = lib.v1("POST", "/gallery/image/check", {})
    assert r.status == 400 and r.json["error_code"] == "IS.0001"


def test_search_by_file(lib):
    r = lib.v1("POST", "/gallery/image/search", {"file": b64(scene(302, 400, 300)), "limit": 3})
    assert r.status == 200, r
    j = r.json
    assert j["result"][0]["path"] == path(2) and j["result"][0]["sim"] > 0.98
    assert j["result"][0]["tags"] == {"color": "red", "shape": "s0"}
    assert len(j["result"]) == 3 and j["count"] == 8


def test_search_by_path_tags_paging(lib):
    r = lib.v1("POST", "/gallery/image/search", {"path": path(5), "limit": 10,
                                                 "tags": {"color": "blue"}})
    j = r.json
    assert j["result"][0]["path"] == path(5) and j["count"] == 4
    assert all(x["tags"]["color"] == "blue" for x in j["result"])
    r2 = lib.v1("POST", "/gallery/image/search", {"path": path(5), "limit": 2, "offset": 1,
                                                  "tags": {"color": "blue"}})
    assert [x["path"] for x in r2.json["result"]] == [x["path"] for x in j["result"][1:3]]
    r = lib.v1("POST", "/gallery/image/search", {"path": path(5), "tags": {"color": "blue",
                                                                            "shape": "s1"}})
    assert r.json["count"] == 2


def test_search_crop(lib):
    img = scene(306, 400, 300)
    r = lib.v1("POST", "/gallery/image/search", {
        "file": b64(img), "is_crop": True, "limit": 1,
        "box": {"x": 0, "y": 0, "width": 400, "height": 300}})
    assert r.json["result"][0]["path"] == path(6)
    r = lib.v1("POST", "/gallery/image/search", {
        "file": b64(img), "is_crop": True, "box": {"x": 390, "y": 0, "width": 50,
                                                   "height": 50}})
    assert r.status == 400 and r.json["error_code"] == "IS.0002"
    r = lib.v1("POST", "/gallery/image/search", {"file": b64(img), "is_crop": True})
    assert r.status == 400


def test_search_validation(lib):
    for body in ({}, {"file": b64(scene(1, 400, 300)), "limit": 101},
                 {"file": b64(scene(1, 400, 300)), "limit": 0},
                 {"path": path(1), "tags": {"nokey": "x"}},
                 {"path": path(99)}):
        r = lib.v1("POST", "/gallery/image/search", body)
        assert r.status == 400 and r.json["error_code"].startswith("IS."), (body, r)


def test_modify_replaces_tags(lib):
    r = lib.v1("PUT", "/gallery/image", {"path": path(0), "tags": {"color": "green"}})
    assert r.status == 200 and r.json == {"result": "success"}
    r = lib.v1("POST", "/gallery/image/search", {"path": path(0), "limit": 1})
    assert r.json["result"][0]["tags"] == {"color": "green"}
    r = lib.v1("PUT", "/gallery/image", {"path": path(99), "tags": {"color": "x"}})
    assert r.status == 400 and r.json["error_code"] == "IS.0016"
    r = lib.v1("PUT", "/gallery/image", {"path": path(0)})
    assert r.status == 400 and r.json["error_code"] == "IS.0001"
    r = lib.v1("PUT", "/gallery/image", {"path": path(0), "tags": {"nokey": "x"}})
    assert r.status == 400 and r.json["error_code"] == "IS.0002"


def test_delete_with_body_and_readd(lib):
    r = lib.v1("DELETE", "/gallery/image", {"path": path(7)})
    assert r.status == 200 and r.json == {"result": "success"}
    assert lib.v1("POST", "/gallery/image/check", {"path": path(7)}).json == {"exist": "false"}
    r = lib.v1("DELETE", "/gallery/image", {"path": path(7)})
    assert r.status == 400 and r.json["error_code"] == "IS.0016"
    # Re-adding the same path replaces the picture (v1 has no force flag).
    for seed in (307, 308):
        r = lib.v1("POST", "/gallery/image", {"path": path(7), "file": b64(scene(seed, 400, 300))})
        assert r.status == 200
    r = lib.v1("POST", "/gallery/image/search", {"file": b64(scene(308, 400, 300)), "limit": 1})
    assert r.json["result"][0]["path"] == path(7) and r.json["result"][0]["sim"] > 0.98
    r = lib.v1("POST", "/gallery/image/search", {"file": b64(scene(307, 400, 300)), "limit": 10})
    assert r.json["result"][0]["sim"] < 0.98  # the first picture is gone


def test_unknown_instance(lib):
    r = lib.v1("POST", "/nosuch/image/check", {"path": "x"})
    assert r.status == 400 and r.json == {"error_code": "IS.0007",
                                          "error_msg": "Invalid instance name."}
