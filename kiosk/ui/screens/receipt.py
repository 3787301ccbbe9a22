"""Receipt: the case is saved; here is its code to write on the patient's card.

Every case gets the code (kiosk.cases.case_code): it is how the health worker finds the case again
in Cases and the Inbox, and how a specialist's call back is matched to a person. An urgent case
saved without a reference must be traceable by the code alone, so its button says "I wrote the
code down" and this screen has no tab bar to slip away through.

Left alone (RECEIPT_IDLE_S without a touch) it does not keep a patient's code and result on a
public screen. Most receipts go back to Scan, as "Next patient" does (the scan was started
afresh when the case was saved; the case is in Cases by its code). An urgent receipt still
waiting for "I wrote the code down" stays, with the code and the result hidden: leaving would
skip the one step that makes sure the patient takes the code home, so whoever comes back shows
the code again with one tap and confirms it as before. Nothing of the patient shows meanwhile.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kiosk.cases.case_code import case_code
from kiosk.cases.store import CaseNotFoundError
from kiosk.model.conditions import Urgency
from kiosk.ui import theme
from kiosk.ui.screens.base import MARGIN, Screen

if TYPE_CHECKING:
    from kiosk.cases.store import Case
    from kiosk.ui.canvas import Ui

CODE_SIZE = 64  # design units: read across a desk
RECEIPT_IDLE_S = 120.0  # untouched this long: leave (or hide the code while it must be noted)
# After "Show the code", taps on the button in its place wait this long (a double tap).
SHOW_GUARD_S = 1.0


class ReceiptScreen(Screen):
    name = "receipt"

    def __init__(self, app) -> None:
        super().__init__(app)
        self.case: Case | None = None
        self.confirm = False  # an urgent case without a reference: the code must be noted
        self.hidden = False  # left alone while the code must be noted: code and result hidden
        self._shown_at: float | None = None  # when "Show the code" brought it back

    def enter(self, **options: object) -> None:
        self.confirm = bool(options.get("confirm", False))
        self.hidden = False
        self._shown_at = None
        try:
            self.case = self.app.services.store.get(str(options["case_id"]))
        except CaseNotFoundError:
            self.case = None

    def idle(self, untouched_s: float) -> None:
        if untouched_s <= RECEIPT_IDLE_S or self.hidden:
            return
        if self.confirm:
            self.hidden = True  # the code waits for "I wrote the code down", out of sight
        else:
            self.next_patient()

    def show(self) -> None:
        self.hidden = False
        self._shown_at = self.app.clock()

    def next_patient(self) -> None:
        self.app.go("scan")

    def done(self) -> None:
        # "Show the code" sits where "I wrote the code down" appears: the second tap of a
        # double tap must not confirm a code nobody has seen.
        if self._shown_at is not None and self.app.clock() - self._shown_at < SHOW_GUARD_S:
            return
        highlight = self.case.case_id if self.case is not None else ""
        self.app.go("queue", highlight=highlight)

    def draw(self, ui: Ui) -> None:
        case = self.case
        if case is None:
            self.app.go("queue")
            return
        if self.hidden:
            self._draw_hidden(ui)
            return
        W = ui.W  # noqa: N806
        try:
            urgency = Urgency(case.on_device.urgency)
        except ValueError:
            urgency = Urgency.SOON
        style = theme.URGENCY_STYLES[urgency]
        ui.fill(ui.rect(0, 0, W, 64), style.background)
        ui.icon("save", ui.rect(MARGIN + 6, 14, 36, 36), style.text)
        result = case.on_device
        title = (
            ui.advice("abstained.title") if result.abstained else ui.strings.condition(result.label)
        )
        ui.text(
            f"{ui.t('receipt.title')} · {title}",
            ui.rect(MARGIN + 54, 6, W - 2 * MARGIN - 60, 52),
            size=theme.HEAD,
            min_size=theme.SMALL,
            color=style.text,
            bold=True,
            valign="middle",
        )
        y = 76.0
        if case.patient_ref:
            ui.text(
                ui.t("receipt.ref", ref=case.patient_ref),
                ui.rect(MARGIN, y, W - 2 * MARGIN, 32),
                size=theme.BODY,
                color=theme.MUTED,
            )
        y += 38
        box = ui.rect(MARGIN + 90, y, W - 2 * MARGIN - 180, 200)
        ui.fill(box, theme.PANEL, radius=10)
        ui.fill(box, theme.PRIMARY if not self.confirm else theme.DANGER, radius=10, width=3)
        ui.text(
            ui.t("receipt.code"),
            ui.rect(MARGIN + 110, y + 10, W - 2 * MARGIN - 220, 32),
            size=theme.BODY,
            color=theme.MUTED,
            align="center",
        )
        ui.text(
            case_code(case.case_id),
            ui.rect(MARGIN + 110, y + 42, W - 2 * MARGIN - 220, 96),
            size=CODE_SIZE,
            bold=True,
            align="center",
            valign="middle",
        )
        ui.text(
            ui.t("receipt.write_down"),
            ui.rect(MARGIN + 110, y + 140, W - 2 * MARGIN - 220, 56),
            size=theme.SMALL,
            min_size=theme.MIN,
            align="center",
        )
        bottom = ui.H - MARGIN
        if urgency in (Urgency.URGENT, Urgency.SOON):
            # What to do next stays in view while the code is written down.
            ui.icon(
                style.icon,
                ui.rect(MARGIN + 90, y + 214, 28, 28),
                theme.DANGER if urgency is Urgency.URGENT else theme.TEXT,
            )
            ui.text(
                ui.advice(f"urgency.{urgency}.title"),
                ui.rect(MARGIN + 126, y + 212, W - 2 * MARGIN - 216, bottom - 66 - 8 - y - 212),
                size=theme.SMALL,
                min_size=theme.MIN,
                bold=True,
            )
        if not self.confirm:
            ui.button(
                "receipt:scan",
                ui.rect(MARGIN, bottom - 66, 240, 66),
                ui.t("receipt.next"),
                self.next_patient,
                icon="camera",
            )
        w = 340 if self.confirm else 240
        ui.button(
            "receipt:done",
            ui.rect(W - MARGIN - w, bottom - 66, w, 66),
            ui.t("receipt.wrote_it" if self.confirm else "receipt.done"),
            self.done,
            style="primary",
            icon="box_checked" if self.confirm else "list",
        )

    def _draw_hidden(self, ui: Ui) -> None:
        """The receipt left alone before the code was noted: no code, no result, no urgency
        colour; one button shows it all again."""
        W = ui.W  # noqa: N806
        ui.fill(ui.rect(0, 0, W, 64), theme.PANEL)
        ui.fill(ui.rect(0, 63, W, 1), theme.LINE)
        ui.icon("lock", ui.rect(MARGIN + 6, 14, 36, 36), theme.TEXT)
        ui.text(
            ui.t("receipt.title"),
            ui.rect(MARGIN + 54, 6, W - 2 * MARGIN - 60, 52),
            size=theme.HEAD,
            min_size=theme.SMALL,
            bold=True,
            valign="middle",
        )
        box = ui.rect(MARGIN + 90, 114, W - 2 * MARGIN - 180, 200)
        ui.fill(box, theme.PANEL, radius=10)
        ui.fill(box, theme.LINE, radius=10, width=3)
        icon = ui.rect(0, 0, 56, 56)
        icon.center = (box.centerx, box.top + ui.px(46))
        ui.icon("lock", icon, theme.MUTED)
        ui.text(
            ui.t("receipt.hidden"),
            ui.rect(MARGIN + 110, 114 + 84, W - 2 * MARGIN - 220, 108),
            size=theme.BODY,
            min_size=theme.MIN,
            align="center",
        )
        w = 340
        ui.button(
            "receipt:show",
            ui.rect(W - MARGIN - w, ui.H - MARGIN - 66, w, 66),
            ui.t("receipt.show"),
            self.show,
            style="primary",
            icon="review",
        )
