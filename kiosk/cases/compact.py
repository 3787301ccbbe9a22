"""The compact copy of a case picture that goes up first on a slow link.

On a 2G/3G uplink a full-resolution capture (up to 1600 px, a few hundred KB) takes tens of
seconds, longer than the link stays up. The cloud classifier reads 224 px and a dermatologist's
first look needs far less than the full picture, so the case document travels with a compact
copy of tens of KB; the full picture follows as a resumable upload (kiosk.cases.sync).

The copy is made from the stored JPEG at send time, not kept on disk: it is a pure function of
those bytes (same decoder, same resize, same encoder settings), so a retry after a restart
makes the same bytes, and nothing new has to survive a power cut or a recovery.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import cv2
import numpy as np

# Longest side of the compact copy: enough for the cloud classifier's test-time crops and a
# clear first look on the console, about 25-45 KB for a skin photo.
COMPACT_MAX_SIDE = 512
COMPACT_JPEG_QUALITY = 80
# A copy must at least halve the bytes to be worth a second object and a second upload; a
# picture already this small goes whole, before its document, as it always did.
COMPACT_MAX_RATIO = 0.5


@dataclass(frozen=True)
class CompactPicture:
    data: bytes
    sha256: str
    width: int
    height: int


def make_compact(full_jpeg: bytes) -> CompactPicture | None:
    """The compact copy of `full_jpeg`, or None when the picture should go whole (it is small
    already, or cannot be decoded here: the full bytes are sent and checked as they are)."""
    buffer = np.frombuffer(full_jpeg, dtype=np.uint8)
    bgr = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    if bgr is None:
        return None
    h, w = bgr.shape[:2]
    scale = COMPACT_MAX_SIDE / max(h, w)
    if scale >= 1.0:
        return None
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, COMPACT_JPEG_QUALITY])
    if not ok:
        return None
    data = encoded.tobytes()
    if len(data) > COMPACT_MAX_RATIO * len(full_jpeg):
        return None
    return CompactPicture(data, hashlib.sha256(data).hexdigest(), size[0], size[1])
