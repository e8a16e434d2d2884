"""Index snapshots in a bucket ([cluster] snapshot_bucket, docs/cluster.md
piece 6): a node joins with an empty data dir and loads the snapshot another
node uploaded, replaying only the change log after it, with the same search
results. A corrupt or truncated object is refused and the node rebuilds from
the database; so is an object left by a deleted instance whose id SQLite
gave to a new one. With the store down a node still rebuilds and answers.
Of a local snapshot and a stored one the newer replayable one is used. An
unchanged index whose snapshot is only local is uploaded all the same. An
instance delete removes its object. Each shard of a sharded instance has an
object of its own, and a node that starts empty loads every shard from them.

PostgreSQL nodes use the S3 test server (s3rver behind a SigV4-checking
proxy); the SQLite case restores a database copy onto a new data dir with a
local-directory bucket."""
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid

import pytest
from conftest import IS_ASAN, ROOT, Server, free_port, pg_cluster
from images import b64, scene
from services import S3Server

BUCKET = "snaps"


@pytest.fixture(scope="module")
def s3():
    with S3Server(buckets=[BUCKET]) as s:
        yield s


def bucket_ini(s3, prefix, endpoint=None):
    return ("[bucket:%s]\ntype = s3\nendpoint = %s\naccess_key = %s\nsecret_key = %s\n"
            "[cluster]\nsnapshot_bucket = %s\nsnapshot_prefix = %s\n"
            % (BUCKET, endpoint or s3.endpoint, s3.access_key, s3.secret_key, BUCKET, prefix))


def pg_storage():
    pg = pg_cluster()
    name = "snaps3_" + uuid.uuid4().hex[:12]
    pg.create_database(name)
    return "[storage]\nbackend = postgres\ndsn = %s\n" % pg.dsn_for(name)


# A snapshot after 10 changes, never by age: the changes after it stay in
# the log for the next node to replay.
INDEX = "[index]\nsnapshot_changes = 10\nsnapshot_seconds = 0\n"


def node(storage, extra, index=INDEX):
    return Server(storage=storage, extra=index + extra).start()


def add(c, svc, name, seed):
    r = c.v2(svc, "data/add", {"item_id": name, "image_base64": b64(scene(seed))})
    assert r.status == 200, r


def results(c, svc, seeds, limit=3):
    out = {}
    for seed in seeds:
        r = c.v2(svc, "search", {"search_type": "IMAGE", "image_base64": b64(scene(seed)),
                                 "limit": limit})
        assert r.status == 200, r
        out[seed] = [(it["id"], round(it["score"], 4)) for it in r.json["data"]["items"]]
    return out


def load_lines(s):
    return re.findall(r"index \d+: (loaded snapshot at seq \d+, replayed \d+ changes|rebuilt)",
                      s.read_log())


def wait_log(s, pattern, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        m = re.search(pattern, s.read_log())
        if m:
            return m
        time.sleep(0.2)
    raise AssertionError("no %r in the log:\n%s" % (pattern, s.read_log()[-3000:]))


SEEDS = list(range(700, 716))


def fill(c):
    """10 adds (a snapshot), then 4 changes the next node must replay."""
    c.create_instance("sn")
    for i in range(10):
        add(c, "sn", "s%d" % i, SEEDS[i])


def more(c):
    for i in range(10, 13):
        add(c, "sn", "s%d" % i, SEEDS[i])
    assert c.v2("sn", "data/delete", {"item_id": "s2"}).status == 200


def test_a_new_node_loads_the_stored_snapshot(s3):
    storage, prefix = pg_storage(), "t1-" + uuid.uuid4().hex[:8]
    n1 = node(storage, bucket_ini(s3, prefix))
    n2 = n3 = n4 = None
    try:
        c1 = n1.client()
        fill(c1)
        m = wait_log(n1, r"index (\d+): snapshot at seq 10 uploaded to s3://%s/%s/snapshots/"
                     r"\d+/0\.snap" % (BUCKET, prefix))
        key = "%s/snapshots/%s/0.snap" % (prefix, m.group(1))
        obj = s3.get_object(BUCKET, key)
        assert obj is not None and obj[:8] == b"IMGSNAP1"
        more(c1)
        want = results(c1, "sn", SEEDS)

        # Node 2: an empty data dir, the same database and bucket.
        n2 = node(storage, bucket_ini(s3, prefix))
        c2 = n2.client()
        assert results(c2, "sn", SEEDS) == want
        log = n2.read_log()
        assert re.search(r"fetched snapshot at seq 10 from s3://%s/%s" % (BUCKET, key), log), log
        assert load_lines(n2) == ["loaded snapshot at seq 10, replayed 4 changes"], log
        assert c2.metric("imgsearch_index_load_rebuilt") == 0
        assert c2.metric("imgsearch_index_snapshot_stored_seq") == 10

        # A corrupt object (one flipped byte in the index) is refused.
        bad = bytearray(obj)
        bad[len(bad) // 2] ^= 0x40
        s3.put_object(BUCKET, key, bytes(bad))
        n3 = node(storage, bucket_ini(s3, prefix))
        assert results(n3.client(), "sn", SEEDS) == want
        assert "refused: checksum mismatch" in n3.read_log()
        assert load_lines(n3) == ["rebuilt"]
        n3.stop()  # a clean stop uploads its snapshot, whole, over the bad one
        n3 = None

        # A truncated one too.
        s3.put_object(BUCKET, key, obj[:len(obj) // 2])
        n4 = node(storage, bucket_ini(s3, prefix))
        assert results(n4.client(), "sn", SEEDS) == want
        assert "refused: no trailer (truncated?)" in n4.read_log()
        assert load_lines(n4) == ["rebuilt"]
        n4.stop()
        n4 = None

        # Newer of the two: node 1's local snapshot at 10 against the store's
        # (node 4's clean stop: 14); then the other way round.
        n1.kill9()
        n1.start()
        assert results(n1.client(), "sn", SEEDS) == want
        assert "fetched snapshot at seq 14" in n1.read_log()
        assert load_lines(n1)[-1] == "loaded snapshot at seq 14, replayed 0 changes"
        c2.v2("sn", "data/delete", {"item_id": "s3"})
        want = results(c2, "sn", SEEDS)
        n2.stop()  # uploads seq 15
        s3.put_object(BUCKET, key, obj)  # back to seq 10
        n1.kill9()
        n1.start()
        # Node 1 still has 14 locally (it reloaded from the store and never
        # snapshotted again): newer than the store's 10, which by now may
        # even be below the log (node 2 pruned up to what node 1 had).
        assert results(n1.client(), "sn", SEEDS) == want
        assert re.search(r"stored snapshot at seq 10 is (no newer than the local one \(seq 14\)"
                         r"|outside the change log)", n1.read_log())
        assert load_lines(n1)[-1] == "loaded snapshot at seq 14, replayed 1 changes"

        # Deleting the instance deletes its object.
        assert n1.client().admin("DELETE", "/instances/sn").status == 200
        assert s3.get_object(BUCKET, key) is None
    finally:
        for s in (n1, n2, n3, n4):
            if s and s.proc:
                s.stop()


def test_store_down_the_node_rebuilds(s3):
    storage, prefix = pg_storage(), "t2-" + uuid.uuid4().hex[:8]
    n1 = node(storage, bucket_ini(s3, prefix))
    dead = "http://127.0.0.1:%d" % free_port()
    n2 = None
    try:
        c1 = n1.client()
        fill(c1)
        more(c1)
        want = results(c1, "sn", SEEDS)
        n2 = node(storage, bucket_ini(s3, prefix, endpoint=dead))
        assert results(n2.client(), "sn", SEEDS) == want
        log = n2.read_log()
        assert "snapshot store s3://%s/%s/ unusable" % (BUCKET, prefix) in log, log
        assert load_lines(n2) == ["rebuilt"]
        # Its clean stop cannot upload, says so, and still exits 0.
        t0 = time.time()
        n2.stop()
        assert time.time() - t0 < 30
        assert "not uploaded to s3://%s/%s/snapshots/" % (BUCKET, prefix) in n2.read_log()
        n2 = None
    finally:
        for s in (n1, n2):
            if s and s.proc:
                s.stop()


def test_sqlite_restore_onto_a_new_data_dir():
    """One SQLite node and a local-directory bucket: its database copied into
    an empty data dir loads the stored snapshot. A new instance that SQLite
    gives the deleted one's id never loads the old instance's object."""
    root = tempfile.mkdtemp(prefix="imgsearch-snapbucket-")
    extra = ("[bucket:snaps]\ntype = local\nroot = %s\n[cluster]\nsnapshot_bucket = snaps\n"
             % root)
    storage = "[storage]\nbackend = sqlite\n"
    # Snapshots at clean stops only, so the log keeps every change of the
    # new instance below.
    index = "[index]\nsnapshot_changes = 0\nsnapshot_seconds = 0\n"
    a = node(storage, extra, index)
    b = None
    try:
        c = a.client()
        fill(c)
        more(c)
        want = results(c, "sn", SEEDS)
        a.stop()  # snapshot at 14, uploaded
        obj = os.path.join(root, "snapshots", "1", "0.snap")
        assert os.path.exists(obj), os.listdir(root)
        old = open(obj, "rb").read()

        b = Server(storage=storage, extra=index + extra)
        os.makedirs(b.data_dir)
        for name in os.listdir(a.data_dir):
            if name.startswith("imgsearch.db"):
                shutil.copy(os.path.join(a.data_dir, name), b.data_dir)
        b.start()
        cb = b.client()
        assert results(cb, "sn", SEEDS) == want
        assert "fetched snapshot at seq 14" in b.read_log()
        assert load_lines(b) == ["loaded snapshot at seq 14, replayed 0 changes"]

        # Delete: the object goes. The same name again gets id 1 back.
        assert cb.admin("DELETE", "/instances/sn").status == 200
        assert not os.path.exists(obj)
        # As many changes as the old one had, so its seq is inside the log.
        cb.create_instance("sn")
        for i in range(16):
            add(cb, "sn", "n%d" % i, 800 + i)
        probe = [800, 805, 815] + SEEDS[:3]
        want = results(cb, "sn", probe)
        b.kill9()
        # The old instance's object back, and no local snapshot: refused.
        with open(obj, "wb") as f:
            f.write(old)
        shutil.rmtree(os.path.join(b.data_dir, "index"))
        b.start()
        assert results(b.client(), "sn", probe) == want
        assert "refused: it is an older instance's of the same id" in b.read_log()
        assert load_lines(b)[-1] == "rebuilt"
    finally:
        for s in (a, b):
            if s and s.proc:
                s.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_an_unchanged_local_snapshot_is_uploaded():
    """A bucket configured on a node that already has snapshots: the next
    round uploads them though nothing changed."""
    root = tempfile.mkdtemp(prefix="imgsearch-snapbucket-")
    storage = "[storage]\nbackend = sqlite\n"
    a = node(storage, "", "[index]\nsnapshot_changes = 0\nsnapshot_seconds = 0\n")
    try:
        c = a.client()
        fill(c)
        want = results(c, "sn", SEEDS[:3])
        a.stop()  # a local snapshot at 10, no bucket yet
        with open(a.config, "a") as f:
            f.write("[bucket:snaps]\ntype = local\nroot = %s\n[cluster]\n"
                    "snapshot_bucket = snaps\n[index]\nsnapshot_seconds = 1\n" % root)
        a.start()
        assert results(a.client(), "sn", SEEDS[:3]) == want
        assert load_lines(a)[-1] == "loaded snapshot at seq 10, replayed 0 changes"
        wait_log(a, r"index 1: snapshot at seq 10 uploaded to %s/snapshots/1/0\.snap" % root)
        assert a.client().metric("imgsearch_index_snapshot_stored_seq") == 10
    finally:
        if a.proc:
            a.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_a_large_snapshot_streams(s3):
    """tests/server/test_snapstore.c against this S3 server: 64 MB up and
    down with the peak RSS growing by less than 16 MB."""
    binary = os.path.join(ROOT, "build", "asan" if IS_ASAN else "release", "tests", "server",
                          "test_snapstore")
    if not os.path.exists(binary):
        pytest.skip("test_snapstore is not built")
    env = dict(os.environ, SNAPSTORE_S3="%s|%s|%s|%s|64" % (
        s3.endpoint, BUCKET, s3.access_key, s3.secret_key))
    p = subprocess.run([binary], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=600)
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 0 and "ok - test_s3_large" in out, out[-3000:]
    assert "64 MB up and down" in out, out[-3000:]


SHARD_SECRET = "snapshot-shards-secret-0123"


def sharded_ini(s3, prefix, port, shards=2):
    return bucket_ini(s3, prefix) + (
        "node_url = http://127.0.0.1:%d\nnode_timeout_ms = 2000\nshards = %d\nsecret = %s\n"
        % (port, shards, SHARD_SECRET))


def sharded_node(storage, s3, prefix):
    s = Server(storage=storage, extra=INDEX)
    with open(s.config, "a") as f:
        f.write(sharded_ini(s3, prefix, s.port))
    return s.start()


def shard_loads(s):
    return sorted(re.findall(r"index \d+ shard (\d+): (loaded snapshot at seq \d+|rebuilt)",
                             s.read_log()))


def test_sharded_instance_snapshots_per_shard(s3):
    """Each shard of a sharded instance has its own object (<shard>.snap,
    the shard in its trailer); a node that starts empty after the others
    stopped takes both shards over from the stored snapshots, not from a
    rebuild, and answers as they did."""
    storage, prefix = pg_storage(), "t6-" + uuid.uuid4().hex[:8]
    n1 = sharded_node(storage, s3, prefix)
    n2 = sharded_node(storage, s3, prefix)
    n3 = None
    try:
        c1 = n1.client()
        c1.create_instance("sn")
        for i in range(16):
            add(c1, "sn", "s%d" % i, SEEDS[i])
        want = results(c1, "sn", SEEDS)
        n1.stop()  # a clean stop uploads the snapshots of the shards it holds
        n2.stop()
        logs = n1.read_log() + n2.read_log()
        objs = {}
        for shard in (0, 1):
            m = re.search(r"index \d+: snapshot at seq \d+ uploaded to "
                          r"s3://%s/%s/snapshots/(\d+)/%d\.snap" % (BUCKET, prefix, shard), logs)
            assert m, logs[-4000:]
            objs[shard] = s3.get_object(BUCKET, "%s/snapshots/%s/%d.snap"
                                        % (prefix, m.group(1), shard))
            assert objs[shard] is not None and objs[shard][:8] == b"IMGSNAP1"
        assert objs[0] != objs[1]

        n3 = sharded_node(storage, s3, prefix)
        deadline = time.time() + 30
        while True:
            r = n3.client().v2("sn", "search", {"search_type": "IMAGE",
                                                "image_base64": b64(scene(SEEDS[0])), "limit": 3})
            if r.status == 200 or time.time() > deadline:
                break
            time.sleep(0.5)
        assert results(n3.client(), "sn", SEEDS) == want
        log = n3.read_log()
        fetched = re.findall(r"fetched snapshot at seq \d+ from s3://%s/%s/snapshots/\d+/([01])\.snap"
                             % (BUCKET, prefix), log)
        assert set(fetched) == {"0", "1"}, log[-4000:]
        loads = shard_loads(n3)
        assert {s for s, _ in loads} == {"0", "1"}, log[-4000:]
        assert all(what.startswith("loaded snapshot") for _, what in loads), loads

        # Deleting the instance deletes every shard's object.
        assert n3.client().admin("DELETE", "/instances/sn").status == 200
        for shard in (0, 1):
            assert s3.get_object(BUCKET, "%s/snapshots/%s/%d.snap"
                                 % (prefix, m.group(1), shard)) is None
    finally:
        for s in (n1, n2, n3):
            if s and s.proc:
                s.stop()
