"""Overload: image calls (add, search) run on a bounded work pool
([server] image_workers, image_queue). Past it the server sheds load at once
with 429 ModelArts.4401 (the SDKs retry it) instead of queueing without bound,
and the HTTP threads stay free for every other call meanwhile; calls that
wait on storage (a COMMIT's fsync) run on a store pool and hold none either.
Slow or idle clients (slowloris, bodies that stop arriving) cannot take every
connection slot from normal clients: connections per address are capped and
idle ones are closed after [server] request_timeout."""
import os
import socket
import sqlite3
import threading
import time

from images import b64, encode, scene
from services import FixtureHTTP



def _stall_add(c, h, item, secs, out):
    out[item] = c.v2("busy", "data/add",
                     {"item_id": item, "image_url": h.url("/stall?s=%d" % secs)})


def _wait_requests(h, n, timeout=30):
    deadline = time.time() + timeout
    while sum(p == "/stall" for p in h.requests) < n and time.time() < deadline:
        time.sleep(0.02)
    assert sum(p == "/stall" for p in h.requests) >= n


def _metric(c, name):
    return c.metric(name)


def _settles(c, name, value, seconds=10):
    """The gauge reaches `value` (a worker counts as running until its job,
    which sends the answer, returns: it may still be at it when the client
    has read the answer)."""
    deadline = time.time() + seconds
    while _metric(c, name) != value and time.time() < deadline:
        time.sleep(0.05)
    return _metric(c, name) == value


def test_full_pool_answers_429_at_once(make_server):
    """One worker, a queue of one: the worker holds a stalled download, one
    call waits in the queue, the next is refused with 429 before either of
    them has finished; the queued one then runs normally."""
    with FixtureHTTP() as h:
        s = make_server(extra="[server]\nimage_workers = 1\nimage_queue = 1\n"
                              "[fetch]\nallow = 127.0.0.1/32\ntimeout_ms = 20000\n"
                              "max_concurrent = 4\n")
        c = s.client()
        c.create_instance("busy")
        out = {}
        running = threading.Thread(target=_stall_add, args=(c, h, "a", 4, out))
        running.start()
        _wait_requests(h, 1)
        queued = threading.Thread(target=_stall_add, args=(c, h, "b", 1, out))
        queued.start()
        deadline = time.time() + 10
        while _metric(c, "imgsearch_pool_queued") < 1 and time.time() < deadline:
            time.sleep(0.02)
        assert _metric(c, "imgsearch_pool_queued") == 1
        assert _metric(c, "imgsearch_pool_running") == 1

        r = c.v2("busy", "search", {"search_type": "IMAGE", "image_url": h.url("/image.jpg")})
        assert r.status == 429, r
        assert r.json == {"error_code": "ModelArts.4401", "error_msg": "Max concurrency error."}
        assert r.headers.get("x-request-id")
        # Refused at once: both earlier calls are still unanswered.
        assert "a" not in out and "b" not in out
        r = c.v1("POST", "/busy/image", {"file": "x"})
        assert r.status == 429 and r.json["error_code"] == "ModelArts.4401", r
        assert _metric(c, "imgsearch_pool_refused_total") == 2
        # Calls without an image never wait for the pool.
        assert c.v2("busy", "data/check", {"item_id": "zz"}).status == 200
        assert c.request("GET", "/healthz").status == 200

        running.join(60)
        queued.join(60)
        # Both stalled downloads end short of their Content-Length: 4603.
        assert out["a"].status == 400 and out["a"].json["error_code"] == "ModelArts.4603"
        assert out["b"].status == 400 and out["b"].json["error_code"] == "ModelArts.4603"
        # Room again: the pool takes the next call and it succeeds.
        h.add("/scene.jpg", encode(scene(1)), "image/jpeg")
        r = c.v2("busy", "data/add", {"item_id": "c", "image_url": h.url("/scene.jpg")})
        assert r.status == 200 and r.json["result"] == "success", r
        assert _settles(c, "imgsearch_pool_queued", 0)
        assert _settles(c, "imgsearch_pool_running", 0)


def test_http_threads_free_while_images_work(make_server):
    """Two HTTP threads, four image calls stalled in downloads: every other
    call still answers at once, because the image calls wait on the pool's
    threads, not on the HTTP threads."""
    with FixtureHTTP() as h:
        s = make_server(extra="[server]\nthreads = 2\nimage_workers = 4\nimage_queue = 4\n"
                              "[fetch]\nallow = 127.0.0.1/32\ntimeout_ms = 20000\n"
                              "max_concurrent = 4\n")
        c = s.client()
        c.create_instance("busy")
        out = {}
        ts = [threading.Thread(target=_stall_add, args=(c, h, "s%d" % i, 5, out))
              for i in range(4)]
        for t in ts:
            t.start()
        _wait_requests(h, 4)
        for i in range(10):
            assert c.request("GET", "/healthz").status == 200
            assert c.v2("busy", "data/check", {"item_id": "nope%d" % i}).status == 200
        # Answered while all four downloads were still held.
        assert not out, out
        assert _metric(c, "imgsearch_pool_running") == 4
        for t in ts:
            t.join(60)
        assert len(out) == 4 and all(r.json["error_code"] == "ModelArts.4603"
                                     for r in out.values())


def _policies(pid):
    """Scheduling policy of each of the process's threads (/proc stat field 41)."""
    out = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                stat = f.read()
        except FileNotFoundError:
            continue  # a thread that just ended
        out.append(int(stat[stat.rindex(")") + 2:].split()[38]))
    return out


SCHED_IDLE = 5


def test_only_the_heavy_work_runs_idle(make_server):
    """[server] image_nice = idle (the default): decoding and the CNN run on one SCHED_IDLE
    thread per core, which any normal thread preempts at once; every thread
    that takes a lock or commits (HTTP, image and store workers) keeps the
    normal policy, so none can stall a write while it waits for a core. Image
    calls still work through them."""
    s = make_server(extra="[server]\nimage_workers = 3\n")
    c = s.client()
    c.create_instance("prio")
    r = c.v2("prio", "data/add", {"item_id": "a", "image_base64": b64(scene(3))})
    assert r.status == 200, r
    r = c.v2("prio", "search", {"search_type": "IMAGE", "image_base64": b64(scene(3)),
                                "limit": 1})
    assert r.status == 200 and r.json["data"]["items"][0]["id"] == "a", r
    pol = _policies(s.proc.pid)
    cores = os.sysconf("SC_NPROCESSORS_ONLN")  # what the server counts
    assert pol.count(SCHED_IDLE) == cores, pol
    assert pol.count(os.sched_getscheduler(0)) == len(pol) - cores, pol


def test_image_nice_0_keeps_every_thread_normal(make_server):
    """For a box shared with busy processes: image_nice = 0, all normal."""
    s = make_server(extra="[server]\nimage_nice = 0\n")
    pol = _policies(s.proc.pid)
    assert pol and all(p == os.sched_getscheduler(0) for p in pol), pol


def one_item_then_lock(s, name, seed):
    """An instance with item "a", then SQLite's write lock taken by another
    connection (as a disk slow to fsync would hold it); returns (client,
    holder): the caller rolls the holder back."""
    c = s.client()
    c.create_instance(name, tags=["k"])
    r = c.v2(name, "data/add", {"item_id": "a", "image_base64": b64(scene(seed))})
    assert r.status == 200, r
    holder = sqlite3.connect(os.path.join(s.data_dir, "imgsearch.db"), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    return c, holder


def test_http_thread_free_while_a_commit_waits(make_server):
    """One HTTP thread; an update waits for SQLite's write lock (held by
    another process, as a disk slow to fsync would hold it): the update runs
    on the store pool, so checks and health probes on other connections are
    answered meanwhile, and the update completes once the lock is free."""
    s = make_server(extra="[server]\nthreads = 1\n")
    _, holder = one_item_then_lock(s, "slowdisk", 3)
    out = {}

    def update():
        out["r"] = s.client().v2("slowdisk", "data/update",
                                 {"item_id": "a", "custom_tags": {"k": "v"}})
    t = threading.Thread(target=update)
    t.start()
    try:
        time.sleep(0.5)  # the update is waiting for the lock by now
        other = s.client()
        for i in range(5):
            t0 = time.time()
            assert other.v2("slowdisk", "data/check", {"item_id": "a"}).status == 200
            assert other.request("GET", "/healthz").status == 200
            assert time.time() - t0 < 1.0
        assert "r" not in out  # still waiting: the lock is held
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    t.join(30)
    assert out["r"].status == 200, out["r"]


def test_checks_answered_while_every_store_worker_waits(make_server):
    """SQLite's write lock held by another process, and more updates waiting
    for it than the store pool has workers (8 a core): data/check, a read,
    runs on the HTTP thread (a WAL read waits for no writer), so it is still
    answered at once, not queued behind the stuck writes; the updates all
    complete once the lock is free."""
    s = make_server()
    c, holder = one_item_then_lock(s, "stuck", 5)
    n = 8 * len(os.sched_getaffinity(0)) + 4
    out = [None] * n

    def update(i):
        out[i] = s.client().v2("stuck", "data/update",
                               {"item_id": "a", "custom_tags": {"k": "v%d" % i}})
    threads = [threading.Thread(target=update, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    try:
        time.sleep(1.0)  # every store worker holds an update by now
        for _ in range(5):
            t0 = time.time()
            r = c.v2("stuck", "data/check", {"item_id": "a"})
            assert r.status == 200, r
            assert time.time() - t0 < 1.0
        assert all(o is None for o in out)  # still waiting: the lock is held
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    for t in threads:
        t.join(30)
    assert all(o is not None and o.status == 200 for o in out), out


def _connect_from(addr, port):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((addr, 0))
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    return sock


def _closed_by_server(sock, timeout):
    """True when the server closes the connection within `timeout` s."""
    sock.settimeout(timeout)
    try:
        while True:
            data = sock.recv(4096)
            if not data:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def test_slow_clients_cannot_take_every_slot(make_server):
    """Clients at two other addresses hold as many connections as they may:
    idle ones (slowloris: headers never finished) and bodies that stop
    arriving. A normal client is still served throughout; the slow ones are
    capped per address and closed once idle for request_timeout."""
    s = make_server(extra="[server]\nmax_connections = 16\nmax_connections_per_ip = 4\n"
                          "request_timeout = 2\n")
    c = s.client()
    c.create_instance("slow")
    idle = []
    for _ in range(4):
        sock = _connect_from("127.0.0.2", s.port)
        sock.sendall(b"POST /v2/proj1/mms/slow/data/check HTTP/1.1\r\nHost: x\r\n")
        idle.append(sock)
    stalled = []
    for _ in range(4):
        sock = _connect_from("127.0.0.3", s.port)
        sock.sendall(b"POST /v2/proj1/mms/slow/data/check HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
                     b'{"item_id": "')
        stalled.append(sock)
    time.sleep(0.3)
    # A fifth connection from a capped address is refused...
    extra = _connect_from("127.0.0.2", s.port)
    assert _closed_by_server(extra, 5)
    extra.close()
    # ...while the normal client is served (over one kept-alive connection, as
    # an SDK session: a new connection per call could find the server not yet
    # done closing the last one, and its address is capped too).
    k = s.client()
    k.keepalive = True
    for _ in range(5):
        assert k.v2("slow", "data/check", {"item_id": "x"}).status == 200
    k.close()
    # Idle for request_timeout: the server closes every slow connection.
    for sock in idle + stalled:
        assert _closed_by_server(sock, 10)
        sock.close()
    # Their address may connect again.
    again = _connect_from("127.0.0.2", s.port)
    again.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    again.settimeout(10)
    assert again.recv(100).startswith(b"HTTP/1.1 200")
    again.close()


def test_trickling_body_is_bounded_by_the_cap(make_server):
    """A client trickling a body byte by byte keeps its connection alive
    (it is not idle), but it holds only its own address's slots."""
    s = make_server(extra="[server]\nmax_connections_per_ip = 2\nrequest_timeout = 2\n")
    c = s.client()
    c.create_instance("slow")
    socks = []
    for _ in range(2):
        sock = _connect_from("127.0.0.4", s.port)
        sock.sendall(b"POST /v2/proj1/mms/slow/data/check HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{")
        socks.append(sock)
    stop = threading.Event()

    def trickle():
        while not stop.is_set():
            for sock in socks:
                try:
                    sock.sendall(b" ")
                except OSError:
                    pass
            stop.wait(0.5)

    t = threading.Thread(target=trickle)
    t.start()
    try:
        for _ in range(6):  # over 2 x request_timeout of trickling
            assert c.v2("slow", "data/check", {"item_id": "x"}).status == 200
            time.sleep(0.5)
        extra = _connect_from("127.0.0.4", s.port)
        assert _closed_by_server(extra, 5)
        extra.close()
    finally:
        stop.set()
        t.join()
    for sock in socks:
        sock.close()
