"""Save case: consent, a pseudonymous patient reference, the body site (with a side for limbs).

The case is written on the task thread (JPEG encoding and an fsync take tens of milliseconds on
a Pi); the screen shows "Saving…" meanwhile and moves to the receipt, with the case code, when
it is done. A failure is said in the user's language (a full disk by name); the store's own
wording goes to the log. An urgent case must be traceable to the patient: it needs either a
reference or the choice to use the case code, which the receipt then asks to be written down.
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from typing import TYPE_CHECKING

from kiosk.cases.case_code import case_code
from kiosk.cases.store import MAX_PATIENT_REF, DiskFullError, OnDeviceResult
from kiosk.model.conditions import Urgency
from kiosk.ui import theme
from kiosk.ui.body_sites import PLAIN_SITES, SIDES, has_sides, stored_site
from kiosk.ui.keyboard import Keyboard
from kiosk.ui.screens.base import MARGIN, Screen

if TYPE_CHECKING:
    from kiosk.cases.store import Case
    from kiosk.ui.canvas import Ui

log = logging.getLogger(__name__)

SITE_COLUMNS = 6
GAP = 12  # design units between glove-sized keys
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
        self.body_site = ""  # a plain site ("arm"); the side is kept apart until saving
        self.side = ""
        self.use_code = False  # no reference: the case code is written on the patient's card
        self._confirm_code = False
        self.saving = False
        self.error = ""

    @property
    def urgent(self) -> bool:
        capture = self.app.capture
        decision = capture.verdict.decision if capture is not None else None
        return decision is not None and Urgency(decision.urgency) is Urgency.URGENT

    # ---- actions --------------------------------------------------------------------------

    def toggle_consent(self) -> None:
        self.consent = not self.consent
        self.error = ""

    def edit_ref(self) -> None:
        def done(text: str) -> None:
            self.patient_ref = " ".join(text.split()).upper()
            if self.patient_ref:
                self.error = ""
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
                upper=True,  # references are codes: one case, whatever Shift did
                refusal=self.app.strings.t("save.ref_chars"),
            )
        )

    def choose_site(self, site: str) -> None:
        self.body_site = "" if self.body_site == site else site
        if not has_sides(self.body_site):
            self.side = ""

    def choose_side(self, side: str) -> None:
        if has_sides(self.body_site):
            self.side = "" if self.side == side else side

    def toggle_code(self) -> None:
        self.use_code = not self.use_code
        self.error = ""

    def save(self) -> None:
        capture = self.app.capture
        if capture is None or capture.verdict.decision is None or self.saving:
            return
        if not self.consent:
            self.error = self.app.strings.t("save.consent_needed")
            return
        if self.urgent and not self.patient_ref and not self.use_code:
            self.error = self.app.strings.t("save.ref_or_code")
            return
        services = self.app.services
        provenance = capture.provenance  # how the picture was taken, stored with the case
        # The model that made this verdict, even if a new release arrived since the capture.
        version = (provenance.model_version if provenance else "") or services.model_version
        if provenance is not None and not provenance.model_version:
            provenance = replace(provenance, model_version=version)
        on_device = OnDeviceResult.from_decision(capture.verdict.decision, version)
        image, ref, case_id = capture.image, self.patient_ref, capture.case_id
        site = stored_site(self.body_site, self.side)
        self._confirm_code = self.urgent and not ref
        self.saving = True
        self.error = ""
        self.app.tasks.submit(
            lambda: services.store.save_case(
                image,
                on_device,
                ref,
                site,
                consent=True,
                provenance=provenance,
                case_id=case_id,
            ),
            on_done=self._saved,
            on_error=self.show_failure,
        )

    def _saved(self, case: Case) -> None:
        self.saving = False
        self.app.services.pipeline.reset()  # the next person starts from a clean scan
        self.app.refresh_counts()
        self.app.go("receipt", case_id=case.case_id, confirm=self._confirm_code)

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
            ui.t("save.title"), ui.rect(MARGIN, 6, W - 2 * MARGIN, 34), size=theme.HEAD, bold=True
        )
        ui.button(
            "consent",
            ui.rect(MARGIN, 44, W - 2 * MARGIN, 68),
            "",
            self.toggle_consent,
            style="selected" if self.consent else "secondary",
        )
        fg = (255, 255, 255) if self.consent else theme.TEXT
        ui.icon("box_checked" if self.consent else "box", ui.rect(MARGIN + 12, 58, 40, 40), fg)
        ui.text(
            ui.t("save.consent"),
            ui.rect(MARGIN + 64, 48, W - 2 * MARGIN - 76, 60),
            size=theme.BODY,
            min_size=theme.MIN,
            color=fg,
            valign="middle",
        )
        self._draw_ref(ui, 116)
        self._draw_sites(ui, 212)
        self._draw_buttons(ui)

    def _draw_ref(self, ui: Ui, y: float) -> None:
        W = ui.W  # noqa: N806
        urgent = self.urgent
        capture_id = self.app.capture.case_id if self.app.capture is not None else ""
        ui.text(
            ui.t("save.ref_urgent" if urgent else "save.ref"),
            ui.rect(MARGIN, y, W - 2 * MARGIN, 28),
            size=theme.SMALL,
            min_size=theme.MIN,
            color=theme.DANGER if urgent and not self.patient_ref else theme.MUTED,
            bold=urgent,
        )
        y += 28
        code_w = 310 if urgent else 0
        field_w = W - 2 * MARGIN - (code_w + GAP if code_w else 0)
        shown = self.patient_ref or ui.t("save.ref_hint")
        ui.button("patient_ref", ui.rect(MARGIN, y, field_w, 60), "", self.edit_ref, style="key")
        ui.text(
            shown,
            ui.rect(MARGIN + 14, y + 4, field_w - 28, 52),
            size=theme.BODY,
            min_size=theme.MIN,
            color=theme.TEXT if self.patient_ref else theme.MUTED,
            valign="middle",
        )
        if not urgent:
            return
        x = MARGIN + field_w + GAP
        ui.button(
            "use_code",
            ui.rect(x, y, code_w, 60),
            "",
            self.toggle_code,
            style="selected" if self.use_code else "secondary",
        )
        fg = (255, 255, 255) if self.use_code else theme.TEXT
        ui.icon("box_checked" if self.use_code else "box", ui.rect(x + 10, y + 14, 32, 32), fg)
        ui.text(
            ui.t("save.use_code", code=case_code(capture_id)) if capture_id else "",
            ui.rect(x + 50, y + 4, code_w - 60, 52),
            size=theme.SMALL,
            min_size=theme.MIN,
            color=fg,
            bold=True,
            valign="middle",
        )

    def _draw_sites(self, ui: Ui, y: float) -> None:
        W = ui.W  # noqa: N806
        side_w = 120
        sides_x = W - MARGIN - 2 * side_w - GAP
        ui.text(
            ui.t("save.site"),
            ui.rect(MARGIN, y, sides_x - 110 - MARGIN, 52),
            size=theme.SMALL,
            color=theme.MUTED,
            valign="middle",
        )
        # Left/Right belong to limbs: greyed out (and saying so when tapped) for other sites.
        ui.text(
            ui.t("save.side"),
            ui.rect(sides_x - 100, y, 92, 52),
            size=theme.SMALL,
            min_size=theme.MIN,
            color=theme.MUTED,
            align="end",
            valign="middle",
        )
        sided = has_sides(self.body_site)
        for i, side in enumerate(SIDES):
            chosen = sided and side == self.side
            ui.button(
                f"side:{side}",
                ui.rect(sides_x + i * (side_w + GAP), y, side_w, 52),
                ui.t(f"side.{side}"),
                lambda side=side: self.choose_side(side),
                style="selected" if chosen else "secondary",
                icon="check" if chosen else None,
                size=theme.SMALL,
                enabled=sided,
                refused=lambda: setattr(self, "error", self.app.strings.t("save.side_first")),
            )
        top = y + 60
        w = (W - 2 * MARGIN - GAP * (SITE_COLUMNS - 1)) / SITE_COLUMNS
        for i, site in enumerate(PLAIN_SITES):
            row, col = divmod(i, SITE_COLUMNS)
            chosen = site == self.body_site
            rect = ui.rect(MARGIN + col * (w + GAP), top + row * (52 + GAP), w, 52)
            ui.button(
                f"site:{site}",
                rect,
                ui.t(f"site.{site}"),
                lambda site=site: self.choose_site(site),
                style="selected" if chosen else "secondary",
                size=theme.SMALL,
            )
            if chosen:  # a small tick in the corner: "Cuir chevelu" needs the whole width
                tick = ui.rect(0, 0, 18, 18)
                tick.top = rect.top + ui.px(3)
                if ui.rtl:
                    tick.left = rect.left + ui.px(4)
                else:
                    tick.right = rect.right - ui.px(4)
                ui.icon("check", tick, (255, 255, 255))

    def _draw_buttons(self, ui: Ui) -> None:
        W = ui.W  # noqa: N806
        buttons_y = ui.H - 66 - MARGIN
        cancel_w, save_w = 170, 210
        if self.error:
            # Between the two buttons, next to the Save that was refused.
            x = MARGIN + cancel_w + GAP
            w = W - 2 * MARGIN - cancel_w - save_w - 2 * GAP
            ui.icon("warning", ui.rect(x, buttons_y + 19, 28, 28), theme.DANGER)
            ui.text(
                self.error,
                ui.rect(x + 34, buttons_y - 2, w - 34, 70),
                size=theme.SMALL,
                min_size=theme.MIN,
                color=theme.DANGER,
                bold=True,
                valign="middle",
            )
        ui.button(
            "cancel",
            ui.rect(MARGIN, buttons_y, cancel_w, 66),
            ui.t("save.cancel"),
            lambda: self.app.go("report"),
            icon="back",
            enabled=not self.saving,
        )
        ui.button(
            "save",
            ui.rect(W - MARGIN - save_w, buttons_y, save_w, 66),
            ui.t("save.saving" if self.saving else "save.save"),
            self.save,
            style="primary",
            icon="save",
            enabled=not self.saving,
        )
