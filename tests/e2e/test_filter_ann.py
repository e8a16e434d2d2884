"""Selective tag filters on an ANN index: with nprobe 1 of 8 lists, a filter
passing 1 item in 6 still returns the same best matches as a search
that probes every list (IVF8,Flat over all lists is exact), instead of only
what the probed list holds. Enough items pass that the probed list alone
fills the request (so the fallback for too few hits never kicks in).
Caveat: with these synthetic scenes it also passed with the widening
disabled (the best allowed items sat in the probed list); the test that
fails without it is tests/index/test_vindex.c test_selective_filter_ann.
This one covers the server path (filter expanded to views, ANN index)."""
from images import b64, scene


def search(c, seed, nprobe, limit):
    r = c.v2("fa", "search", {"search_type": "IMAGE", "image_base64": b64(scene(seed)),
                              "limit": limit, "custom_tags": {"grp": ["a"]},
                              "optional_params": {"nprobe": nprobe}})
    assert r.status == 200, r
    return [(it["id"], round(it["score"], 4)) for it in r.json["data"]["items"]]


def test_selective_filter_matches_exhaustive_search(make_server):
    s = make_server(extra="[index]\nexact_max = 10\nann_factory = IVF8,Flat\n")
    c = s.client()
    c.create_instance("fa", tags=["grp"])
    allowed = []
    for i in range(96):
        grp = "a" if i % 6 == 5 else "b"
        if grp == "a":
            allowed.append("f%d" % i)
        r = c.v2("fa", "data/add", {"item_id": "f%d" % i, "image_base64": b64(scene(i)),
                                    "custom_tags": {"grp": grp}})
        assert r.status == 200, r
    assert c.wait_metric("imgsearch_index_exact", 0) == 0  # trained in the background
    for seed in list(range(200, 220)) + [5, 23, 41]:
        for limit in (1, 3):
            narrow = search(c, seed, 1, limit)
            assert narrow == search(c, seed, 1000, limit), (seed, limit)
            assert len(narrow) == limit and all(i in allowed for i, _ in narrow), narrow
