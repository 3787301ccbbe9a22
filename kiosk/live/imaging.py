"""Reading still images and the square crop + resize every model input goes through.

Live frames (the camera) and still files (`kiosk classify`, training, evaluation) meet here, so
the model sees the same geometry whatever the source.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# A JPEG is decoded at a reduced scale (libjpeg's DCT scaling) when it is larger than this, so a
# 10000×10000 photo costs what a 1250×1250 one does. Other formats are decoded in full, so they
# get a hard limit instead (below Pillow's own), sized for a 2 GB Raspberry Pi 4 that also runs
# the UI and sync: a 50 MP RGBA picture is 200 MB decoded, and no second full-size copy is
# made beside it (peak RSS measured with scripts/bench_still_images.py).
DRAFT_TARGET = (1024, 1024)
MAX_FULL_DECODE_PIXELS = 50_000_000
MAX_DECLARED_PIXELS = 1_000_000_000
# Pictures are reduced to at most this long side right after decoding: the model needs 224 px
# and a saved case keeps at most kiosk.cases.store's cap, so more would only cost memory.
MAX_DECODED_SIDE = 2048
# Still pictures smaller than this on their short side are refused (a 224 px model input from
# fewer pixels is a guess), by `kiosk classify` and `kiosk case add` alike.
MIN_STILL_SIDE = 64
# A picture whose colour channels differ by at most this (on 0-255) carries no colour: the
# conditions are told apart by colour as much as by shape, and the model answers grayscale
# pictures with a confident, meaningless "other" (0.81-0.90 measured), so they are refused.
GRAYSCALE_TOLERANCE = 3


def load_rgb(path: str | Path, min_side: int = 0) -> np.ndarray:
    """Decode an image file to an RGB uint8 array (H, W, 3), upright as its EXIF says, at
    most MAX_DECODED_SIDE on its long side.

    Raises ImageReadError with a message naming the actual problem, including a picture whose
    short side (as stored) is below `min_side`.
    """
    from kiosk.errors import ImageReadError

    p = Path(path)
    try:
        size = p.stat().st_size
    except FileNotFoundError:
        raise ImageReadError(f"file not found: {p}") from None
    except OSError as e:
        raise ImageReadError(f"cannot read file {p}: {e.strerror or e}") from None
    if p.is_dir():
        raise ImageReadError(f"{p} is a directory, not an image file")
    if size == 0:
        raise ImageReadError(f"{p} is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            # Our own limits below replace Pillow's decompression-bomb warning.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(p) as im:
                w, h = im.size
                if w * h > MAX_DECLARED_PIXELS:
                    raise ImageReadError(f"{p}: image is {w}×{h}, too large to process")
                if min(w, h) < min_side:
                    raise ImageReadError(
                        f"{p}: the picture is {w}×{h} pixels; at least {min_side} pixels on "
                        "the short side are needed"
                    )
                if im.format == "JPEG" and (w > DRAFT_TARGET[0] * 2 or h > DRAFT_TARGET[1] * 2):
                    im.draft("RGB", DRAFT_TARGET)
                elif w * h > MAX_FULL_DECODE_PIXELS:
                    raise ImageReadError(
                        f"{p}: {im.format} image is {w}×{h}; at most "
                        f"{MAX_FULL_DECODE_PIXELS // 1_000_000} megapixels are accepted"
                    )
                im.load()
                small = _reduced(im)
                if small is not im:
                    im.close()  # frees the full-size pixels now, not when the block ends
                small = ImageOps.exif_transpose(small)
                rgb = _to_rgb(small)
    except ImageReadError:
        raise
    except UnidentifiedImageError:
        raise ImageReadError(f"{p} is not an image Pillow can read (unknown format)") from None
    except Image.DecompressionBombError:
        raise ImageReadError(f"{p}: image is too large to process") from None
    except PermissionError as e:
        raise ImageReadError(f"cannot read file {p}: {e.strerror}") from None
    except (OSError, SyntaxError, ValueError) as e:
        # Pillow reports truncated and corrupt data as OSError ("image file is truncated").
        raise ImageReadError(f"{p}: corrupt or truncated image data ({e})") from None
    return rgb


def load_still(path: str | Path) -> np.ndarray:
    """A still picture for classification or a case: load_rgb, then refused (ImageReadError
    naming why) when it is too small or has no colour."""
    from kiosk.errors import ImageReadError

    rgb = load_rgb(path, min_side=MIN_STILL_SIDE)
    if is_grayscale(rgb):
        raise ImageReadError(
            f"{path}: the picture has no colour (grayscale); skin conditions cannot be judged "
            "without colour: take a colour picture"
        )
    return rgb


def is_grayscale(rgb: np.ndarray) -> bool:
    # A 64 px sample is enough and keeps this cheap on big pictures.
    step = max(1, min(rgb.shape[:2]) // 64)
    sample = rgb[::step, ::step].astype(np.int16)
    spread = sample.max(axis=2) - sample.min(axis=2)
    return int(np.percentile(spread, 99)) <= GRAYSCALE_TOLERANCE


def _reduced(im: Image.Image) -> Image.Image:
    """At most MAX_DECODED_SIDE on the long side, by an integer box reduction (cheap, and the
    full-size copy is released before any colour conversion makes another)."""
    factor = -(-max(im.size) // MAX_DECODED_SIDE)  # ceiling division
    if factor <= 1:
        return im
    if im.mode.startswith("I;16"):
        # 16-bit: reduced as 32-bit integers, so _to_rgb still scales the full range (an
        # 8-bit conversion here would clip every value above 255 to white).
        converted = im.convert("I")
        converted.info = dict(im.info)
        im = converted
    elif im.mode not in ("RGB", "RGBA", "L", "LA", "I", "F"):
        # reduce() needs 8-bit (or 32-bit) bands; exif_transpose later reads the info kept.
        converted = im.convert("RGBA" if "transparency" in im.info or "A" in im.mode else "RGB")
        converted.info = dict(im.info)
        im = converted
    reduced = im.reduce(factor)
    reduced.info = dict(im.info)
    return reduced


def _to_rgb(im: Image.Image) -> np.ndarray:
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        # Transparent areas become white, like a page, rather than undefined colours.
        im = im.convert("RGBA")
        background = Image.new("RGB", im.size, (255, 255, 255))
        background.paste(im, mask=im.getchannel("A"))
        im = background
    elif im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(im, dtype=np.float32)
        hi = float(arr.max()) or 1.0
        im = Image.fromarray((arr * (255.0 / hi)).astype(np.uint8))
    return np.ascontiguousarray(np.asarray(im.convert("RGB"), dtype=np.uint8))


def centre_square(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return rgb[top : top + side, left : left + side]


def square_resize(rgb: np.ndarray, side: int) -> np.ndarray:
    """Centre square crop, then resize to side×side (area interpolation when shrinking)."""
    sq = centre_square(rgb)
    if sq.shape[0] == side:
        return np.ascontiguousarray(sq)
    interp = cv2.INTER_AREA if sq.shape[0] > side else cv2.INTER_LINEAR
    return cv2.resize(sq, (side, side), interpolation=interp)
