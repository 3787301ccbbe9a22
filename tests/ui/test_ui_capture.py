"""Capture on the touchscreen (issue 13): it stores the evidence of the verdict shown, waits
while the gate rejects the current frame or the scene has no verdict yet, and a demo source
marks every screen. Real App, real case store, simulated touches."""

from __future__ import annotations

import os
from dataclasses import replace

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

import numpy as np
import pygame

from kiosk.live.frames import Frame
from kiosk.ui import demo
from kiosk.ui.capture import Readiness, readiness
from kiosk.ui.watermark import watermark_surface
from tests.ui.test_ui_flows import kiosk, settle, tap  # noqa: F401  (the fixture)


def shown(app) -> list[str]:
    return [r.text for r in app.last_ui.texts]


def test_capture_stores_the_evidence_frame_not_the_newest_one(kiosk):  # noqa: F811
    app, pipeline = kiosk.app, kiosk.pipeline
    snap = demo.snapshot(demo.verdict_for("melanoma", 0.7))
    # The camera has since moved on: the newest frame is another picture, not yet classified.
    newest = Frame(np.full((480, 640, 3), 200, np.uint8), timestamp=1.0, sequence=2)
    pipeline.snap = replace(snap, frame=newest)
    app.step()
    tap(app, "capture")
    assert app.screen.name == "report"
    capture = app.capture
    assert capture.verdict is snap.evidence.verdict
    assert np.array_equal(capture.image, snap.evidence.crop)
    assert not np.array_equal(capture.image[:2, :2], newest.image[:2, :2])
    tap(app, "save_case")
    assert app.screen.name == "save"


def test_a_blurry_frame_disables_capture_and_is_never_steady(kiosk):  # noqa: F811
    app, pipeline = kiosk.app, kiosk.pipeline
    held = demo.verdict_for("eczema", 0.82, stable=True)  # the triage holds a settled label
    pipeline.snap = demo.snapshot(replace(held, quality=("blurry",)))
    app.step()
    assert readiness(pipeline.snap) is Readiness.REJECTED
    assert not app.button("capture").enabled
    texts = shown(app)
    assert app.strings.t("scan.steady") not in texts
    assert app.strings.t("scan.capture_wait_quality") in texts  # the reason, on screen
    tap(app, "capture")  # a press on the greyed-out button says why, and stays
    assert app.screen.name == "scan" and app.capture is None

    pipeline.snap = demo.snapshot(held)  # sharp again
    app.step()
    assert app.button("capture").enabled
    assert app.strings.t("scan.steady") in shown(app)


def test_no_steady_verdict_of_this_scene_waits_then_captures(kiosk):  # noqa: F811
    app, pipeline = kiosk.app, kiosk.pipeline
    pipeline.snap = demo.snapshot(demo.verdict_for("acne", 0.7), evidence=False)
    app.step()
    assert app.strings.t("scan.hold_still") in shown(app)
    tap(app, "capture")  # pressed before the new scene's verdict: it waits, pairing nothing
    assert app.capture is None and app.screen.name == "scan"
    pipeline.snap = demo.snapshot(demo.verdict_for("acne", 0.7, stable=False), evidence=False)
    app.step()
    assert app.screen.name == "scan"
    ready = demo.snapshot(demo.verdict_for("acne", 0.7))  # the scene's verdict is there
    pipeline.snap = ready
    app.step()
    assert app.screen.name == "report"
    assert app.capture.verdict is ready.evidence.verdict


def test_a_waiting_press_is_dropped_when_the_picture_goes_bad(kiosk):  # noqa: F811
    app, pipeline = kiosk.app, kiosk.pipeline
    pipeline.snap = demo.snapshot(demo.verdict_for("acne", 0.7), evidence=False)
    app.step()
    tap(app, "capture")
    blurry = replace(demo.verdict_for("acne", 0.7), quality=("blurry",))
    pipeline.snap = demo.snapshot(blurry)
    app.step()
    pipeline.snap = demo.snapshot(demo.verdict_for("acne", 0.7))  # sharp again, no new press
    app.step()
    assert app.screen.name == "scan" and app.capture is None


def test_the_demo_source_marks_every_screen_and_the_settings_name_it(kiosk):  # noqa: F811
    app, pipeline = kiosk.app, kiosk.pipeline
    verdict = demo.verdict_for("acne", 0.8)
    pipeline.snap = demo.snapshot(verdict, source_kind="picamera2")
    app.step()
    plain = pygame.surfarray.array3d(app.surface).copy()
    assert not app.demo_mode()
    pipeline.snap = demo.snapshot(verdict, source_kind="demo")
    app.step()
    marked = pygame.surfarray.array3d(app.surface)
    assert app.demo_mode()
    mark = watermark_surface(app.last_ui)
    rect = mark.get_rect(center=app.surface.get_rect().center)
    changed = np.any(plain != marked, axis=2)
    inside = np.zeros_like(changed)
    inside[rect.left : rect.right, rect.top : rect.bottom] = True
    assert changed[inside].sum() > 2000, "no watermark drawn"
    assert not changed[~inside].any(), "the watermark drew outside its place"

    # On the report and save screens of a demo capture, and on the others too.
    tap(app, "capture")
    assert app.screen.name == "report" and app.capture.demo and app.demo_mode()
    for tab in ("tab:cases", "tab:inbox"):
        app.go("scan")
        app.step()
        tap(app, tab)
        assert app.demo_mode()
    # Settings names the source actually running: "auto" found no camera and plays the demo.
    app.go("settings")
    app.step()
    name = app.strings.t("camera_choice.demo")
    assert app.strings.t("settings.camera_in_use", name=name) in shown(app)
