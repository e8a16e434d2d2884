"""Imports of big buckets: the POST answers before the source is listed, the
listing runs in the background and appends keys page by page, total grows
while listing_done is false and ends at the exact count, workers import the
first keys while listing goes on, errors during listing end the job with
the reason, cancel stops the lister, and a kill -9 during listing resumes
after the last appended key without duplicating or losing one.

Buckets of 100k objects cost no disk here: the S3 one is synthetic
(fake_s3.py: ListObjectsV2 over keys in memory, 1000 a page) and the local
one lives in /dev/shm (100 folders of 1000 empty files). The first keys of
each listing are five images; the rest are not images, and importing each
would cost a durable per-key result (an fsync), so the tests cancel their
job once the listing and the images are checked. A small s3rver bucket
behind the SigV4 proxy checks start-after on a real S3 implementation."""
import hashlib
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
import time

import pytest
from conftest import IS_ASAN, ROOT, Server
from fake_s3 import FakeS3
from images import b64, encode, scene
from services import S3Server

N_IMAGES = 5
CLI = os.path.join(ROOT, os.environ.get("IMGSEARCH_CLI",
                                        "bin/imgsearch-asan" if IS_ASAN else "bin/imgsearch"))


def write_bucket(root, n_dirs, per_dir, suffix="", data=b""):
    """Tiny objects big/dNNN/kNNNNN.bin<suffix> under root."""
    for d in range(n_dirs):
        dd = os.path.join(root, "big", "d%03d" % d)
        os.makedirs(dd, exist_ok=True)
        for k in range(per_dir):
            with open(os.path.join(dd, "k%05d.bin%s" % (k, suffix)), "wb") as f:
                f.write(data)


def image_keys(folder="big/d000/"):
    # "a" sorts before "k": the images are the first keys listed.
    return [folder + "a%d.jpg" % i for i in range(N_IMAGES)]


def image_bytes():
    return [encode(scene(700 + i)) for i in range(N_IMAGES)]


L_DIRS, L_PER_DIR = 100, 1000
N_LOCAL = L_DIRS * L_PER_DIR + N_IMAGES


@pytest.fixture(scope="module")
def big_local():
    """One 100k-object local bucket shared by the tests (they only read it)."""
    shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    root = tempfile.mkdtemp(prefix="imgsearch-bigbucket-", dir=shm)
    write_bucket(root, L_DIRS, L_PER_DIR)
    for key, data in zip(image_keys(), image_bytes()):
        with open(os.path.join(root, key), "wb") as f:
            f.write(data)
    yield root
    shutil.rmtree(root, ignore_errors=True)


N_FAKE = 100000 + N_IMAGES


@pytest.fixture
def fake_s3():
    keys = ["big/k%06d.bin" % i for i in range(N_FAKE - N_IMAGES)]
    objects = dict(zip(image_keys("big/"), image_bytes()))
    with FakeS3("fb", keys + list(objects), objects, page_delay=0.03) as fake:
        yield fake


def start_server(objects_dir, data_dir=None, extra=""):
    srv = Server(extra=extra, data_dir=data_dir)
    with open(srv.config) as f:
        cfg = f.read()
    with open(srv.config, "w") as f:
        f.write(cfg.replace("objects_dir = " + srv.objects_dir, "objects_dir = " + objects_dir))
    srv.objects_dir = objects_dir
    return srv.start()


def job_get(c, name, job):
    r = c.admin("GET", f"/instances/{name}/imports/{job}?errors_limit=0")
    assert r.status == 200, r
    return r.json


def poll(c, name, job, cond, timeout=120, every=0.02):
    """Polls the job until cond(job); returns every job seen, the last one matching."""
    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        j = job_get(c, name, job)
        seen.append(j)
        if cond(j):
            return seen
        assert j["status"] in ("QUEUED", "RUNNING"), j
        time.sleep(every)
    raise AssertionError("timed out: %r" % seen[-1])


def post(c, name, source):
    r = c.admin("POST", f"/instances/{name}/imports", {"source": source})
    assert r.status == 202, r
    assert r.json["status"] == "QUEUED" and r.json["listing_done"] is False, r.json
    assert r.json["total"] == 0, r.json
    return r.json["job_id"]


def cancel(c, name, job):
    r = c.admin("DELETE", f"/instances/{name}/imports/{job}")
    assert r.status == 200 and r.json["status"] == "CANCELLED", r


def db_keys(data_dir, job):
    """(rows, distinct keys, min seq, max seq) of a job's keys, read from SQLite."""
    con = sqlite3.connect(os.path.join(data_dir, "imgsearch.db"))
    try:
        return con.execute(
            "SELECT COUNT(*), COUNT(DISTINCT key), MIN(seq), MAX(seq) FROM import_keys"
            " WHERE job = (SELECT id FROM import_jobs WHERE job_id = ?)", (job,)).fetchone()
    finally:
        con.close()


def check_images(c, name, keys):
    """The images among the first keys are imported, each once."""
    assert c.admin("GET", f"/instances/{name}").json["item_count"] == N_IMAGES
    r = c.v2(name, "search", {"search_type": "IMAGE", "image_base64": b64(scene(702)),
                              "limit": 1})
    assert r.json["data"]["items"][0]["id"] == keys[2], r.json


def check_growth(seen, n, post_s, list_s):
    """The POST did not wait for the listing, and total grew to exactly n."""
    totals = [j["total"] for j in seen]
    # The first GET after the POST finds the listing still running, and the
    # POST took a small part of the listing's time.
    assert seen[0]["listing_done"] is False, seen[0]
    assert post_s * 5 < list_s, (post_s, list_s)
    assert totals == sorted(totals), totals
    assert len({t for t in totals if 0 < t < n}) >= 3, sorted(set(totals))
    assert totals[-1] == n and seen[-1]["listing_done"] is True, seen[-1]


def settled_list_count(fake, quiet=0.3):
    """The fake's count of list calls once no more arrive: a page the killed
    server asked for just before the kill can still be read from the socket,
    and recorded, a moment after it."""
    n = fake.list_count()
    while True:
        time.sleep(quiet)
        m = fake.list_count()
        if m == n:
            return n
        n = m


def kill_while_listing(srv, c, name, job, at_least):
    seen = poll(c, name, job, lambda j: j["total"] >= at_least or j["listing_done"],
                every=0.005)
    srv.kill9()
    assert not seen[-1]["listing_done"], seen[-1]
    return seen[-1]


# --- a synthetic S3 bucket of 100k objects -----------------------------------

def test_s3_100k_post_answers_at_once_and_total_grows(fake_s3):
    srv = start_server(tempfile.mkdtemp(prefix="imgsearch-e2e-obj-"), extra=fake_s3.config("fb"))
    try:
        c = srv.client()
        c.create_instance("big")
        t0 = time.monotonic()
        job = post(c, "big", "obs://fb/big/")
        post_s = time.monotonic() - t0
        # The CLI shows the growing total as "N+" while listing.
        cli = [CLI, "--server", f"http://127.0.0.1:{srv.port}", "--project", "proj1", "import"]
        p = subprocess.run(cli + ["status", "big", job], capture_output=True, text=True,
                           timeout=60)
        assert p.returncode == 0 and "+ done=" in p.stdout and " listing" in p.stdout, p
        p = subprocess.run(cli + ["list", "big"], capture_output=True, text=True, timeout=60)
        assert p.returncode == 0 and re.search(r" \d+\+ ", p.stdout), p
        seen = poll(c, "big", job, lambda j: j["listing_done"])
        check_growth(seen, N_FAKE, post_s, time.monotonic() - t0)
        # Page by page: the POST's probe, then 101 pages chained by token.
        lists = fake_s3.lists
        assert len(lists) == 1 + 101, len(lists)
        assert all("continuation-token" not in q and "start-after" not in q for q in lists[:2])
        assert all("continuation-token" in q for q in lists[2:])
        # Totals move by whole pages (the images are in the first).
        assert {j["total"] % 1000 for j in seen} <= {0, N_IMAGES}, [j["total"] for j in seen]
        # Workers started on the first keys while the listing went on.
        assert any(j["done"] > 0 and not j["listing_done"] for j in seen), seen[-1]
        m = c.request("GET", "/metrics").body.decode()
        assert "imgsearch_import_jobs_listing 0" in m
        assert 'imgsearch_import_total{project="proj1",instance="big",job_id="%s"} %d' % (
            job, N_FAKE) in m
        poll(c, "big", job, lambda j: j["done"] >= N_IMAGES)
        check_images(c, "big", image_keys("big/"))
        cancel(c, "big", job)
        j = job_get(c, "big", job)
        assert (j["status"], j["total"], j["done"], j["listing_done"]) == (
            "CANCELLED", N_FAKE, N_IMAGES, True), j
    finally:
        srv.stop()


def test_s3_kill9_during_listing_resumes_after_last_key(fake_s3):
    objects = tempfile.mkdtemp(prefix="imgsearch-e2e-obj-")
    srv = start_server(objects, extra=fake_s3.config("fb"))
    c = srv.client()
    c.create_instance("k")
    job = post(c, "k", "obs://fb/big/")
    at_kill = kill_while_listing(srv, c, "k", job, 20000)
    before = settled_list_count(fake_s3)
    srv2 = start_server(objects, data_dir=srv.data_dir, extra=fake_s3.config("fb"))
    try:
        c2 = srv2.client()
        seen = poll(c2, "k", job, lambda j: j["listing_done"])
        assert seen[-1]["total"] == N_FAKE and at_kill["total"] <= seen[0]["total"], seen[-1]
        # The listing went on from the last appended key, not from the start.
        q = fake_s3.lists[before]
        assert "continuation-token" not in q, q
        assert q["start-after"] >= fake_s3.keys[at_kill["total"] - 1], (q, at_kill["total"])
        assert fake_s3.list_count() - before <= 101 - at_kill["total"] // 1000 + 1
        poll(c2, "k", job, lambda j: j["done"] >= N_IMAGES)
        check_images(c2, "k", image_keys("big/"))
        cancel(c2, "k", job)
    finally:
        srv2.stop()
    # Every key exactly once, seqs 0..N-1 without a gap.
    assert db_keys(srv.data_dir, job) == (N_FAKE, N_FAKE, 0, N_FAKE - 1)


def test_s3_sigterm_during_listing_then_resume(fake_s3):
    """A clean shutdown in the middle of a listing exits promptly (0, no
    sanitizer report) and the next start finishes the listing."""
    objects = tempfile.mkdtemp(prefix="imgsearch-e2e-obj-")
    srv = start_server(objects, extra=fake_s3.config("fb"))
    c = srv.client()
    c.create_instance("t")
    job = post(c, "t", "obs://fb/big/")
    at_stop = poll(c, "t", job, lambda j: j["total"] >= 5000 or j["listing_done"])[-1]
    t0 = time.monotonic()
    srv.stop()
    assert time.monotonic() - t0 < 20
    assert not at_stop["listing_done"], at_stop
    srv2 = start_server(objects, data_dir=srv.data_dir, extra=fake_s3.config("fb"))
    try:
        c2 = srv2.client()
        j = poll(c2, "t", job, lambda j: j["listing_done"])[-1]
        assert j["total"] == N_FAKE, j
        assert "listing obs://fb/big/, resumed after big/k" in srv2.read_log()
        cancel(c2, "t", job)
    finally:
        srv2.stop()
    assert db_keys(srv.data_dir, job) == (N_FAKE, N_FAKE, 0, N_FAKE - 1)


def test_s3_listing_errors_and_cancel(fake_s3):
    srv = start_server(tempfile.mkdtemp(prefix="imgsearch-e2e-obj-"), extra=fake_s3.config("fb"))
    try:
        c = srv.client()
        c.create_instance("e")
        # The POST's probe sees a refusal at once: a 400, no job.
        fake_s3.fail = (403, "AccessDenied")
        r = c.admin("POST", "/instances/e/imports", {"source": "obs://fb/big/"})
        fake_s3.fail = None
        assert r.status == 400 and "source" in r.json["error_msg"], r
        assert c.admin("GET", "/instances/e/imports").json["count"] == 0
        # Refused credentials, then a vanished bucket, in the middle of a
        # listing: after its retries the job ends FAILED, saying why.
        for status, code in ((403, "AccessDenied"), (404, "NoSuchBucket")):
            job = post(c, "e", "obs://fb/big/")
            poll(c, "e", job, lambda j: j["total"] > 0 or j["listing_done"])
            fake_s3.fail = (status, code)
            try:
                j = poll(c, "e", job, lambda j: j["status"] != "RUNNING" and j["status"] != "QUEUED"
                         or j["listing_done"], timeout=60, every=0.1)[-1]
            finally:
                fake_s3.fail = None
            assert j["status"] == "FAILED" and j["listing_done"] is False, j
            assert "listing the source failed" in j["error"], j
            assert "HTTP %d %s" % (status, code) in j["error"], j
            assert 0 < j["total"] < N_FAKE, j
        # Objects gone between the POST's probe and the listing: the job
        # ends FAILED rather than SUCCEEDED with nothing imported.
        keys, fake_s3.page_delay = fake_s3.keys, 1.0
        job = post(c, "e", "obs://fb/big/")
        fake_s3.keys = []  # the lister's first page is built after its delay
        try:
            j = poll(c, "e", job, lambda j: j["status"] not in ("QUEUED", "RUNNING"),
                     timeout=30, every=0.1)[-1]
        finally:
            fake_s3.keys, fake_s3.page_delay = keys, 0.03
        assert (j["status"], j["total"], j["listing_done"]) == ("FAILED", 0, True), j
        assert j["error"] == "no objects under the source", j
        # Cancel stops the lister: no more pages are fetched, total stays.
        job = post(c, "e", "obs://fb/big/")
        poll(c, "e", job, lambda j: j["total"] >= 3000 or j["listing_done"])
        cancel(c, "e", job)
        time.sleep(0.3)
        n, t1 = fake_s3.list_count(), job_get(c, "e", job)
        time.sleep(1)
        t2 = job_get(c, "e", job)
        assert fake_s3.list_count() == n, (n, fake_s3.list_count())
        assert t1["total"] == t2["total"] < N_FAKE and t2["listing_done"] is False, (t1, t2)
    finally:
        srv.stop()


# --- a local bucket of 100k objects ------------------------------------------

def test_local_100k_kill9_during_listing_resumes_exactly(big_local):
    srv = start_server(big_local)
    c = srv.client()
    c.create_instance("k")
    t0 = time.monotonic()
    job = post(c, "k", "obs://local/big/")
    post_s = time.monotonic() - t0
    first = job_get(c, "k", job)
    assert first["listing_done"] is False, first
    at_kill = kill_while_listing(srv, c, "k", job, 30000)
    assert post_s * 5 < time.monotonic() - t0, post_s
    srv2 = start_server(big_local, data_dir=srv.data_dir)
    try:
        c2 = srv2.client()
        seen = poll(c2, "k", job, lambda j: j["listing_done"])
        assert seen[-1]["total"] == N_LOCAL, seen[-1]
        assert at_kill["total"] <= seen[0]["total"], (at_kill, seen[0])
        assert re.search(r"listing obs://local/big/, resumed after big/d\d{3}/k\d{5}\.bin",
                         srv2.read_log()), srv2.read_log()[-3000:]
        poll(c2, "k", job, lambda j: j["done"] >= N_IMAGES)
        check_images(c2, "k", image_keys())
        cancel(c2, "k", job)
    finally:
        srv2.stop()
    assert db_keys(srv.data_dir, job) == (N_LOCAL, N_LOCAL, 0, N_LOCAL - 1)


def test_local_cancel_and_instance_delete_stop_the_lister(big_local):
    srv = start_server(big_local)
    try:
        c = srv.client()
        c.create_instance("c")
        job = post(c, "c", "obs://local/big/")
        poll(c, "c", job, lambda j: j["total"] >= 1000 or j["listing_done"], every=0.005)
        cancel(c, "c", job)
        time.sleep(0.6)
        t1 = job_get(c, "c", job)
        time.sleep(0.6)
        t2 = job_get(c, "c", job)
        assert t1["total"] == t2["total"] < N_LOCAL, (t1, t2)
        assert t2["status"] == "CANCELLED" and t2["listing_done"] is False, t2
        # The lister moved on: the next job is listed to its end.
        job2 = post(c, "c", "obs://local/big/d050/")
        j = poll(c, "c", job2, lambda j: j["listing_done"])[-1]
        assert j["total"] == L_PER_DIR, j
        cancel(c, "c", job2)
        # Deleting the instance mid-listing drops its jobs; the lister stops
        # appending, even though the next job gets the deleted one's row id.
        c.create_instance("gone")
        job3 = post(c, "gone", "obs://local/big/")
        poll(c, "gone", job3, lambda j: j["total"] >= 1000 or j["listing_done"], every=0.005)
        assert c.admin("DELETE", "/instances/gone").status == 200
        job4 = post(c, "c", "obs://local/big/d099/")
        j = poll(c, "c", job4, lambda j: j["listing_done"])[-1]
        assert j["total"] == L_PER_DIR, j
        cancel(c, "c", job4)
        assert "listing stopped (job cancelled or removed)" in srv.read_log()
    finally:
        srv.stop()
    assert db_keys(srv.data_dir, job3)[0] == 0


# --- start-after on a real S3 implementation ----------------------------------

def test_s3rver_kill9_resume_uses_signed_start_after():
    """s3rver behind the SigV4 proxy: the resumed listing's start-after is
    signed and honoured. Its 2000 tiny objects are written straight into
    s3rver 3.7.1's file layout (<key>._S3rver_object and its .md5), which
    takes a moment instead of 2000 PUTs; the images go through PUT."""
    with S3Server(buckets=["lb"]) as s3:
        root = os.path.join(s3.root_dir, "lb")
        write_bucket(root, 2, 1000, "._S3rver_object", b"x")
        write_bucket(root, 2, 1000, "._S3rver_object.md5", hashlib.md5(b"x").hexdigest().encode())
        for key, data in zip(image_keys(), image_bytes()):
            s3.put_object("lb", key, data)
        extra = (f"[bucket:lb]\ntype = s3\nendpoint = {s3.endpoint}\n"
                 f"access_key = {s3.access_key}\nsecret_key = {s3.secret_key}\n"
                 f"region = {s3.region}\n")
        objects = tempfile.mkdtemp(prefix="imgsearch-e2e-obj-")
        srv = start_server(objects, extra=extra)
        c = srv.client()
        c.create_instance("s")
        job = post(c, "s", "obs://lb/big/")
        kill_while_listing(srv, c, "s", job, 1000)
        srv2 = start_server(objects, data_dir=srv.data_dir, extra=extra)
        try:
            c2 = srv2.client()
            seen = poll(c2, "s", job, lambda j: j["listing_done"])
            assert seen[-1]["total"] == 2000 + N_IMAGES, seen[-1]
            assert "resumed after big/d00" in srv2.read_log()
            assert not s3.proxy.rejected, s3.proxy.rejected
            poll(c2, "s", job, lambda j: j["done"] >= N_IMAGES)
            check_images(c2, "s", image_keys())
            cancel(c2, "s", job)
        finally:
            srv2.stop()
        assert db_keys(srv.data_dir, job)[:2] == (2000 + N_IMAGES, 2000 + N_IMAGES)
