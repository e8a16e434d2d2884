"""Query-time orientation search ([search] rotations): a copy rotated by 90,
180 or 270 degrees is found; rotated views carry the penalty; a strong
upright match skips them; switching it off gives the plain descriptor."""
import pytest
from images import b64, scene
from PIL import Image

TURNS = (Image.ROTATE_90, Image.ROTATE_180, Image.ROTATE_270)


def fill(c, name):
    c.create_instance(name)
    for i in range(12):
        assert c.v2(name, "data/add", {"item_id": "r%d" % i,
                                       "image_base64": b64(scene(900 + i, 400, 300))}).status == 200


def query(c, name, img):
    r = c.v2(name, "search", {"search_type": "IMAGE", "image_base64": b64(img), "limit": 3})
    assert r.status == 200, r
    return r.json["data"]["items"]


@pytest.fixture(scope="module")
def pair():
    """The same items on a server with rotations on and one with them off."""
    from conftest import Server
    on, off = Server().start(), Server(extra="[search]\nrotations = off\n").start()
    fill(on.client(), "rot")
    fill(off.client(), "rot")
    yield on.client(), off.client()
    on.stop()
    off.stop()


def test_rotated_copies_found(pair):
    on, off = pair
    rotated_views_used = 0
    for i in (1, 5, 9):
        img = scene(900 + i, 400, 300)
        for t in TURNS:
            got = query(on, "rot", img.transpose(t))
            plain = query(off, "rot", img.transpose(t))
            assert got[0]["id"] == "r%d" % i, (i, t, got)
            if plain[0]["score"] >= 0.9:
                # A strong upright match: no extra views, the plain answer.
                assert got[0] == plain[0]
            else:
                # The answer is a rotated view, penalised by 0.1.
                assert got[0]["score"] <= 0.901, got
                rotated_views_used += 1
        upright = query(on, "rot", img)
        assert upright[0]["id"] == "r%d" % i and upright[0]["score"] > 0.98
    assert rotated_views_used >= 3  # the rule was exercised, not skipped every time


def test_v1_file_search_uses_it(pair):
    on, _ = pair
    r = on.v1("POST", "/rot/image/search", {"file": b64(scene(905, 400, 300).transpose(
        Image.ROTATE_90)), "limit": 1})
    assert r.json["result"][0]["path"] == "r5"


def test_off_is_the_plain_descriptor(pair):
    on, off = pair
    img = scene(903, 400, 300).transpose(Image.ROTATE_90)
    plain = query(off, "rot", img)
    got = query(on, "rot", img)
    assert got[0]["id"] == "r3"
    if plain[0]["score"] < 0.9:
        assert got[0]["score"] != plain[0]["score"]


def test_bad_search_config(make_server):
    with pytest.raises(RuntimeError) as e:
        make_server(extra="[search]\nrotation_below = 2\n")
    assert "rotation_below" in str(e.value)
