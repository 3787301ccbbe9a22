"""A case's stored pictures as the cloud side reads them (kiosk.cases.cloud_schema): the
full-resolution picture (`image`) and, on a slow link, its compact copy (`compact_image`),
which is in Storage before the document while the full one may still be on its way.

Every reader picks its picture here and downloads it through `download()`, so every byte it
uses has been checked against the sha256 of the very dict that describes it: the compact
copy's bytes against compact_image.sha256, the full picture's against image.sha256.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kiosk.cases import cloud_schema as schema

PART_FULL = "full"
PART_COMPACT = "compact"
PARTS = (PART_FULL, PART_COMPACT)


class PictureMismatchError(Exception):
    """Storage holds other bytes than the case document describes for this picture."""


@dataclass(frozen=True)
class StoredPicture:
    part: str  # PART_FULL or PART_COMPACT
    path: str
    sha256: str
    bytes: int  # as the kiosk recorded it; 0 when not recorded
    width: int | None = None  # recorded for the compact copy only
    height: int | None = None

    @classmethod
    def from_document(cls, part: str, d: Any) -> StoredPicture | None:
        """None when the dict cannot name a checkable object (no path or no sha256)."""
        if not isinstance(d, Mapping) or not d.get("path") or not d.get("sha256"):
            return None
        return cls(
            part=part,
            path=str(d["path"]),
            sha256=str(d["sha256"]),
            bytes=_int(d.get("bytes")) or 0,
            width=_int(d.get("width")),
            height=_int(d.get("height")),
        )


def _int(value: Any) -> int | None:
    # bool is an int in Python; a stored True is not a size.
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def full_picture(doc: Mapping[str, Any]) -> StoredPicture | None:
    """The full-resolution picture as the document describes it, stored or not yet."""
    return StoredPicture.from_document(PART_FULL, doc.get("image"))


def compact_picture(doc: Mapping[str, Any]) -> StoredPicture | None:
    return StoredPicture.from_document(PART_COMPACT, doc.get("compact_image"))


def first_look(doc: Mapping[str, Any]) -> StoredPicture | None:
    """The picture a reader can use at once (schema.first_look_image): the compact copy when
    the kiosk sent one, else the full picture. What the classifier and thumbnails read."""
    chosen = schema.first_look_image(doc)
    # first_look_image hands back one of the document's own dicts: which one says the part.
    part = PART_COMPACT if chosen is doc.get("compact_image") else PART_FULL
    return StoredPicture.from_document(part, chosen)


def best_available(doc: Mapping[str, Any]) -> StoredPicture | None:
    """The full picture once Storage holds it (schema.full_image_available), else the first
    look. What a person looking closely, or a training set, should get."""
    if schema.full_image_available(doc):
        return full_picture(doc)
    return first_look(doc)


def download(bucket: Any, picture: StoredPicture, **download_options: Any) -> bytes:
    """The picture's bytes, checked against its own sha256 (PictureMismatchError if not).
    Storage errors (a missing object: google.api_core NotFound) pass through."""
    data = bucket.blob(picture.path).download_as_bytes(**download_options)
    if hashlib.sha256(data).hexdigest() != picture.sha256:
        raise PictureMismatchError(picture.path)
    return data
