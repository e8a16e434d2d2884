"""Compact descriptors (issue 9, [index] projection): instances created while
a projection is configured store each view as 256 int8 codes and search in
the projected space; older instances stay float and keep working beside
them; kill -9 (rebuild from SQLite), a clean restart (snapshot) and a
snapshot of the wrong dimension all give the same answers; a compact
instance refuses clearly when the server has no projection or another one.

CI has no models/projection-*.bin: the test fits its own, with the
project's trainer (scripts/train_projection.c), on the 1792-d vectors a
float instance stored in SQLite for a few hundred views of test images."""
import os
import re
import sqlite3
import subprocess

import pytest
from conftest import ROOT, Server
from images import b64, encode, scene
from PIL import Image

TRAIN_SEEDS = range(5000, 5072)  # 72 items x 4 views = 288 vectors > 256 dims
SEEDS = range(5100, 5120)


def makefile_libs():
    text = open(os.path.join(ROOT, "Makefile")).read().replace("\\\n", " ")
    return re.search(r"^LIBS\s*=(.*)$", text, re.M).group(1).split()


def build_trainer(out):
    """scripts/train_projection.c against the built library."""
    for build, san in (("release", []), ("asan", ["-fsanitize=address,undefined"])):
        lib = os.path.join(ROOT, "build", build, "libimgsearch.a")
        if os.path.exists(lib):
            subprocess.run(["cc", "-O2", "-std=c11", "-D_GNU_SOURCE", "-I" + ROOT] + san +
                           [os.path.join(ROOT, "scripts", "train_projection.c"), lib] +
                           makefile_libs() + ["-o", out], check=True)
            return out
    pytest.skip("no build/*/libimgsearch.a to link the trainer with")


def blobs(data_dir, instance):
    """Byte sizes of every stored vector of an instance (items and views)."""
    with sqlite3.connect(os.path.join(data_dir, "imgsearch.db")) as db:
        (iid,) = db.execute("SELECT id FROM instances WHERE name = ?", (instance,)).fetchone()
        a = [n for (n,) in db.execute("SELECT length(vector) FROM items WHERE instance_id = ?",
                                      (iid,))]
        b = [n for (n,) in db.execute("SELECT length(r.vector) FROM item_regions r JOIN items i"
                                      " ON i.id = r.item WHERE i.instance_id = ?", (iid,))]
        return iid, a, b


def fit(s, instance, tmp, name, shrink):
    """A projection fitted on the float vectors `instance` holds in SQLite."""
    with sqlite3.connect(os.path.join(s.data_dir, "imgsearch.db")) as db:
        (iid,) = db.execute("SELECT id FROM instances WHERE name = ?", (instance,)).fetchone()
        rows = db.execute("SELECT vector FROM items WHERE instance_id = ? UNION ALL"
                          " SELECT r.vector FROM item_regions r JOIN items i ON i.id = r.item"
                          " WHERE i.instance_id = ?", (iid, iid)).fetchall()
    raw = os.path.join(tmp, name + ".f32")
    with open(raw, "wb") as f:
        for (v,) in rows:
            assert len(v) == 1792 * 4
            f.write(v)
    out = os.path.join(tmp, name + ".bin")
    r = subprocess.run([os.path.join(tmp, "train_projection"), raw, "1792", "256", "1",
                        str(shrink), out], check=True, capture_output=True, text=True)
    assert "out=256" in r.stdout, r.stdout
    return out


def add(c, svc, name, img):
    r = c.v2(svc, "data/add", {"item_id": name, "image_base64": b64(img)})
    assert r.status == 200, r


def search(c, svc, img, limit=3):
    r = c.v2(svc, "search", {"search_type": "IMAGE", "image_base64": b64(img), "limit": limit})
    assert r.status == 200, r
    return [(it["id"], round(it["score"], 5)) for it in r.json["data"]["items"]]


def modified(img):
    """A re-encoded, shrunk copy: not the stored bytes, so no hash shortcut."""
    w, h = img.size
    small = img.resize((w * 3 // 4, h * 3 // 4), Image.BILINEAR)
    import io
    return Image.open(io.BytesIO(encode(small, quality=40)))


def descriptor(c, name):
    r = c.admin("GET", "/instances/" + name)
    assert r.status == 200, r
    return r.json["descriptor"]


def all_results(c, svc):
    return {seed: search(c, svc, scene(seed)) for seed in SEEDS}


def test_compact_instances(tmp_path):
    tmp = str(tmp_path)
    build_trainer(os.path.join(tmp, "train_projection"))
    # 1. No projection: a float instance, whose vectors also train one.
    s = Server()
    s.start()
    try:
        c = s.client()
        c.create_instance("old")
        assert descriptor(c, "old") == "float"
        for seed in TRAIN_SEEDS:
            add(c, "old", "t%d" % seed, scene(seed))
        # Regularised (shrink 0.5): 288 vectors fit 256 whitened dims poorly.
        proj = fit(s, "old", tmp, "p1", 0.5)
        other = fit(s, "old", tmp, "p2", 0.9)
    finally:
        s.stop()

    # 2. With the projection: new instances are compact, "old" stays float.
    conf = s.config
    with open(conf) as f:
        base = f.read()
    with open(conf, "w") as f:
        f.write(base + f"[index]\nprojection = {proj}\n")
    s.start()
    c = s.client()
    assert "compact descriptors: new instances use" in s.read_log()
    c.create_instance("cmp")
    assert descriptor(c, "cmp") == "compact"
    assert descriptor(c, "old") == "float"
    for seed in SEEDS:
        add(c, "cmp", "s%d" % seed, scene(seed))
    iid, items, views = blobs(s.data_dir, "cmp")
    assert items == [256] * len(SEEDS)
    assert views == [256] * (3 * len(SEEDS))  # centre, 96 px, grey: 1 KiB an item
    _, old_items, _ = blobs(s.data_dir, "old")
    assert set(old_items) == {1792 * 4}
    for seed in SEEDS:
        got = search(c, "cmp", scene(seed))
        assert got[0][0] == "s%d" % seed and got[0][1] > 0.9, (seed, got)
        got = search(c, "cmp", modified(scene(seed)))
        assert got[0][0] == "s%d" % seed, (seed, got)
    # v1 by path: the stored codes are the query, already in the space.
    r = c.v1("POST", "/cmp/image/search", {"path": "s5104", "limit": 2})
    assert r.status == 200, r
    assert r.json["result"][0]["path"] == "s5104" and r.json["result"][0]["sim"] > 0.9, r
    r = c.v1("POST", "/cmp/image/search", {"file": b64(modified(scene(5105))), "limit": 1})
    assert r.status == 200 and r.json["result"][0]["path"] == "s5105", r
    # The float instance beside it answers as before.
    got = search(c, "old", modified(scene(TRAIN_SEEDS[3])))
    assert got[0][0] == "t%d" % TRAIN_SEEDS[3], got
    add(c, "old", "t-new", scene(5999))
    assert set(blobs(s.data_dir, "old")[1]) == {1792 * 4}

    # Delete, update, replace.
    assert c.v2("cmp", "data/delete", {"item_id": "s5100"}).status == 200
    assert "s5100" not in [i for i, _ in search(c, "cmp", scene(5100))]
    assert c.v2("cmp", "data/update", {"item_id": "s5101", "desc": "x"}).status == 200
    r = c.v2("cmp", "data/add", {"item_id": "s5102", "image_base64": b64(scene(5150)),
                                 "force": True})
    assert r.status == 200, r
    assert search(c, "cmp", scene(5150))[0][0] == "s5102"
    before = all_results(c, "cmp")

    # kill -9 before any snapshot: rebuilt from the codes in SQLite.
    s.kill9()
    s.start()
    c = s.client()
    assert all_results(c, "cmp") == before
    assert re.findall(r"index %d: rebuilt from SQLite" % iid, s.read_log())
    # Clean stop: snapshot (256-d); the next start loads it.
    s.stop()
    snap = os.path.join(s.data_dir, "index", "%d.snap" % iid)
    assert os.path.exists(snap)
    s.start()
    c = s.client()
    assert all_results(c, "cmp") == before
    assert "index %d: loaded snapshot" % iid in s.read_log()
    # A snapshot of the wrong dimension (the float instance's) is rebuilt.
    search(c, "old", scene(5999))
    s.stop()
    old_id = blobs(s.data_dir, "old")[0]
    # Its body under this snapshot's header (magic, change seq), so it is read.
    with open(snap, "rb") as f:
        header = f.read(16)
    with open(os.path.join(s.data_dir, "index", "%d.snap" % old_id), "rb") as f:
        body = f.read()[16:]
    with open(snap, "wb") as f:
        f.write(header + body)
    s.start()
    c = s.client()
    assert all_results(c, "cmp") == before
    assert re.search(r"index %d: snapshot unusable \(.*dimension 1792, expected 256" % iid,
                     s.read_log()), s.read_log()[-3000:]
    s.stop()

    # 3. Without the projection, or with another one: the compact instance
    # refuses (503 ModelArts.4508) instead of mixing spaces; "old" works.
    for setting in ("", f"[index]\nprojection = {other}\n"):
        with open(conf, "w") as f:
            f.write(base + setting)
        s.start()
        c = s.client()
        for op, body in (("search", {"search_type": "IMAGE", "image_base64": b64(scene(5103))}),
                         ("data/add", {"item_id": "z", "image_base64": b64(scene(5103))}),
                         ("data/delete", {"item_id": "s5103"})):
            r = c.v2("cmp", op, body)
            assert r.status == 503 and r.json["error_code"] == "ModelArts.4508", (op, r)
        assert "instance cmp has compact descriptors of projection" in s.read_log()
        assert search(c, "old", scene(5999))[0][0] == "t-new"
        assert descriptor(c, "cmp") == "compact"
        s.stop()
    # Back with the right one: nothing was lost.
    with open(conf, "w") as f:
        f.write(base + f"[index]\nprojection = {proj}\n")
    s.start()
    assert all_results(s.client(), "cmp") == before
    s.stop()


def test_projection_file_must_be_sound(tmp_path):
    """A missing or corrupt projection file stops the start with a message."""
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"IMGPROJ1" + b"\0" * 100)
    for path in (str(tmp_path / "missing.bin"), str(bad)):
        s = Server(extra=f"[index]\nprojection = {path}\n")
        with pytest.raises(RuntimeError) as e:
            s.start(timeout=20)
        assert "[index] projection " + path in str(e.value), str(e.value)[-2000:]


def float_instances(s, big, small):
    """`big` with the 72 training items (288 vectors), `small` with one."""
    c = s.client()
    c.create_instance(big)
    for seed in TRAIN_SEEDS:
        add(c, big, "t%d" % seed, scene(seed))
    c.create_instance(small)
    add(c, small, "one", scene(7))
    return c


def test_compact_in_own_space(tmp_path):
    """POST /admin/v1/{project}/instances/{name}/compact (ours): a float
    instance is rewritten as int8 codes of a projection fitted on its own
    stored vectors, with no [index] projection configured; it keeps finding
    every item, takes new ones in the new space, survives a restart (the
    projection is in the database) and kill -9 (rebuilt from the codes); a
    second call, and an instance too small to fit, are refused with 400."""
    s = Server()
    s.start()
    try:
        c = float_instances(s, "own", "tiny")
        queries = list(TRAIN_SEEDS)[::6]
        before = {seed: search(c, "own", modified(scene(seed)))[0][0] for seed in queries}
        assert all(before[seed] == "t%d" % seed for seed in queries), before

        r = c.admin("POST", "/instances/own/compact")
        assert r.status == 200, r
        assert r.json["vectors"] == 4 * len(TRAIN_SEEDS)
        assert r.json["trained_on"] == 4 * len(TRAIN_SEEDS)
        assert re.fullmatch(r"[0-9a-f]{64}", r.json["projection"])
        digest = r.json["projection"]
        assert descriptor(c, "own") == "compact"
        _, items, views = blobs(s.data_dir, "own")
        assert items == [256] * len(TRAIN_SEEDS) and views == [256] * (3 * len(TRAIN_SEEDS))
        after = {seed: search(c, "own", modified(scene(seed)))[0][0] for seed in queries}
        assert after == before
        # New items go into the instance's own space.
        add(c, "own", "new", scene(5500))
        _, items, _ = blobs(s.data_dir, "own")
        assert items == [256] * (len(TRAIN_SEEDS) + 1)
        assert search(c, "own", modified(scene(5500)))[0][0] == "new"

        r = c.admin("POST", "/instances/own/compact")
        assert r.status == 400 and "already compact" in r.body.decode(), r
        r = c.admin("POST", "/instances/tiny/compact")
        assert r.status == 400 and "needs more than 256" in r.body.decode(), r
        assert descriptor(c, "tiny") == "float"
        r = c.admin("POST", "/instances/nosuch/compact")
        assert r.status in (400, 404), r

        # The space is in the database: a restart (snapshot) and kill -9
        # (rebuild from the codes) answer the same.
        s.stop()
        s.start()
        c = s.client()
        assert {seed: search(c, "own", modified(scene(seed)))[0][0] for seed in queries} == before
        s.stop(sig=9, check=False)
        s.start()
        c = s.client()
        assert {seed: search(c, "own", modified(scene(seed)))[0][0] for seed in queries} == before
        assert descriptor(c, "own") == "compact"
        with sqlite3.connect(os.path.join(s.data_dir, "imgsearch.db")) as db:
            assert db.execute("SELECT count(*) FROM projections WHERE digest = ?",
                              (digest,)).fetchone() == (1,)
    finally:
        s.stop(check=False)


def _wait_compact(c, name, seconds=120):
    import time
    deadline = time.time() + seconds
    while descriptor(c, name) != "compact" and time.time() < deadline:
        time.sleep(0.2)
    return descriptor(c, name)


def test_compact_after(tmp_path):
    """[index] compact_after = N: a data dir from before (a float instance of
    N items) is made compact at start without losing an item, and an
    instance that grows to N items while the server runs follows."""
    s = Server()
    s.start()
    try:
        c = float_instances(s, "old", "small")
        assert descriptor(c, "old") == "float"
    finally:
        s.stop()
    n = len(TRAIN_SEEDS)
    s = Server(extra="[index]\ncompact_after = %d\ncompact_batch = 16\n" % n,
               data_dir=s.data_dir)
    s.start()
    try:
        c = s.client()
        assert _wait_compact(c, "old") == "compact"
        # In batches of 16: the 72 whole images, then their 216 views.
        import time
        deadline = time.time() + 60
        while "compact, %d vectors" % (4 * n) not in s.read_log() and time.time() < deadline:
            time.sleep(0.2)
        assert re.search(r"rewrote %d float vectors .* in %d transactions" % (4 * n, 5 + 14),
                         s.read_log()), s.read_log()[-3000:]
        assert descriptor(c, "small") == "float"
        for seed in TRAIN_SEEDS:
            r = c.v2("old", "data/check", {"item_id": "t%d" % seed})
            assert r.status == 200 and r.json["data"]["existed"], r
        _, items, views = blobs(s.data_dir, "old")
        assert items == [256] * n and views == [256] * (3 * n)
        for seed in list(TRAIN_SEEDS)[::9]:
            assert search(c, "old", modified(scene(seed)))[0][0] == "t%d" % seed

        c.create_instance("live")
        for seed in TRAIN_SEEDS:
            add(c, "live", "t%d" % seed, scene(seed))
        assert _wait_compact(c, "live") == "compact"
        assert search(c, "live", modified(scene(5003)))[0][0] == "t5003"
    finally:
        s.stop()


# --- the conversion in batches (storage/compaction.c) ---------------------------

SLOW = "[index]\ncompact_batch = 2\ncompact_pause_ms = %d\n"
MORE_SEEDS = range(5600, 5700)


def float_left(data_dir, instance):
    """Float vectors (items and views) an instance still holds, and all of
    them, read while the server runs (WAL: a reader never waits)."""
    _, a, b = blobs(data_dir, instance)
    return sum(1 for n in a + b if n == 1792 * 4), len(a) + len(b)


def integrity(data_dir):
    with sqlite3.connect(os.path.join(data_dir, "imgsearch.db")) as db:
        return db.execute("PRAGMA integrity_check").fetchone()[0]


def test_conversion_keeps_serving(tmp_path):
    """POST .../compact with the rewrite slowed down (2 rows a transaction,
    a pause between): while it runs, adds, deletes and searches of the
    instance and of another one go through (an add that read the instance
    as float just before the switch is stored in the new space, no retry), and every search of the
    instance once compact returns exactly what it returns when the rewrite
    is done and after a kill -9 (rebuilt from the codes alone): float rows
    coded on the fly read as the codes they become."""
    import threading
    s = Server(extra=SLOW % 30)
    s.start()
    try:
        c = float_instances(s, "own", "other")
        queries = list(TRAIN_SEEDS)[::8]
        result = {}

        def compact():
            result["r"] = s.client().admin("POST", "/instances/own/compact")

        t = threading.Thread(target=compact)
        t.start()
        seen, mid, added, i = [], 0, [], 0
        while t.is_alive() or i < 2:
            for svc in ("own", "other"):
                name = "m%d" % MORE_SEEDS[i]
                add(c, svc, name, scene(MORE_SEEDS[i]))
                added.append((svc, name))
            i += 1
            r = c.v2("other", "data/delete", {"item_id": "m%d" % MORE_SEEDS[i - 1]})
            assert r.status == 200, r
            added.pop()
            assert search(c, "other", modified(scene(7)))[0][0] == "one"
            switched = descriptor(c, "own") == "compact"  # before the searches
            left, total = float_left(s.data_dir, "own")
            res = {seed: search(c, "own", modified(scene(seed))) for seed in queries}
            if switched:
                seen.append(res)
                mid += 0 < left < total
        t.join()
        r = result["r"]
        assert r.status == 200, r
        assert r.json["pending"] is False and r.json["batches"] >= r.json["vectors"] // 2
        assert float_left(s.data_dir, "own")[0] == 0
        assert mid > 0, "no search ran while the rewrite was half done"
        # The items added meanwhile are there, and searches in the compact
        # space agree: during the rewrite and after it.
        # (Items added meanwhile may enter the top 3: an item's score is
        # what is compared, and the top match.)
        final = {seed: search(c, "own", modified(scene(seed))) for seed in queries}
        for res in seen:
            for seed in queries:
                assert res[seed][0] == final[seed][0], (seed, res[seed], final[seed])
                now = dict(final[seed])
                for name, score in res[seed]:
                    assert now.get(name, score) == score, (seed, res[seed], final[seed])
        assert all(final[seed][0][0] == "t%d" % seed for seed in queries), final
        for svc, name in added:
            r = c.v2(svc, "data/check", {"item_id": name})
            assert r.status == 200 and r.json["data"]["existed"], (svc, name, r)
        assert search(c, "own", modified(scene(MORE_SEEDS[0])))[0][0] == "m%d" % MORE_SEEDS[0]
        s.kill9()
        s.start()
        c = s.client()
        assert {seed: search(c, "own", modified(scene(seed))) for seed in queries} == final
        assert integrity(s.data_dir) == "ok"
    finally:
        s.stop(check=False)


def test_kill_mid_conversion_resumes(tmp_path):
    """kill -9 half way through the rewrite, with adds acknowledged before
    and during it: the restart (no compact_after) finishes the conversion,
    every acknowledged item is there and found, and SQLite is sound."""
    import threading
    s = Server(extra=SLOW % 100)
    s.start()
    try:
        c = float_instances(s, "own", "other")
        def compact():
            try:
                s.client().admin("POST", "/instances/own/compact")
            except OSError:
                pass  # the kill -9 cuts the call short

        t = threading.Thread(target=compact)
        t.daemon = True
        t.start()
        acked = ["t%d" % seed for seed in TRAIN_SEEDS]
        i = 0
        while True:
            left, total = float_left(s.data_dir, "own")
            if descriptor(c, "own") == "compact" and 0 < left < total - 40:
                break
            assert left > 0, "the rewrite finished before the kill"
            if i < 6:
                add(c, "own", "m%d" % MORE_SEEDS[i], scene(MORE_SEEDS[i]))
                acked.append("m%d" % MORE_SEEDS[i])
                i += 1
        s.kill9()
        t.join(timeout=30)
        assert 0 < float_left(s.data_dir, "own")[0]
    finally:
        s.stop(check=False)
    s = Server(data_dir=s.data_dir)
    s.start()
    try:
        c = s.client()
        import time
        deadline = time.time() + 120
        while float_left(s.data_dir, "own")[0] and time.time() < deadline:
            time.sleep(0.2)
        assert float_left(s.data_dir, "own")[0] == 0
        assert "resuming its conversion" in s.read_log()
        assert descriptor(c, "own") == "compact"
        for name in acked:
            r = c.v2("own", "data/check", {"item_id": name})
            assert r.status == 200 and r.json["data"]["existed"], (name, r)
        for seed in list(TRAIN_SEEDS)[::9] + list(MORE_SEEDS[:i]):
            want = "t%d" % seed if seed in TRAIN_SEEDS else "m%d" % seed
            assert search(c, "own", modified(scene(seed)))[0][0] == want
        assert integrity(s.data_dir) == "ok"
    finally:
        s.stop()
