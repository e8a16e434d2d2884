"""Index snapshots + replay: a restart after kill -9 loads the last snapshot
and replays only the changes SQLite logged after it (adds, deletes, forced
replacements), with the same search results as before; the background
thread snapshots once enough changes are pending."""
import re
import time

from images import b64, scene


def results(c, svc, seeds, limit=3):
    out = {}
    for seed in seeds:
        r = c.v2(svc, "search", {"search_type": "IMAGE", "image_base64": b64(scene(seed)),
                                 "limit": limit})
        assert r.status == 200, r
        out[seed] = [(it["id"], round(it["score"], 4)) for it in r.json["data"]["items"]]
    return out


def add(c, svc, name, seed, force=False):
    body = {"item_id": name, "image_base64": b64(scene(seed))}
    if force:
        body["force"] = True  # replace the existing item
    r = c.v2(svc, "data/add", body)
    assert r.status == 200, r
    return r


def load_lines(s):
    return re.findall(r"index \d+: (loaded snapshot at seq \d+, replayed \d+ changes|rebuilt)",
                      s.read_log())


def replay_case(make_server, extra, exact=1):
    s = make_server(extra=extra)
    c = s.client()
    c.create_instance("rp")
    for i in range(12):
        add(c, "rp", "r%d" % i, 900 + i)
    s.stop()  # clean: snapshot at the current seq
    s.start()
    c = s.client()
    results(c, "rp", [900])  # loads it
    assert load_lines(s)[-1].startswith("loaded snapshot"), load_lines(s)
    assert "replayed 0 changes" in load_lines(s)[-1]
    # Changes after the snapshot: adds, deletes, a replacement, an update.
    for i in range(12, 18):
        add(c, "rp", "r%d" % i, 900 + i)
    for name in ("r1", "r13"):
        assert c.v2("rp", "data/delete", {"item_id": name}).status == 200
    r = c.v2("rp", "data/delete", {"item_id": "r2"})
    assert r.status == 200
    add(c, "rp", "r2", 950)  # same item_id, another image
    add(c, "rp", "r4", 951, force=True)  # replaced in one transaction
    assert c.v2("rp", "data/update", {"item_id": "r3", "desc": "x"}).status == 200
    seeds = list(range(900, 918)) + [950, 951]
    before = results(c, "rp", seeds)
    vectors = c.metric("imgsearch_index_vectors")
    s.kill9()
    s.start()
    c = s.client()
    after = results(c, "rp", seeds)
    last = load_lines(s)[-1]
    assert last == "loaded snapshot at seq 12, replayed 11 changes", load_lines(s)
    assert c.metric("imgsearch_index_load_rebuilt") == 0
    assert c.metric("imgsearch_index_load_replayed") == 11
    assert c.metric("imgsearch_index_vectors") == vectors
    assert c.wait_metric("imgsearch_index_exact", exact) == exact  # may train at load
    assert after == before
    assert "r1" not in [i for v in after.values() for i, _ in v]
    # A second kill -9 replays the same log again: replay is idempotent.
    s.kill9()
    s.start()
    c = s.client()
    assert results(c, "rp", seeds) == before
    assert load_lines(s)[-1] == "loaded snapshot at seq 12, replayed 11 changes"
    # More writes, a clean stop: the next start replays nothing.
    add(c, "rp", "r30", 930)
    s.stop()
    s.start()
    c = s.client()
    got = results(c, "rp", seeds + [930])
    assert got[930][0][0] == "r30"
    assert load_lines(s)[-1] == "loaded snapshot at seq 24, replayed 0 changes"


def test_kill9_replays_changes_onto_snapshot(make_server):
    replay_case(make_server, "")


def test_kill9_replays_onto_ann_index(make_server):
    # 12 items x 4 views: past exact_max = 5 items the index is IVF4,Flat.
    replay_case(make_server, "[index]\nexact_max = 5\nann_factory = IVF4,Flat\n", exact=0)


def test_background_snapshot_then_kill9(make_server):
    s = make_server(extra="[index]\nsnapshot_changes = 5\nsnapshot_seconds = 0\n")
    c = s.client()
    c.create_instance("bg")
    for i in range(7):
        add(c, "bg", "b%d" % i, 800 + i)
    deadline = time.time() + 30
    while c.metric("imgsearch_index_snapshot_seq") < 5 and time.time() < deadline:
        time.sleep(0.2)
    seq = int(c.metric("imgsearch_index_snapshot_seq"))
    assert seq >= 5, s.read_log()[-2000:]
    assert "writes waited" in s.read_log()
    before = results(c, "bg", range(800, 807))
    s.kill9()
    s.start()
    c = s.client()
    assert results(c, "bg", range(800, 807)) == before
    assert load_lines(s)[-1] == "loaded snapshot at seq %d, replayed %d changes" % (seq, 7 - seq)


def test_snapshot_age_trigger(make_server):
    s = make_server(extra="[index]\nsnapshot_changes = 0\nsnapshot_seconds = 1\n")
    c = s.client()
    c.create_instance("age")
    add(c, "age", "a0", 700)
    deadline = time.time() + 30
    while c.metric("imgsearch_index_snapshot_seq") < 1 and time.time() < deadline:
        time.sleep(0.2)
    assert c.metric("imgsearch_index_snapshot_seq") == 1
    s.kill9()
    s.start()
    c = s.client()
    assert results(c, "age", [700])[700][0][0] == "a0"
    assert load_lines(s)[-1] == "loaded snapshot at seq 1, replayed 0 changes"
