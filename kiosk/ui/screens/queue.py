"""Cases and connection: online or not, what waits to be sent, the last sync, progress."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kiosk.cases.sync_status import SyncProblem
from kiosk.ui import theme
from kiosk.ui.screens.base import MARGIN, Screen, when

if TYPE_CHECKING:
    from kiosk.cases.store import Case
    from kiosk.cases.sync_status import SyncStatus
    from kiosk.ui.canvas import Ui

STATUS_W = 290  # design units: the connection panel
ROW_H = 62
REFRESH_S = 2.0


class QueueScreen(Screen):
    name = "queue"
    tab = "cases"

    def __init__(self, app) -> None:
        super().__init__(app)
        self.cases: list[Case] = []
        self.status: SyncStatus | None = None
        self.highlight = ""
        self._read_at: float | None = None

    def enter(self, **options: object) -> None:
        self.highlight = str(options.get("highlight", ""))
        self._read_at = None

    def update(self) -> None:
        self.status = self.app.services.sync_status()
        now = self.app.clock()
        if self._read_at is None or now - self._read_at >= REFRESH_S:
            self.cases = self.app.services.store.list_cases(limit=20)
            self._read_at = now

    def sync_now(self) -> None:
        request = self.app.services.request_sync
        self.app.tasks.submit(request)  # may touch the network: never on the UI thread
        self.app.notify(self.app.strings.t("queue.sync_asked"))

    def draw(self, ui: Ui) -> None:
        status = self.status or self.app.services.sync_status()
        bottom = self.content_height(ui) - MARGIN
        self._draw_status(ui, status, bottom)
        self._draw_cases(ui, MARGIN * 2 + STATUS_W + 4, bottom)

    def _draw_status(self, ui: Ui, status: SyncStatus, bottom: float) -> None:
        x, w = MARGIN, STATUS_W
        ui.fill(ui.rect(x, MARGIN, w, bottom - MARGIN), theme.PANEL, radius=8)
        x, w = x + 12, w - 24
        online = status.online
        ui.icon(
            "online" if online else "offline",
            ui.rect(x, 22, 50, 50),
            theme.OK if online else theme.DANGER,
        )
        ui.text(
            ui.t("queue.online" if online else "queue.offline"),
            ui.rect(x + 60, 22, w - 60, 50),
            size=theme.TITLE,
            min_size=theme.HEAD,
            bold=True,
            valign="middle",
        )
        y = 84
        waiting = status.pending
        line = ui.t("queue.waiting", n=waiting) if waiting else ui.t("queue.all_sent")
        ui.text(line, ui.rect(x, y, w, 32), size=theme.BODY, bold=True)
        y += 38
        last = (
            ui.t("queue.last_sync", when=when(status.last_sync))
            if status.last_sync
            else ui.t("queue.never")
        )
        ui.text(last, ui.rect(x, y, w, 56), size=theme.SMALL)
        y += 60
        if status.syncing and status.total_this_pass:
            ui.bar(ui.rect(x, y, w, 20), status.done_this_pass / status.total_this_pass, theme.OK)
            ui.text(
                ui.t("queue.syncing", done=status.done_this_pass, total=status.total_this_pass),
                ui.rect(x, y + 24, w, 30),
                size=theme.SMALL,
            )
        elif not online and status.next_attempt_in_s is not None:
            ui.text(
                ui.t("queue.next_try", s=round(status.next_attempt_in_s)),
                ui.rect(x, y, w, 30),
                size=theme.SMALL,
            )
        y += 58
        # In the user's words and language; the technical line (last_error) is for the logs,
        # `kiosk status` and the fleet. A rejected model update is the fleet's business only.
        if status.problem is not None and status.problem is not SyncProblem.MODEL_REJECTED:
            ui.text(
                ui.t(f"sync_problem.{status.problem}"),
                ui.rect(x, y, w, bottom - 80 - y),
                size=theme.SMALL,
                min_size=theme.MIN,
                color=theme.MUTED,
            )
        ui.button(
            "sync_now",
            ui.rect(x, bottom - 74, w, 62),
            ui.t("queue.sync_now"),
            self.sync_now,
            style="primary",
            icon="sync",
            enabled=not status.syncing,
        )

    def _draw_cases(self, ui: Ui, x: float, bottom: float) -> None:
        w = ui.W - x - MARGIN
        ui.text(ui.t("queue.title"), ui.rect(x, MARGIN, w, 34), size=theme.HEAD, bold=True)
        y = MARGIN + 40
        if not self.cases:
            ui.text(ui.t("queue.empty"), ui.rect(x, y, w, 40), size=theme.BODY, color=theme.MUTED)
            return
        fits = max(1, int((bottom - y - 30) // (ROW_H + 6)))
        for case in self.cases[:fits]:
            self._draw_case(ui, case, x, y, w)
            y += ROW_H + 6
        if len(self.cases) > fits:
            more = len(self.cases) - fits
            ui.text(
                ui.t("queue.more", n=more),
                ui.rect(x, y, w, 28),
                size=theme.SMALL,
                color=theme.MUTED,
            )

    def _draw_case(self, ui: Ui, case: Case, x: float, y: float, w: float) -> None:
        ui.fill(ui.rect(x, y, w, ROW_H), theme.PANEL, radius=6)
        if case.case_id == self.highlight:
            ui.fill(ui.rect(x, y, w, ROW_H), theme.PRIMARY, radius=6, width=ui.px(3))
        result = case.on_device
        title = (
            ui.advice("abstained.title") if result.abstained else ui.strings.condition(result.label)
        )
        first = when(case.created_at) + (f"  ·  {case.patient_ref}" if case.patient_ref else "")
        ui.text(first, ui.rect(x + 10, y + 4, w * 0.55, 26), size=theme.SMALL, color=theme.MUTED)
        ui.text(title, ui.rect(x + 10, y + 30, w * 0.55, 28), size=theme.SMALL, bold=True)
        if case.quarantined:
            key, icon, color = "status.quarantined", "warning", theme.DANGER
        elif case.status == "saved":
            key, icon, color = "status.saved", "clock", theme.WARN
        else:
            key, icon, color = f"status.{case.status}", "check", theme.OK
        sx = x + w * 0.58
        ui.icon(icon, ui.rect(sx, y + 17, 28, 28), color)
        ui.text(
            ui.t(key),
            ui.rect(sx + 34, y + 4, w * 0.42 - 44, ROW_H - 8),
            size=theme.SMALL,
            valign="middle",
        )
