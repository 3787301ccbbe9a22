"""Small JPEG thumbnails for worklist rows, made from the checked case image and kept in a
bounded in-memory cache (keyed by the image's sha256, so a replaced picture gets a new one)."""

from __future__ import annotations

import io
import threading
from collections import OrderedDict

from PIL import Image

SIZE = 96
MAX_CACHED = 512  # ~4 KB each


class Thumbnails:
    def __init__(self, max_cached: int = MAX_CACHED) -> None:
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._max = max_cached
        self._lock = threading.Lock()

    def get(self, sha256: str) -> bytes | None:
        with self._lock:
            data = self._cache.get(sha256)
            if data is not None:
                self._cache.move_to_end(sha256)
            return data

    def make(self, sha256: str, jpeg: bytes) -> bytes:
        with Image.open(io.BytesIO(jpeg)) as im:
            im = im.convert("RGB")
            im.thumbnail((SIZE, SIZE))
            out = io.BytesIO()
            im.save(out, "JPEG", quality=80)
        data = out.getvalue()
        with self._lock:
            self._cache[sha256] = data
            while len(self._cache) > self._max:
                self._cache.popitem(last=False)
        return data
