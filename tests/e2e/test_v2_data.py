"""v2 data/add, search, data/check, data/update, data/delete end to end."""
import base64

import pytest
from images import b64, encode, scene
from PIL import Image


@pytest.fixture(scope="module")
def shop(server):
    c = server.client()
    c.create_instance("shop", tags=["brand", "color"], num_tags=["year", "price"])
    items = [("it%d" % i, {"brand": "B%d" % (i % 3), "color": "red" if i % 2 else "blue"},
              {"year": 2015 + i, "price": 10.5 * i}) for i in range(12)]
    for i, (iid, tags, num) in enumerate(items):
        r = c.v2("shop", "data/add", {"item_id": iid, "image_base64": b64(scene(i)),
                                      "desc": "item %d" % i, "custom_tags": tags,
                                      "custom_num_tags": num, "keywords": ["k%d" % (i % 4), "all"]})
        assert r.status == 200, r
    return c


def test_add_response_shape(shop):
    r = shop.v2("shop", "data/add", {"item_id": "shape", "image_base64": b64(scene(100))})
    assert r.status == 200
    assert r.json == {"result": "success",
                      "data": {"image_info": {"objects": [{"box": "0,0,320,240"}]}}}


def test_search_finds_itself_first(shop):
    for i in (0, 5, 11):
        r = shop.v2("shop", "search", {"search_type": "IMAGE", "image_base64": b64(scene(i)),
                                       "limit": 3})
        assert r.status == 200, r
        d = r.json["data"]
        assert d["items"][0]["id"] == "it%d" % i
        assert 0.98 <= d["items"][0]["score"] <= 1.0
        assert d["items"][0]["source"]["desc"] == "item %d" % i
        assert d["search_info"]["return_num"] == 3
        assert isinstance(d["search_info"]["search_time"], int)
        scores = [it["score"] for it in d["items"]]
        assert scores == sorted(scores, reverse=True)
        assert all(0 <= s <= 1 for s in scores)


def test_search_transformed_copy(shop):
    img = scene(7)
    w, h = img.size
    crop = img.crop((int(w * .1), int(h * .1), int(w * .9), int(h * .9))).resize((400, 300))
    for q in (crop, img.transpose(Image.FLIP_LEFT_RIGHT)):
        r = shop.v2("shop", "search", {"search_type": "IMAGE", "image_base64": b64(q, quality=40),
                                       "limit": 1})
        assert r.json["data"]["items"][0]["id"] == "it7", r


def test_search_formats(shop):
    img = scene(3)
    for fmt in ("PNG", "BMP", "WEBP"):
        r = shop.v2("shop", "search", {"search_type": "IMAGE",
                                       "image_base64": b64(img, fmt), "limit": 1})
        assert r.status == 200 and r.json["data"]["items"][0]["id"] == "it3", (fmt, r)


def test_search_filters(shop):
    q = b64(scene(4))
    r = shop.v2("shop", "search", {"search_type": "IMAGE", "image_base64": q, "limit": 100,
                                   "custom_tags": {"brand": ["B0", "B1"], "color": ["red"]}})
    ids = [it["id"] for it in r.json["data"]["items"]]
    assert ids and all(int(i[2:]) % 3 in (0, 1) and int(i[2:]) % 2 == 1 for i in ids), ids
    assert r.json["data"]["search_info"]["total_num"] == len(ids)
    r = shop.v2("shop", "search", {"search_type": "IMAGE", "image_base64": q, "limit": 100,
                                   "custom_num_tags": {"year": {"from": 2018, "to": 2020}}})
    ids = sorted(it["id"] for it in r.json["data"]["items"])
    assert ids == ["it3", "it4", "it5"]
    r = shop.v2("shop", "search", {"search_type": "IMAGE", "image_base64": q, "limit": 100,
                                   "custom_num_tags": {"price": {"from": 100}}})
    assert sorted(it["id"] for it in r.json["data"]["items"]) == ["it10", "it11"]


def test_search_paging_min_score_collapse(shop):
    q = b64(scene(2))
    full = shop.v2("shop", "search", {"search_type": "IMAGE", "image_base64": q,
                                      "limit": 20}).json["data"]
    ids = [it["id"] for it in full["items"]]
    page = shop.v2("shop", "search", {"search_type": "IMAGE", "image_base64": q, "limit": 3,
                                      "offset": 2}).json["data"]
    assert [it["id"] for it in page["items"]] == ids[2:5]
    assert page["search_info"]["total_num"] == full["search_info"]["total_num"]
    cut = full["items"][3]["score"]
    ms = shop.v2("shop", "search", {"search_type": "IMAGE", "image_base64": q, "limit": 20,
                                    "min_score": cut}).json["data"]
    assert all(it["score"] >= cut for it in ms["items"]) and len(ms["items"]) >= 4
    col = shop.v2("shop", "search", {"search_type": "IMAGE", "image_base64": q, "limit": 20,
                                     "optional_params": {"collapse_key": "brand"}}).json["data"]
    brands = [it["source"]["custom_tags"]["brand"] for it in col["items"]]
    assert sorted(brands) == ["B0", "B1", "B2"]
    assert col["items"][0]["id"] == "it2"


def test_search_validation(shop):
    q = b64(scene(1))
    bad = [
        ({"image_base64": q}, "search_type"),
        ({"search_type": "PHOTO", "image_base64": q}, "search_type"),
        ({"search_type": "IMAGE", "image_base64": q, "limit": 0}, "limit"),
        ({"search_type": "IMAGE", "image_base64": q, "limit": 1001}, "limit"),
        ({"search_type": "IMAGE", "image_base64": q, "limit": 600, "offset": 500}, "offset"),
        ({"search_type": "IMAGE", "image_base64": q, "min_score": 1.5}, "min_score"),
        ({"search_type": "IMAGE", "image_base64": q, "custom_tags": {"nokey": ["x"]}},
         "custom_tags"),
        ({"search_type": "IMAGE", "image_base64": q, "custom_tags": {"brand": []}},
         "custom_tags"),
        ({"search_type": "IMAGE", "image_base64": q, "custom_num_tags": {"year": {"from": "x"}}},
         "custom_num_tags"),
        ({"search_type": "IMAGE", "image_base64": q,
          "optional_params": {"collapse_key": "nokey"}}, "collapse_key"),
        ({"search_type": "IMAGE"}, "image_base64"),
        ({"search_type": "IMAGE", "image_base64": "!!!notbase64"}, "image_base64"),
        ({"search_type": "KEYWORD"}, "keywords"),
        ({"search_type": "KEYWORD", "keywords": ["x"] * 11}, "keywords"),
    ]
    for body, field in bad:
        r = shop.v2("shop", "search", body)
        assert r.status == 400 and r.json == {"error_code": "MMS.0003",
                                              "error_msg": "Invalid parameter: " + field}, (body, r)


def test_search_type_numeric_and_unsupported(shop):
    r = shop.v2("shop", "search", {"search_type": "0", "image_base64": b64(scene(0)),
                                   "limit": 1})
    assert r.status == 200 and r.json["data"]["items"][0]["id"] == "it0"
    for t in ("TEXT", "CATEGORY"):
        r = shop.v2("shop", "search", {"search_type": t, "text": "a red shoe"})
        assert r.status == 400 and r.json["error_code"] == "MMS.1017", r
        assert t in r.json["error_msg"]


def test_keyword_search_and_cursor(shop):
    r = shop.v2("shop", "search", {"search_type": "KEYWORD", "keywords": ["k1", "all"],
                                   "limit": 2})
    d = r.json["data"]
    assert d["search_info"]["total_num"] == 12
    assert [it["score"] for it in d["items"]] == [1.0, 1.0]
    assert {it["id"] for it in d["items"]} <= {"it1", "it5", "it9"}
    seen = [it["id"] for it in d["items"]]
    cursor = d["search_info"]["last_item"]
    while True:
        r = shop.v2("shop", "search", {"search_type": "KEYWORD", "keywords": ["k1", "all"],
                                       "limit": 5, "last_item": cursor})
        d = r.json["data"]
        if not d["items"]:
            break
        seen += [it["id"] for it in d["items"]]
        cursor = d["search_info"]["last_item"]
    assert sorted(seen) == sorted("it%d" % i for i in range(12))
    assert seen[:3] == sorted(seen[:3]) and set(seen[:3]) == {"it1", "it5", "it9"}


def test_add_validation_and_force(shop):
    img = b64(scene(50))
    r = shop.v2("shop", "data/add", {"item_id": "it0", "image_base64": img})
    assert r.status == 400 and r.json["error_code"] == "MMS.1013"
    r = shop.v2("shop", "data/add", {"item_id": "it0", "image_base64": img, "force": True,
                                     "custom_tags": {"brand": "NEW"}})
    assert r.status == 200
    s = shop.v2("shop", "search", {"search_type": "IMAGE", "image_base64": img, "limit": 1})
    assert s.json["data"]["items"][0]["id"] == "it0"
    assert s.json["data"]["items"][0]["source"]["custom_tags"] == {"brand": "NEW"}
    bad = [
        ({"image_base64": img}, "item_id"),
        ({"item_id": "x" * 257, "image_base64": img}, "item_id"),
        ({"item_id": "a", "image_base64": img, "desc": "d" * 2049}, "desc"),
        ({"item_id": "a", "image_base64": img, "custom_tags": {"nokey": "v"}}, "custom_tags"),
        ({"item_id": "a", "image_base64": img, "custom_tags": {"brand": "v" * 65}},
         "custom_tags"),
        ({"item_id": "a", "image_base64": img, "custom_num_tags": {"year": "x"}},
         "custom_num_tags"),
        ({"item_id": "a", "image_base64": img, "keywords": []}, "keywords"),
        ({"item_id": "a", "image_base64": img, "force": "yes"}, "force"),
        ({"item_id": "a"}, "image_base64"),
        ({"item_id": "a", "image_base64": img, "optional_params": {"box": "1, 2, 3, 4"}}, "box"),
        ({"item_id": "a", "image_base64": img, "optional_params": {"box": "0,0,10,10"}}, "box"),
        ({"item_id": "a", "image_base64": img, "optional_params": {"box": "0,0,321,100"}}, "box"),
    ]
    for body, field in bad:
        r = shop.v2("shop", "data/add", body)
        assert r.status == 400 and r.json["error_msg"] == "Invalid parameter: " + field, (body, r)


def test_add_image_limits(shop):
    small = scene(1, 64, 200)
    big = scene(1, 4096, 100)
    ok = scene(1, 65, 4095)
    for img, status in ((small, 400), (big, 400), (ok, 200)):
        r = shop.v2("shop", "data/add", {"item_id": "lim", "force": True,
                                         "image_base64": b64(img, "PNG")})
        assert r.status == status, (img.size, r)
    # Over 5 MB of image bytes.
    blob = b"\xff\xd8\xff" + b"\0" * (5 * 1024 * 1024 - 2)
    r = shop.v2("shop", "data/add", {"item_id": "big", "image_base64":
                                     base64.b64encode(blob).decode()})
    assert r.status == 400 and r.json["error_msg"] == "Invalid parameter: image_base64"
    trunc = encode(scene(9))[:3000]
    r = shop.v2("shop", "data/add", {"item_id": "tr", "image_base64":
                                     base64.b64encode(trunc).decode()})
    assert r.status == 400 and r.json["error_msg"] == "Invalid parameter: image_base64"


def test_add_with_box(shop):
    img = scene(60, 400, 300)
    r = shop.v2("shop", "data/add", {"item_id": "boxed", "image_base64": b64(img),
                                     "optional_params": {"box": "100,50,300,250"}})
    assert r.json["data"]["image_info"]["objects"][0]["box"] == "100,50,300,250"
    q = img.crop((100, 50, 300, 250))
    r = shop.v2("shop", "search", {"search_type": "IMAGE", "image_base64": b64(q), "limit": 1})
    assert r.json["data"]["items"][0]["id"] == "boxed"
    assert r.json["data"]["items"][0]["score"] > 0.95


def test_check_by_id_and_conditional(shop):
    r = shop.v2("shop", "data/check", {"item_id": "it3"})
    assert r.json["data"]["existed"] is True
    info = r.json["data"]["item_info"]
    assert info["desc"] == "item 3" and info["custom_tags"] == {"brand": "B0", "color": "red"}
    assert info["custom_num_tags"] == {"year": 2018, "price": 31.5}
    assert info["keywords"] == ["k3", "all"]
    r = shop.v2("shop", "data/check", {"item_id": "nope"})
    assert r.status == 200 and r.json == {"result": "success", "data": {"existed": False}}
    r = shop.v2("shop", "data/check", {"custom_tags": {"color": ["blue"]}, "limit": 2})
    d = r.json["data"]
    assert d["check_info"]["return_num"] == 2 and len(d["items"]) == 2
    total = d["check_info"]["total_num"]
    got = [it["id"] for it in d["items"]]
    while d["items"]:
        r = shop.v2("shop", "data/check", {"custom_tags": {"color": ["blue"]}, "limit": 2,
                                           "last_item": d["check_info"]["last_item"]})
        d = r.json["data"]
        got += [it["id"] for it in d["items"]]
    assert len(got) == total == len(set(got)) and got == sorted(got)
    r = shop.v2("shop", "data/check", {})
    assert r.status == 400 and r.json["error_msg"] == "Invalid parameter: item_id"
    r = shop.v2("shop", "data/check", {"custom_tags": {"color": ["blue"]}, "limit": 101})
    assert r.status == 400 and r.json["error_msg"] == "Invalid parameter: limit"


def test_update_merges(shop):
    r = shop.v2("shop", "data/update", {"item_id": "it4", "desc": "new desc",
                                        "custom_tags": {"color": "green"}})
    assert r.status == 200 and r.json == {"result": "success"}
    info = shop.v2("shop", "data/check", {"item_id": "it4"}).json["data"]["item_info"]
    assert info["desc"] == "new desc"
    assert info["custom_tags"] == {"brand": "B1", "color": "green"}
    assert info["custom_num_tags"] == {"year": 2019, "price": 42.0}
    r = shop.v2("shop", "search", {"search_type": "IMAGE", "image_base64": b64(scene(4)),
                                   "limit": 5, "custom_tags": {"color": ["green"]}})
    assert [it["id"] for it in r.json["data"]["items"]] == ["it4"]
    r = shop.v2("shop", "data/update", {"item_id": "ghost", "desc": "x"})
    assert r.status == 400 and r.json["error_code"] == "MMS.1014"
    r = shop.v2("shop", "data/update", {"item_id": "it4", "custom_tags": {"nokey": "x"}})
    assert r.status == 400 and r.json["error_msg"] == "Invalid parameter: custom_tags"


def test_delete_by_id_and_conditional(server):
    c = server.client()
    c.create_instance("deltest", tags=["grp"])
    for i in range(7):
        assert c.v2("deltest", "data/add", {"item_id": "d%d" % i, "image_base64": b64(scene(200 + i)),
                                            "custom_tags": {"grp": "a" if i < 5 else "b"}}
                    ).status == 200
    r = c.v2("deltest", "data/delete", {"item_id": "d6"})
    assert r.status == 200 and r.json == {"result": "success"}
    r = c.v2("deltest", "data/delete", {"item_id": "d6"})
    assert r.status == 400 and r.json["error_code"] == "MMS.1014"
    r = c.v2("deltest", "data/delete", {"item_id": "d6", "force": True})
    assert r.status == 200
    r = c.v2("deltest", "data/delete", {"custom_tags": {"grp": ["a"]}})
    d = r.json["data"]
    assert d["delete_info"] == {"total_num": 5, "delete_num": 5}
    assert sorted(it["id"] for it in d["items"]) == ["d0", "d1", "d2", "d3", "d4"]
    s = c.v2("deltest", "search", {"search_type": "IMAGE", "image_base64": b64(scene(201)),
                                   "limit": 10})
    assert [it["id"] for it in s.json["data"]["items"]] == ["d5"]
    assert c.v2("deltest", "data/check", {"item_id": "d1"}).json["data"]["existed"] is False


def test_unknown_service(shop):
    r = shop.v2("nosuch", "search", {"search_type": "IMAGE", "image_base64": b64(scene(1))})
    assert r.status == 400 and r.json == {"error_code": "MMS.1001",
                                          "error_msg": "Service instance not found."}


def test_keyword_only_instance(server):
    c = server.client()
    c.create_instance("kwonly", search_types=["KEYWORD"])
    c.v2("kwonly", "data/add", {"item_id": "a", "image_base64": b64(scene(1)),
                                "keywords": ["cat"]})
    r = c.v2("kwonly", "search", {"search_type": "IMAGE", "image_base64": b64(scene(1))})
    assert r.status == 400 and r.json["error_code"] == "MMS.1017"
    r = c.v2("kwonly", "search", {"search_type": "KEYWORD", "keywords": ["cat"]})
    assert r.status == 200 and r.json["data"]["items"][0]["id"] == "a"


def test_empty_filters_delete_nothing(server):
    """Regression: an empty custom_tags/custom_num_tags map once made a
    conditional delete without any condition."""
    c = server.client()
    c.create_instance("emptyfilter", tags=["g"], num_tags=["n"])
    for i in range(3):
        c.v2("emptyfilter", "data/add", {"item_id": "e%d" % i, "image_base64": b64(scene(i))})
    for body in ({"custom_tags": {}}, {"custom_num_tags": {}},
                 {"custom_tags": {}, "custom_num_tags": {}}):
        r = c.v2("emptyfilter", "data/delete", body)
        assert r.status == 400 and r.json["error_msg"] == "Invalid parameter: item_id", r
        r = c.v2("emptyfilter", "data/check", body)
        assert r.status == 400, r
    assert c.admin("GET", "/instances/emptyfilter").json["item_count"] == 3
    # As a search filter an empty map means no filter.
    r = c.v2("emptyfilter", "search", {"search_type": "IMAGE", "image_base64": b64(scene(1)),
                                       "custom_tags": {}, "limit": 5})
    assert r.status == 200 and len(r.json["data"]["items"]) == 3
