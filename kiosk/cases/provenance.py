"""How a case's picture was taken: kept with the case, sent with it, shown to the specialist.

A dermatologist judging a picture (and retraining judging a label) needs to know what produced
it: which camera source, whether the dermoscope was on, what the quality gate measured, which
part of the frame was cropped, how many frames the on-device verdict averaged, which model.
Demo pictures (the bundled clip) are marked here so they are never mistaken for a patient.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SOURCE_DEMO = "demo"
SOURCE_FILE = "file"  # `kiosk case add` from an image file
SOURCE_KINDS = ("picamera2", "opencv", "replay", SOURCE_DEMO, SOURCE_FILE)


@dataclass(frozen=True)
class Provenance:
    source: str  # one of SOURCE_KINDS
    lens: str = ""  # the lens mode in use: auto | dermoscopic | clinical | off ("" unknown)
    picture_kind: str = ""  # what the picture looked like: dermoscopic | clinical | ""
    quality: Mapping[str, float] = field(default_factory=dict)  # gate measures at capture
    reasons: tuple[str, ...] = ()  # gate rejection reasons at capture; () when it passed
    crop_box: tuple[int, int, int, int] | None = None  # x, y, width, height in the frame
    frame_size: tuple[int, int] | None = None  # width, height of the camera frame
    frames_averaged: int = 1  # frames behind the on-device verdict (1 for a still picture)
    model_version: str = ""

    @property
    def demo(self) -> bool:
        return self.source == SOURCE_DEMO

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "demo": self.demo,
            "lens": self.lens,
            "picture_kind": self.picture_kind,
            "quality": {k: round(float(v), 4) for k, v in self.quality.items()},
            "reasons": list(self.reasons),
            "crop_box": list(self.crop_box) if self.crop_box is not None else None,
            "frame_size": list(self.frame_size) if self.frame_size is not None else None,
            "frames_averaged": int(self.frames_averaged),
            "model_version": self.model_version,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Provenance:
        crop = d.get("crop_box")
        size = d.get("frame_size")
        return cls(
            source=str(d.get("source", "")),
            lens=str(d.get("lens", "")),
            picture_kind=str(d.get("picture_kind", "")),
            quality={str(k): float(v) for k, v in (d.get("quality") or {}).items()},
            reasons=tuple(str(r) for r in d.get("reasons") or ()),
            crop_box=tuple(int(v) for v in crop) if crop else None,  # type: ignore[arg-type]
            frame_size=tuple(int(v) for v in size) if size else None,  # type: ignore[arg-type]
            frames_averaged=int(d.get("frames_averaged", 1)),
            model_version=str(d.get("model_version", "")),
        )
