"""Live-frame vision: region of interest, model input, quality gate, dermoscope and lesion box.

Pure functions on RGB uint8 arrays (H, W, 3) plus small frozen dataclasses, cheap enough to run
on every frame of a ~640×480 preview at 15 fps on a Raspberry Pi 4. Every measure works on a
small area-downscale of its input (ANALYSIS_SIDE), so its cost does not grow with the camera
resolution.

Costs, measured on this development machine (x86, one OpenCV thread, a 288×288 guide-box crop
of a 640×480 frame, while a training job shared the two cores; `python -m kiosk.live.vision` prints
them again). A Pi 4 (Cortex-A72) is roughly 5–10× slower, which still leaves the whole chain at a
few ms of a 66 ms frame:
    crop_box                 <0.01 ms  (a view)
    to_model_input            0.7 ms   (INTER_AREA 288→224; denoise=True adds ~0.07 ms)
    assess_quality            0.65 ms  (since issue 13 on the 224 px model input; given a camera
                                        crop it first makes that input, as to_model_input)
    dermoscope_field          0.5 ms   (on the whole 640×480 frame)
    find_lesion_box           0.7 ms
    lesion_centred_crop      <0.01 ms  (a view)
    (the model's own invoke is ~16 ms here, so the vision steps are ~15 % of a classification)

Every threshold below was chosen from measurements on the lesion-disjoint validation split
(1,476 images) and on synthetic bad frames; the numbers are in the comments next to them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace
from enum import StrEnum

import cv2
import numpy as np

from kiosk.live.imaging import centre_square, square_resize

MODEL_SIDE = 224

# --------------------------------------------------------------------------- region of interest


@dataclass(frozen=True)
class GuideBox:
    """A square drawn on the preview: `fraction` of the frame's shorter side, centred on
    `centre` (x, y as fractions of the frame's width and height; (0.5, 0.5) is the middle).

    `at(x, y)` moves it to a tapped point; the box is then clamped to stay inside the frame.
    """

    fraction: float = 0.6
    centre: tuple[float, float] = (0.5, 0.5)

    def __post_init__(self) -> None:
        if not 0.0 < self.fraction <= 1.0:
            raise ValueError(f"fraction must be in (0, 1], got {self.fraction}")
        if len(self.centre) != 2 or not all(0.0 <= c <= 1.0 for c in self.centre):
            raise ValueError(f"centre must be (x, y) fractions in [0, 1], got {self.centre}")

    def at(self, x: float, y: float) -> GuideBox:
        """The same size of box centred on a tapped point (fractions of width and height,
        clipped to [0, 1]; the box itself is kept inside the frame by `rect`)."""
        return GuideBox(self.fraction, (_clip01(x), _clip01(y)))

    def rect(self, width: int, height: int) -> tuple[int, int, int, int]:
        """(x, y, w, h) in pixels of a width×height frame: a square kept inside the frame."""
        if width <= 0 or height <= 0:
            raise ValueError(f"frame size must be positive, got {width}×{height}")
        side = max(1, round(min(width, height) * self.fraction))
        x = round(self.centre[0] * width - side / 2)
        y = round(self.centre[1] * height - side / 2)
        return _clamp(x, 0, width - side), _clamp(y, 0, height - side), side, side


def _clip01(v: float) -> float:
    return min(max(float(v), 0.0), 1.0)


def _clamp(v: int, lo: int, hi: int) -> int:
    return min(max(v, lo), hi)


def crop_rect(image: np.ndarray, rect: tuple[int, int, int, int]) -> np.ndarray:
    """The (x, y, w, h) part of an image (a view, no copy)."""
    x, y, w, h = rect
    return image[y : y + h, x : x + w]


def crop_box(image: np.ndarray, box: GuideBox | None = None) -> np.ndarray:
    """The guide box's square of a frame (a view, no copy). None: the default GuideBox()."""
    box = GuideBox() if box is None else box
    return crop_rect(image, box.rect(image.shape[1], image.shape[0]))


# --------------------------------------------------------------------------- model input

# Denoising was measured with the shipped int8 model on the validation split (1,476 images,
# square_resize to 224, then the filter): top-1 / balanced accuracy
#   none 0.8103 / 0.7926, Gaussian 3×3 0.8042 / 0.7840, median 3 0.8056 / 0.7791,
#   bilateral (d=5, σc=20, σs=5) 0.7988 / 0.7711.
# Every filter lowers accuracy (the model was trained on unfiltered images), so it is off by
# default. Cost per 224×224 frame here: Gaussian 3×3 0.07 ms, median 3 0.06 ms, bilateral d=5
# 1.3 ms, fastNlMeansDenoisingColored 141 ms (far too slow for 15 fps on a Pi).
DEFAULT_DENOISE = False


def to_model_input(
    crop: np.ndarray, side: int = MODEL_SIDE, denoise: bool = DEFAULT_DENOISE
) -> np.ndarray:
    """The side×side×3 uint8 RGB image the model takes: centre square of `crop`, INTER_AREA
    resize (the training preprocessing, kiosk.live.imaging.square_resize), and with denoise=True a
    3×3 Gaussian (the cheapest filter; it costs accuracy, see DEFAULT_DENOISE)."""
    _check_rgb(crop)
    out = square_resize(crop, side)
    if denoise:
        out = cv2.GaussianBlur(out, (3, 3), 0)
    return out


def _check_rgb(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        kind = image.dtype if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"image must be a uint8 numpy array, got {kind}")
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"image must be an RGB array (H, W, 3), got shape {image.shape}")


# --------------------------------------------------------------------------- quality gate

# The gate judges what the model will see, not the camera's pixels: every measure is taken on
# the crop brought to the model's input (MODEL_SIDE, the training resize) and then halved to
# GATE_SIDE (a whole-number area step, ~0.03 ms). So the same picture gets the same gate result
# whether the camera puts 150 or 1,000 pixels inside the crop (issue 13: measured on the guide
# box's camera pixels, half of the real lesion pictures never got past "blurry").
GATE_SIDE = MODEL_SIDE // 2
ANALYSIS_SIDE = 128  # the lesion box and the dermoscope keep their own working sizes


def _small(image: np.ndarray, side: int = ANALYSIS_SIDE) -> np.ndarray:
    """Area downscale so the longer side is at most `side` (never upscaled).

    In two steps, because OpenCV's INTER_AREA is ~10× faster for a whole-number factor
    (288→128 directly: 0.4 ms; 288→144→128: 0.1 ms): first the largest whole factor that stays
    at or above `side` (dropping the few edge pixels that do not divide), then the rest.
    """
    h, w = image.shape[:2]
    factor = min(max(h, w) // side, min(h, w))
    if factor >= 2:
        hh, ww = (h // factor) * factor, (w // factor) * factor
        image = cv2.resize(
            image[:hh, :ww], (ww // factor, hh // factor), interpolation=cv2.INTER_AREA
        )
        h, w = image.shape[:2]
    scale = side / max(h, w)
    if scale >= 1.0:
        return np.ascontiguousarray(image)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


class QualityIssue(StrEnum):
    """Stable codes the UI translates; QUALITY_HINTS holds the English hint for each."""

    TOO_DARK = "too_dark"
    TOO_BRIGHT = "too_bright"
    CLIPPED = "clipped"
    NO_SKIN = "no_skin"
    BLURRY = "blurry"


QUALITY_HINTS: dict[QualityIssue, str] = {
    QualityIssue.TOO_DARK: "More light, please",
    QualityIssue.TOO_BRIGHT: "Less light, please",
    QualityIssue.CLIPPED: "Too much glare: less light or tilt the camera",
    QualityIssue.NO_SKIN: "Move closer and point the camera at the skin",
    QualityIssue.BLURRY: "Hold still",
}

# The skin colour rule, in OpenCV's YCrCb (offset 128). The textbook box (Cr 133–173, Cb 77–127)
# called 104 of the 1,476 validation images less than 15 % skin: pink and lavender dermoscopy
# (Cb > 127), deep-red skin (Cr > 173), and dark skin on a purple-cast clinical slide. The rule
# is widened to "warmer than grey and not bluer than red": Cr 132–190, Cb 70–145,
# Cb − Cr ≤ 6, and Y ≥ 15 (below that chroma is noise). Synthetic dark-brown skin from
# RGB (45, 30, 25) up to (140, 95, 70), with texture, is ≥ 99 % skin; grey, white, black, blue
# and purple surfaces stay ≤ 9 %.
SKIN_MIN_Y = 15
SKIN_CR = (132, 190)
SKIN_CB = (70, 145)
SKIN_MAX_CB_MINUS_CR = 6


def skin_mask(rgb: np.ndarray) -> np.ndarray:
    """Boolean mask of skin-coloured pixels (the colour rule above)."""
    ycc = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)
    y = ycc[..., 0]
    cr = ycc[..., 1].astype(np.int16)
    cb = ycc[..., 2].astype(np.int16)
    return (
        (y >= SKIN_MIN_Y)
        & (cr >= SKIN_CR[0])
        & (cr <= SKIN_CR[1])
        & (cb >= SKIN_CB[0])
        & (cb <= SKIN_CB[1])
        & (cb - cr <= SKIN_MAX_CB_MINUS_CR)
    )


@dataclass(frozen=True)
class QualityThresholds:
    """Where each measure fails. Defaults come from the validation split (real images) versus
    synthetic bad frames made from the same images; the numbers are per-measure min / max.

    Measured at model scale (issue 13) with `scripts/measure_gate.py --data ../shared/data`
    (validation split, at most 150 pictures per class, centre-square crop): dermoscopic
    pictures pass 624 of 635 (98.3 %), acne and eczema 238 of 240 (99.2 %), the healthy-skin
    photos 40 of 96 (studio shots of a hand on pure white, see max_white_fraction); of the bad
    frames made from the pictures that pass, 96.8 % are rejected: defocus σ 4, dark ×0.15 and
    no skin 100 %, over-exposed 99.7 %, a 15-pixel motion blur 84.5 % (54 % before the
    smeared-edge rule). max_white_fraction=0.7 would pass most studio photos, at the accuracy
    cost noted.
    """

    # 95th percentile of luma. Real images: min 77. Darkened ×0.15: max 38.
    min_luma_p95: float = 45.0
    # Mean luma. Real dermoscopic and clinical images: max 230 (healthy-skin studio photos on a
    # pure white background: up to 243, and those fail `max_white_fraction` anyway).
    max_luma_mean: float = 235.0
    # Share of pure-white pixels (all channels ≥ 245). Brightening validation images until this
    # share reaches 0.3–0.5 costs the model 3 points of top-1; 0.5–0.7, 15 points; above 0.7,
    # 19–28 points. Real lesion and clinical images: ≤ 0.15; 56 of the 96 healthy-skin studio
    # photos (a hand on a pure-white background) exceed 0.5 and are flagged on purpose: no cheap
    # measure told them from a blown-out frame with a lesion left in the middle, and letting such
    # frames through cost 20 points of accuracy.
    max_white_fraction: float = 0.5
    # Share of skin-coloured pixels (skin_mask). Real images: 8 of 1,476 below 0.2, 2 below
    # 0.15 (a large dark melanoma, a face mostly in shadow); the textbook rule would have put
    # 104 below 0.15, among them dark skin (DermNet milroy-disease-3: 0.004 → 0.51 now).
    # Grey wall, blue shirt, white sheet: ≤ 0.09.
    min_skin_fraction: float = 0.15
    # Blurry when BOTH the variance of the Laplacian is low (little fine detail) and the edge
    # spread is high (the detail that exists is smeared, so a smooth but sharp skin does not
    # count). Gaussian σ=4 on the validation images: Laplacian variance ≤ 21, edge spread
    # ≥ 0.564. Real images failing both: 11 of 1,476 (several are visibly out of focus).
    # Below `min_sharpness_alone` the frame is blurry whatever the edge spread (which turns
    # unreliable when the only differences left are rounding): real images ≥ 9.5; a few very
    # flat images blurred with σ=6 reach 1.3–1.9 with an edge spread of only 0.50–0.53.
    min_sharpness: float = 25.0
    max_edge_spread: float = 0.56
    min_sharpness_alone: float = 6.0
    # Motion blur smears one direction and leaves the other sharp, so the Laplacian stays high:
    # a 15-pixel hand shake (scripts/measure_gate.py) has a median sharpness of 22 but up to 117,
    # with an edge spread of 0.53–0.85 (median 0.69). Real pictures: edge spread ≤ 0.64 for
    # 99 %. So an edge spread above `max_edge_spread_smeared` is blurry up to
    # `max_sharpness_smeared`: 82 % of those shakes rejected, 1 % more real pictures lost.
    # (Measured at model scale, GATE_SIDE, on 500 validation pictures.)
    max_edge_spread_smeared: float = 0.64
    max_sharpness_smeared: float = 400.0


DEFAULT_THRESHOLDS = QualityThresholds()


@dataclass(frozen=True)
class QualityReport:
    """ok: nothing to fix. issues: what to fix, most urgent first (the UI shows issues[0]).
    measures: the raw numbers behind the decision, for logging and tuning."""

    ok: bool
    issues: tuple[QualityIssue, ...]
    measures: dict[str, float] = field(compare=False)

    @property
    def primary(self) -> QualityIssue | None:
        return self.issues[0] if self.issues else None

    @property
    def hint(self) -> str | None:
        return QUALITY_HINTS[self.issues[0]] if self.issues else None


def edge_spread(gray: np.ndarray, taps: int = 5) -> float:
    """No-reference blur estimate (Crété-Roffet et al. 2007): how much of the neighbouring
    pixel differences survive a taps-wide box blur, 0 (sharp) … 1 (already blurred)."""
    g = gray.astype(np.float32)
    worst = 0.0
    for axis, ksize in ((0, (1, taps)), (1, (taps, 1))):
        blurred = cv2.blur(g, ksize)
        d_orig = np.abs(np.diff(g, axis=axis))
        d_blur = np.abs(np.diff(blurred, axis=axis))
        total = float(d_orig.sum())
        if total <= 0.0:
            return 1.0  # a flat image holds no detail at all
        kept = float(np.maximum(d_orig - d_blur, 0.0).sum())
        worst = max(worst, 1.0 - kept / total)
    return worst


_WHITE = (245, 245, 245)  # "pure white": every channel at least this
_FULL = (255, 255, 255)


def model_scale(crop: np.ndarray) -> np.ndarray:
    """The crop as the model sees it (MODEL_SIDE square); a model input is returned as it is."""
    _check_rgb(crop)
    if crop.shape[:2] == (MODEL_SIDE, MODEL_SIDE):
        return crop
    return to_model_input(crop, MODEL_SIDE)


def quality_measures(crop: np.ndarray) -> dict[str, float]:
    """The numbers assess_quality decides on: taken on the crop at model scale (model_scale),
    area-halved to GATE_SIDE. Pass the model input itself to save the resize."""
    small = _small(model_scale(crop), GATE_SIDE)
    gray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    hist = np.bincount(gray.ravel(), minlength=256)
    return {
        "luma_mean": float(gray.mean()),
        "luma_p95": float(np.searchsorted(np.cumsum(hist), 0.95 * gray.size)),
        "white_fraction": float(np.count_nonzero(cv2.inRange(small, _WHITE, _FULL)) / gray.size),
        "skin_fraction": float(np.count_nonzero(skin_mask(small)) / gray.size),
        "sharpness": float(cv2.Laplacian(gray, cv2.CV_32F).var()),
        "edge_spread": edge_spread(gray),
    }


def assess_quality(
    crop: np.ndarray, thresholds: QualityThresholds = DEFAULT_THRESHOLDS
) -> QualityReport:
    """Is this crop good enough to classify? Cheap enough for every preview frame.

    `crop` is the part of the frame the model reads, at any resolution, or the model input
    itself: it is judged at model scale (quality_measures), so the camera's resolution does not
    change the answer.

    Exposure comes first: when a frame is too dark or too bright its colours and detail cannot
    be judged, so `no_skin` and `blurry` are not reported then (a dark-skinned arm in dim light
    must hear "more light", never "no skin").
    """
    m = quality_measures(crop)
    t = thresholds
    issues: list[QualityIssue] = []
    if m["luma_p95"] < t.min_luma_p95:
        issues.append(QualityIssue.TOO_DARK)
    if m["luma_mean"] > t.max_luma_mean:
        issues.append(QualityIssue.TOO_BRIGHT)
    if m["white_fraction"] > t.max_white_fraction:
        issues.append(QualityIssue.CLIPPED)
    exposure_bad = QualityIssue.TOO_DARK in issues or QualityIssue.TOO_BRIGHT in issues
    if not exposure_bad:
        if m["skin_fraction"] < t.min_skin_fraction:
            issues.append(QualityIssue.NO_SKIN)
        sharp, spread = m["sharpness"], m["edge_spread"]
        if (
            sharp < t.min_sharpness_alone
            or (sharp < t.min_sharpness and spread > t.max_edge_spread)
            or (sharp < t.max_sharpness_smeared and spread > t.max_edge_spread_smeared)
        ):
            issues.append(QualityIssue.BLURRY)
    return QualityReport(ok=not issues, issues=tuple(issues), measures=m)


# --------------------------------------------------------------------------- dermoscope


class PictureKind(StrEnum):
    DERMOSCOPIC = "dermoscopic"  # through a dermoscope: the four lesion classes were learned so
    CLINICAL = "clinical"  # an ordinary close-up photo: how acne and eczema were learned


@dataclass(frozen=True)
class DermoscopeField:
    """The dark circular field of a dermoscope, if there is one.

    score: how well the dark pixels match "everything outside a centred circle" (IoU, 0…1).
    radius: that circle's radius as a fraction of the half-diagonal (1.0 reaches the corners).
    dark_fraction: share of the frame that is dark.
    """

    detected: bool
    score: float
    radius: float
    dark_fraction: float
    in_centre_square: bool = False  # the circle was found in the frame's centre square


def centre_square_rect(width: int, height: int) -> tuple[int, int, int, int]:
    """(x, y, w, h) of a frame's centre square: how still pictures are cropped (imaging)."""
    side = min(width, height)
    return (width - side) // 2, (height - side) // 2, side, side


# The crop is the square inscribed in the field's circle, a little inside it: the circle's edge
# is soft and its radius is only known to 1/_RADIUS_RINGS of the half-diagonal.
FIELD_INSET = 0.95


def field_rect(found: DermoscopeField, width: int, height: int) -> tuple[int, int, int, int]:
    """(x, y, w, h) of the dermoscope's field in a width×height frame: the square inscribed in
    its circle, as the training pictures are framed (inside the field, no vignette). Without a
    detected vignette the whole picture is field: its centre square."""
    if not found.detected:
        return centre_square_rect(width, height)
    if found.in_centre_square:
        half_diagonal = 0.5 * min(width, height) * float(np.sqrt(2.0))
    else:
        half_diagonal = 0.5 * float(np.hypot(width, height))
    radius_px = found.radius * half_diagonal * FIELD_INSET
    side = int(min(min(width, height), max(1.0, radius_px * np.sqrt(2.0))))
    return (width - side) // 2, (height - side) // 2, side, side


DERMOSCOPE_SIDE = 96  # the whole frame is area-resized to this longer side
# Dark = below min(DARK_ABS, DARK_REL × median luma of the central disk).
DERMOSCOPE_DARK_ABS = 50.0
DERMOSCOPE_DARK_REL = 0.35
# Detected when: IoU ≥ 0.5, circle radius ≥ 0.7 of the half-diagonal, ≤ 30 % of the frame dark,
# and each corner at least half dark. On the validation split: 32 of 888 dermoscopic images
# (3.6 %: most HAM10000 / ISIC pictures are cropped inside the dermoscope's field and show no
# vignette) and 0 of 588 clinical ones (acne, eczema, healthy skin). Without the radius and
# dark-share conditions, 15 ACNE04 faces (an oval of face on black) passed as dermoscopic.
DERMOSCOPE_MIN_SCORE = 0.5
DERMOSCOPE_MIN_RADIUS = 0.7
DERMOSCOPE_MAX_DARK = 0.3
DERMOSCOPE_MIN_CORNER_DARK = 0.5
_RADIUS_RINGS = 40


def dermoscope_field(image: np.ndarray) -> DermoscopeField:
    """Look for a dermoscope's vignette (dark corners outside a bright centred circle) in a
    whole camera frame (not the guide-box crop: the vignette lies at the frame's corners)."""
    _check_rgb(image)
    # Looked for in the whole frame and in its centre square. A 4:3 camera frame whose lens
    # circle is inscribed in its height falls short of the limits below on the whole frame
    # (radius 0.6 of the half-diagonal, 41 % dark) but fits them in the centre square; a circle
    # wider than the frame's height is only seen on the whole frame.
    whole = _dermoscope_field(image)
    if whole.detected or image.shape[0] == image.shape[1]:
        return whole
    square = replace(_dermoscope_field(centre_square(image)), in_centre_square=True)
    return square if square.detected or square.score > whole.score else whole


def _dermoscope_field(image: np.ndarray) -> DermoscopeField:
    gray = cv2.cvtColor(_small(image, DERMOSCOPE_SIDE), cv2.COLOR_RGB2GRAY)
    h, w = gray.shape
    ring, outside, central = _radius_rings(h, w)
    centre = float(np.median(gray[central]))
    dark = gray < min(DERMOSCOPE_DARK_ABS, DERMOSCOPE_DARK_REL * centre)
    n_dark = int(np.count_nonzero(dark))
    dark_fraction = n_dark / dark.size
    if n_dark == 0:
        return DermoscopeField(False, 0.0, 1.0, 0.0)
    # IoU of the dark mask with {r ≥ R} for every ring radius R at once, from ring counts.
    dark_hist = np.bincount(ring[dark], minlength=_RADIUS_RINGS)
    outside_dark = np.cumsum(dark_hist[::-1])[::-1]
    iou = outside_dark / np.maximum(n_dark + outside - outside_dark, 1)
    best = int(np.argmax(iou))
    score, radius = float(iou[best]), best / _RADIUS_RINGS
    c = max(2, round(0.08 * min(h, w)))
    corners = (dark[:c, :c], dark[:c, -c:], dark[-c:, :c], dark[-c:, -c:])
    corner_dark = min(float(x.mean()) for x in corners)
    detected = (
        score >= DERMOSCOPE_MIN_SCORE
        and radius >= DERMOSCOPE_MIN_RADIUS
        and dark_fraction <= DERMOSCOPE_MAX_DARK
        and corner_dark >= DERMOSCOPE_MIN_CORNER_DARK
    )
    return DermoscopeField(detected, score, radius, dark_fraction)


@functools.lru_cache(maxsize=8)
def _radius_rings(h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For an h×w image: each pixel's ring index (distance from the centre in 1/_RADIUS_RINGS
    steps of the half-diagonal), the pixel count at or beyond each ring, and the central disk
    (radius 0.35) whose median brightness is the reference. Cached: frames keep their size."""
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    r = np.hypot(yy - (h - 1) / 2, xx - (w - 1) / 2) / (0.5 * float(np.hypot(h, w)))
    ring = np.minimum((r * _RADIUS_RINGS).astype(np.intp), _RADIUS_RINGS - 1)
    outside = np.cumsum(np.bincount(ring.ravel(), minlength=_RADIUS_RINGS)[::-1])[::-1]
    central = r <= 0.35
    if not central.any():
        central = np.ones_like(central)
    for a in (ring, outside, central):
        a.setflags(write=False)
    return ring, outside, central


def detect_dermoscope(image: np.ndarray) -> bool:
    """True when the frame shows a dermoscope's dark circular field (see dermoscope_field)."""
    return dermoscope_field(image).detected


def classify_picture_kind(image: np.ndarray, ui_mode: PictureKind | None = None) -> PictureKind:
    """The mode the operator set in the UI wins; otherwise the vignette decides. Detection only
    ever says "dermoscopic" when it sees the vignette, so without one the answer is clinical."""
    if ui_mode is not None:
        return PictureKind(ui_mode)
    return PictureKind.DERMOSCOPIC if detect_dermoscope(image) else PictureKind.CLINICAL


# --------------------------------------------------------------------------- lesion box

LESION_SIDE = 128  # segmentation runs on the input area-resized to this longer side
# A lesion candidate must cover 0.5 %–70 % of the usable area (larger: the crop is all lesion,
# or Otsu split plain skin in two), have its centroid within 60 % of the way from the centre to
# a corner, and be at least LESION_MIN_CONTRAST blue levels darker than the skin around it.
LESION_MIN_AREA = 0.005
LESION_MAX_AREA = 0.7
LESION_MAX_CENTRE_DISTANCE = 0.6
LESION_MIN_CONTRAST = 15.0
_ELLIPSE3 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
_ELLIPSE5 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))


def _otsu(values: np.ndarray) -> float:
    """Otsu's threshold of uint8 values (only the given pixels, not a whole image)."""
    hist = np.bincount(values.ravel(), minlength=256).astype(np.float64)
    total = hist.sum()
    if total == 0:
        return 0.0
    levels = np.arange(256, dtype=np.float64)
    w0 = np.cumsum(hist)
    m0 = np.cumsum(hist * levels)
    w1 = total - w0
    mean0 = m0 / np.maximum(w0, 1e-9)
    mean1 = (m0[-1] - m0) / np.maximum(w1, 1e-9)
    between = w0 * w1 * (mean0 - mean1) ** 2
    between[(w0 == 0) | (w1 == 0)] = -1.0
    return float(np.argmax(between))


def _usable_mask(gray: np.ndarray) -> np.ndarray:
    """Pixels not in a dark frame border (a dermoscope's vignette, black padding): dark
    regions that touch the image edge are left out, with a 2-pixel margin for their soft edge."""
    h, w = gray.shape
    core = gray[h // 4 : h - h // 4, w // 4 : w - w // 4]
    if core.size == 0:
        core = gray
    level = min(DERMOSCOPE_DARK_ABS, DERMOSCOPE_DARK_REL * float(np.median(core)))
    dark = (gray < level).astype(np.uint8)
    if not dark.any():
        return np.ones_like(gray, dtype=bool)
    _, labels = cv2.connectedComponents(dark, connectivity=8)
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    border = np.isin(labels, edge[edge > 0])
    border = cv2.dilate(border.astype(np.uint8), _ELLIPSE3, iterations=2) > 0
    return ~border


def find_lesion_box(image: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x, y, w, h) in image pixels of the most central sizeable dark spot, or None.

    Otsu threshold of the smoothed blue channel (pigment and blood absorb blue; skin reflects
    it) over the usable pixels, a small opening against hairs, then, of the components that do
    not touch the frame edge, the one with the best area × centrality. None when nothing
    stands out (plain skin, a lesion that fills the whole crop, a spot at the edge): callers
    then fall back to the guide box.
    """
    _check_rgb(image)
    small = _small(image, LESION_SIDE)
    h, w = small.shape[:2]
    gray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    usable = _usable_mask(gray)
    n_usable = int(np.count_nonzero(usable))
    if n_usable < 0.2 * usable.size:
        return None
    blue = cv2.GaussianBlur(np.ascontiguousarray(small[..., 2]), (5, 5), 0)
    threshold = _otsu(blue[usable])
    mask = (usable & (blue <= threshold)).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, _ELLIPSE3)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, _ELLIPSE5)
    n, labels, stats, centroids = cv2.connectedComponentsWithStats(mask, connectivity=8)
    best, best_score = 0, 0.0
    for i in range(1, n):
        area = stats[i, cv2.CC_STAT_AREA] / n_usable
        if not LESION_MIN_AREA <= area <= LESION_MAX_AREA:
            continue
        x, y, bw, bh = stats[i, :4]
        if x == 0 or y == 0 or x + bw == w or y + bh == h:
            continue  # cut by the frame edge: hair, shadow, or a lesion larger than the view
        cx, cy = centroids[i]
        d = float(np.hypot((cx - (w - 1) / 2) / (w / 2), (cy - (h - 1) / 2) / (h / 2)))
        d /= float(np.sqrt(2.0))  # 0 at the centre, 1 at a corner
        if d > LESION_MAX_CENTRE_DISTANCE:
            continue
        score = area * (1.0 - d) ** 2
        if score > best_score:
            best, best_score = i, score
    if best == 0:
        return None
    inside = labels == best
    around = usable & ~inside
    if not around.any() or blue[around].mean() - blue[inside].mean() < LESION_MIN_CONTRAST:
        return None
    x, y, bw, bh = (int(v) for v in stats[best, :4])
    sx, sy = image.shape[1] / w, image.shape[0] / h
    x0, y0 = int(np.floor(x * sx)), int(np.floor(y * sy))
    x1 = min(image.shape[1], int(np.ceil((x + bw) * sx)))
    y1 = min(image.shape[0], int(np.ceil((y + bh) * sy)))
    return x0, y0, x1 - x0, y1 - y0


# Measured with scripts/measure_lesion_crop.py (shipped int8 model, all 1,476 validation images;
# top-1 / balanced accuracy / melanoma recall):
#   square crop (training preprocessing)               0.8103 / 0.7926 / 0.823
#   lesion-centred crop, every image                   0.8022 / 0.7724 / 0.743
#   lesion-centred crop, dermoscopic pictures only     0.8096 / 0.7808 / 0.743
#   re-centred on the lesion without zooming in        0.7940 / 0.7605 / 0.781
# (box found in 75 % of dermoscopic and 26 % of clinical images). It does not help, and it
# costs melanoma recall, so it stays off: the model keeps getting what it was trained on.
DEFAULT_LESION_CROP = False
LESION_MARGIN = 0.5  # context kept on each side, as a fraction of the lesion's longer side
LESION_MIN_FRACTION = 0.6  # never zoom in past this fraction of the frame's shorter side


def lesion_centred_crop(
    image: np.ndarray,
    box: tuple[int, int, int, int] | None,
    *,
    margin: float = LESION_MARGIN,
    min_fraction: float = LESION_MIN_FRACTION,
    guide: GuideBox | None = None,
) -> np.ndarray:
    """A square of `image` centred on the lesion `box` (x, y, w, h): the lesion's longer side
    plus `margin` of it on each side, at least `min_fraction` of the shorter image side, at
    most all of it, shifted to stay inside the image (a view, no copy). box None: the guide
    box's crop (default GuideBox())."""
    if box is None:
        return crop_box(image, guide)
    if margin < 0 or not 0.0 <= min_fraction <= 1.0:
        raise ValueError(
            f"margin must be ≥ 0 and min_fraction in [0, 1], got {margin}, {min_fraction}"
        )
    height, width = image.shape[:2]
    short = min(height, width)
    x, y, w, h = box
    side = max(max(w, h) * (1.0 + 2.0 * margin), min_fraction * short, 1.0)
    side = min(round(side), short)
    left = _clamp(round(x + w / 2 - side / 2), 0, width - side)
    top = _clamp(round(y + h / 2 - side / 2), 0, height - side)
    return image[top : top + side, left : left + side]


# --------------------------------------------------------------------------- benchmark


def _benchmark(repeats: int = 200) -> dict[str, float]:
    """Milliseconds per call on a synthetic 640×480 skin frame (`python -m kiosk.live.vision`)."""
    import time

    rng = np.random.default_rng(0)
    skin = np.array([190, 140, 115], dtype=np.float32)
    shade = cv2.GaussianBlur(rng.normal(1.0, 0.08, (480, 640)).astype(np.float32), (0, 0), 8)
    frame = skin * shade[..., None] + rng.normal(0.0, 6.0, (480, 640, 3))
    frame = np.clip(frame, 0, 255).astype(np.uint8)
    cv2.circle(frame, (330, 250), 30, (90, 55, 40), -1)
    crop = np.ascontiguousarray(crop_box(frame))
    box = find_lesion_box(crop)
    calls = {
        "crop_box": lambda: crop_box(frame),
        "to_model_input": lambda: to_model_input(crop),
        "to_model_input(denoise)": lambda: to_model_input(crop, denoise=True),
        "assess_quality": lambda: assess_quality(crop),
        "dermoscope_field(frame)": lambda: dermoscope_field(frame),
        "find_lesion_box": lambda: find_lesion_box(crop),
        "lesion_centred_crop": lambda: lesion_centred_crop(crop, box),
    }
    out = {}
    for name, call in calls.items():
        for _ in range(5):
            call()
        start = time.perf_counter()
        for _ in range(repeats):
            call()
        out[name] = (time.perf_counter() - start) * 1000.0 / repeats
    return out


if __name__ == "__main__":
    cv2.setNumThreads(1)
    for name, ms in _benchmark().items():
        print(f"{name:26s} {ms:7.3f} ms")
