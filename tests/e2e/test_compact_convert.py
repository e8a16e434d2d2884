"""The conversion of a float instance to its own compact space, through
HTTP only, so it also runs on PostgreSQL (IMGSEARCH_TEST_BACKEND=postgres):
POST .../compact switches the instance and rewrites its rows in batches of
[index] compact_batch; searches before, after, after a restart and after a
kill -9 (rebuilt from the codes) find the same items, and adds go into the
new space. test_compact.py covers the rest (it reads the SQLite file)."""
from conftest import Server
from test_compact import (TRAIN_SEEDS, add, descriptor, float_instances, modified, scene,
                          search)


def test_convert_in_batches_any_backend(tmp_path):
    s = Server(extra="[index]\ncompact_batch = 7\n")
    s.start()
    try:
        c = float_instances(s, "own", "other")
        queries = list(TRAIN_SEEDS)[::6]
        before = {seed: search(c, "own", modified(scene(seed)))[0][0] for seed in queries}
        r = c.admin("POST", "/instances/own/compact")
        assert r.status == 200, r
        n = 4 * len(TRAIN_SEEDS)
        assert r.json["vectors"] == n and r.json["pending"] is False, r.json
        # 72 whole images then 216 views, 7 a transaction.
        assert r.json["batches"] == -(-len(TRAIN_SEEDS) // 7) - (-3 * len(TRAIN_SEEDS) // 7)
        assert r.json["switch_ms"] >= 0 and r.json["max_batch_ms"] >= 0
        assert descriptor(c, "own") == "compact" and descriptor(c, "other") == "float"
        after = {seed: search(c, "own", modified(scene(seed))) for seed in queries}
        assert {seed: res[0][0] for seed, res in after.items()} == before
        add(c, "own", "new", scene(5500))
        assert search(c, "own", modified(scene(5500)))[0][0] == "new"
        assert search(c, "other", modified(scene(7)))[0][0] == "one"
        s.stop()
        s.start()
        c = s.client()
        assert {seed: search(c, "own", modified(scene(seed))) for seed in queries} == after
        s.kill9()
        s.start()
        c = s.client()
        assert {seed: search(c, "own", modified(scene(seed))) for seed in queries} == after
        assert search(c, "own", modified(scene(5500)))[0][0] == "new"
    finally:
        s.stop(check=False)
