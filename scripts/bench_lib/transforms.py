"""The Copydays-style transforms of /work/shared/extractor.md, deterministic (fixed seeds).

Every transform takes an RGB PIL image and the image id, and returns JPEG bytes (q90 unless the
transform sets its own quality)."""
import io
import math
import random

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFont

TRANSFORMS = ["crop60", "crop35", "rot10", "rot90", "rot180", "jpeg15", "downscale", "colour",
              "overlay", "flip", "strong", "rot10x", "blocky"]
# rot10x and blocky are harsher variants of our own, reported without a target: rot10x keeps
# the whole rotated photo on a larger canvas, blocky is the study's pessimistic "scale".
EXTRA = ("rot10x", "blocky")

DESCRIPTIONS = {
    "crop60": "random crop keeping 60 % of the area (same aspect, seeded position)",
    "crop35": "random crop keeping 36 % of the area (0.6 × 0.6 of the sides, seeded position)",
    "rot10": "rotation by 10° about the centre, same canvas, black corners (PIL's default "
             "rotate)",
    "rot90": "rotation by 90°",
    "rot180": "rotation by 180°",
    "jpeg15": "JPEG quality 15",
    "downscale": "5× smaller (box filter, e.g. 1024 → 205 px; less when the shortest side "
                 "would drop below the API's 65 px), sent at that size",
    "colour": "60 % desaturation + warm tint (R×1.10, B×0.85) + contrast 0.8 + brightness +25",
    "overlay": "caption band (bottom 14 %, translucent black + white text) + logo box (top right)",
    "flip": "left-right mirror",
    "strong": "85 % area crop + colour + overlay + JPEG quality 30",
    "rot10x": "no target: rotation by 10° with the canvas expanded to hold the whole photo "
              "(black corners; the photo fills less of the frame)",
    "blocky": "no target: the study's pessimistic \"scale\": 5× down (box filter) then back up "
              "with nearest neighbour",
}


def jpeg(img, quality=90):
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _rnd(name, iid):
    return random.Random(f"{name}:{iid}")


def crop_area(img, frac, rnd):
    w, h = img.size
    s = math.sqrt(frac)
    cw, ch = max(65, round(w * s)), max(65, round(h * s))
    x, y = rnd.randint(0, w - cw), rnd.randint(0, h - ch)
    return img.crop((x, y, x + cw, y + ch))


def colour(img):
    img = ImageEnhance.Color(img).enhance(0.4)
    a = np.asarray(img).astype(np.float32)
    a[..., 0] *= 1.10
    a[..., 2] *= 0.85
    img = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    img = ImageEnhance.Contrast(img).enhance(0.8)
    a = np.asarray(img).astype(np.int16) + 25
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def _font(size):
    for p in ("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
              "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"):
        try:
            return ImageFont.truetype(p, size)
        except OSError:
            pass
    return ImageFont.load_default()


def overlay(img, rnd):
    img = img.convert("RGBA")
    w, h = img.size
    layer = Image.new("RGBA", img.size, (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    band = max(12, int(h * 0.14))
    d.rectangle([0, h - band, w, h], fill=(0, 0, 0, 160))
    words = ["Breaking", "news", "Photo", "by", "Agency", "2024", "exclusive", "report", "live"]
    text = " ".join(rnd.choice(words) for _ in range(5))
    d.text((int(w * 0.03), h - band + band // 5), text, fill=(255, 255, 255, 255),
           font=_font(max(8, int(band * 0.55))))
    lw, lh = max(10, int(w * 0.16)), max(8, int(h * 0.11))
    x0, y0 = w - lw - int(w * 0.03), int(h * 0.03)
    col = tuple(rnd.randrange(256) for _ in range(3)) + (230,)
    d.rectangle([x0, y0, x0 + lw, y0 + lh], fill=col, outline=(255, 255, 255, 255),
                width=max(1, lh // 12))
    d.text((x0 + lw // 8, y0 + lh // 5), "LOGO", fill=(255, 255, 255, 255),
           font=_font(max(6, int(lh * 0.5))))
    return Image.alpha_composite(img, layer).convert("RGB")


def apply(name, img, iid):
    """Returns JPEG bytes of transform `name` of `img` (RGB)."""
    rnd = _rnd(name, iid)
    w, h = img.size
    if name == "crop60":
        return jpeg(crop_area(img, 0.60, rnd))
    if name == "crop35":
        return jpeg(crop_area(img, 0.36, rnd))
    if name == "rot10":
        return jpeg(img.rotate(10, resample=Image.BICUBIC, fillcolor=(0, 0, 0)))
    if name == "rot10x":
        return jpeg(img.rotate(10, resample=Image.BICUBIC, expand=True, fillcolor=(0, 0, 0)))
    if name == "rot90":
        return jpeg(img.transpose(Image.ROTATE_90))
    if name == "rot180":
        return jpeg(img.transpose(Image.ROTATE_180))
    if name == "jpeg15":
        return jpeg(img, 15)
    if name == "downscale":  # the API refuses a shortest side <= 64 px
        f = min(5.0, min(w, h) / 65)
        return jpeg(img.resize((round(w / f), round(h / f)), Image.BOX))
    if name == "blocky":
        small = img.resize((max(1, w // 5), max(1, h // 5)), Image.BOX)
        return jpeg(small.resize((w, h), Image.NEAREST))
    if name == "colour":
        return jpeg(colour(img))
    if name == "overlay":
        return jpeg(overlay(img, rnd))
    if name == "flip":
        return jpeg(img.transpose(Image.FLIP_LEFT_RIGHT))
    if name == "strong":
        return jpeg(overlay(colour(crop_area(img, 0.85, rnd)), rnd), 30)
    raise ValueError(name)


ORIENTATIONS = {0: None, 90: Image.ROTATE_90, 180: Image.ROTATE_180, 270: Image.ROTATE_270}


def rotate_jpeg(data, angle, quality=95):
    """The query re-encoded after a rotation by `angle` (counter-clockwise)."""
    if angle == 0:
        return data
    return jpeg(Image.open(io.BytesIO(data)).convert("RGB").transpose(ORIENTATIONS[angle]),
                quality)


# Regional crops for index-time regional descriptors: a 3×3 grid of windows with sides 0.6 of
# the image's (offsets 0, 0.2, 0.4): "g11" is the centre, g00/g02/g20/g22 the corners.
def region(img, gy, gx, side=0.6):
    w, h = img.size
    cw, ch = round(w * side), round(h * side)
    x = round((w - cw) * gx / 2)
    y = round((h - ch) * gy / 2)
    return img.crop((x, y, x + cw, y + ch))
