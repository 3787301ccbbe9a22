"""Every screen in every language, rendered offscreen and saved as PNG, then checked: text stays
in its box and is never cut, touch targets are at least 48 px, Arabic is laid out mirrored."""

from __future__ import annotations

import itertools
import os
import re

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

import pygame
import pytest

from kiosk.cases.case_code import ALPHABET
from kiosk.cases.sync_status import SyncProblem
from kiosk.ui import theme
from kiosk.ui.geometry import MIN_TARGET_PX
from kiosk.ui.i18n import Strings, ui_languages
from kiosk.ui.render import RenderedScreen, render_all_screens
from kiosk.ui.theme import MIN

STATES = (
    "scan",
    "scan_hint",
    "scan_urgent",
    "scan_no_camera",
    "scan_hold_still",
    "scan_demo",
    "report_demo",
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
    "scan_none_found",
    "scan_not_ruled_out",
    "scan_language",
    "report_none_found",
    "report_not_ruled_out",
    "picture",
    "save_urgent",
    "save_urgent_code",
    "keyboard_refused",
    "receipt",
    "receipt_urgent_code",
    "queue_not_set_up",
    "queue_sync_asked",
    "settings_exit",
    "pin_typing",
    "queue_full_pictures",
    "scan_dermoscope",
    "scan_field_aim",
    "receipt_urgent_hidden",
)
# Laid out in the same place in every language: a keyboard and a keypad keep their physical
# order (and a keypad sits at the end side as a block).
UNMIRRORED = ("key:", "pin:")
EDGE_PX = 6  # the least room between any text and the window's edge, at 800×480
LABEL_ROOM_PX = 10  # the least room between a button's words and its sides, at 800×480


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
            # Not stuck to the glass either: ink keeps clear of the window's edges.
            edge = round(EDGE_PX * scale)
            assert screen.inflate(-2 * edge, -2 * edge).contains(record.ink), f"{where} at edge"
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


def test_cases_sent_with_full_pictures_to_follow_say_both(shots: list[RenderedScreen]) -> None:
    """Compact copies sent, full pictures still to go: the panel says the cases are sent and
    how many full pictures follow, never "everything is sent"."""
    for shot in _shots_of(shots, "queue_full_pictures"):
        strings = Strings.for_language(shot.language)
        shown = [record.text for record in shot.texts]
        assert strings.t("queue.cases_sent") in shown, shot.language
        # The demo store's waiting cases, all sent as compact copies.
        follow = [n for n in range(1, 10) if strings.t("queue.full_waiting", n=n) in shown]
        assert len(follow) == 1, (shot.language, shown)
        assert strings.t("queue.all_sent") not in shown, shot.language


def test_every_sync_problem_the_screen_shows_has_a_text() -> None:
    for language in ui_languages():
        strings = Strings.for_language(language)
        for problem in SyncProblem:
            if problem is not SyncProblem.MODEL_REJECTED:
                assert strings.has(f"sync_problem.{problem}"), (language, problem)


def _shots_of(shots: list[RenderedScreen], state: str) -> list[RenderedScreen]:
    found = [s for s in shots if s.state == state]
    assert {s.language for s in found} == set(ui_languages()), state
    return found


def _colours(shot: RenderedScreen) -> set[tuple[int, int, int]]:
    image = pygame.image.load(str(shot.path))
    w, h = image.get_size()
    return {tuple(image.get_at((x, y)))[:3] for x in range(w) for y in range(0, h, 2)}


def test_button_words_keep_clear_of_the_buttons_sides(shots: list[RenderedScreen]) -> None:
    """'Cuir chevelu', 'Terminé' touched their keys' edges: wide buttons keep room."""
    checked = 0
    for shot in shots:
        labelled = [b for b in shot.buttons if b.label and b.rect.width >= 100]
        for button in labelled:
            inside = [
                r
                for r in shot.texts
                if r.text == button.label and r.ink is not None and button.rect.contains(r.box)
            ]
            assert inside, f"{shot.language}/{shot.state}: {button.name}"
            ink = inside[0].ink
            room = min(ink.left - button.rect.left, button.rect.right - ink.right)
            assert room >= LABEL_ROOM_PX, f"{shot.language}/{shot.state}: {button.name} {room}px"
            checked += 1
    assert checked > 300


def test_none_found_shows_no_tick_no_number_and_its_caveat(shots: list[RenderedScreen]) -> None:
    for state in ("scan_none_found", "report_none_found"):
        for shot in _shots_of(shots, state):
            strings = Strings.for_language(shot.language)
            shown = [r.text for r in shot.texts]
            assert not any("%" in t for t in shown), (shot.language, state)
            assert theme.OK not in _colours(shot), f"{shot.language}/{state}: a green tick"
            if state == "scan_none_found":  # the caveat where the patient watches
                assert strings.t("scan.none_caveat") in shown, shot.language


def test_no_green_tick_beside_a_possible_cancer(shots: list[RenderedScreen]) -> None:
    # A steady melanoma on scan, the urgent report, the reviewed melanoma's thread, the inbox
    # with its review, and Cases offline (no green cloud) listing "Reviewed" beside it.
    for state in ("scan_urgent", "report_urgent", "thread", "inbox", "queue_offline"):
        for shot in _shots_of(shots, state):
            assert theme.OK not in _colours(shot), f"{shot.language}/{state}: a green tick"


def test_urgency_from_the_cancer_sum_says_cancer_cannot_be_ruled_out(
    shots: list[RenderedScreen],
) -> None:
    for state, key in (
        ("scan_not_ruled_out", "scan.urgent_not_ruled_out"),
        ("report_not_ruled_out", "report.not_ruled_out"),
    ):
        for shot in _shots_of(shots, state):
            strings = Strings.for_language(shot.language)
            shown = [r.text for r in shot.texts]
            assert strings.t(key) in shown, (shot.language, state)
            assert strings.t("scan.urgent") not in shown  # not "possible skin cancer" alone
    for shot in _shots_of(shots, "scan_urgent"):  # a melanoma: the title says it already
        strings = Strings.for_language(shot.language)
        assert strings.t("scan.urgent") in [r.text for r in shot.texts]


def test_not_set_up_is_said_as_such_and_never_offline(shots: list[RenderedScreen]) -> None:
    for shot in _shots_of(shots, "queue_not_set_up"):
        strings = Strings.for_language(shot.language)
        shown = [r.text for r in shot.texts]
        assert strings.t("queue.not_set_up") in shown and strings.t("queue.offline") not in shown
        assert strings.t("queue.not_set_up_text") in shown
        assert not next(b for b in shot.buttons if b.name == "sync_now").enabled
    for shot in _shots_of(shots, "queue_offline"):
        assert Strings.for_language(shot.language).t("queue.offline") in [
            r.text for r in shot.texts
        ]


def test_every_case_is_named_by_its_code(shots: list[RenderedScreen]) -> None:
    for state in ("queue", "inbox", "thread", "receipt", "receipt_urgent_code"):
        for shot in _shots_of(shots, state):
            shown = " ".join(r.text for r in shot.texts)
            codes = re.findall(rf"\b[{ALPHABET}]{{6}}\b", shown)
            assert codes, f"{shot.language}/{state}: no case code"


def test_the_pin_pad_does_not_show_how_long_the_pin_is(shots: list[RenderedScreen]) -> None:
    """No hollow slots: the same field with none typed (pin_wrong clears after a miss, then 2
    digits) and with six typed differs only by the dots."""
    for shot in _shots_of(shots, "pin_typing"):
        image = pygame.image.load(str(shot.path))
        xs = range(410, 800) if shot.rtl else range(0, 390)  # the field, not the keypad
        row = [tuple(image.get_at((x, 100)))[:3] for x in xs]
        runs = sum(1 for a, b in itertools.pairwise(row) if a != theme.TEXT and b == theme.TEXT)
        assert runs == 6, (shot.language, runs)  # one dot per digit typed, nothing else


def test_a_hidden_receipt_shows_nothing_of_the_patient(shots: list[RenderedScreen]) -> None:
    """Left alone before its code was noted: no code, no result, no urgency colour."""
    for shot in _shots_of(shots, "receipt_urgent_hidden"):
        strings = Strings.for_language(shot.language)
        shown = " ".join(r.text for r in shot.texts)
        assert not re.findall(rf"\b[{ALPHABET}]{{6}}\b", shown), shot.language
        assert strings.condition("melanoma") not in shown, shot.language
        assert strings.t("receipt.hidden") in shown, shot.language
        assert theme.DANGER not in _colours(shot), f"{shot.language}: the urgent colour"
        assert [b.name for b in shot.buttons] == ["receipt:show"]


def test_where_the_field_is_read_the_hint_says_so(shots: list[RenderedScreen]) -> None:
    for shot in _shots_of(shots, "scan_field_aim"):  # the lens mode "off", nothing read yet
        strings = Strings.for_language(shot.language)
        shown = [r.text for r in shot.texts]
        assert strings.t("scan.aim_field") in shown and strings.t("scan.aim") not in shown
