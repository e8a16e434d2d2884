"""Compact instances past exact_max (issue 9): a PQ index whose top
candidates are re-scored with the int8 codes in SQLite ([index]
compact_ann_factory, compact_rerank). With a re-rank depth covering the
instance and the request's nprobe covering its lists, answers equal the exact
tier's, score for score, with and without a tag filter: after the switch,
after adds and deletes past it, from a snapshot (PQ codes only) and after a
rebuild from SQLite. With compact_rerank = 0 the scores are PQ's own. With
a small compact_list_max the index re-partitions into 4x the lists in the
background, from the codes in SQLite, and answers the same.

The projection is fitted on random vectors: the index tier does not care how
good the space is, and fitting one on real views (test_compact.py) costs a
minute of extraction."""
import os
import subprocess

import numpy as np
from conftest import Server
from images import b64, scene
from test_compact import build_trainer

SEEDS = list(range(7000, 7024))
QUERIES = SEEDS[::3] + [7100, 7200]


def fit_random(tmp):
    raw = os.path.join(tmp, "random.f32")
    np.random.default_rng(9).standard_normal((400, 1792), dtype=np.float32).tofile(raw)
    trainer = build_trainer(os.path.join(tmp, "train_projection"))
    out = os.path.join(tmp, "random.bin")
    subprocess.run([trainer, raw, "1792", "256", "1", "0.5", out], check=True,
                   capture_output=True)
    return out


def add(c, name, seed, grp):
    r = c.v2("ca", "data/add", {"item_id": name, "image_base64": b64(scene(seed)),
                                "custom_tags": {"grp": grp}})
    assert r.status == 200, r


def results(c):
    out = {}
    for seed in QUERIES:
        for tags in (None, {"grp": ["a"]}):
            body = {"search_type": "IMAGE", "image_base64": b64(scene(seed)), "limit": 5}
            if tags:
                body["custom_tags"] = tags
            r = c.v2("ca", "search", body)
            assert r.status == 200, r
            out[seed, bool(tags)] = [(it["id"], it["score"]) for it in r.json["data"]["items"]]
    return out


def same(a, b, tol=1e-4):
    """Same ids in the same order, scores equal to float rounding."""
    return a.keys() == b.keys() and all(
        [i for i, _ in a[k]] == [i for i, _ in b[k]] and
        all(abs(x - y) <= tol for (_, x), (_, y) in zip(a[k], b[k])) for k in a)


def seeded(tmp_path):
    """A server with a compact instance "ca" of the SEEDS items (exact tier);
    a third of them tagged "a"."""
    proj = fit_random(str(tmp_path))
    s = Server(extra=f"[index]\nprojection = {proj}\n")
    s.start()
    c = s.client()
    c.create_instance("ca", tags=["grp"])
    for i, seed in enumerate(SEEDS):
        add(c, "s%d" % seed, seed, "a" if i % 3 == 0 else "b")
    return s, c


def test_pq_tier_with_rerank_matches_exact(tmp_path):
    s, c = seeded(tmp_path)
    assert c.metric("imgsearch_index_exact") == 1
    exact = results(c)
    assert all(len(v) == 5 for v in exact.values())  # 8 items are "a"
    s.stop()

    # Past compact_exact_max = 6 items (24 vectors; exact_max, which float
    # instances use, stays at its default): the next add trains IVF4,PQ16x4
    # (4-bit codes: 16 centroids train on 100 vectors) over every vector.
    with open(s.config) as f:
        base = f.read()
    ann = "compact_exact_max = 6\ncompact_ann_factory = IVF4,PQ16x4\n"
    with open(s.config, "w") as f:
        f.write(base + ann + "compact_rerank = 1000\n")
    s.start()
    c = s.client()
    # The exact snapshot, loaded as it was; already past the new limit, it
    # starts its switch in the background at once: the answers are the same
    # before and after it (the re-rank covers every candidate).
    assert same(results(c), exact)
    add(c, "x1", 7100, "a")
    # The switch trains in the background; searches meanwhile are exact.
    assert c.wait_metric("imgsearch_index_exact", 0) == 0
    with_x1 = results(c)
    assert with_x1[7100, False][0][0] == "x1" and with_x1[7100, True][0][0] == "x1"
    # Added after the switch: PQ-coded, found by its own image at score ~1.
    add(c, "x2", 7200, "b")
    got = results(c)
    assert got[7200, False][0][0] == "x2" and got[7200, False][0][1] > 0.99, got[7200, False]
    assert "x2" not in [i for i, _ in got[7200, True]]
    for name in ("x1", "x2"):
        assert c.v2("ca", "data/delete", {"item_id": name}).status == 200
    assert same(results(c), exact)
    assert c.metric("imgsearch_index_exact") == 0
    s.stop()  # snapshot: the PQ index

    s.start()
    c = s.client()
    assert same(results(c), exact)
    assert c.metric("imgsearch_index_exact") == 0
    assert c.metric("imgsearch_index_load_rebuilt") == 0  # the snapshot
    s.kill9()
    # No snapshot: rebuilt from SQLite, through the switch again.
    for name in os.listdir(os.path.join(s.data_dir, "index")):
        os.unlink(os.path.join(s.data_dir, "index", name))
    s.start()
    c = s.client()
    assert same(results(c), exact)
    assert c.metric("imgsearch_index_exact") == 0
    assert c.metric("imgsearch_index_load_rebuilt") == 1
    s.stop()

    # Without the re-rank the PQ index answers with its own approximate scores.
    with open(s.config, "w") as f:
        f.write(base + ann + "compact_rerank = 0\n")
    s.start()
    c = s.client()
    assert not same(results(c), exact)
    s.stop()


def test_repartition_keeps_answers(tmp_path):
    """[index] compact_list_max: past list_max vectors a list on average, the
    IVF index is rebuilt with 4x the lists from the int8 codes in SQLite while
    the server serves; adds and deletes made after it land in the new one."""
    s, c = seeded(tmp_path)
    exact = results(c)
    s.stop()

    with open(s.config) as f:
        base = f.read()
    # 24 items x 4 views = 96 vectors in IVF4: 24 a list, past 8: 16 lists.
    with open(s.config, "w") as f:
        f.write(base + "compact_exact_max = 6\ncompact_ann_factory = IVF4,PQ16x4\n"
                "compact_rerank = 1000\ncompact_list_max = 8\n")
    s.start()
    c = s.client()
    assert c.wait_metric("imgsearch_index_exact", 0) == 0
    # Loaded exact past the limit: switched in the background to IVF4, which
    # is past list_max at once: the re-partition starts; an add meanwhile
    # lands in both.
    add(c, "x1", 7100, "a")
    assert c.wait_metric("imgsearch_index_lists", 16) == 16
    with open(s.log_path, "rb") as f:
        log = f.read().decode(errors="replace")
    assert "re-partitioned 4 -> 16 lists (IVF16,PQ16x4) in the background" in log, log[-2000:]
    got = results(c)
    assert got[7100, False][0][0] == "x1" and got[7100, True][0][0] == "x1"
    assert c.v2("ca", "data/delete", {"item_id": "x1"}).status == 200
    assert same(results(c), exact)
    assert c.metric("imgsearch_index_vectors") == 96
    s.stop()  # the snapshot holds the 16 lists
    s.start()
    c = s.client()
    assert same(results(c), exact)  # loads the index
    assert c.metric("imgsearch_index_lists") == 16
    assert c.metric("imgsearch_index_load_rebuilt") == 0
    s.stop()
