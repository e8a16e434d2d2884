"""Regional descriptors: instances created with "regions": true (and v1
instances of model image-copyright) also index five 0.6 x 0.6 crops of every
image, so a query that is a crop of an item finds it. With views on (the
default) a regional item has 8 vectors: whole, 5 windows, low-res, grey."""
from images import b64, scene


def vectors(c):
    """The loaded indexes' vector counts, from /metrics."""
    return int(c.metric("imgsearch_index_vectors"))


def crop(img, fx, fy, side=0.6):
    w, h = img.size
    cw, ch = int(w * side), int(h * side)
    x, y = int((w - cw) * fx), int((h - ch) * fy)
    return img.crop((x, y, x + cw, y + ch))


def test_flag_in_both_apis(make_server):
    c = make_server().client()
    assert c.create_instance("withreg", tags=["t"], search_types=None)["regions"] is False
    r = c.admin("POST", "/instances", {"name": "reg2", "regions": True})
    assert r.status == 201 and r.json["regions"] is True
    r = c.admin("POST", "/instances", {"name": "reg3", "regions": "yes"})
    assert r.status == 400 and r.json["error_msg"] == "Invalid parameter: regions"
    c.v1("POST", "/service", {"name": "copyr", "model": "image-copyright"})
    c.v1("POST", "/service", {"name": "common", "model": "common-search"})
    assert c.admin("GET", "/instances/copyr").json["regions"] is True
    assert c.admin("GET", "/instances/common").json["regions"] is False


def test_crops_found_and_vectors_per_item(make_server):
    s = make_server()
    c = s.client()
    c.admin("POST", "/instances", {"name": "reg", "regions": True, "custom_tags": ["g"]})
    assert c.admin("POST", "/instances", {"name": "plain", "views": False}).status == 201
    imgs = [scene(1000 + i, 480, 360) for i in range(10)]
    for i, img in enumerate(imgs):
        for svc in ("reg", "plain"):
            r = c.v2(svc, "data/add", {"item_id": "i%d" % i, "image_base64": b64(img),
                                       "custom_tags": {"g": "even" if i % 2 == 0 else "odd"}}
                     if svc == "reg" else {"item_id": "i%d" % i, "image_base64": b64(img)})
            assert r.status == 200, r
    assert vectors(c) == 10 * 8 + 10
    better = 0
    for i in (0, 3, 7):
        for fx, fy in ((0, 0), (1, 1), (0.5, 0.5)):
            q = b64(crop(imgs[i], fx, fy))
            reg = c.v2("reg", "search", {"search_type": "IMAGE", "image_base64": q, "limit": 2})
            plain = c.v2("plain", "search", {"search_type": "IMAGE", "image_base64": q,
                                             "limit": 2})
            top = reg.json["data"]["items"]
            assert top[0]["id"] == "i%d" % i, (i, fx, fy, top)
            assert top[0]["score"] > 0.95  # a regional view: 1 - 0.02 at best
            assert len({it["id"] for it in top}) == len(top)  # one entry per item
            better += top[0]["score"] > plain.json["data"]["items"][0]["score"]
    assert better >= 8
    # Filters name every vector of an allowed item.
    r = c.v2("reg", "search", {"search_type": "IMAGE", "image_base64": b64(crop(imgs[3], 0, 0)),
                               "limit": 10, "custom_tags": {"g": ["odd"]}})
    ids = [it["id"] for it in r.json["data"]["items"]]
    assert ids[0] == "i3" and len(ids) == 5 and all(int(x[1:]) % 2 for x in ids)
    # Deleting an item removes all its vectors; replacing keeps the count.
    assert c.v2("reg", "data/delete", {"item_id": "i3"}).status == 200
    assert vectors(c) == 9 * 8 + 10
    assert c.v2("reg", "data/add", {"item_id": "i4", "force": True,
                                    "image_base64": b64(scene(2000, 480, 360))}).status == 200
    assert vectors(c) == 9 * 8 + 10
    r = c.v2("reg", "search", {"search_type": "IMAGE", "limit": 1,
                               "image_base64": b64(crop(scene(2000, 480, 360), 1, 0))})
    assert r.json["data"]["items"][0]["id"] == "i4"
    # kill -9: the regional vectors are rebuilt from SQLite.
    s.kill9()
    s.start()
    c = s.client()
    r = c.v2("reg", "search", {"search_type": "IMAGE", "limit": 1,
                               "image_base64": b64(crop(imgs[7], 1, 1))})
    assert r.json["data"]["items"][0]["id"] == "i7" and r.json["data"]["items"][0]["score"] > 0.95
    assert vectors(c) == 9 * 8


def test_v1_copyright_instance_finds_crops(make_server):
    c = make_server().client()
    c.v1("POST", "/service", {"name": "cr", "model": "image-copyright"})
    imgs = [scene(3000 + i, 480, 360) for i in range(6)]
    for i, img in enumerate(imgs):
        assert c.v1("POST", "/cr/image", {"path": "p%d" % i, "file": b64(img)}).status == 200
    r = c.v1("POST", "/cr/image/search", {"file": b64(crop(imgs[2], 1, 0)), "limit": 3})
    assert r.json["result"][0]["path"] == "p2" and r.json["count"] == 6
