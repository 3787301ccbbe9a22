"""Every screen in every language, rendered offscreen and saved as PNG, then checked: text stays
in its box and is never cut, touch targets are at least 48 px, Arabic is laid out mirrored."""

from __future__ import annotations

import itertools
import os

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

import pygame
import pytest

from kiosk.cases.sync_status import SyncProblem
from kiosk.ui.geometry import MIN_TARGET_PX
from kiosk.ui.i18n import Strings, ui_languages
from kiosk.ui.render import RenderedScreen, render_all_screens
from kiosk.ui.theme import MIN

STATES = (
    "scan",
    "scan_hint",
    "scan_urgent",
    "scan_no_camera",
    "report",
    "report_urgent",
    "report_unsure",
    "report_long",
    "save",
    "save_disk_full",
    "keyboard",
    "queue",
    "queue_offline",
    "inbox",
    "thread",
    "pin_wrong",
    "settings",
)
# Laid out in the same place in every language: a keyboard and a keypad keep their physical
# order (and a keypad sits at the end side as a block).
UNMIRRORED = ("key:", "pin:")


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> list[RenderedScreen]:
    return render_all_screens(tmp_path_factory.mktemp("screens"))


@pytest.fixture(scope="module")
def wide_shots(tmp_path_factory: pytest.TempPathFactory) -> list[RenderedScreen]:
    """A 1024×600 screen (another common panel): the same layouts, scaled."""
    return render_all_screens(tmp_path_factory.mktemp("wide"), ("en", "ar"), size=(1024, 600))


def test_every_screen_in_every_language_is_saved(shots: list[RenderedScreen]) -> None:
    assert {"en", "fr", "ar"} <= set(ui_languages())
    assert {(s.language, s.state) for s in shots} == set(itertools.product(ui_languages(), STATES))
    for shot in shots:
        image = pygame.image.load(str(shot.path))
        assert image.get_size() == shot.size
        # Not a blank frame: a screen has many colours (text, buttons, pictures).
        colours = {image.get_at((x, y))[:3] for x in range(0, 800, 7) for y in range(0, 480, 7)}
        assert len(colours) > 20, shot.path


@pytest.mark.parametrize("which", ["shots", "wide_shots"])
def test_text_fits_its_box_and_is_never_cut(which: str, request: pytest.FixtureRequest) -> None:
    for shot in request.getfixturevalue(which):
        screen = pygame.Rect((0, 0), shot.size)
        scale = min(shot.size[0] / 800, shot.size[1] / 480)
        for record in shot.texts:
            where = f"{shot.language}/{shot.state}: {record.text[:50]!r}"
            assert record.ink is not None or not record.text.strip(), where
            if record.ink is None:
                continue
            assert record.box.contains(record.ink), f"{where} spills out of {record.box}"
            assert screen.contains(record.ink), where
            assert not record.truncated or record.cut_ok, f"{where} was cut"
            if not record.cut_ok and len(record.text) > 3:
                assert record.size >= round(MIN * scale), f"{where} shrank to {record.size}px"


@pytest.mark.parametrize("which", ["shots", "wide_shots"])
def test_touch_targets_are_big_enough_and_do_not_overlap(
    which: str, request: pytest.FixtureRequest
) -> None:
    for shot in request.getfixturevalue(which):
        screen = pygame.Rect((0, 0), shot.size)
        for button in shot.buttons:
            where = f"{shot.language}/{shot.state}: {button.name}"
            assert button.rect.width >= MIN_TARGET_PX, where
            assert button.rect.height >= MIN_TARGET_PX, where
            assert screen.contains(button.rect), where
        for a, b in itertools.combinations(shot.buttons, 2):
            assert not a.rect.colliderect(b.rect), f"{shot.state}: {a.name} overlaps {b.name}"


def test_arabic_layout_is_the_mirror_of_english(shots: list[RenderedScreen]) -> None:
    by_key = {(s.language, s.state): s for s in shots}
    checked = 0
    for state in STATES:
        en, ar = by_key["en", state], by_key["ar", state]
        assert ar.rtl and not en.rtl
        en_buttons = {b.name: b.rect for b in en.buttons if not b.name.startswith(UNMIRRORED)}
        ar_buttons = {b.name: b.rect for b in ar.buttons if not b.name.startswith(UNMIRRORED)}
        assert set(en_buttons) == set(ar_buttons), state
        for name, rect in en_buttons.items():
            mirrored = ar_buttons[name]
            assert abs(mirrored.left - (800 - rect.right)) <= 1, f"{state}: {name}"
            assert (mirrored.top, mirrored.size) == (rect.top, rect.size), f"{state}: {name}"
            checked += 1
    assert checked > 60  # tabs, flow buttons, site and settings choices


def test_arabic_text_starts_at_the_right(shots: list[RenderedScreen]) -> None:
    """Start-aligned text hugs the left edge of its box in English and the right in Arabic."""
    for language, edge in (("en", "left"), ("ar", "right")):
        shot = next(s for s in shots if s.language == language and s.state == "scan")
        label = Strings.for_language(language).t("scan.best_match")
        record = next(r for r in shot.texts if r.text == label)
        assert record.ink is not None
        gap = abs(getattr(record.ink, edge) - getattr(record.box, edge))
        assert gap <= 3, f"{language}: {label!r} is {gap}px from the {edge} edge"


def test_offline_queue_says_the_problem_in_the_users_language(
    shots: list[RenderedScreen],
) -> None:
    for shot in shots:
        if shot.state != "queue_offline":
            continue
        shown = " ".join(record.text for record in shot.texts)
        strings = Strings.for_language(shot.language)
        expected = strings.t(f"sync_problem.{SyncProblem.NO_CONNECTION}")
        assert expected in shown, shot.language
        assert "network unreachable" not in shown  # the technical line stays in the logs


def test_every_sync_problem_the_screen_shows_has_a_text() -> None:
    for language in ui_languages():
        strings = Strings.for_language(language)
        for problem in SyncProblem:
            if problem is not SyncProblem.MODEL_REJECTED:
                assert strings.has(f"sync_problem.{problem}"), (language, problem)
