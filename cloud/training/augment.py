"""Batched image augmentation in plain PyTorch, the same on CPU and GPU.

The paper's mirror / rotate / scale / crop, plus colour, blur and resolution jitter. The
last two matter here: the four lesion classes are upscaled low-resolution dermoscopic images
and acne / eczema sharp clinical photos, so without blur and colour jitter a model can learn
"kind of photo" instead of "kind of disease".
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from cloud.training.lite0_torch import INPUT_MEAN, INPUT_STD


def _uniform(n: int, lo: float, hi: float, g: torch.Generator, device) -> torch.Tensor:
    return torch.rand(n, generator=g, device=device) * (hi - lo) + lo


def geometric(x: torch.Tensor, out_side: int, g: torch.Generator) -> torch.Tensor:
    """Random resized crop, rotation and mirror in one affine resample. x: float NCHW 0..1."""
    n, dev = x.shape[0], x.device
    area = _uniform(n, 0.45, 1.0, g, dev)
    log_aspect = _uniform(n, math.log(3 / 4), math.log(4 / 3), g, dev)
    sx = torch.sqrt(area * torch.exp(log_aspect)).clamp(max=1.0)
    sy = torch.sqrt(area / torch.exp(log_aspect)).clamp(max=1.0)
    angle = _uniform(n, -math.pi, math.pi, g, dev)
    flip = torch.where(torch.rand(n, generator=g, device=dev) < 0.5, -1.0, 1.0)
    tx = _uniform(n, -1, 1, g, dev) * (1 - sx)
    ty = _uniform(n, -1, 1, g, dev) * (1 - sy)
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack(
        [
            torch.stack([cos * sx * flip, -sin * sy, tx], dim=1),
            torch.stack([sin * sx * flip, cos * sy, ty], dim=1),
        ],
        dim=1,
    )
    grid = F.affine_grid(theta, [n, x.shape[1], out_side, out_side], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def photometric(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Brightness, contrast, saturation, white balance and gamma. x: float NCHW 0..1."""
    n, dev = x.shape[0], x.device
    shape = (n, 1, 1, 1)
    gray = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]).expand_as(x)
    sat = _uniform(n, 0.7, 1.3, g, dev).view(shape)
    x = gray + (x - gray) * sat
    mean = gray.mean(dim=(1, 2, 3), keepdim=True)
    contrast = _uniform(n, 0.75, 1.25, g, dev).view(shape)
    x = mean + (x - mean) * contrast
    x = x * _uniform(n, 0.75, 1.25, g, dev).view(shape)
    gains = (torch.rand(n, 3, 1, 1, generator=g, device=dev) - 0.5) * 0.16 + 1.0
    x = (x * gains).clamp(0, 1)
    gamma = torch.exp(_uniform(n, math.log(0.8), math.log(1.25), g, dev)).view(shape)
    return x.clamp_min(1e-6) ** gamma


def blur_and_resolution(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Gaussian blur for some images, a down-and-up resample for others, noise for some."""
    n, c, h, w = x.shape
    dev = x.device
    sigma = _uniform(n, 0.3, 2.0, g, dev)
    apply_blur = torch.rand(n, generator=g, device=dev) < 0.4
    radius = 4
    taps = torch.arange(-radius, radius + 1, device=dev, dtype=x.dtype)
    kernel = torch.exp(-(taps[None] ** 2) / (2 * sigma[:, None] ** 2))
    kernel = kernel / kernel.sum(dim=1, keepdim=True)
    identity = (taps == 0).to(x.dtype).expand(n, -1)
    kernel = torch.where(apply_blur[:, None], kernel, identity)
    k = kernel.repeat_interleave(c, dim=0)  # one kernel per (image, channel)
    y = x.reshape(1, n * c, h, w)
    y = F.conv2d(
        F.pad(y, (radius, radius, 0, 0), mode="reflect"), k[:, None, None, :], groups=n * c
    )
    y = F.conv2d(
        F.pad(y, (0, 0, radius, radius), mode="reflect"), k[:, None, :, None], groups=n * c
    )
    x = y.reshape(n, c, h, w)
    if torch.rand(1, generator=g, device=dev).item() < 0.25:
        factor = float(_uniform(1, 0.4, 0.8, g, dev).item())
        small = F.interpolate(x, scale_factor=factor, mode="area")
        x = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
    noisy = (torch.rand(n, 1, 1, 1, generator=g, device=dev) < 0.3).to(x.dtype)
    std = _uniform(n, 0.0, 0.03, g, dev).view(n, 1, 1, 1) * noisy
    x = x + torch.randn(x.shape, generator=g, device=dev) * std
    return x.clamp(0, 1)


def augment(batch_uint8_nhwc: torch.Tensor, out_side: int, g: torch.Generator) -> torch.Tensor:
    """uint8 NHWC batch → augmented, normalised float NCHW batch of out_side×out_side."""
    x = batch_uint8_nhwc.permute(0, 3, 1, 2).float() / 255.0
    x = geometric(x, out_side, g)
    x = photometric(x, g)
    x = blur_and_resolution(x, g)
    return (x * 255.0 - INPUT_MEAN) / INPUT_STD


def centre_view(batch_uint8_nhwc: torch.Tensor, out_side: int) -> torch.Tensor:
    """The un-augmented view the kiosk sees: the whole square, resized (area) to out_side."""
    x = batch_uint8_nhwc.permute(0, 3, 1, 2).float()
    if x.shape[-1] != out_side:
        x = F.interpolate(x, size=(out_side, out_side), mode="area")
    return (x - INPUT_MEAN) / INPUT_STD


# ---- source-erasing augmentation (model v2) ---------------------------------------------------
# Sources differ in native resolution (HAM10000 200x150 and the older ISIC images 180x180, both
# upscaled; ISIC 2017 256 px), JPEG history, white balance and dermoscope vignette. A model that
# can read those learns "which collection" instead of "which lesion" (the v1 shortcut: non-HAM
# looking meant melanoma). These per-image steps run after `augment`'s geometry and colour, on
# uint8 pictures, so every source is seen at every resolution, quality and vignette.


def shades_of_gray(img_uint8: np.ndarray, power: float = 6.0) -> np.ndarray:
    """Shades-of-Gray colour constancy (Finlayson & Trezzi 2004): scale each channel so its
    Minkowski p-norm mean matches the grey mean. Removes most of a camera's colour cast."""
    x = img_uint8.astype(np.float32) / 255.0
    norms = np.power(np.mean(np.power(x, power), axis=(0, 1)), 1.0 / power)
    gains = np.mean(norms) / np.maximum(norms, 1e-6)
    return np.clip(x * gains * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _resolution_round_trip(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    side = img.shape[0]
    low = int(rng.uniform(0.4, 0.9) * side)
    small = cv2.resize(img, (low, low), interpolation=cv2.INTER_AREA)
    interp = cv2.INTER_CUBIC if rng.random() < 0.5 else cv2.INTER_LINEAR
    return cv2.resize(small, (side, side), interpolation=interp)


def _vignette(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A dark round dermoscope field stop, off centre a little, with a soft or hard edge."""
    side = img.shape[0]
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32) / side - 0.5
    cy, cx = rng.uniform(-0.08, 0.08, 2)
    r = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)
    radius, soft = rng.uniform(0.45, 0.75), rng.uniform(0.01, 0.12)
    mask = np.clip((radius - r) / soft + 0.5, 0, 1)[..., None]
    dark = rng.uniform(0, 30)
    return (img * mask + dark * (1 - mask)).astype(np.uint8)


def _border(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = img.copy()
    side = img.shape[0]
    w = int(rng.uniform(0.02, 0.12) * side)
    colour = rng.uniform(0, 40) if rng.random() < 0.8 else rng.uniform(200, 255)
    if rng.random() < 0.5:
        out[:w], out[-w:] = colour, colour
    else:
        out[:, :w], out[:, -w:] = colour, colour
    return out


def _jpeg(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    quality = int(rng.uniform(30, 95))
    ok, buf = cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1] if ok else img


def source_erasing(img_uint8: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One picture through a random camera: resolution, vignette or border, colour constancy,
    JPEG quality, in the order a real capture applies them."""
    img = img_uint8
    if rng.random() < 0.6:
        img = _resolution_round_trip(img, rng)
    u = rng.random()
    if u < 0.25:
        img = _vignette(img, rng)
    elif u < 0.35:
        img = _border(img, rng)
    if rng.random() < 0.25:
        img = shades_of_gray(img)
    if rng.random() < 0.6:
        img = _jpeg(img, rng)
    return np.ascontiguousarray(img)


def augmented_views_uint8(
    batch_uint8_nhwc: np.ndarray, out_side: int, g: torch.Generator, rng: np.random.Generator
) -> np.ndarray:
    """`augment`'s geometry, colour and blur, then `source_erasing`: uint8 NHWC out."""
    x = augment(torch.from_numpy(batch_uint8_nhwc), out_side, g)
    x = (x * INPUT_STD + INPUT_MEAN).clamp(0, 255).round().to(torch.uint8)
    views = x.permute(0, 2, 3, 1).contiguous().numpy()
    return np.stack([source_erasing(v, rng) for v in views])
