"""A data dir written by an older imgsearchd upgrades in place: the fixture
tests/fixtures/datadir-v4 was made by the server at git 85bca76 (schema 4,
float vectors with views, index snapshots as <id>.faiss + <id>.seq; see
make_datadir_v4.py). Today's server migrates it at start, loses no item,
finds every image, keeps tags and deletes, and from then on replays its own
change log after a kill -9."""
import os
import re
import shutil
import sqlite3

from images import b64, scene

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "datadir-v4")


def search_top(c, svc, seed):
    r = c.v2(svc, "search", {"search_type": "IMAGE", "image_base64": b64(scene(seed)), "limit": 3})
    assert r.status == 200, r
    items = r.json["data"]["items"]
    return items[0]["id"] if items else None, items[0]["score"] if items else 0


def user_version(data_dir):
    db = sqlite3.connect("file:%s/imgsearch.db?mode=ro" % data_dir, uri=True)
    try:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        return db.execute("PRAGMA user_version").fetchone()[0]
    finally:
        db.close()


def test_schema4_data_dir_upgrades_in_place(make_server, tmp_path):
    data = str(tmp_path / "data")
    shutil.copytree(FIXTURE, data)
    assert user_version(data) == 4
    s = make_server(data_dir=data)
    c = s.client()
    listed = {i["name"]: i for i in c.admin("GET", "/instances").json["instances"]}
    assert listed["shop"]["item_count"] == 5 and listed["shop"]["views"] is True
    assert listed["plain"]["item_count"] == 3 and listed["plain"]["views"] is False
    for i in range(5):
        top, score = search_top(c, "shop", 300 + i)
        assert top == "a%d" % i and score > 0.99, (i, top, score)
    for i in range(3):
        assert search_top(c, "plain", 400 + i)[0] == "p%d" % i
    assert search_top(c, "shop", 305)[0] != "a5"  # deleted before the upgrade
    r = c.v2("shop", "search", {"search_type": "IMAGE", "image_base64": b64(scene(301)),
                                "custom_tags": {"brand": ["new"]}, "limit": 5})
    assert [it["id"] for it in r.json["data"]["items"]] == ["a1"], r
    assert not c.existed("shop", "a5")
    # The old snapshots were read (indexes load on first use; none was
    # rebuilt) and hold every vector.
    assert c.metric("imgsearch_index_load_rebuilt") == 0
    assert c.metric("imgsearch_index_vectors") == 5 * 4 + 3

    # Writes after the upgrade go into the change log: a kill -9 replays them.
    r = c.v2("shop", "data/add", {"item_id": "new", "image_base64": b64(scene(310))})
    assert r.status == 200, r
    assert c.v2("shop", "data/delete", {"item_id": "a0"}).status == 200
    s.kill9()
    s.start()
    c = s.client()
    assert search_top(c, "shop", 310)[0] == "new"
    log = s.read_log()
    assert re.search(r"loaded snapshot at seq \d+, replayed 2 changes", log), log[-3000:]
    assert c.metric("imgsearch_index_load_rebuilt") == 0
    assert search_top(c, "shop", 300)[0] != "a0"
    assert search_top(c, "plain", 400)[0] == "p0"
    assert c.metric("imgsearch_index_vectors") == 5 * 4 + 3
    s.stop()
    assert user_version(data) >= 6
