"""Proof that the ImageNet weights were loaded into the right layers, before any training.

A wrong port (a transposed kernel, a missing BatchNorm, the wrong padding) still produces
numbers; only classifying known pictures shows it. Both pictures ship with scikit-image.
"""

from __future__ import annotations

import numpy as np

from kiosk.live.imaging import square_resize

# ImageNet class ids: 285 Egyptian cat, 967 espresso.
KNOWN_IMAGES = {"chelsea": 285, "coffee": 967}


def known_image(name: str, side: int = 224) -> np.ndarray:
    from skimage import data

    return square_resize(getattr(data, name)(), side)


def verify_torch_imagenet_port() -> dict[str, float]:
    """Classify the known pictures with the ported ImageNet Lite0; raise if any is wrong."""
    import torch

    from cloud.training.lite0_torch import load_imagenet_lite0, normalise

    model = load_imagenet_lite0()
    scores: dict[str, float] = {}
    for name, expected in KNOWN_IMAGES.items():
        x = normalise(torch.from_numpy(known_image(name))[None])
        with torch.no_grad():
            probs = model(x).softmax(dim=1)[0]
        top = int(probs.argmax())
        if top != expected:
            raise RuntimeError(
                f"ImageNet port check failed: {name} came out as class {top}, expected {expected}"
            )
        scores[name] = float(probs[expected])
    return scores
