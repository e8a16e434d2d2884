"""Copydays-style benchmark set from Debian-packaged photos (docs: /work/shared/datasets.md).

Packages are fetched with `apt-get download` + `dpkg -x` into a cache dir (never installed,
never committed). Originals are deduplicated (same photo at several sizes), big wallpapers are
cut into <= 2x2 non-overlapping tiles (tiles of one photo form one group), everything is
normalised to a longer side <= 1024 px and stored as JPEG q95 under <cache>/prepared/.
Stellarium nebulae are the distractors."""
import glob
import io
import json
import os
import re
import subprocess

from PIL import Image

Image.MAX_IMAGE_PIXELS = 200_000_000

PHOTO_PACKAGES = ["scratch", "tuxpaint-data", "palapeli-data", "opencv-doc", "python3-skimage",
                  "mate-backgrounds", "lomiri-wallpapers", "lomiri-wallpapers-16.04",
                  "lomiri-wallpapers-20.04", "plasma-workspace-wallpapers", "ukui-wallpapers"]
DISTRACTOR_PACKAGE = "stellarium-data"
MAX_SIDE = 1024
PREP_VERSION = 4

# Not camera photos (vector art, renders, paintings, drawn scenes, gradients): datasets.md's
# "real photos" column excludes them, and the study's set had none. Chosen by looking at every
# candidate, before any quality number was computed for the new set; see docs/bench/quality.md.
NOT_PHOTOS = {
    "lomiri-wallpapers": {"lomiri-default-background.png"},
    "lomiri-wallpapers-16.04": {"analogpattern_by_Peter_Nerlich.jpg",
                                "umang_by_Abhishek_Mudgal.jpg"},
    "lomiri-wallpapers-20.04": {"Fossa_by_Jasper_Roks.jpg",
                                "Painting-Colors_by__herobrine7gamer.jpg"},
    "opencv-doc": {"Blender_Suzanne1.jpg", "starry_night.jpg"},
    "plasma-workspace-wallpapers": {"Altai", "Autumn", "Canopee", "Cascade", "Cluster", "Elarun",
                                    "Flow", "FlyingKonqui", "Honeywave", "IceCold", "Kay",
                                    "Kokkini", "MilkyWay", "Opal", "PastelHills", "Patak",
                                    "SafeLanding", "Shell"},
    "scratch": {"bedroom1.gif", "bedroom2.gif", "chalkboard.jpg", "party-room.jpg", "room1.jpg",
                "room2.jpg", "room3.jpg", "spotlight-stage.jpg", "desert.gif", "stars.gif",
                "underwater.gif", "woods-and-bench.jpg", "woods.gif", "brick-wall1.jpg",
                "graffiti.jpg", "night-city-with-street.gif", "night-city.gif", "school1.gif",
                "school2.jpg", "train-tracks3.gif", "basketball-court2.png"},
}
# Whole directories of artwork: mate's abstract/ and every ukui wallpaper.
NOT_PHOTO_DIRS = ("/mate/abstract/", "/ukui-wallpapers/")


def is_photo(src, path):
    if any(d in path for d in NOT_PHOTO_DIRS):
        return False
    names = NOT_PHOTOS.get(src, set())
    if src == "plasma-workspace-wallpapers":  # .../wallpapers/<Name>/contents/images/WxH.ext
        return path.split("/wallpapers/")[1].split("/")[0] not in names
    return os.path.basename(path) not in names

# opencv-doc: real photos only (no chessboards, no lena, no synthetic shapes or logos).
# Pairs of the same scene share a group so they never count as each other's false positives.
OPENCV = {"aero1": "aero", "aero3": "aero", "aloeL": "aloe", "aloeR": "aloe",
          "basketball1": "basketball", "basketball2": "basketball", "box": "box",
          "box_in_scene": "box", "graf1": "graf", "graf3": "graf", "leuvenA": "leuven",
          "leuvenB": "leuven", "rubberwhale1": "rubberwhale", "rubberwhale2": "rubberwhale",
          "apple": None, "baboon": None, "building": None, "butterfly": None, "fruits": None,
          "home": None, "messi5": None, "orange": None, "smarties": None, "squirrel_cls": None,
          "starry_night": None, "stuff": None, "HappyFish": None, "ela_original": None,
          "licenseplate_motion": None, "Blender_Suzanne1": None}
SKIMAGE = {"astronaut", "coffee", "chelsea", "rocket", "motorcycle_left", "camera", "moon",
           "coins", "ihc", "retina", "hubble_deep_field", "brick"}


def cache_dir(repo):
    return os.environ.get("IMGSEARCH_CACHE") or os.path.join(repo, ".cache", "bench-photos")


def fetch(pkg, cache, log=print):
    """apt-get download + dpkg -x into <cache>/x/<pkg>; returns that dir."""
    debs, out = os.path.join(cache, "debs"), os.path.join(cache, "x", pkg)
    if os.path.isdir(out):
        return out
    # dpkg -x creates only the last directory of its target.
    os.makedirs(debs, exist_ok=True)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    found = glob.glob(os.path.join(debs, pkg + "_*.deb"))
    if not found:
        log(f"fetching {pkg} with apt-get download ...")
        subprocess.run(["apt-get", "download", pkg], cwd=debs, check=True,
                       stdout=subprocess.DEVNULL)
        found = glob.glob(os.path.join(debs, pkg + "_*.deb"))
    subprocess.run(["dpkg", "-x", found[0], out + ".tmp"], check=True)
    os.rename(out + ".tmp", out)
    return out


def package_info(cache, pkg):
    deb = glob.glob(os.path.join(cache, "debs", pkg + "_*.deb"))
    version = os.path.basename(deb[0]).split("_")[1] if deb else "?"
    cp = os.path.join(cache, "x", pkg, "usr", "share", "doc", pkg, "copyright")
    lic = []
    try:
        for line in open(cp, errors="replace"):
            m = re.match(r"License:\s*(\S.*)", line)
            if m and m.group(1).strip() not in lic:
                lic.append(m.group(1).strip())
    except OSError:
        pass
    return version, lic


def _candidates(cache):
    """(source_package, path, group_hint) for every candidate photo."""
    out = []
    x = lambda p: os.path.join(cache, "x", p)  # noqa: E731
    for f in sorted(glob.glob(x("scratch") + "/usr/share/scratch/Media/Backgrounds/*/*")):
        if f.lower().endswith((".jpg", ".png", ".gif")):
            out.append(("scratch", f, None))
    for f in sorted(glob.glob(x("tuxpaint-data") + "/usr/share/tuxpaint/templates/*.jpg")):
        out.append(("tuxpaint-data", f, None))
    for f in sorted(glob.glob(x("palapeli-data") + "/usr/share/palapeli/collection/*.jpg")):
        out.append(("palapeli-data", f, None))
    d = x("opencv-doc") + "/usr/share/doc/opencv-doc/examples/data/"
    for name, grp in OPENCV.items():
        f = [p for p in glob.glob(d + name + ".*") if p.endswith((".jpg", ".png"))]
        if f:
            out.append(("opencv-doc", f[0], grp and "opencv-" + grp))
    d = x("python3-skimage") + "/usr/lib/python3/dist-packages/skimage/data/"
    for name in sorted(SKIMAGE):
        f = [p for p in glob.glob(d + name + ".*") if p.endswith((".jpg", ".png"))]
        if f:
            out.append(("python3-skimage", f[0], None))
    for sub in ("nature", "abstract"):
        for f in sorted(glob.glob(x("mate-backgrounds") + f"/usr/share/backgrounds/mate/{sub}/*")):
            if f.lower().endswith((".jpg", ".png")):
                out.append(("mate-backgrounds", f, None))
    for p in ("lomiri-wallpapers", "lomiri-wallpapers-16.04", "lomiri-wallpapers-20.04",
              "ukui-wallpapers"):
        for f in sorted(glob.glob(x(p) + "/usr/share/backgrounds/*")):
            if f.lower().endswith((".jpg", ".png")):
                out.append((p, f, None))
    # plasma: several resolutions per wallpaper: keep the largest of images/ (not images_dark)
    for wd in sorted(glob.glob(x("plasma-workspace-wallpapers") + "/usr/share/wallpapers/*")):
        imgs = glob.glob(wd + "/contents/images/*")
        if imgs:
            best = max(imgs, key=lambda p: _area(os.path.basename(p)))
            out.append(("plasma-workspace-wallpapers", best, None))
    return out


def _area(name):
    m = re.match(r"(\d+)x(\d+)", name)
    return int(m.group(1)) * int(m.group(2)) if m else 0


def _dhash(img):
    g = img.convert("L").resize((17, 16), Image.BILINEAR)
    px = list(g.getdata())
    bits = 0
    for y in range(16):
        for xx in range(16):
            bits = (bits << 1) | (px[y * 17 + xx] > px[y * 17 + xx + 1])
    return bits


def _shrink(img, side=MAX_SIDE):
    w, h = img.size
    s = side / max(w, h)
    if s < 1:
        img = img.resize((max(1, round(w * s)), max(1, round(h * s))), Image.LANCZOS)
    return img


def _load(path):
    img = Image.open(path)
    if img.format == "JPEG":
        img.draft("RGB", (1800, 1800))
    if img.mode in ("RGBA", "LA", "P"):
        img = img.convert("RGBA")
        bg = Image.new("RGB", img.size, (255, 255, 255))
        bg.paste(img, mask=img.split()[3])
        return bg
    return img.convert("RGB")


def prepare(cache, log=print, artwork=False):
    """Returns (originals, distractors): lists of dicts {id, group, src, path, w, h, dir}.
    artwork=True keeps the non-photos too (in <cache>/prepared-art/), for comparison."""
    sub = "prepared-art" if artwork else "prepared"
    man = os.path.join(cache, sub, "manifest.json")
    if os.path.exists(man):
        m = json.load(open(man))
        if m.get("version") == PREP_VERSION:
            return m["originals"], m["distractors"]
    for p in PHOTO_PACKAGES + [DISTRACTOR_PACKAGE]:
        fetch(p, cache, log)
    pdir = os.path.join(cache, sub)
    os.makedirs(pdir, exist_ok=True)
    log("preparing originals (dedupe, tiles, <= 1024 px) ...")
    cands = []
    for src, path, grp in _candidates(cache):
        if not artwork and not is_photo(src, path):
            continue
        try:
            im = Image.open(path)
            w0, h0 = im.size
            im.close()
        except Exception:
            continue
        if min(w0, h0) < 200:
            continue
        img = _load(path)
        cands.append((src, path, grp, w0, h0, _dhash(img), img if w0 * h0 < 4e6 else None))
    # dedupe: same aspect (±3 %) and dHash within 12 of 256 bits -> same photo, keep largest
    keep = []
    for c in sorted(cands, key=lambda c: -c[3] * c[4]):
        dup = False
        for k in keep:
            if abs(c[3] / c[4] - k[3] / k[4]) < 0.03 * (k[3] / k[4]) and \
                    bin(c[5] ^ k[5]).count("1") <= 12:
                dup = True
                break
        if not dup:
            keep.append(c)
    keep.sort(key=lambda c: (c[0], c[1]))
    originals = []
    for n, (src, path, grp, w0, h0, _, img) in enumerate(keep):
        base = re.sub(r"[^A-Za-z0-9]+", "-", os.path.splitext(os.path.basename(path))[0])[:40]
        oid = f"o{n:03d}-{base}"
        img = img if img is not None else _load(path)
        W, H = img.size
        nx = 2 if W >= 2400 else 1
        ny = 2 if H >= 2000 else 1
        group = grp or oid
        for ty in range(ny):
            for tx in range(nx):
                tile = img.crop((tx * W // nx, ty * H // ny, (tx + 1) * W // nx, (ty + 1) * H // ny))
                tid = oid if nx * ny == 1 else f"{oid}-t{ty}{tx}"
                t = _shrink(tile)
                fp = os.path.join(pdir, tid + ".jpg")
                t.save(fp, quality=95)
                originals.append({"id": tid, "group": group, "src": src,
                                  "path": os.path.relpath(path, cache), "w": t.size[0],
                                  "h": t.size[1], "dir": sub})
    log(f"{len(cands)} candidate photos, {len(keep)} after dedupe, {len(originals)} originals "
        f"with tiles")
    distractors = []
    neb = sorted(glob.glob(os.path.join(cache, "x", DISTRACTOR_PACKAGE,
                                        "usr/share/stellarium/nebulae/default/*.png")))
    seen = set()
    for n, path in enumerate(neb):
        try:
            img = _load(path)
        except Exception:
            continue
        if min(img.size) < 65:
            continue
        h = _dhash(img)
        if h in seen:
            continue
        seen.add(h)
        did = f"d{n:03d}-" + re.sub(r"[^A-Za-z0-9]+", "-", os.path.basename(path)[:-4])[:30]
        t = _shrink(img)
        t.save(os.path.join(pdir, did + ".jpg"), quality=95)
        distractors.append({"id": did, "group": did, "src": DISTRACTOR_PACKAGE,
                            "path": os.path.relpath(path, cache), "w": t.size[0], "h": t.size[1],
                            "dir": sub})
    log(f"{len(distractors)} distractors")
    json.dump({"version": PREP_VERSION, "originals": originals, "distractors": distractors},
              open(man, "w"), indent=0)
    return originals, distractors


def load_prepared(cache, rec):
    with open(os.path.join(cache, rec.get("dir", "prepared"), rec["id"] + ".jpg"), "rb") as f:
        data = f.read()
    return data, Image.open(io.BytesIO(data)).convert("RGB")
