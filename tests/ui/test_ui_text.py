"""Texts of the UI: every language complete, Arabic shaped and ordered, wrapping and fitting."""

from __future__ import annotations

import json
import os
import string
from importlib import resources

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

import pygame
import pytest

from kiosk.ui.i18n import Strings, ui_languages
from kiosk.ui.pointer import DOWN, UP, presses
from kiosk.ui.text import TextPainter, font_path, visual


def _table(language: str) -> dict[str, str]:
    path = resources.files("kiosk.ui").joinpath("strings", f"{language}.json")
    return json.loads(path.read_text(encoding="utf-8"))


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


@pytest.fixture(scope="module")
def painter() -> TextPainter:
    pygame.font.init()
    return TextPainter()


def test_every_language_has_every_key_with_the_same_placeholders() -> None:
    english = _table("en")
    for language in ui_languages():
        table = _table(language)
        assert set(table) == set(english), language
        for key, text in table.items():
            assert text.strip(), (language, key)
            assert _fields(text) == _fields(english[key]), (language, key)


def test_arabic_is_right_to_left_and_the_others_are_not() -> None:
    assert Strings.for_language("ar").rtl
    assert not Strings.for_language("en").rtl and not Strings.for_language("fr").rtl
    assert Strings.for_language("fr-CA").language == "fr"
    assert Strings.for_language("xx").language == "en"


def test_the_shipped_font_has_arabic_and_french_letters(painter: TextPainter) -> None:
    assert font_path() is not None and font_path().is_file()
    font = painter.font(40)

    def pixels(ch: str) -> bytes:
        return pygame.image.tobytes(font.render(ch, True, (0, 0, 0), (255, 255, 255)), "RGB")

    missing = pixels("\ue000")  # a private-use code point: the font's "no glyph" box
    for ch in "éèàçùôœ" + visual("بيت"):
        assert pixels(ch) != missing, ch


def test_visual_order_mirrors_brackets_and_keeps_dates_readable() -> None:
    line = visual("احتمال (ميلانوما)")
    assert line[0] == "(" and ")" in line  # the bracket before the last word is drawn at the left
    assert "2026-11-02" in visual("حالة 2026-11-02")  # not 02-11-2026
    assert visual("Eczema (test) 85 %") == "Eczema (test) 85 %"  # Latin untouched
    # Letters are joined: presentation forms, not the isolated code points.
    assert all(not 0x0600 <= ord(c) <= 0x06FF for c in visual("الحالة").replace("\u200c", ""))
    # A lam drawn just before an alef gets a non-joiner so the font does not fuse them.
    assert "\u200c" in visual("الحالة")


def test_wrapping_keeps_reading_order_and_width(painter: TextPainter) -> None:
    text = Strings.for_language("ar").advice("condition.eczema.text")
    lines = painter.wrap(text, 300, 20)
    assert len(lines) > 3
    assert " ".join(lines).split() == text.split()  # logical order: first words on line 1
    assert all(painter.width(line, 20) <= 300 for line in lines)


def test_fitting_shrinks_then_cuts(painter: TextPainter) -> None:
    text = Strings.for_language("fr").advice("condition.actinic_keratosis.text")
    roomy = painter.fit(text, 600, 400, 20, 15)
    assert (roomy.size, roomy.truncated) == (20, False)
    tight = painter.fit(text, 600, 60, 20, 15)
    assert tight.size == 15 and tight.truncated and tight.lines[-1].endswith("…")


def test_touch_and_its_mouse_echo_count_once() -> None:
    size = (800, 480)
    events = [
        pygame.event.Event(pygame.FINGERDOWN, x=0.5, y=0.5, dx=0, dy=0, finger_id=0, touch_id=1),
        pygame.event.Event(pygame.MOUSEBUTTONDOWN, pos=(400, 240), button=1, touch=True),
        pygame.event.Event(pygame.FINGERUP, x=0.5, y=0.5, dx=0, dy=0, finger_id=0, touch_id=1),
        pygame.event.Event(pygame.MOUSEBUTTONUP, pos=(400, 240), button=1, touch=True),
        pygame.event.Event(pygame.MOUSEBUTTONDOWN, pos=(10, 20), button=3, touch=False),
    ]
    assert [(p.kind, p.pos) for p in presses(events, size)] == [
        (DOWN, (400, 240)),
        (UP, (400, 240)),
    ]


def test_importing_the_ui_prints_nothing() -> None:
    """`kiosk bench --json` imports the UI: pygame's banner on stdout would break the JSON."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", "import kiosk.ui.bench"], capture_output=True, text=True, check=True
    )
    assert out.stdout == ""
