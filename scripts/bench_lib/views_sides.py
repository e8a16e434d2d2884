"""scripts/bench-views-offline --sides: which input side each view can run the network at (issue 9,
"views without 4 CNN passes").

Every view is made by the server's own C code (scripts/embed_dump.c --side: decode as v2 data/add,
item_view for the stored views, the query's centre window and grey view cut as search.c cuts
them) and run through the network squashed to SIDE x SIDE (extractor_embed_side). Scored in
numpy with the server's search logic: the whole query first, then each further query view only
while the best score is below 0.9; every stored view but the whole image and every query view but
the whole query at 224 count 0.02 less; a grey query view meets grey stored views only. Rotations
are left out (the server's orientation search handles rot90/rot180 on top).

Cost unit: a pass at side s costs (s/224)^2 of a 224 pass. "per add" sums the stored views;
"weak max" is a query that runs every query view (a weak match), "mean" the average over the set.
"""
import io
import os
import subprocess
import tempfile
import time

import numpy as np
from PIL import Image

from bench_lib import harness, photos, transforms
from bench_lib.embed import LIBS
from bench_lib.transforms import TRANSFORMS

DIM = 1792
PENALTY = 0.02
BELOW = 0.9


def cost(side):
    return (side / 224) ** 2


# Stored views: name -> (embed_dump args, passes). The name says view@side.
def stored_specs():
    d = {"base": (["--side", "224"], 1.0)}
    for s in (224, 192, 176, 160):
        d[f"c6@{s}"] = (["--side", str(s), "--view", "1"], cost(s))
    # windows as large in pixels per image side as c6@224 (0.6 -> 224 px) at a lower side
    d["w5@187"] = (["--side", "187", "--window", "0.5"], cost(187))
    d["w45@168"] = (["--side", "168", "--window", "0.45"], cost(168))
    for s in (224, 128, 96):
        d[f"lo@{s}"] = (["--side", str(s), "--view", "6"], cost(s))
    for s in (224, 192, 176, 160, 144, 128, 112, 96):
        d[f"grey@{s}"] = (["--side", str(s), "--view", "7"], cost(s))
    return d


def query_specs():
    d = {}
    for s in (224, 96, 112, 128, 134, 160, 176):
        d[f"full@{s}"] = (["--side", str(s)], cost(s))
    for s in (224, 208, 192, 176, 160):
        d[f"c7@{s}"] = (["--side", str(s), "--window", "0.7"], cost(s))
    for s in (224, 192, 176, 160, 144, 128, 112, 96):
        d[f"grey@{s}"] = (["--side", str(s), "--view", "7"], cost(s))
    return d


def build_tool(root):
    out = os.path.join(root, "embed_dump")
    src = os.path.join(harness.REPO, "scripts", "embed_dump.c")
    lib = os.path.join(harness.REPO, "build", "release", "libimgsearch.a")
    if not os.path.exists(out) or os.path.getmtime(out) < max(os.path.getmtime(src),
                                                               os.path.getmtime(lib)):
        subprocess.run(["cc", "-O2", "-std=c11", "-D_GNU_SOURCE", "-I" + harness.REPO, src, lib]
                       + LIBS + ["-o", out + ".tmp"], check=True)
        os.replace(out + ".tmp", out)
    return out


def run_dump(tool, root, name, paths, args, procs=2, log=print):
    """embed_dump `args` on `paths` -> <root>/<name>.npy (n x DIM), cached with its inputs."""
    out, lst_f = os.path.join(root, name + ".npy"), os.path.join(root, name + ".list")
    want = "\n".join(paths) + "\n" + " ".join(args) + "\n"
    if os.path.exists(out) and os.path.exists(lst_f) and open(lst_f).read() == want:
        return np.load(out)
    t0 = time.time()
    log(f"  {name}: embed_dump {' '.join(args)} on {len(paths)} images ...")
    tmp = tempfile.mkdtemp(prefix="sides-", dir=root)
    ps = []
    for i in range(procs):
        lst = os.path.join(tmp, f"list{i}")
        open(lst, "w").write("\n".join(paths[i::procs]) + "\n")
        ps.append(subprocess.Popen(["nice", "-n", "10", tool] + args, stdin=open(lst),
                                   stdout=open(lst + ".f32", "wb"), cwd=harness.REPO))
    res = np.zeros((len(paths), DIM), np.float32)
    for i, p in enumerate(ps):
        if p.wait() != 0:
            raise SystemExit("embed_dump failed")
        res[i::procs] = np.fromfile(os.path.join(tmp, f"list{i}.f32"),
                                    np.float32).reshape(-1, DIM)
    subprocess.run(["rm", "-rf", tmp])
    np.save(out, res)
    open(lst_f, "w").write(want)
    log(f"    {time.time() - t0:.0f} s")
    return res


# The rows --with-artwork runs (the photo run decides; these show whether artwork agrees).
SHORT = ("today: ", "today's stored views", "base+c6@224+lo@96+grey@", "base+c6@224+lo@224+grey@", "base+c6@224+lo@96+grey@112; q: c7@224, grey@112, full@96 if",
         "base+c6@192+lo@96+grey@112; q: c7@176, grey@112, full@96 if small",
         "base+c6@176+lo@96+grey@112; q: c7@160, grey@112, full@96 if small",
         "base+c6@160+lo@96+grey@112; q: c7@160, grey@112, full@96 if small",
         "base+w45@168+lo@96+grey@112; q: c7@160, grey@112, full@96 if small",
         "base+c6@224+grey@112; q: c7@224, grey@112 (no low-res view)")


def configs(short=False):
    """(name, steps): steps = [(query view, [stored views], "small"?)]."""
    out = all_configs()
    return [c for c in out if c[0].startswith(SHORT)] if short else out


def all_configs():
    today = [("full@224", ["base", "c6@224", "lo@224"]), ("c7@224", ["base", "c6@224", "lo@224"]),
             ("grey@224", ["grey@224"])]
    out = [("today: base+c6+lo96+grey, all @224; q: c7, grey @224 (shipped)", today)]
    # the earlier study's 2.43-pass set: lo96 and grey at their own small sides
    for lo in (96, 128):
        for g in (112, 96, 128):
            out.append((f"base+c6@224+lo@{lo}+grey@{g}; q: c7@224, grey@{g}, full@{lo} if small",
                        [("full@224", ["base", "c6@224"]), ("c7@224", ["base", "c6@224"]),
                         (f"grey@{g}", [f"grey@{g}"]), (f"full@{lo}", [f"lo@{lo}"], "small")]))
    # the 96 px query view only under 200 px: downscale queries (<= 205 px from the 1024 px
    # originals) keep it, crop35 queries of the 480x360 scratch photos (216 px) no longer do
    out.append(("base+c6@224+lo@96+grey@112; q: c7@224, grey@112, full@96 if under 200 px",
                [("full@224", ["base", "c6@224"]), ("c7@224", ["base", "c6@224"]),
                 ("grey@112", ["grey@112"]), ("full@96", ["lo@96"], "small200")]))
    # only the 96 px copy at its own side, the grey view kept at 224 (grey@112 costs rot90,
    # rot180, strong and blocky); second row: as the server searches, every non-grey query view
    # meets every non-grey stored view
    lo96 = [("full@224", ["base", "c6@224"]), ("c7@224", ["base", "c6@224"]),
            ("grey@224", ["grey@224"]), ("full@96", ["lo@96"], "small200")]
    out.append(("base+c6@224+lo@96+grey@224; q: c7@224, grey@224, full@96 if under 200 px", lo96))
    every = ["base", "c6@224", "lo@96"]
    for g in (224, 192, 176, 160, 144, 128):
        out.append((f"base+c6@224+lo@96+grey@{g}, every view met; q: c7@224, grey@{g}, full@96 "
                    "if under 200 px", [("full@224", every), ("c7@224", every),
                                        (f"grey@{g}", [f"grey@{g}"]),
                                        ("full@96", every, "small200")]))
        out.append((f"base+c6@224+lo@96+grey@{g}, every view met; q: full@96 if under 200 px, "
                    f"c7@224, grey@{g}", [("full@224", every), ("full@96", every, "small200"),
                                          ("c7@224", every), (f"grey@{g}", [f"grey@{g}"])]))
    # the stored views as today, only the weak query's views at lower sides (issue 9: <= 2 passes
    # per weak query)
    every = ["base", "c6@224", "lo@224"]
    for q7 in (208, 192, 176, 160):
        for g in ((224, 160, 128, 112) if q7 != 208 else (224,)):
            out.append((f"today's stored views; q: c7@{q7}, grey@{g}",
                        [("full@224", every), (f"c7@{q7}", every), (f"grey@{g}", ["grey@224"])]))
    # the 96 px copy kept at 224 (blocky needs it there), only the grey view at a lower side
    every = ["base", "c6@224", "lo@224"]
    for g in (192, 176, 160, 144, 128, 112):
        out.append((f"base+c6@224+lo@224+grey@{g}, every view met; q: c7@224, grey@{g}",
                    [("full@224", every), ("c7@224", every), (f"grey@{g}", [f"grey@{g}"])]))
    # the centre window at a lower side (or a smaller window at the same pixel scale)
    for c in ("c6@192", "c6@176", "c6@160", "w5@187", "w45@168"):
        for q7 in (224, 176, 160):
            for g in (112, 96):
                out.append((f"base+{c}+lo@96+grey@{g}; q: c7@{q7}, grey@{g}, full@96 if small",
                            [("full@224", ["base", c]), (f"c7@{q7}", ["base", c]),
                             (f"grey@{g}", [f"grey@{g}"]), ("full@96", ["lo@96"], "small")]))
    # a zoomed-out query view: the whole query at a lower side, so a crop of an item meets the
    # stored windows (and the whole image) at about the scale they were made at
    for c, q7 in (("c6@160", 160), ("c6@176", 176), ("c6@192", 176), ("w5@187", 160)):
        for z in (112, 134, 160):
            for order in ("zc", "cz"):
                zs = (f"full@{z}", ["base", c])
                cs = (f"c7@{q7}", ["base", c])
                steps = [("full@224", ["base", c])] + ([zs, cs] if order == "zc" else [cs, zs])
                steps += [("grey@112", ["grey@112"]), ("full@96", ["lo@96"], "small")]
                out.append((f"base+{c}+lo@96+grey@112; q: "
                            + ", ".join(st[0] for st in steps[1:3])
                            + ", grey@112, full@96 if small", steps))
    # c6@224 kept (crop35 needs it): the grey view at 112 px standing in for the low-res one
    for g in (112, 128):
        out.append((f"base+c6@224+grey@{g}; q: c7@224, grey@{g} (no low-res view)",
                    [("full@224", ["base", "c6@224"]), ("c7@224", ["base", "c6@224"]),
                     (f"grey@{g}", [f"grey@{g}"])]))
    # both windows: c6@224 kept, the whole-image-scale views cheaper still
    out.append(("base+c6@224+lo@96; q: c7@224, full@96 if small (no grey)",
                [("full@224", ["base", "c6@224"]), ("c7@224", ["base", "c6@224"]),
                 ("full@96", ["lo@96"], "small")]))
    return out


class Scorer:
    def __init__(self, db, n_orig, q_side):
        groups = np.array([r["group"] for r in db])
        self.n_orig, self.n_db, self.T = n_orig, len(db), len(TRANSFORMS)
        self.sib = np.zeros((n_orig, self.n_db), bool)
        for i in range(n_orig):
            self.sib[i] = (groups == groups[i]) & (np.arange(self.n_db) != i)
        self.q_orig = np.repeat(np.arange(n_orig), self.T)
        self.q_t = np.tile(np.arange(self.T), n_orig)
        self.qside = q_side
        self.cache = {}

    def search(self, D, Q, qcost, steps):
        nq = len(self.q_orig)
        best = np.full((nq, self.n_db), -9.0, np.float32)
        passes = np.zeros(nq)
        for i, st in enumerate(steps):
            qv, kinds = st[0], st[1]
            act = np.ones(nq, bool) if i == 0 else best.max(1) < BELOW
            if len(st) > 2:  # "small": a query whose shorter side is under 224 (or N: "small200")
                act &= self.qside < int(st[2][5:] or 224)
            if not act.any():
                continue
            passes[act] += qcost[qv]
            for k in kinds:
                p = (PENALTY if k != "base" else 0) + (PENALTY if qv != "full@224" else 0)
                key = (qv, k)
                if key not in self.cache:
                    self.cache[key] = Q[qv] @ D[k].T
                best[act] = np.maximum(best[act], self.cache[key][act] - p)
        return best, passes

    def score(self, S):
        S = S.copy()
        S[self.sib[self.q_orig]] = -9
        own = S[np.arange(len(S)), self.q_orig]
        rank = 1 + (S > own[:, None]).sum(1)
        top1 = [100 * (rank[self.q_t == t] == 1).mean() for t in range(self.T)]
        mrr = [100 * np.where(rank[self.q_t == t] <= 10, 1.0 / rank[self.q_t == t], 0).mean()
               for t in range(self.T)]
        return np.array(top1), np.array(mrr)


def main(args):
    t0 = time.time()
    tag = "-art" if args.with_artwork else ""
    root = os.path.join(harness.REPO, ".cache", "views-sides")
    qdir = os.path.join(root, "q" + tag)
    os.makedirs(qdir, exist_ok=True)
    cache = photos.cache_dir(harness.REPO)
    originals, distractors = photos.prepare(cache, print, artwork=args.with_artwork)
    db = originals + distractors
    db_paths = [os.path.join(cache, r.get("dir", "prepared"), r["id"] + ".jpg") for r in db]
    q_paths, q_side = [], []
    for rec in originals:
        img = None
        for t in TRANSFORMS:
            f = os.path.join(qdir, f"{rec['id']}~{t}.jpg")
            if not os.path.exists(f):
                if img is None:
                    _, img = photos.load_prepared(cache, rec)
                open(f + ".tmp", "wb").write(transforms.apply(t, img, rec["id"]))
                os.replace(f + ".tmp", f)
            q_paths.append(f)
            q_side.append(min(Image.open(f).size))
    tool = build_tool(root)
    load0 = harness.machine_line()
    cfgs = configs(short=args.with_artwork or args.short)
    need_d, need_q = set(), set()
    for _, steps in cfgs:
        for st in steps:
            need_q.add(st[0])
            need_d.update(st[1])
    sspec, qspec = stored_specs(), query_specs()
    print(f"embedding {len(db_paths)} stored images ({len(need_d)} views) and "
          f"{len(q_paths)} queries ({len(need_q)} views) ...", flush=True)
    D = {k: run_dump(tool, root, "d" + tag + "_" + k.replace("@", "_"), db_paths, sspec[k][0])
         for k in sorted(need_d)}
    Q = {k: run_dump(tool, root, "q" + tag + "_" + k.replace("@", "_"), q_paths, qspec[k][0])
         for k in sorted(need_q)}
    qcost = {k: v[1] for k, v in qspec.items()}
    sc = Scorer(db, len(originals), np.array(q_side))
    rows = []
    for name, steps in cfgs:
        S, passes = sc.search(D, Q, qcost, steps)
        t1, mrr = sc.score(S)
        kinds = []
        for st in steps:
            kinds += [k for k in st[1] if k not in kinds]
        add = sum(sspec[k][1] for k in kinds)
        weak = sum(qcost[st[0]] for st in steps)  # every view runs (a small weak query)
        rows.append((name, t1, mrr, add, passes.mean(), weak))
    ref = rows[0][1]
    L = [f"`scripts/bench-views-offline --sides{' --with-artwork' if tag else ''}`: "
         f"{len(originals)} originals + {len(distractors)} distractors"
         f"{' (photos and artwork)' if tag else ''}, {len(q_paths)} queries "
         f"({len(TRANSFORMS)} transforms), views made by the server's C code and run through "
         f"its extractor at the side shown; {load0}; {time.time() - t0:.0f} s. "
         f"Cells: top-1 % / MRR@10 %. gate: every transform's top-1 within 0.5 of today's.", "",
         "| stored views; query views | " + " | ".join(TRANSFORMS) +
         " | passes per add | per query mean / weak max | gate |",
         "|---|" + "---|" * (len(TRANSFORMS) + 3)]
    for name, t1, mrr, add, qmean, weak in rows:
        worst = (t1 - ref).min()
        ok = worst >= -0.5 - 1e-9
        cells = " | ".join(f"{a:.1f} / {b:.1f}" for a, b in zip(t1, mrr))
        L.append(f"| {name} | {cells} | {add:.2f} | {qmean:.2f} / {weak:.2f} | "
                 f"{'pass' if ok else f'{worst:+.1f}'} |")
        print(L[-1], flush=True)
    txt = "\n".join(L) + "\n"
    if args.out:
        open(args.out, "w").write(txt)
    return 0
