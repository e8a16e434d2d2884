"""Server-side limits against slow or greedy clients: downloads from request
threads are capped ([fetch] max_concurrent; a request waiting over a second
gets 429 ModelArts.4401, which the SDKs retry), so stalled URLs cannot hold
every worker; connections per client address are capped."""
import socket
import threading
import time

from services import FixtureHTTP


def test_download_slots(make_server):
    with FixtureHTTP() as h:
        s = make_server(extra="[fetch]\nallow = 127.0.0.1/32\ntimeout_ms = 4000\n"
                              "max_concurrent = 1\n")
        c = s.client()
        c.create_instance("slots")
        out = {}

        def stalled():
            out["a"] = c.v2("slots", "data/add", {"item_id": "a", "image_url": h.url("/stall")})

        t = threading.Thread(target=stalled)
        t.start()
        while "/stall" not in h.requests:
            time.sleep(0.02)
        t0 = time.time()
        r = c.v2("slots", "data/add", {"item_id": "b", "image_url": h.url("/image.jpg")})
        waited = time.time() - t0
        assert r.status == 429 and r.json == {"error_code": "ModelArts.4401",
                                              "error_msg": "Max concurrency error."}, r
        assert 0.9 <= waited < 3.5
        # The server still answers everything else meanwhile.
        assert c.request("GET", "/healthz").status == 200
        t.join(30)
        assert out["a"].json["error_code"] == "ModelArts.4603"
        # The slot is free again: the same request now gets as far as the image.
        r = c.v2("slots", "data/add", {"item_id": "b", "image_url": h.url("/image.jpg")})
        assert r.status == 400 and r.json["error_msg"] == "Invalid parameter: image_url"


def test_connections_per_ip(make_server):
    s = make_server(extra="[server]\nmax_connections_per_ip = 3\n")
    held = [socket.create_connection(("127.0.0.1", s.port)) for _ in range(3)]
    extra = socket.create_connection(("127.0.0.1", s.port))
    extra.settimeout(5)
    try:
        extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        refused = extra.recv(100) == b""
    except OSError:
        refused = True
    extra.close()
    assert refused
    for sock in held:
        sock.close()
    time.sleep(0.2)
    assert s.client().request("GET", "/healthz").status == 200
