"""Cases and connection: whether sending works, what waits to be sent, the last sync, and the
cases with their code and urgency.

The waiting count comes from the case store, read with the list it sits beside, so a case saved
a moment ago shows as waiting at once (the sync worker's own count is from its last pass). A
kiosk with sending not set up says so in those words: "Offline" would send the health worker
looking for a network that would not help (kiosk.ui.sync_view).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kiosk.cases.case_code import case_code
from kiosk.model.conditions import Urgency
from kiosk.ui import theme
from kiosk.ui.screens.base import MARGIN, Screen, when
from kiosk.ui.sync_view import Link, SyncView, sync_view

if TYPE_CHECKING:
    from kiosk.cases.store import Case
    from kiosk.cases.sync_status import SyncStatus
    from kiosk.ui.canvas import Ui

STATUS_W = 290  # design units: the connection panel
ROW_H = 70
REFRESH_S = 2.0
NOTE_S = 4.0  # how long "Sync requested" (or a refused tap's flash) stays
STRIPE_W = 8
_LINK_LOOK = {  # icon, colour, header key
    Link.ONLINE: ("online", theme.OK, "queue.online"),
    Link.OFFLINE: ("offline", theme.DANGER, "queue.offline"),
    Link.NOT_SET_UP: ("gear", theme.WARN, "queue.not_set_up"),
}
# Never a tick beside a case: "Reviewed ✓" next to a possible melanoma read as an all-clear.
_STATUS_LOOK = {
    "saved": ("clock", theme.WARN),
    "uploaded": ("online", theme.MUTED),
    "classified": ("online", theme.MUTED),
    "reviewed": ("review", theme.TEXT),
}


def case_urgency(case: Case) -> Urgency | None:
    """What the row marks: urgent when the kiosk or the specialist said so, else soon, else
    nothing (a specialist naming a possible cancer outranks a milder kiosk result)."""
    if case.review is not None and case.review.urgent:
        return Urgency.URGENT
    try:
        urgency = Urgency(case.on_device.urgency)
    except ValueError:
        return None
    return urgency if urgency in (Urgency.URGENT, Urgency.SOON) else None


class QueueScreen(Screen):
    name = "queue"
    tab = "cases"

    def __init__(self, app) -> None:
        super().__init__(app)
        self.cases: list[Case] = []
        self.waiting = 0
        self.full_waiting = 0  # sent cases whose full picture still follows its compact copy
        self.status: SyncStatus | None = None
        self.highlight = ""
        self.asked_at: float | None = None
        self.refused_at: float | None = None
        self._read_at: float | None = None

    def enter(self, **options: object) -> None:
        self.highlight = str(options.get("highlight", ""))
        self._read_at = None
        self.asked_at = self.refused_at = None
        self.app.refresh_counts()  # the tab badge and this screen say the same number

    def update(self) -> None:
        self.status = self.app.services.sync_status()
        now = self.app.clock()
        if self._read_at is None or now - self._read_at >= REFRESH_S:
            store = self.app.services.store
            self.cases = store.list_cases(limit=20)
            # From the store like the waiting count (the sync worker only knows its last
            # pass), and only here: no other screen shows it.
            self.full_waiting = store.full_upload_backlog()[0]
            self._read_at = now
        self.waiting = self.app.counts().waiting  # the tab badge's count: one query for both

    def view(self) -> SyncView:
        status = self.status or self.app.services.sync_status()
        return sync_view(self.app.config, status, self.waiting, self.full_waiting)

    def sync_now(self) -> None:
        request = self.app.services.request_sync
        self.app.tasks.submit(request)  # may touch the network: never on the UI thread
        # Said in the panel, next to the button (a toast there covered the button).
        self.asked_at = self.app.clock()

    def _sync_refused(self) -> None:
        self.refused_at = self.app.clock()  # the setup line flashes: why the button is grey

    def _recent(self, at: float | None) -> bool:
        return at is not None and self.app.clock() - at < NOTE_S

    def draw(self, ui: Ui) -> None:
        if self._read_at is None:
            self.update()  # drawn before the first update (screenshots): read the store now
        status = self.status or self.app.services.sync_status()
        bottom = self.content_height(ui) - MARGIN
        self._draw_status(ui, status, self.view(), bottom)
        self._draw_cases(ui, MARGIN * 2 + STATUS_W + 4, bottom)

    def _draw_status(self, ui: Ui, status: SyncStatus, view: SyncView, bottom: float) -> None:
        x, w = MARGIN, STATUS_W
        ui.fill(ui.rect(x, MARGIN, w, bottom - MARGIN), theme.PANEL, radius=8)
        x, w = x + 12, w - 24
        icon, colour, header = _LINK_LOOK[view.link]
        ui.icon(icon, ui.rect(x, 22, 50, 50), colour)
        ui.text(
            ui.t(header),
            ui.rect(x + 60, 22, w - 60, 50),
            size=theme.TITLE,
            min_size=theme.HEAD,
            bold=True,
            valign="middle",
        )
        y = 84
        if view.waiting:
            line = ui.t("queue.waiting", n=view.waiting)
        elif view.link is Link.NOT_SET_UP or status.last_sync is None:
            line = ui.t("queue.nothing_waiting")  # nothing was ever sent: not "everything is"
        elif view.full_waiting:
            # The cases are in the cloud (compact copies); their full pictures follow (said
            # below, where the progress goes).
            line = ui.t("queue.cases_sent")
        else:
            line = ui.t("queue.all_sent")
        ui.text(line, ui.rect(x, y, w, 32), size=theme.BODY, min_size=theme.SMALL, bold=True)
        y += 38
        last = (
            ui.t("queue.last_sync", when=when(status.last_sync))
            if status.last_sync
            else ui.t("queue.never")
        )
        ui.text(last, ui.rect(x, y, w, 56), size=theme.SMALL)
        y += 60
        if view.link is not Link.NOT_SET_UP:
            if self._recent(self.asked_at) and not status.syncing:
                ui.icon("sync", ui.rect(x, y + 2, 24, 24), theme.PRIMARY)
                ui.text(
                    ui.t("queue.sync_asked"),
                    ui.rect(x + 30, y, w - 30, 30),
                    size=theme.SMALL,
                    bold=True,
                )
            elif status.syncing and status.total_this_pass:
                done, total = status.done_this_pass, status.total_this_pass
                ui.bar(ui.rect(x, y, w, 20), done / total, theme.OK)
                ui.text(
                    ui.t("queue.syncing", done=done, total=total),
                    ui.rect(x, y + 24, w, 30),
                    size=theme.SMALL,
                )
            elif view.unstable_sent is not None:  # a flapping link: say so, and what got through
                ui.text(
                    ui.t("queue.link_unstable", n=view.unstable_sent),
                    ui.rect(x, y, w, 54),
                    size=theme.SMALL,
                    min_size=theme.MIN,
                )
            elif view.full_waiting:
                ui.text(
                    ui.t("queue.full_waiting", n=view.full_waiting),
                    ui.rect(x, y, w, 54),
                    size=theme.SMALL,
                    min_size=theme.MIN,
                )
            elif view.link is Link.OFFLINE and status.next_attempt_in_s is not None:
                ui.text(
                    ui.t("queue.next_try", s=round(status.next_attempt_in_s)),
                    ui.rect(x, y, w, 30),
                    size=theme.SMALL,
                )
            y += 58
        # In the user's words and language; the technical line (last_error) is for the logs,
        # `kiosk status` and the fleet.
        if view.problem_key is not None:
            not_set_up = view.link is Link.NOT_SET_UP
            ui.text(
                ui.t(view.problem_key),
                ui.rect(x, y, w, bottom - 86 - y),
                size=theme.BODY if not_set_up else theme.SMALL,
                min_size=theme.MIN,
                color=theme.DANGER
                if not_set_up and self._recent(self.refused_at)
                else theme.TEXT
                if not_set_up
                else theme.MUTED,
                bold=not_set_up,
            )
        ui.button(
            "sync_now",
            ui.rect(x, bottom - 74, w, 62),
            ui.t("queue.sync_now"),
            self.sync_now,
            style="primary",
            icon="sync",
            enabled=view.can_sync,
            refused=self._sync_refused,
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
        """Two columns: [urgency] code · reference over the result; the status over the time."""
        ui.fill(ui.rect(x, y, w, ROW_H), theme.PANEL, radius=6)
        urgency = case_urgency(case)
        left = x + 10
        if urgency is not None:
            # Colour, a sign and a word: never colour alone.
            style = theme.URGENCY_STYLES[urgency]
            ui.fill(ui.rect(x, y, STRIPE_W, ROW_H), style.background, radius=3)
            left = x + STRIPE_W + 8
        if case.case_id == self.highlight:
            ui.fill(ui.rect(x, y, w, ROW_H), theme.PRIMARY, radius=6, width=ui.px(3))
        status_w = 172
        sx = x + w - status_w - 6
        text_w = sx - 8 - left
        head_x = left
        if urgency is not None:
            style = theme.URGENCY_STYLES[urgency]
            tag = ui.t(f"urgency_tag.{urgency}")
            tag_w = 30 + ui.painter.width(tag, ui.px(theme.MIN), True) / ui.layout.scale + 10
            ui.fill(ui.rect(left, y + 6, tag_w, 26), style.background, radius=5)
            ui.icon(style.icon, ui.rect(left + 4, y + 9, 20, 20), style.text)
            ui.text(
                tag,
                ui.rect(left + 27, y + 6, tag_w - 29, 26),
                size=theme.MIN,
                color=style.text,
                bold=True,
                valign="middle",
            )
            head_x = left + tag_w + 8
        head = case_code(case.case_id) + (f"  ·  {case.patient_ref}" if case.patient_ref else "")
        ui.text(
            head,
            ui.rect(head_x, y + 4, left + text_w - head_x, 30),
            size=theme.SMALL,
            min_size=theme.MIN,
            bold=True,
            valign="middle",
        )
        result = case.on_device
        title = (
            ui.advice("abstained.title") if result.abstained else ui.strings.condition(result.label)
        )
        ui.text(
            title,
            ui.rect(left, y + 36, text_w, 30),
            size=theme.SMALL,
            min_size=theme.MIN,
            valign="middle",
        )
        if case.quarantined:
            key, icon, color = "status.quarantined", "warning", theme.DANGER
        else:
            key = f"status.{case.status}"
            icon, color = _STATUS_LOOK.get(str(case.status), ("online", theme.MUTED))
        ui.icon(icon, ui.rect(sx, y + 8, 24, 24), color)
        ui.text(
            ui.t(key),
            ui.rect(sx + 30, y + 4, status_w - 30, 32),
            size=theme.SMALL,
            min_size=theme.MIN,
            valign="middle",
        )
        ui.text(
            when(case.created_at),
            ui.rect(sx, y + 38, status_w, 28),
            size=theme.MIN,
            color=theme.MUTED,
            valign="middle",
        )
