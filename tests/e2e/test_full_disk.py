"""Full disk: the data dir on a small filesystem the test mounts (tmpfs, and
a loop-mounted ext4 image), filled up with a filler file. Adds then fail with
the store error (HTTP 500, MMS.1015), searches and checks keep answering, and
once the filler is gone the same process takes adds again; afterwards
PRAGMA integrity_check is "ok", every acknowledged item is there and no
refused one is. A snapshot written at shutdown onto the full disk fails
without touching the previous one; an import job waits the full disk out.
Needs root (mount); skipped otherwise."""
import contextlib
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time

import pytest

from images import b64, encode, scene

STORE_FAILED = (500, "MMS.1015", "Process BIZ failed.")


def run(*cmd):
    return subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


@contextlib.contextmanager
def small_fs(kind, mb=8):
    """A fresh `mb` MB filesystem mounted on a temp dir; always unmounted."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    top = tempfile.mkdtemp(prefix="imgsearch-fulldisk-")
    mnt = os.path.join(top, "mnt")
    os.mkdir(mnt)
    mounted = False
    try:
        if kind == "tmpfs":
            r = run("mount", "-t", "tmpfs", "-o", "size=%dm" % mb, "tmpfs", mnt)
        else:
            img = os.path.join(top, "fs.img")
            with open(img, "wb") as f:
                f.truncate(mb * 1024 * 1024)
            r = run("mkfs.ext4", "-q", "-F", "-m", "0", img)
            if r.returncode == 0:
                r = run("mount", "-o", "loop", img, mnt)
        if r.returncode != 0:
            pytest.skip("cannot mount %s: %s" % (kind, r.stderr.strip()))
        mounted = True
        yield mnt
    finally:
        if mounted:
            run("umount", "-l", mnt)  # lazy: a server still holding files must not block it
        shutil.rmtree(top, ignore_errors=True)


def fill(mnt):
    """Takes every free byte with a filler file; returns its path."""
    path = os.path.join(mnt, "filler")
    with open(path, "wb", buffering=0) as f:
        for chunk in (1 << 20, 1 << 12, 1):
            try:
                while True:
                    f.write(b"\0" * chunk)
            except OSError:
                pass
    return path


def add(c, svc, name, seed):
    return c.v2(svc, "data/add", {"item_id": name, "image_base64": b64(scene(seed))})


def top_id(c, svc, seed, limit=1):
    r = c.v2(svc, "search", {"search_type": "IMAGE", "image_base64": b64(scene(seed)),
                             "limit": limit})
    assert r.status == 200, r
    return [it["id"] for it in r.json["data"]["items"]]


def assert_store_failed(r):
    assert (r.status, r.json.get("error_code"), r.json.get("error_msg")) == STORE_FAILED, r


def check_db(data_dir, acked, refused):
    """Offline, after a clean stop: integrity, and exactly the acked items,
    each with its whole set of vectors."""
    db = sqlite3.connect("file:%s/imgsearch.db?mode=ro" % data_dir, uri=True)
    try:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        names = {r[0] for r in db.execute("SELECT item_id FROM items")}
        assert set(acked) <= names, sorted(set(acked) - names)
        assert not names & set(refused), sorted(names & set(refused))
        views = db.execute("SELECT count(DISTINCT n) FROM (SELECT count(r.k) AS n FROM items i"
                           " LEFT JOIN item_regions r ON r.item = i.id GROUP BY i.id)").fetchone()
        assert views[0] <= 1, "items with different numbers of stored views"
    finally:
        db.close()
    return names


@pytest.mark.parametrize("kind", ["tmpfs", "ext4"])
def test_full_disk_refuses_adds_and_recovers(make_server, kind):
    with small_fs(kind) as mnt:
        data = os.path.join(mnt, "data")
        s = make_server(data_dir=data)
        c = s.client()
        c.create_instance("full")
        acked, refused = {}, {}  # item_id -> image seed
        for i in range(4):
            assert add(c, "full", "a%d" % i, 100 + i).status == 200
            acked["a%d" % i] = 100 + i
        filler = fill(mnt)
        # SQLite may still fit a few rows in WAL pages it reuses; the disk
        # is full for good once adds start being refused.
        in_a_row = 0
        for i in range(4, 40):
            r = add(c, "full", "a%d" % i, 100 + i)
            if r.status == 200:
                acked["a%d" % i] = 100 + i
                in_a_row = 0
                continue
            assert_store_failed(r)
            refused["a%d" % i] = 100 + i
            in_a_row += 1
            if in_a_row == 3:
                break
        assert in_a_row == 3, (acked, refused)
        assert "database or disk is full" in s.read_log()  # the operator learns why
        # v1 answers its own family's internal error for the same condition.
        v1 = "https://bucket.obs.cn-north-4.myhuaweicloud.com/v1.jpg"
        r = c.v1("POST", "/full/image", {"path": v1, "file": b64(scene(99))})
        assert (r.status, r.json.get("error_code")) == (500, "IS.0009"), r
        refused[v1] = 99

        # Every other write is refused the same way and changes nothing.
        r = c.v2("full", "data/update", {"item_id": "a1", "desc": "changed"})
        assert_store_failed(r)
        r = c.admin("POST", "/instances", {"name": "late", "custom_tags": []})
        assert_store_failed(r)
        assert c.admin("GET", "/instances/late").json["error_code"] == "MMS.1001"

        # Reads keep answering while the disk is full.
        assert c.request("GET", "/healthz").status == 200
        r = c.admin("GET", "/instances/full/items/a1/thumbnail")
        assert r.status == 200 and r.body[:2] == b"\xff\xd8", r
        for name, seed in acked.items():
            assert top_id(c, "full", seed) == [name]
            assert c.existed("full", name)
        for name, seed in refused.items():
            assert not c.existed("full", name)
            assert name not in top_id(c, "full", seed, limit=5)
        # A refused delete changes nothing; an accepted one is complete.
        r = c.v2("full", "data/delete", {"item_id": "a0"})
        if r.status == 200:
            assert not c.existed("full", "a0")
            assert "a0" not in top_id(c, "full", 100, limit=5)
            del acked["a0"]
        else:
            assert_store_failed(r)
            assert top_id(c, "full", 100) == ["a0"]

        # Space back: the same process takes adds again, no restart.
        os.unlink(filler)
        for i in range(50, 53):
            assert add(c, "full", "a%d" % i, 100 + i).status == 200
            acked["a%d" % i] = 100 + i
        for name, seed in acked.items():
            assert top_id(c, "full", seed) == [name]
        for name in refused:
            assert not c.existed("full", name)
        r = c.v2("full", "data/check", {"item_id": "a1"})
        assert "desc" not in r.json["data"]["item_info"], r
        assert c.admin("GET", "/instances/full").json["item_count"] == len(acked)
        s.stop()
        assert check_db(data, acked, refused) == set(acked)


def test_snapshot_on_full_disk_keeps_previous(make_server):
    with small_fs("tmpfs") as mnt:
        data = os.path.join(mnt, "data")
        idx = os.path.join(data, "index")
        s = make_server(data_dir=data)
        c = s.client()
        c.create_instance("snapfull")
        for i in range(3):
            assert add(c, "snapfull", "s%d" % i, 300 + i).status == 200
        s.stop()  # clean: writes snapshot 1
        snap = {f: open(os.path.join(idx, f), "rb").read() for f in os.listdir(idx)}
        assert any(f.endswith(".snap") for f in snap)

        s.start()
        c = s.client()
        acked = ["s0", "s1", "s2"]
        for i in range(3, 6):
            assert add(c, "snapfull", "s%d" % i, 300 + i).status == 200
            acked.append("s%d" % i)
        filler = fill(mnt)
        s.stop()  # the snapshot of the changed index cannot be written
        assert "snapshot failed" in s.read_log()
        now = {f: open(os.path.join(idx, f), "rb").read() for f in os.listdir(idx)}
        assert now == snap  # byte for byte, and no temp file left behind

        os.unlink(filler)
        s.start()  # snapshot 1 is stale: the changes after it are replayed
        c = s.client()
        for i, name in enumerate(acked):
            assert top_id(c, "snapfull", 300 + i) == [name]
        assert "replayed 3 changes" in s.read_log()
        per_item = 4 if c.admin("GET", "/instances/snapfull").json["views"] else 1
        assert c.metric("imgsearch_index_vectors") == len(acked) * per_item
        s.stop()  # space again: snapshot 2 is written
        s.start()
        c = s.client()
        assert top_id(c, "snapfull", 305) == ["s5"]
        s.stop()
        check_db(data, acked, [])
        db = sqlite3.connect("file:%s/imgsearch.db?mode=ro" % data, uri=True)
        seq = db.execute("SELECT id, change_seq FROM instances").fetchone()
        db.close()
        with open(os.path.join(idx, "%d.snap" % seq[0]), "rb") as f:
            head = f.read(16)
        assert head[:8] == b"IMGSNAP1"
        assert int.from_bytes(head[8:], "little") == seq[1]  # snapshot 2 is current


def test_import_waits_out_a_full_disk(make_server):
    """An import running into a full disk neither fails its images nor
    ends: it waits, and finishes by itself once space is freed."""
    with small_fs("tmpfs", 16) as mnt:
        s = make_server(data_dir=os.path.join(mnt, "data"))
        c = s.client()
        c.create_instance("imp")
        d = os.path.join(s.objects_dir, "imp")  # the source is not on the small fs
        os.makedirs(d)
        n = 24
        for i in range(n):
            with open(os.path.join(d, "img%03d.jpg" % i), "wb") as f:
                f.write(encode(scene(600 + i)))
        r = c.admin("POST", "/instances/imp/imports", {"source": "obs://local/imp/"})
        assert r.status == 202, r
        job = "/instances/imp/imports/" + r.json["job_id"]
        deadline = time.time() + 120
        while c.admin("GET", job).json["done"] < 2:
            assert time.time() < deadline
            time.sleep(0.05)
        filler = fill(mnt)
        time.sleep(3)  # long enough for several refused stores
        j = c.admin("GET", job).json
        assert (j["status"], j["failed"]) == ("RUNNING", 0), j
        assert j["done"] < n, j
        os.unlink(filler)
        while j["status"] == "RUNNING":
            assert time.time() < deadline, j
            time.sleep(0.2)
            j = c.admin("GET", job).json
        assert (j["status"], j["done"], j["failed"]) == ("SUCCEEDED", n, 0), j
        assert c.admin("GET", "/instances/imp").json["item_count"] == n
        for i in (0, n // 2, n - 1):
            assert top_id(c, "imp", 600 + i) == ["imp/img%03d.jpg" % i]
