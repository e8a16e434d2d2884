"""Query-time orientation search ([search] rotations): a copy rotated by 90
or 180 degrees is found; rotated views carry a penalty; switching it off
restores the plain descriptor's behaviour."""
from images import b64, scene
from PIL import Image


def fill(c, name):
    c.create_instance(name)
    for i in range(12):
        assert c.v2(name, "data/add", {"item_id": "r%d" % i,
                                       "image_base64": b64(scene(900 + i, 400, 300))}).status == 200


def query(c, name, img):
    r = c.v2(name, "search", {"search_type": "IMAGE", "image_base64": b64(img), "limit": 3})
    assert r.status == 200, r
    return r.json["data"]["items"]


def test_rotated_copies_found(make_server):
    s = make_server()
    c = s.client()
    fill(c, "rot")
    for i in (1, 5, 9):
        img = scene(900 + i, 400, 300)
        for t in (Image.ROTATE_90, Image.ROTATE_180, Image.ROTATE_270):
            items = query(c, "rot", img.transpose(t))
            assert items[0]["id"] == "r%d" % i, (i, t, items)
            assert items[0]["score"] <= 0.901  # a rotated view: 1.0 - penalty (0.1) at most
        upright = query(c, "rot", img)
        assert upright[0]["id"] == "r%d" % i and upright[0]["score"] > 0.98
    # v1 search by file takes the same path.
    r = c.v1("POST", "/rot/image/search", {"file": b64(scene(905, 400, 300).transpose(
        Image.ROTATE_90)), "limit": 1})
    assert r.json["result"][0]["path"] == "r5"


def test_rotations_off(make_server):
    s = make_server(extra="[search]\nrotations = off\n")
    c = s.client()
    fill(c, "norot")
    img = scene(903, 400, 300).transpose(Image.ROTATE_90)
    items = query(c, "norot", img)
    # Without the extra views the rotated copy's score is the plain cosine.
    on = make_server()
    c2 = on.client()
    fill(c2, "withrot")
    items_on = query(c2, "withrot", img)
    assert items_on[0]["id"] == "r3"
    assert items[0]["id"] != "r3" or items[0]["score"] < items_on[0]["score"] + 0.05


def test_bad_search_config(make_server):
    import pytest
    with pytest.raises(RuntimeError) as e:
        make_server(extra="[search]\nrotation_below = 2\n")
    assert "rotation_below" in str(e.value)
