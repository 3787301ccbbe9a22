"""The scan preview marks what the model reads, in every lens mode of the real pipeline: the
guide box where the guide box is cropped (a clinical picture), four corner marks around the
field where the field is (through the dermoscope, or the lens mode "off"), and a tap moves the
guide box only where moving it changes what is read."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

import numpy as np
import pygame
import pytest

from kiosk.cases.store import CaseStore
from kiosk.cases.sync_status import SyncStatus
from kiosk.config import KioskConfig
from kiosk.live.frames import Frame
from kiosk.live.pipeline import LivePipeline
from kiosk.live.triage import Triage
from kiosk.live.vision import GuideBox, PictureKind, centre_square_rect
from kiosk.model.classifier import Prediction
from kiosk.model.conditions import CONDITIONS
from kiosk.ui import demo, theme
from kiosk.ui.app import App, Services
from kiosk.ui.launch import SwitchablePipeline

SIZE = (800, 480)


class _Camera:
    name = "picamera2"
    status = demo.LIVE

    def open(self) -> None: ...

    def close(self) -> None: ...


@dataclass
class _Model:
    """Always the same answer: the mark is about the crop, not the verdict."""

    input_side: int = 224
    thresholds = demo.THRESHOLDS

    def predict(self, image: np.ndarray) -> Prediction:
        p = np.full(len(CONDITIONS), 0.02)
        p[CONDITIONS.index("eczema")] = 1.0 - 0.02 * (len(CONDITIONS) - 1)
        return Prediction(np.log(p).astype(np.float32), p, 1.0)


def _pipeline(lens: str, picture: np.ndarray) -> LivePipeline:
    model = _Model()
    pipeline = LivePipeline(_Camera(), model, Triage(model.thresholds), lens=lens)
    for n in range(6):
        pipeline.process(Frame(picture, timestamp=n / 15.0, sequence=n))
    return pipeline


@pytest.fixture
def make_app(tmp_path: Path):
    pygame.init()
    surface = pygame.display.set_mode(SIZE)
    config = KioskConfig(data_dir=tmp_path, kiosk_id="kiosk-test01", admin_pin="2468")
    store = CaseStore.open(config)
    apps: list[App] = []

    def make(pipeline) -> App:
        services = Services(
            pipeline, store, lambda: SyncStatus(True, False, 0, None), lambda: None, "test-1"
        )
        app = App(services, config, surface)
        app.step()
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.tasks.close()
    store.close()
    pygame.display.quit()


def _white(app: App) -> np.ndarray:
    """The preview's pixels in the guide colour (the demo skin has none): a bool array over
    the preview rectangle."""
    preview = app.screens["scan"]._preview_rect
    pixels = pygame.surfarray.pixels3d(app.surface)[
        preview.left : preview.right, preview.top : preview.bottom
    ]
    return np.all(pixels == np.array(theme.GUIDE), axis=2).T  # rows are y


def _on_preview(app: App, box: tuple[int, int, int, int], frame_size) -> pygame.Rect:
    """A frame-pixel box in preview pixels (relative to the preview's top-left)."""
    preview = app.screens["scan"]._preview_rect
    sx, sy = preview.width / frame_size[0], preview.height / frame_size[1]
    x, y, w, h = box
    return pygame.Rect(round(x * sx), round(y * sy), round(w * sx), round(h * sy))


def _marked(white: np.ndarray) -> pygame.Rect:
    ys, xs = np.nonzero(white)
    assert len(xs), "nothing marked on the preview"
    return pygame.Rect(xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)


def _edge_middles_marked(white: np.ndarray, mark: pygame.Rect) -> bool:
    """Whether the middle of the mark's top and left edges is drawn (a box) or not (corners)."""
    top = white[mark.top : mark.top + 3, mark.centerx - 2 : mark.centerx + 3].any()
    left = white[mark.centery - 2 : mark.centery + 3, mark.left : mark.left + 3].any()
    return bool(top and left)


PLAIN = demo.skin_picture()
LENS = demo.dermoscope_picture()


@pytest.mark.parametrize(
    ("lens", "picture", "reads"),
    [
        ("off", PLAIN, "field"),  # replays, the demo clip: the centre square
        ("dermoscopic", PLAIN, "field"),  # set by the operator, no vignette: the centre square
        ("dermoscopic", LENS, "field"),  # the square inside the dermoscope's circle
        ("auto", LENS, "field"),  # the vignette seen: the same
        ("auto", PLAIN, "guide"),  # no vignette: a clinical close-up, the guide box
        ("clinical", LENS, "guide"),  # set by the operator: the guide box whatever is seen
    ],
    ids=["off", "dermoscopic-plain", "dermoscopic-lens", "auto-lens", "auto-plain", "clinical"],
)
def test_the_preview_marks_what_the_model_reads(make_app, lens, picture, reads) -> None:
    live = _pipeline(lens, picture)
    # Through the wrapper `kiosk run` uses (Settings may swap the camera under it).
    app = make_app(SwitchablePipeline(build=lambda spec: live, current=live))
    h, w = picture.shape[:2]
    frame = Frame(picture, 0.0, 0)
    read = live.crop_box(frame)
    assert (read == GuideBox().rect(w, h)) == (reads == "guide")
    if lens in ("off",) or (lens == "dermoscopic" and picture is PLAIN):
        assert read == centre_square_rect(w, h)
    white = _white(app)
    mark = _marked(white)
    expected = _on_preview(app, read, (w, h))
    # The mark's outer edge is where the crop is, to a pixel or two of rounding.
    for got, want in zip(
        (mark.left, mark.top, mark.right, mark.bottom),
        (expected.left, expected.top, expected.right, expected.bottom),
        strict=True,
    ):
        assert abs(got - want) <= 2, (mark, expected)
    # A box to aim with where the box is read; corner marks only where the field is.
    assert _edge_middles_marked(white, mark) == (reads == "guide")


def test_a_tap_moves_the_guide_only_where_the_guide_is_read(make_app) -> None:
    live = _pipeline("dermoscopic", LENS)
    app = make_app(live)
    preview = app.screens["scan"]._preview_rect
    before = _marked(_white(app))
    point = (preview.left + preview.width // 4, preview.top + preview.height // 4)
    app.screens["scan"].tap(point)
    app.step()
    assert live.guide == GuideBox(), "a tap moved a box the model does not read"
    assert _marked(_white(app)) == before

    clinical = _pipeline("clinical", LENS)
    app = make_app(clinical)
    app.screens["scan"].tap(point)
    assert clinical.guide.centre == pytest.approx((0.25, 0.25), abs=0.01)


def test_the_aim_hint_names_what_is_marked(make_app) -> None:
    for kind, key in (
        (None, "scan.aim_field"),  # lens mode "off"
        (PictureKind.DERMOSCOPIC, "scan.aim_field"),
        (PictureKind.CLINICAL, "scan.aim"),
    ):
        app = make_app(demo.StaticPipeline(demo.snapshot(None, picture_kind=kind)))
        shown = [t.text for t in app.last_ui.texts]
        assert app.strings.t(key) in shown, (kind, shown)
