"""Settings behind the admin PIN: language, camera, exit.

The PIN keeps patients and passers-by out of the settings, not a determined attacker (the
kiosk's disk is the real boundary): it is compared in constant time, and five wrong tries lock
the pad for a minute. The pad shows a dot per digit typed and nothing about how many are
expected (installed kiosks have six-digit PINs; four hollow slots told the wrong length, and any
slots tell an onlooker how long it is). Exit asks first: it sat next to Lock and quit at once.
Both screens go back to Scan after a while untouched.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

import pygame

from kiosk.ui import theme
from kiosk.ui.i18n import Strings, ui_languages
from kiosk.ui.screens.base import MARGIN, Screen

if TYPE_CHECKING:
    from kiosk.ui.canvas import Ui

MAX_TRIES = 5
LOCKOUT_S = 60.0
CAMERA_CHOICES = ("auto", "picamera2", "opencv:0", "demo")
_IN_USE = {"picamera2": "picamera2", "opencv": "opencv:0", "demo": "demo"}


def in_use_key(snapshot) -> str | None:
    """The camera_choice string key of the source running now (None: none to name)."""
    kind = _IN_USE.get(getattr(snapshot, "source_kind", ""))
    return None if kind is None else f"camera_choice.{kind}"


class PinScreen(Screen):
    name = "pin"
    tab = "settings"
    locks_when_idle = True

    def __init__(self, app) -> None:
        super().__init__(app)
        self.digits = ""
        self.wrong = False
        self.failures = 0
        self.locked_until: float | None = None

    def enter(self, **options: object) -> None:
        self.digits = ""
        self.wrong = False

    def locked_for(self) -> float:
        if self.locked_until is None:
            return 0.0
        return max(0.0, self.locked_until - self.app.clock())

    def press(self, digit: str) -> None:
        self.wrong = False
        if len(self.digits) < 8:
            self.digits += digit

    def clear(self) -> None:
        self.digits = ""

    def submit(self) -> None:
        if self.locked_for() > 0:
            return
        if hmac.compare_digest(self.digits.encode(), self.app.config.admin_pin.encode()):
            self.failures = 0
            self.app.go("settings")
            return
        self.failures += 1
        self.digits = ""
        self.wrong = True
        if self.failures >= MAX_TRIES:
            self.failures = 0
            self.locked_until = self.app.clock() + LOCKOUT_S

    def draw(self, ui: Ui) -> None:
        W = ui.W  # noqa: N806
        ui.icon("lock", ui.rect(MARGIN + 6, MARGIN + 4, 34, 34), theme.TEXT)
        ui.text(
            ui.t("pin.title"),
            ui.rect(MARGIN + 48, MARGIN, W / 2 - 60, 44),
            size=theme.HEAD,
            bold=True,
            valign="middle",
        )
        # A field with one dot per digit typed: no hollow slots, so the PIN's length is not
        # shown (and dots of a fixed pitch, so the field never hints at a maximum either).
        span = W / 2 - 2 * MARGIN
        field = ui.rect(MARGIN, 70, span, 60)
        ui.fill(field, theme.PANEL, radius=8)
        ui.fill(field, theme.LINE, radius=8, width=max(1, ui.px(1)))
        shown = min(len(self.digits), 8)
        for i in range(shown):
            cx = MARGIN + span / 2 + (i - (shown - 1) / 2) * 30
            pygame.draw.ellipse(ui.surface, theme.TEXT, ui.rect(cx - 9, 91, 18, 18))
        locked = self.locked_for()
        message = ""
        if locked > 0:
            message = ui.t("pin.locked", s=round(locked))
        elif self.wrong:
            message = ui.t("pin.wrong")
        if message:
            ui.icon("warning", ui.rect(MARGIN, 150, 34, 34), theme.DANGER)
            ui.text(
                message,
                ui.rect(MARGIN + 44, 146, W / 2 - 64, 80),
                size=theme.BODY,
                color=theme.DANGER,
                bold=True,
            )
        # The keypad keeps the telephone order in every language, like the keyboard.
        key_w, key_h, gap = 100, 65, 12  # 12-unit gaps: gloves
        block_w = 3 * key_w + 2 * gap
        pad_x = MARGIN if ui.rtl else W - MARGIN - block_w  # the pad stays on the end side
        keys = ("1", "2", "3", "4", "5", "6", "7", "8", "9", "clear", "0", "ok")
        for i, key in enumerate(keys):
            row, col = divmod(i, 3)
            rect = ui.rect(
                pad_x + col * (key_w + gap),
                MARGIN + row * (key_h + gap),
                key_w,
                key_h,
                mirror=False,
            )
            if key == "clear":
                ui.button("pin:clear", rect, ui.t("pin.clear"), self.clear, size=theme.SMALL)
            elif key == "ok":
                ui.button(
                    "pin:ok",
                    rect,
                    ui.t("pin.ok"),
                    self.submit,
                    style="primary",
                    enabled=locked <= 0,
                )
            else:
                ui.button(
                    f"pin:{key}",
                    rect,
                    key,
                    lambda key=key: self.press(key),
                    style="key",
                    size=theme.TITLE,
                    enabled=locked <= 0,
                )


class SettingsScreen(Screen):
    name = "settings"
    tab = "settings"
    locks_when_idle = True

    def __init__(self, app) -> None:
        super().__init__(app)
        self.confirming_exit = False

    def enter(self, **options: object) -> None:
        self.confirming_exit = False

    def choose_camera(self, spec: str) -> None:
        if spec != self.app.camera:
            self.app.set_camera(spec)
            self.app.notify(self.app.strings.t("settings.camera_changed"))

    def exit(self) -> None:
        """Ask first; `confirm_exit` quits."""
        self.confirming_exit = True

    def confirm_exit(self) -> None:
        self.app.running = False

    def cancel_exit(self) -> None:
        self.confirming_exit = False

    def draw(self, ui: Ui) -> None:
        if self.confirming_exit:
            self._draw_exit_question(ui)
            return
        W = ui.W  # noqa: N806
        ui.text(
            ui.t("settings.title"),
            ui.rect(MARGIN, MARGIN, W - 2 * MARGIN, 36),
            size=theme.HEAD,
            bold=True,
        )
        y = 54
        ui.icon("globe", ui.rect(MARGIN, y + 2, 26, 26), theme.TEXT)
        ui.text(
            ui.t("settings.language"),
            ui.rect(MARGIN + 34, y, 300, 30),
            size=theme.SMALL,
            color=theme.MUTED,
        )
        languages = ui_languages()
        gap = 12  # glove-sized keys stay 12 units apart
        w = (W - 2 * MARGIN - gap * (len(languages) - 1)) / len(languages)
        for i, code in enumerate(languages):
            chosen = code == ui.strings.language
            ui.button(
                f"language:{code}",
                ui.rect(MARGIN + i * (w + gap), y + 32, w, 60),
                Strings.for_language(code).name,
                lambda code=code: self.app.set_language(code),
                style="selected" if chosen else "secondary",
                icon="check" if chosen else None,
            )
        y += 104
        ui.icon("camera", ui.rect(MARGIN, y + 2, 26, 26), theme.TEXT)
        ui.text(
            ui.t("settings.camera"),
            ui.rect(MARGIN + 34, y, 300, 30),
            size=theme.SMALL,
            color=theme.MUTED,
        )
        in_use = in_use_key(self.app.services.pipeline.snapshot())  # "auto" may be the demo
        if in_use is not None:
            ui.text(
                ui.t("settings.camera_in_use", name=ui.t(in_use)),
                ui.rect(MARGIN + 340, y, W - 2 * MARGIN - 340, 30),
                size=theme.SMALL,
                color=theme.TEXT,
                bold=True,
                align="end",
            )
        w = (W - 2 * MARGIN - gap * (len(CAMERA_CHOICES) - 1)) / len(CAMERA_CHOICES)
        for i, spec in enumerate(CAMERA_CHOICES):
            chosen = spec == self.app.camera
            ui.button(
                f"camera:{spec}",
                ui.rect(MARGIN + i * (w + gap), y + 32, w, 60),
                ui.t(f"camera_choice.{spec}"),
                lambda spec=spec: self.choose_camera(spec),
                style="selected" if chosen else "secondary",
                icon="check" if chosen else None,
                size=theme.SMALL,
            )
        y += 104
        config = self.app.config
        info = f"{config.kiosk_id} · {self.app.services.model_version}"
        ui.text(info, ui.rect(MARGIN, y, W - 2 * MARGIN, 28), size=theme.SMALL, color=theme.MUTED)
        bottom = self.content_height(ui) - MARGIN
        half = (W - 3 * MARGIN) / 2
        ui.button(
            "lock",
            ui.rect(MARGIN, bottom - 62, half, 62),
            ui.t("settings.lock"),
            lambda: self.app.go("scan"),
            icon="lock",
        )
        ui.button(
            "exit",
            ui.rect(2 * MARGIN + half, bottom - 62, half, 62),
            ui.t("settings.exit"),
            self.exit,
            style="danger",
            icon="power",
        )

    def _draw_exit_question(self, ui: Ui) -> None:
        W = ui.W  # noqa: N806
        bottom = self.content_height(ui) - MARGIN
        box = ui.rect(MARGIN + 60, MARGIN + 20, W - 2 * MARGIN - 120, bottom - MARGIN - 40)
        ui.fill(box, theme.PANEL, radius=10)
        ui.fill(box, theme.DANGER, radius=10, width=max(2, ui.px(2)))
        ui.icon("power", ui.rect(MARGIN + 84, MARGIN + 44, 44, 44), theme.DANGER)
        ui.text(
            ui.t("settings.exit_confirm"),
            ui.rect(MARGIN + 140, MARGIN + 40, W - 2 * MARGIN - 224, 52),
            size=theme.TITLE,
            min_size=theme.HEAD,
            bold=True,
            valign="middle",
        )
        ui.text(
            ui.t("settings.exit_text"),
            ui.rect(MARGIN + 84, MARGIN + 104, W - 2 * MARGIN - 168, 110),
            size=theme.BODY,
            min_size=theme.MIN,
        )
        y = bottom - 40 - 70 - 24
        half = (W - 2 * MARGIN - 168 - 24) / 2
        # Staying is the big, safe default on the end side; Exit is red and on the start side.
        ui.button(
            "exit:confirm",
            ui.rect(MARGIN + 84, y, half, 70),
            ui.t("settings.exit_yes"),
            self.confirm_exit,
            style="danger",
            icon="power",
        )
        ui.button(
            "exit:cancel",
            ui.rect(MARGIN + 84 + half + 24, y, half, 70),
            ui.t("settings.exit_no"),
            self.cancel_exit,
            style="primary",
            icon="back",
        )
