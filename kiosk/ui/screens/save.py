"""Save case: consent, an optional pseudonymous patient reference, the body site.

The case is written on the task thread (JPEG encoding and an fsync take tens of milliseconds on
a Pi); the screen shows "Saving…" meanwhile and moves to the queue when it is done. A failure
is said in the user's language (a full disk by name); the store's own wording goes to the log.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

from kiosk.cases.store import BODY_SITES, MAX_PATIENT_REF, DiskFullError, OnDeviceResult
from kiosk.ui import theme
from kiosk.ui.keyboard import Keyboard
from kiosk.ui.screens.base import MARGIN, Screen

if TYPE_CHECKING:
    from kiosk.cases.store import Case
    from kiosk.ui.canvas import Ui

log = logging.getLogger(__name__)

SITE_COLUMNS = 6
_REF_CHAR = re.compile(r"^[\w -]$")  # what kiosk.cases.store.check_patient_ref accepts


def ref_char_allowed(ch: str) -> bool:
    return bool(_REF_CHAR.match(ch)) and ch != "_"


class SaveScreen(Screen):
    name = "save"

    def __init__(self, app) -> None:
        super().__init__(app)
        self.enter()

    def enter(self, **options: object) -> None:
        self.consent = False
        self.patient_ref = ""
        self.body_site = ""
        self.saving = False
        self.error = ""

    # ---- actions --------------------------------------------------------------------------

    def toggle_consent(self) -> None:
        self.consent = not self.consent
        self.error = ""

    def edit_ref(self) -> None:
        def done(text: str) -> None:
            self.patient_ref = " ".join(text.split())
            self.app.close_keyboard()

        self.app.open_keyboard(
            Keyboard(
                title=self.app.strings.t("save.ref"),
                on_done=done,
                on_cancel=self.app.close_keyboard,
                text=self.patient_ref,
                max_len=MAX_PATIENT_REF,
                allowed=ref_char_allowed,
                language=self.app.strings.language,
            )
        )

    def choose_site(self, site: str) -> None:
        self.body_site = "" if self.body_site == site else site

    def save(self) -> None:
        capture = self.app.capture
        if capture is None or capture.verdict.decision is None or self.saving:
            return
        if not self.consent:
            self.error = self.app.strings.t("save.consent_needed")
            return
        services = self.app.services
        on_device = OnDeviceResult.from_decision(capture.verdict.decision, services.model_version)
        image, ref, site = capture.image, self.patient_ref, self.body_site
        self.saving = True
        self.error = ""
        self.app.tasks.submit(
            lambda: services.store.save_case(image, on_device, ref, site, consent=True),
            on_done=self._saved,
            on_error=self.show_failure,
        )

    def _saved(self, case: Case) -> None:
        self.saving = False
        self.app.services.pipeline.reset()  # the next person starts from a clean scan
        self.app.refresh_counts()
        self.app.notify(self.app.strings.t("save.saved"))
        self.app.go("queue", highlight=case.case_id)

    def show_failure(self, error: Exception) -> None:
        self.saving = False
        # Said in the user's language; the store's own (English) wording goes to the log, which
        # never gets the patient reference (the store's messages do not contain it).
        log.warning("case not saved: %s: %s", type(error).__name__, error)
        if isinstance(error, DiskFullError):
            reason = self.app.strings.t("save.disk_full")
        else:
            reason = self.app.strings.t("save.try_again")
        self.error = self.app.strings.t("save.failed", error=reason)

    # ---- drawing --------------------------------------------------------------------------

    def draw(self, ui: Ui) -> None:
        W = ui.W  # noqa: N806 - design units
        ui.text(
            ui.t("save.title"), ui.rect(MARGIN, 6, W - 2 * MARGIN, 38), size=theme.HEAD, bold=True
        )
        ui.button(
            "consent",
            ui.rect(MARGIN, 46, W - 2 * MARGIN, 74),
            "",
            self.toggle_consent,
            style="selected" if self.consent else "secondary",
        )
        fg = (255, 255, 255) if self.consent else theme.TEXT
        ui.icon("box_checked" if self.consent else "box", ui.rect(MARGIN + 12, 63, 40, 40), fg)
        ui.text(
            ui.t("save.consent"),
            ui.rect(MARGIN + 64, 50, W - 2 * MARGIN - 76, 66),
            size=theme.BODY,
            min_size=theme.MIN,
            color=fg,
            valign="middle",
        )

        ui.text(
            ui.t("save.ref"),
            ui.rect(MARGIN, 126, W - 2 * MARGIN, 28),
            size=theme.SMALL,
            color=theme.MUTED,
        )
        shown = self.patient_ref or ui.t("save.ref_hint")
        ui.button(
            "patient_ref", ui.rect(MARGIN, 154, W - 2 * MARGIN, 52), "", self.edit_ref, style="key"
        )
        ui.text(
            shown,
            ui.rect(MARGIN + 14, 158, W - 2 * MARGIN - 28, 44),
            size=theme.BODY,
            color=theme.TEXT if self.patient_ref else theme.MUTED,
            valign="middle",
        )

        ui.text(
            ui.t("save.site"),
            ui.rect(MARGIN, 210, W - 2 * MARGIN, 28),
            size=theme.SMALL,
            color=theme.MUTED,
        )
        gap = 6
        w = (W - 2 * MARGIN - gap * (SITE_COLUMNS - 1)) / SITE_COLUMNS
        for i, site in enumerate(BODY_SITES):
            row, col = divmod(i, SITE_COLUMNS)
            chosen = site == self.body_site
            ui.button(
                f"site:{site}",
                ui.rect(MARGIN + col * (w + gap), 238 + row * 60, w, 54),
                ui.t(f"site.{site}"),
                lambda site=site: self.choose_site(site),
                style="selected" if chosen else "secondary",
                icon="check" if chosen else None,
                size=theme.SMALL,
            )

        buttons_y = ui.H - 66 - MARGIN
        if self.error:
            ui.icon("warning", ui.rect(MARGIN, 362, 28, 28), theme.DANGER)
            ui.text(
                self.error,
                ui.rect(MARGIN + 36, 358, W - 2 * MARGIN - 36, buttons_y - 358 - 4),
                size=theme.SMALL,
                min_size=theme.MIN,
                color=theme.DANGER,
                bold=True,
            )
        half = (W - 3 * MARGIN) / 2
        ui.button(
            "cancel",
            ui.rect(MARGIN, buttons_y, half, 66),
            ui.t("save.cancel"),
            lambda: self.app.go("report"),
            icon="back",
            enabled=not self.saving,
        )
        ui.button(
            "save",
            ui.rect(2 * MARGIN + half, buttons_y, half, 66),
            ui.t("save.saving" if self.saving else "save.save"),
            self.save,
            style="primary",
            icon="check",
            enabled=not self.saving,
        )
