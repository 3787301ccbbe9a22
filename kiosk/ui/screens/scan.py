"""Scan: the live preview with what the model reads marked on it, quality hints, the current best
match, Capture.

The mark is the pipeline's crop rule (kiosk.live.pipeline), not a decoration: an ordinary
close-up (clinical) is read inside the guide box, which a tap moves; through the dermoscope, or
with the lens mode "off" (replays, the demo clip), the model reads the field (the square inside
the dermoscope's circle, or the picture's centre square), whatever the guide box says. There the
preview shows four corner marks around that square and dims what lies outside it, instead of a
box that moving would not change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pygame

from kiosk.live.camera import MESSAGES as CAMERA_MESSAGES
from kiosk.live.triage import advice_for, quality_hint
from kiosk.live.vision import PictureKind, centre_square_rect
from kiosk.model.conditions import Urgency
from kiosk.ui import theme
from kiosk.ui.capture import Readiness, capture_from, readiness
from kiosk.ui.language_picker import LanguagePicker
from kiosk.ui.pictures import fit_size, to_surface
from kiosk.ui.reasons import cancer_not_ruled_out, is_none_found
from kiosk.ui.screens.base import MARGIN, Screen

if TYPE_CHECKING:
    from kiosk.live.pipeline import Snapshot
    from kiosk.ui.canvas import Ui
    from kiosk.ui.text import TextRecord

PANEL_W = 250  # design units: the result panel beside the preview
# A Capture press made before the verdict is steady waits this long for it (3 frames at
# 15 fps take 0.2 s; longer means the camera is moving, and the press is dropped).
PENDING_CAPTURE_S = 2.0
FIELD_CORNER = 0.18  # each corner mark's arm, as a share of the read square's side
FIELD_KEEP = 135  # brightness kept (of 255) where the model does not read: dimmed
_MESSAGE_KEYS = {message: key for key, message in CAMERA_MESSAGES.items()}


class ScanScreen(Screen):
    name = "scan"
    tab = "scan"

    def __init__(self, app) -> None:
        super().__init__(app)
        self.snapshot: Snapshot | None = None
        self._preview_key: tuple[int, int, tuple[int, int]] | None = None
        self._preview: pygame.Surface | None = None
        self._preview_rect = pygame.Rect(0, 0, 0, 0)
        self.pending_since: float | None = None  # when a waiting Capture press was made
        self.languages = LanguagePicker(app)

    def enter(self, **options: object) -> None:
        self.app.capture = None
        self.pending_since = None
        self.languages.open = False

    def update(self) -> None:
        self.snapshot = self.app.services.pipeline.snapshot()
        if self.pending_since is not None:  # a Capture press waiting for a steady verdict
            state = readiness(self.snapshot)
            if state is Readiness.READY:
                self.capture()
            elif state is not Readiness.HOLD_STILL or (
                self.app.clock() - self.pending_since > PENDING_CAPTURE_S
            ):
                self.pending_since = None  # the picture went bad, or it took too long

    # ---- actions --------------------------------------------------------------------------

    def capture(self) -> None:
        # The picture and the verdict of one scene (the pipeline's evidence), never the
        # newest frame with an older verdict. Without a steady verdict of this scene yet, the
        # press waits a moment ("Hold still…") and is taken as soon as there is one.
        capture = capture_from(self.snapshot)
        if capture is None:
            if readiness(self.snapshot) is Readiness.HOLD_STILL:
                self.pending_since = self.app.clock()
            self.capture_refused()
            return
        self.pending_since = None
        self.app.capture = capture
        self.app.go("report")

    def capture_refused(self) -> None:
        reason = _READINESS_KEYS.get(readiness(self.snapshot))
        if reason is not None:
            self.app.notify(self.app.strings.t(reason))

    def tap(self, pos: tuple[int, int]) -> None:
        """A tap on the preview moves the guide box there (the model reads what is inside).
        While the model reads the whole field the box is not drawn, and a tap moves nothing."""
        pipeline = self.app.services.pipeline
        r = self._preview_rect
        snap = self.snapshot or pipeline.snapshot()
        if field_read(pipeline, snap) is not None:
            return
        if r.width and r.collidepoint(pos) and hasattr(pipeline, "guide"):
            fx, fy = (pos[0] - r.left) / r.width, (pos[1] - r.top) / r.height
            pipeline.guide = pipeline.guide.at(fx, fy)

    # ---- drawing --------------------------------------------------------------------------

    def draw(self, ui: Ui) -> None:
        snap = self.snapshot or self.app.services.pipeline.snapshot()
        bottom = self.content_height(ui) - MARGIN
        if self.languages.open:
            self.languages.draw(ui, MARGIN, MARGIN, ui.W - 2 * MARGIN, bottom - MARGIN)
            return
        area = ui.rect(MARGIN, MARGIN, ui.W - PANEL_W - 3 * MARGIN, bottom - MARGIN)
        self._draw_preview(ui, snap, area)
        self.languages.draw_button(ui, MARGIN + 8, MARGIN + 8)
        self._draw_panel(ui, snap, ui.W - PANEL_W - MARGIN, bottom)

    def _draw_preview(self, ui: Ui, snap: Snapshot, area: pygame.Rect) -> None:
        ui.fill(area, theme.OVERLAY_DARK, radius=6)
        frame = snap.frame
        live = snap.source.state == "live" and frame is not None
        if frame is not None:
            image = frame.display
            size = fit_size(image.shape, area)
            rect = pygame.Rect((0, 0), size)
            rect.center = area.center
            key = (frame.sequence, id(image), size)
            if key != self._preview_key:
                self._preview = to_surface(image, size)
                self._preview_key = key
            ui.surface.blit(self._preview, rect)
            self._preview_rect = rect
            self._draw_guide(ui, snap, rect)
        if not live:
            key = _MESSAGE_KEYS.get(snap.source.message, snap.source.state)
            text = ui.t(f"camera.{key}") if ui.strings.has(f"camera.{key}") else snap.source.message
            icon = ui.rect(0, 0, 56, 56)
            icon.center = (area.centerx, area.centery - ui.px(40))
            ui.icon("camera", icon, (255, 255, 255))
            box = pygame.Rect(
                area.left + ui.px(16), area.centery, area.width - ui.px(32), ui.px(80)
            )
            ui.text(text, box, size=theme.HEAD, color=(255, 255, 255), align="center")
            return
        self._draw_hint(ui, snap, area)

    def _draw_guide(self, ui: Ui, snap: Snapshot, preview: pygame.Rect) -> None:
        pipeline = self.app.services.pipeline
        read = field_read(pipeline, snap)
        if read is not None:  # the field is read: mark its corners, no box to aim
            fx, fy, fw, fh = read
            square = pygame.Rect(
                preview.left + round(fx * preview.width),
                preview.top + round(fy * preview.height),
                round(fw * preview.width),
                round(fh * preview.height),
            )
            _dim_outside(ui, preview, square)
            _draw_corners(ui, square)
            return
        guide = getattr(pipeline, "guide", None)
        if guide is None:
            return
        x, y, w, h = guide.rect(preview.width, preview.height)
        box = pygame.Rect(preview.left + x, preview.top + y, w, h)
        # Dark then light outline: visible on pale and on dark skin alike.
        pygame.draw.rect(ui.surface, theme.OVERLAY_DARK, box.inflate(ui.px(4), ui.px(4)), ui.px(5))
        pygame.draw.rect(ui.surface, theme.GUIDE, box, ui.px(3))

    def _draw_hint(self, ui: Ui, snap: Snapshot, area: pygame.Rect) -> None:
        verdict = snap.verdict
        codes = (*(verdict.quality if verdict else ()), *snap.hints)
        if codes:
            text = quality_hint(codes[0], ui.strings.language)
        elif verdict is None or verdict.decision is None:
            field = field_read(self.app.services.pipeline, snap) is not None
            text = ui.t("scan.aim_field" if field else "scan.aim")
        else:
            return
        strip = pygame.Rect(area.left, area.bottom - ui.px(74), area.width, ui.px(74))
        ui.fill(strip, theme.OVERLAY_DARK)
        icon = pygame.Rect(0, 0, ui.px(34), ui.px(34))
        icon.centery = strip.centery
        pad = ui.px(12)
        if ui.rtl:
            icon.right = strip.right - pad
            box = pygame.Rect(
                strip.left + pad, strip.top, icon.left - pad - strip.left - pad, strip.height
            )
        else:
            icon.left = strip.left + pad
            box = pygame.Rect(
                icon.right + pad, strip.top, strip.right - pad - icon.right - pad, strip.height
            )
        ui.icon("warning" if codes else "info", icon, theme.PRESSED if codes else (255, 255, 255))
        ui.text(
            text,
            box.inflate(0, -ui.px(6)),
            size=theme.BODY,
            min_size=theme.MIN,
            color=(255, 255, 255),
            valign="middle",
        )

    def _draw_panel(self, ui: Ui, snap: Snapshot, x: float, bottom: float) -> None:
        verdict = snap.verdict
        lang = ui.strings.language
        w = PANEL_W
        y = MARGIN
        ui.text(ui.t("scan.best_match"), ui.rect(x, y, w, 28), size=theme.SMALL, color=theme.MUTED)
        y += 30
        decision = verdict.decision if verdict else None
        title = advice_for(verdict, lang).title if verdict else ui.advice("scanning.title")
        record = ui.text(
            title, ui.rect(x, y, w, 96), size=theme.HEAD, min_size=theme.SMALL, bold=True
        )
        y = _below(ui, record, y) + 10
        # "None of the six found" gets no number: "98%" beside it read as an all-clear.
        if decision is not None and not decision.abstained and not is_none_found(decision):
            ui.bar(ui.rect(x, y, w, 22), decision.confidence, theme.PRIMARY)
            y += 26
            pct = ui.strings.percent(decision.confidence)
            ui.text(ui.t("scan.confidence", pct=pct), ui.rect(x, y, w, 30), size=theme.SMALL)
            y += 32
        if decision is not None:
            # A frame the gate rejects (blurry, dark…) is never "steady", whatever was held.
            ready = readiness(snap) is Readiness.READY
            steady = bool(verdict and verdict.stable and ready)
            icon = ui.rect(x, y + 2, 26, 26)
            # Neutral: "steady" says the reading settled, not that the skin is fine.
            ui.icon("steady" if steady else "clock", icon, theme.MUTED)
            ui.text(
                ui.t("scan.steady" if steady else "scan.checking"),
                ui.rect(x + 32, y, w - 32, 30),
                size=theme.SMALL,
            )
            y += 38
        capture_h = 84
        state = readiness(snap)
        waiting = _READINESS_KEYS.get(state) if snap.source.state == "live" else None
        if waiting is not None:  # why Capture is greyed out, just above it
            capture_h += 34
            ui.text(
                ui.t(waiting),
                ui.rect(x, bottom - capture_h, w, 30),
                size=theme.SMALL,
                min_size=theme.MIN,
                color=theme.MUTED,
                bold=True,
            )
        notice = _notice(decision) if decision is not None else None
        if notice is not None:
            # Urgent is shown the moment it appears, not only once captured; "none found"
            # carries its caveat here, where the patient watches.
            urgency, key = notice
            box_h = bottom - capture_h - 8 - y
            style = theme.URGENCY_STYLES[urgency]
            ui.fill(ui.rect(x, y, w, box_h), style.background, radius=6)
            ui.icon(style.icon, ui.rect(x + 8, y + 8, 30, 30), style.text)
            ui.text(
                ui.t(key),
                ui.rect(x + 44, y + 4, w - 50, box_h - 8),
                size=theme.SMALL,
                min_size=theme.MIN,
                color=style.text,
                bold=True,
            )
        button_h = 84
        ui.button(
            "capture",
            ui.rect(x, bottom - button_h, w, button_h),
            ui.t("scan.capture"),
            self.capture,
            style="primary",
            icon="camera",
            enabled=state in (Readiness.READY, Readiness.HOLD_STILL),  # holding still waits
            refused=self.capture_refused,
            size=theme.HEAD,
        )


# Why Capture waits, in words (kiosk.ui.capture.readiness); no camera says so on the preview.
_READINESS_KEYS = {
    Readiness.REJECTED: "scan.capture_wait_quality",
    Readiness.HOLD_STILL: "scan.hold_still",
}


def field_read(pipeline, snap: Snapshot) -> tuple[float, float, float, float] | None:
    """What the model reads of the latest frame when it is not the guide box: (x, y, w, h) as
    fractions of the frame, or None when the guide box is read (a clinical picture) or there is
    no frame. Through the dermoscope, or with the lens mode "off", it is the field: the square
    inside the dermoscope's circle, or the frame's centre square (kiosk.live.pipeline)."""
    frame = snap.frame
    if frame is None or snap.picture_kind == PictureKind.CLINICAL:
        return None
    h, w = frame.image.shape[:2]
    crop_box = getattr(pipeline, "crop_box", None)
    if callable(crop_box):  # the live pipeline: its own rule on this frame
        x, y, bw, bh = crop_box(frame)
    elif snap.evidence is not None:  # the crop of this scene's classified frame
        x, y, bw, bh = snap.evidence.crop_box
    else:
        x, y, bw, bh = centre_square_rect(w, h)
    return x / w, y / h, bw / w, bh / h


def _dim_outside(ui: Ui, preview: pygame.Rect, square: pygame.Rect) -> None:
    """Shade the preview outside `square`: what the model does not read is dimmed."""
    parts = (
        pygame.Rect(preview.left, preview.top, square.left - preview.left, preview.height),
        pygame.Rect(square.right, preview.top, preview.right - square.right, preview.height),
        pygame.Rect(square.left, preview.top, square.width, square.top - preview.top),
        pygame.Rect(square.left, square.bottom, square.width, preview.bottom - square.bottom),
    )
    for part in parts:
        part = part.clip(preview)
        if part.width > 0 and part.height > 0:
            # Multiplied in place: drawn every frame, so no overlay surface is made each time.
            ui.surface.fill((FIELD_KEEP,) * 3, part, special_flags=pygame.BLEND_RGB_MULT)


def _draw_corners(ui: Ui, square: pygame.Rect) -> None:
    """Four corner marks around `square`, light on dark like the guide box's outline."""
    arm = max(ui.px(12), round(FIELD_CORNER * min(square.width, square.height)))
    edge, line = ui.px(2), ui.px(4)
    for grow, colour in ((edge, theme.OVERLAY_DARK), (0, theme.GUIDE)):
        r = square.inflate(2 * grow, 2 * grow)
        a, t = arm + 2 * grow, line + 2 * grow
        for x, y in (
            (r.left, r.top),
            (r.right - a, r.top),
            (r.left, r.bottom - t),
            (r.right - a, r.bottom - t),
        ):
            ui.surface.fill(colour, pygame.Rect(x, y, a, t))
        for x, y in (
            (r.left, r.top),
            (r.right - t, r.top),
            (r.left, r.bottom - a),
            (r.right - t, r.bottom - a),
        ):
            ui.surface.fill(colour, pygame.Rect(x, y, t, a))


def _notice(decision) -> tuple[Urgency, str] | None:
    """The box under the result: the urgency and its reason in words, or the caveat."""
    urgency = Urgency(decision.urgency)
    escalated = cancer_not_ruled_out(decision)
    if urgency is Urgency.URGENT:
        return urgency, "scan.urgent_not_ruled_out" if escalated else "scan.urgent"
    if urgency is Urgency.SOON and escalated:
        return urgency, "scan.soon_not_ruled_out"
    if is_none_found(decision):
        return Urgency.NONE, "scan.none_caveat"
    return None


def _below(ui: Ui, record: TextRecord, y: float) -> float:
    """The design-unit y just below a text's ink (or `y` for blank text)."""
    return y if record.ink is None else record.ink.bottom / ui.layout.scale
