"""Camera pictures (RGB numpy arrays) as pygame surfaces."""

from __future__ import annotations

import numpy as np
import pygame


def fit_size(shape: tuple[int, ...], box: pygame.Rect) -> tuple[int, int]:
    """The largest size with the picture's aspect ratio that fits in `box`."""
    h, w = shape[:2]
    scale = min(box.width / w, box.height / h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def to_surface(image: np.ndarray, size: tuple[int, int]) -> pygame.Surface:
    """An RGB uint8 array as a surface of `size` pixels, smoothly scaled."""
    rgb = np.ascontiguousarray(image[:, :, :3])
    h, w = rgb.shape[:2]
    surface = pygame.image.frombuffer(rgb.tobytes(), (w, h), "RGB")
    return pygame.transform.smoothscale(surface, size)
