"""Deterministic synthetic test images (seeded shapes on gradients) and
their encodings, made with Pillow (Debian's python3-pil)."""
import base64
import io
import random

from PIL import Image, ImageDraw, ImageFilter


def scene(seed, w=320, h=240):
    rnd = random.Random(seed)
    img = Image.new("RGB", (w, h))
    c0 = [rnd.randrange(256) for _ in range(3)]
    c1 = [rnd.randrange(256) for _ in range(3)]
    draw = ImageDraw.Draw(img)
    for y in range(h):
        t = y / max(1, h - 1)
        draw.line([(0, y), (w, y)], fill=tuple(int(a + (b - a) * t) for a, b in zip(c0, c1)))
    for _ in range(rnd.randint(4, 9)):
        x0, y0 = rnd.randrange(w), rnd.randrange(h)
        x1, y1 = x0 + rnd.randint(w // 10, w // 2), y0 + rnd.randint(h // 10, h // 2)
        col = tuple(rnd.randrange(256) for _ in range(3))
        kind = rnd.randrange(3)
        if kind == 0:
            draw.rectangle([x0, y0, x1, y1], fill=col)
        elif kind == 1:
            draw.ellipse([x0, y0, x1, y1], fill=col)
        else:
            draw.polygon([(x0, y0), (x1, y0), ((x0 + x1) // 2, y1)], fill=col)
    return img.filter(ImageFilter.GaussianBlur(1))


def encode(img, fmt="JPEG", **kw):
    buf = io.BytesIO()
    if fmt == "JPEG":
        kw.setdefault("quality", 90)
        img = img.convert("RGB")
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def b64(img, fmt="JPEG", **kw):
    return base64.b64encode(encode(img, fmt, **kw)).decode()
