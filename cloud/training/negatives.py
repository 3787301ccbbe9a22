"""Non-skin pictures for the `other` class.

The kiosk will be pointed at walls, sleeves, floors and faces-from-afar; the training folders
hold only skin. These are crops of the photographs bundled with scikit-image (no download),
plus a few procedural textures, each tagged `non_skin`. Half of the photographs are kept for
validation, so the out-of-scope rate on non-skin pictures is measured on unseen scenes.
"""

from __future__ import annotations

import cv2
import numpy as np

# Colour photographs that ship inside the scikit-image wheel (skimage.data).
TRAIN_SCENES = ("astronaut", "coffee", "chelsea", "rocket", "colorwheel")
VAL_SCENES = ("cat", "logo", "immunohistochemistry", "retina", "hubble_deep_field")


def _scene(name: str) -> np.ndarray | None:
    from skimage import data

    try:
        img = getattr(data, name)()
    except Exception:  # a scene that needs a download is simply left out
        return None
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    return np.ascontiguousarray(img[..., :3]).astype(np.uint8)


def _crops(img: np.ndarray, count: int, side: int, rng: np.random.Generator) -> list[np.ndarray]:
    h, w = img.shape[:2]
    out = []
    for _ in range(count):
        s = int(rng.uniform(0.3, 1.0) * min(h, w))
        top, left = rng.integers(0, h - s + 1), rng.integers(0, w - s + 1)
        crop = img[top : top + s, left : left + s]
        out.append(cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA))
    return out


def _textures(count: int, side: int, rng: np.random.Generator) -> list[np.ndarray]:
    out = []
    yy, xx = np.mgrid[0:side, 0:side] / side
    for i in range(count):
        c1, c2 = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        kind = i % 4
        if kind == 0:  # flat colour with sensor noise
            img = np.broadcast_to(c1, (side, side, 3)) + rng.normal(0, 6, (side, side, 3))
        elif kind == 1:  # gradient
            t = (xx * rng.uniform(-1, 1) + yy * rng.uniform(-1, 1))[..., None]
            t = (t - t.min()) / (np.ptp(t) + 1e-6)
            img = c1 * (1 - t) + c2 * t
        elif kind == 2:  # stripes / checks like fabric
            f = rng.uniform(4, 30)
            img = np.where(
                ((np.sin(xx * f * 6.28) > 0) ^ (np.sin(yy * f * 3.14) > 0))[..., None], c1, c2
            )
        else:  # coloured noise blobs
            small = rng.integers(0, 256, (8, 8, 3)).astype(np.float32)
            img = cv2.resize(small, (side, side), interpolation=cv2.INTER_CUBIC)
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return out


def non_skin_images(split: str, side: int, per_scene: int = 30, seed: int = 0) -> np.ndarray:
    """uint8 (N, side, side, 3) non-skin pictures for `split` ("train" or "val")."""
    rng = np.random.default_rng(seed + (0 if split == "train" else 1))
    scenes = TRAIN_SCENES if split == "train" else VAL_SCENES
    images: list[np.ndarray] = []
    for name in scenes:
        img = _scene(name)
        if img is not None:
            images += _crops(img, per_scene, side, rng)
    images += _textures(per_scene * 2, side, rng)
    return np.stack(images)
