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
# get a hard limit instead: about 4× a 12 MP phone photo.
DRAFT_TARGET = (1024, 1024)
MAX_FULL_DECODE_PIXELS = 50_000_000
MAX_DECLARED_PIXELS = 1_000_000_000


def load_rgb(path: str | Path) -> np.ndarray:
    """Decode an image file to an RGB uint8 array (H, W, 3), upright as its EXIF says.

    Raises ImageReadError with a message naming the actual problem.
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
                if im.format == "JPEG" and (w > DRAFT_TARGET[0] * 2 or h > DRAFT_TARGET[1] * 2):
                    im.draft("RGB", DRAFT_TARGET)
                elif w * h > MAX_FULL_DECODE_PIXELS:
                    raise ImageReadError(
                        f"{p}: {im.format} image is {w}×{h}; at most "
                        f"{MAX_FULL_DECODE_PIXELS // 1_000_000} megapixels are accepted"
                    )
                im.load()
                im = ImageOps.exif_transpose(im)
                rgb = _to_rgb(im)
    except ImageReadError:
        raise
    except UnidentifiedImageError:
        raise ImageReadError(f"{p} is not an image Pillow can read (unknown format)") from None
    except Image.DecompressionBombError as e:
        raise ImageReadError(f"{p}: {e}") from None
    except PermissionError as e:
        raise ImageReadError(f"cannot read file {p}: {e.strerror}") from None
    except (OSError, SyntaxError, ValueError) as e:
        # Pillow reports truncated and corrupt data as OSError ("image file is truncated").
        raise ImageReadError(f"{p}: corrupt or truncated image data ({e})") from None
    return rgb


def _to_rgb(im: Image.Image) -> np.ndarray:
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        # Transparent areas become white, like a page, rather than undefined colours.
        im = im.convert("RGBA")
        background = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, im)
    elif im.mode in ("I;16", "I;16B", "I;16L", "I"):
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
