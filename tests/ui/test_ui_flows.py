"""The touchscreen UI driven by simulated touches: scan → report → save → queue, inbox and
replies, the settings PIN. The case store is the real one (SQLite in a temporary folder)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

import pygame
import pytest

from kiosk.cases.store import CaseStore
from kiosk.cases.sync_status import SyncStatus
from kiosk.config import KioskConfig
from kiosk.ui import demo, theme
from kiosk.ui.app import IDLE_LOCK_S, App, Services
from kiosk.ui.screens.settings import MAX_TRIES

SIZE = (800, 480)


@dataclass
class FakeClock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Kiosk:
    app: App
    store: CaseStore
    pipeline: demo.StaticPipeline
    clock: FakeClock
    sync_requests: list[int] = field(default_factory=list)
    cameras: list[str] = field(default_factory=list)


def _kiosk(tmp_path: Path, set_up: bool = True):
    pygame.init()
    screen = pygame.display.set_mode(SIZE)
    # Sending is set up (a key file is configured; nothing here reaches the network), unless
    # the test is about a kiosk where it is not.
    credentials = tmp_path / "service-account.json" if set_up else None
    config = KioskConfig(
        data_dir=tmp_path, kiosk_id="kiosk-test01", admin_pin="2468", credentials=credentials
    )
    store = CaseStore.open(config)
    pipeline = demo.StaticPipeline(demo.snapshot(demo.verdict_for("eczema", 0.82)))
    clock = FakeClock()
    requests: list[int] = []
    cameras: list[str] = []
    services = Services(
        pipeline,
        store,
        lambda: SyncStatus(True, False, store.queue_depth(), None),
        lambda: requests.append(1),
        "test-1",
        switch_camera=cameras.append,
    )
    app = App(services, config, screen, clock=clock)
    app.step()
    yield Kiosk(app, store, pipeline, clock, requests, cameras)
    app.tasks.close()
    store.close()
    pygame.display.quit()


@pytest.fixture
def kiosk(tmp_path: Path):
    yield from _kiosk(tmp_path)


@pytest.fixture
def kiosk_not_set_up(tmp_path: Path):
    yield from _kiosk(tmp_path, set_up=False)


def _finger(kind: int, pos: tuple[int, int]) -> pygame.event.Event:
    w, h = SIZE
    return pygame.event.Event(
        kind, x=pos[0] / w, y=pos[1] / h, dx=0.0, dy=0.0, touch_id=1, finger_id=0, pressure=1.0
    )


def tap(app: App, name: str) -> None:
    """Touch the named button of the frame on screen, through SDL's event queue."""
    pos = app.button(name).rect.center
    pygame.event.post(_finger(pygame.FINGERDOWN, pos))
    pygame.event.post(_finger(pygame.FINGERUP, pos))
    app.step(pygame.event.get())


def type_text(app: App, text: str) -> None:
    for ch in text:
        tap(app, "key:space" if ch == " " else f"key:{ch}")


def settle(app: App, until, timeout: float = 10.0) -> None:
    """Step frames until `until()` holds (background tasks finish on their own thread)."""
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, f"timed out on screen {app.screen.name}"
        time.sleep(0.01)
        app.step()


def texts(app: App) -> list[str]:
    assert app.last_ui is not None
    return [t.text for t in app.last_ui.texts]


def test_scan_report_save_queue_lands_in_the_store(kiosk: Kiosk) -> None:
    app = kiosk.app
    assert app.screen.name == "scan"
    tap(app, "capture")
    assert app.screen.name == "report"
    assert "Eczema" in texts(app)
    tap(app, "save_case")
    assert app.screen.name == "save"

    tap(app, "save")  # no consent yet: refused, nothing written
    assert app.screen.name == "save"
    assert kiosk.store.list_cases() == []
    assert app.strings.t("save.consent_needed") in texts(app)

    tap(app, "consent")
    tap(app, "patient_ref")
    assert app.modal is not None
    type_text(app, "cl 42")
    assert not app.button("key:.").enabled  # the reference takes letters, digits, '-', spaces
    tap(app, "key:done")
    assert app.modal is None
    tap(app, "site:arm")
    tap(app, "save")
    settle(app, lambda: app.screen.name == "receipt")
    tap(app, "receipt:done")
    assert app.screen.name == "queue"

    cases = kiosk.store.list_cases()
    assert len(cases) == 1
    case = cases[0]
    # References are typed in capitals whatever Shift did (they are codes, not names).
    assert (case.patient_ref, case.body_site, case.consent) == ("CL 42", "arm", True)
    assert case.on_device.label == "eczema" and case.on_device.model_version == "test-1"
    assert case.image_path is not None and case.image_path.is_file()
    assert kiosk.pipeline.resets == 1  # the next scan starts afresh
    app.step()
    assert any("CL 42" in t for t in texts(app))  # the queue lists the new case
    assert app.strings.t("queue.waiting", n=1) in texts(app)


def test_a_full_disk_is_said_plainly_and_nothing_is_saved(kiosk: Kiosk) -> None:
    app = kiosk.app
    kiosk.store.min_free_mb = 10**9  # the store's free-space guard: more than any disk has
    tap(app, "capture")
    tap(app, "save_case")
    tap(app, "consent")
    tap(app, "save")
    reason = app.strings.t("save.disk_full")
    settle(app, lambda: app.strings.t("save.failed", error=reason) in texts(app))
    assert app.screen.name == "save"  # still there: free space and press Save again
    assert kiosk.store.list_cases() == []
    assert not any("MB" in t for t in texts(app))  # the store's technical line is for the log


def test_capture_needs_a_result(kiosk: Kiosk) -> None:
    kiosk.pipeline.snap = demo.snapshot(None)
    kiosk.app.step()
    assert not kiosk.app.button("capture").enabled
    tap(kiosk.app, "capture")
    assert kiosk.app.screen.name == "scan"


def test_urgent_and_unsure_reports(kiosk: Kiosk) -> None:
    app = kiosk.app
    kiosk.pipeline.snap = demo.snapshot(demo.verdict_for("melanoma", 0.7))
    app.step()
    assert app.strings.t("scan.urgent") in texts(app)  # urgent shows before capture
    tap(app, "capture")
    shown = texts(app)
    assert app.strings.advice("urgency.urgent.title") in shown
    assert app.strings.advice("disclaimer") in shown

    tap(app, "scan_again")
    kiosk.pipeline.snap = demo.snapshot(demo.verdict_for("acne", 0.38))  # below abstain_below
    app.step()
    tap(app, "capture")
    shown = texts(app)
    assert app.strings.advice("abstained.title") in shown
    assert not any(t.startswith("Confidence") for t in shown)  # no number for an unsure result


def test_a_press_released_elsewhere_does_nothing(kiosk: Kiosk) -> None:
    app = kiosk.app
    pygame.event.post(_finger(pygame.FINGERDOWN, app.button("capture").rect.center))
    pygame.event.post(_finger(pygame.FINGERUP, (5, 5)))
    app.step(pygame.event.get())
    assert app.screen.name == "scan"


def test_touch_counts_once_and_a_real_mouse_works(kiosk: Kiosk) -> None:
    app = kiosk.app
    tap(app, "tab:settings")
    pos = app.button("pin:7").rect.center
    events = [
        _finger(pygame.FINGERDOWN, pos),
        pygame.event.Event(pygame.MOUSEBUTTONDOWN, pos=pos, button=1, touch=True),
        _finger(pygame.FINGERUP, pos),
        pygame.event.Event(pygame.MOUSEBUTTONUP, pos=pos, button=1, touch=True),
    ]
    app.step(events)
    assert app.screens["pin"].digits == "7"  # the synthesised mouse click was ignored
    mouse = [
        pygame.event.Event(pygame.MOUSEBUTTONDOWN, pos=pos, button=1, touch=False),
        pygame.event.Event(pygame.MOUSEBUTTONUP, pos=pos, button=1, touch=False),
    ]
    app.step(mouse)
    assert app.screens["pin"].digits == "77"


def test_inbox_marks_read_and_reply_is_queued(kiosk: Kiosk) -> None:
    app, store = kiosk.app, kiosk.store
    case_ids = demo.fill_store(store)
    reviewed = case_ids[1]
    assert store.unread_count() == 2
    app.refresh_counts()
    tap(app, "tab:inbox")
    assert app.screen.name == "inbox"
    items = [b for b in app.last_ui.buttons if b.name.startswith("item:")]
    assert [b.name for b in items] == ["item:0", "item:1"]
    # The melanoma review is unread and urgent: it says so and comes first; the message is new.
    assert texts(app).count(app.strings.t("inbox.urgent")) == 1
    assert texts(app).count(app.strings.t("inbox.new")) == 1
    tap(app, "item:0")
    assert app.screen.name == "thread"
    assert app.screens["thread"].case.case_id == reviewed
    assert store.unread_count() == 0
    before = len(store.messages(reviewed))
    tap(app, "reply")
    type_text(app, "ok thanks")
    tap(app, "key:done")
    messages = store.messages(reviewed)
    assert len(messages) == before + 1
    assert messages[-1].body == "ok thanks" and messages[-1].outgoing
    tap(app, "back")
    assert app.strings.t("inbox.new") not in texts(app)
    assert app.strings.t("inbox.urgent") not in texts(app)


def _inbox_tab_colour(app: App) -> tuple[int, int, int]:
    rect = app.button("tab:inbox").rect
    return tuple(app.surface.get_at((rect.left + 4, rect.centery)))[:3]


def test_an_unread_urgent_review_stays_on_top_of_newer_items(kiosk: Kiosk) -> None:
    store = kiosk.store
    case_ids = demo.fill_store(store)  # a melanoma review, then a newer message on it
    routine = case_ids[0]
    store.apply_remote(
        routine,
        "reviewed",
        None,
        {
            "label": "eczema",
            "recommendation": "Emollient twice a day.",
            "reviewer": "Dr. B",
            "reviewed_at": datetime.now(UTC).isoformat(),
        },
    )  # the newest item of all, and not urgent
    items = store.inbox()
    assert items[0].urgent and not items[0].read and items[0].case.case_id == case_ids[1]
    assert [i.at for i in items[1:]] == sorted((i.at for i in items[1:]), reverse=True)
    assert store.unread_urgent_count() == 1
    kiosk.app.refresh_counts()
    kiosk.app.step()  # on the scan screen: the Inbox tab warns, in colour and with its sign
    assert kiosk.app.counts().urgent == 1
    assert _inbox_tab_colour(kiosk.app) == theme.DANGER
    store.mark_read(case_ids[1])
    assert store.unread_urgent_count() == 0
    kiosk.app.refresh_counts()
    kiosk.app.step()
    assert _inbox_tab_colour(kiosk.app) == theme.SECONDARY
    items = store.inbox()
    assert [i.at for i in items] == sorted((i.at for i in items), reverse=True)
    assert items[0].case.case_id == routine  # read: back to newest first


def test_settings_pin_wrong_then_right(kiosk: Kiosk) -> None:
    app = kiosk.app
    tap(app, "tab:settings")
    assert app.screen.name == "pin"
    for d in "1111":
        tap(app, f"pin:{d}")
    tap(app, "pin:ok")
    assert app.screen.name == "pin"
    assert app.strings.t("pin.wrong") in texts(app)
    for d in "2468":
        tap(app, f"pin:{d}")
    tap(app, "pin:ok")
    assert app.screen.name == "settings"

    tap(app, "language:ar")
    assert app.strings.language == "ar" and app.strings.rtl
    assert kiosk.store.get_value("ui.language") == "ar"  # kept across restarts
    tap(app, "camera:demo")
    settle(app, lambda: kiosk.cameras == ["demo"])
    assert kiosk.store.get_value("ui.camera") == "demo"
    tap(app, "exit")
    assert app.running  # it asks first
    tap(app, "exit:confirm")
    assert app.running is False


def test_pin_locks_after_repeated_failures(kiosk: Kiosk) -> None:
    app = kiosk.app
    tap(app, "tab:settings")
    for _ in range(MAX_TRIES):
        tap(app, "pin:1")
        tap(app, "pin:ok")
    assert not app.button("pin:ok").enabled
    for d in "2468":
        app.screens["pin"].press(d)
    app.screens["pin"].submit()  # the right PIN is refused while locked
    assert app.screen.name == "pin"
    kiosk.clock.now += 61
    app.step()
    tap(app, "pin:ok")
    assert app.screen.name == "settings"


def test_settings_lock_when_left_alone(kiosk: Kiosk) -> None:
    app = kiosk.app
    tap(app, "tab:settings")
    for d in "2468":
        tap(app, f"pin:{d}")
    tap(app, "pin:ok")
    assert app.screen.name == "settings"
    kiosk.clock.now += IDLE_LOCK_S + 1
    app.step()
    assert app.screen.name == "scan"


def test_sync_now_asks_the_sync_service_off_the_ui_thread(kiosk: Kiosk) -> None:
    app = kiosk.app
    tap(app, "tab:cases")
    assert app.screen.name == "queue"
    tap(app, "sync_now")
    settle(app, lambda: kiosk.sync_requests == [1])


def test_tapping_the_preview_moves_the_guide_box(kiosk: Kiosk) -> None:
    app = kiosk.app
    preview = app.screens["scan"]._preview_rect
    point = (preview.left + preview.width // 4, preview.top + preview.height // 4)
    pygame.event.post(_finger(pygame.FINGERDOWN, point))
    pygame.event.post(_finger(pygame.FINGERUP, point))
    app.step(pygame.event.get())
    cx, cy = kiosk.pipeline.guide.centre
    assert cx == pytest.approx(0.25, abs=0.01) and cy == pytest.approx(0.25, abs=0.01)


def test_kiosk_run_screenshots_and_the_bench_figure(tmp_path: Path) -> None:
    from kiosk.cli.main import main
    from kiosk.ui.bench import ui_frame_ms

    assert main(["run", "--screenshots", str(tmp_path)]) == 0
    from kiosk.ui.i18n import ui_languages
    from tests.ui.test_ui_render import STATES

    assert len(list(tmp_path.glob("*/*.png"))) == len(STATES) * len(ui_languages())
    assert 0 < ui_frame_ms(frames=5) < 1000


# ---- what a health worker and a patient saw (issue 18) ---------------------------------------


def _green_pixels(app: App) -> int:
    surface = app.surface
    w, h = surface.get_size()
    return sum(
        1 for x in range(0, w, 2) for y in range(0, h, 2) if surface.get_at((x, y))[:3] == theme.OK
    )


def _save_from_scan(app: App, verdict) -> None:
    """Scan → Capture → Save case → consent ticked (the save screen is showing)."""
    app.services.pipeline.snap = demo.snapshot(verdict)
    app.step()
    tap(app, "capture")
    tap(app, "save_case")
    tap(app, "consent")


def test_a_saved_case_shows_as_waiting_at_once(kiosk: Kiosk) -> None:
    app = kiosk.app
    # The sync worker's own count is from its last pass, before this case existed.
    stale = SyncStatus(True, False, 0, datetime.now(UTC))
    app.services.sync_status = lambda: stale
    tap(app, "tab:cases")
    assert app.strings.t("queue.all_sent") in texts(app)
    tap(app, "tab:scan")
    _save_from_scan(app, demo.verdict_for("eczema", 0.82))
    tap(app, "save")
    settle(app, lambda: app.screen.name == "receipt")
    tap(app, "receipt:done")
    assert app.screen.name == "queue"
    shown = texts(app)
    assert app.strings.t("queue.waiting", n=1) in shown  # not "Everything is sent"
    assert app.strings.t("queue.all_sent") not in shown
    assert app.counts().waiting == 1  # the tab badge says the same


def test_sync_not_set_up_says_so_and_is_not_called_offline(kiosk_not_set_up: Kiosk) -> None:
    app = kiosk_not_set_up.app
    tap(app, "tab:cases")
    shown = texts(app)
    assert app.strings.t("queue.not_set_up_text") in shown
    assert app.strings.t("queue.not_set_up") in shown
    assert app.strings.t("queue.offline") not in shown
    assert not app.button("sync_now").enabled
    tap(app, "sync_now")  # greyed out: nothing is asked, the reason stays in view
    app.tasks.poll()
    assert kiosk_not_set_up.sync_requests == []
    assert app.strings.t("queue.sync_asked") not in texts(app)
    assert app.strings.t("queue.not_set_up_text") in texts(app)


def test_sync_now_is_answered_beside_the_button_not_over_it(kiosk: Kiosk) -> None:
    app = kiosk.app
    tap(app, "tab:cases")
    tap(app, "sync_now")
    settle(app, lambda: kiosk.sync_requests == [1])
    shown = [r for r in app.last_ui.texts if r.text == app.strings.t("queue.sync_asked")]
    assert shown and not shown[0].ink.colliderect(app.button("sync_now").rect)


def test_none_found_shows_no_tick_and_no_percentage(kiosk: Kiosk) -> None:
    app = kiosk.app
    kiosk.pipeline.snap = demo.snapshot(demo.verdict_for("other", 0.98))
    app.step()
    shown = texts(app)
    assert app.strings.advice("condition.other.title") in shown
    assert not any("98" in t or "%" in t for t in shown)
    assert app.strings.t("scan.none_caveat") in shown  # the caveat on the scan screen itself
    assert _green_pixels(app) == 0
    tap(app, "capture")
    assert app.screen.name == "report"
    assert not any("%" in t for t in texts(app))
    assert _green_pixels(app) == 0


def test_urgency_from_the_cancer_sum_gives_its_reason(kiosk: Kiosk) -> None:
    app = kiosk.app
    kiosk.pipeline.snap = demo.snapshot(demo.escalated_verdict())
    app.step()
    shown = texts(app)
    assert app.strings.t("scan.urgent_not_ruled_out") in shown
    assert app.strings.t("scan.urgent") not in shown
    tap(app, "capture")
    assert app.strings.t("report.not_ruled_out") in texts(app)
    from kiosk.cases.case_code import case_code

    # The report names the case by its code before it is saved.
    assert app.strings.t("report.case_code", code=case_code(app.capture.case_id)) in texts(app)


def test_an_urgent_case_without_a_reference_needs_the_code(kiosk: Kiosk) -> None:
    from kiosk.cases.case_code import case_code

    app, store = kiosk.app, kiosk.store
    _save_from_scan(app, demo.verdict_for("melanoma", 0.71))
    tap(app, "save")
    settle(app, lambda: not app.tasks.busy)
    assert app.screen.name == "save" and store.list_cases() == []  # refused, nothing written
    assert app.strings.t("save.ref_or_code") in texts(app)
    promised = app.capture.case_id  # made at capture: the code is known before saving
    assert app.strings.t("save.use_code", code=case_code(promised)) in texts(app)
    tap(app, "use_code")
    tap(app, "save")
    settle(app, lambda: app.screen.name == "receipt")
    (case,) = store.list_cases()
    assert case.case_id == promised, "the code written down is the saved case's"
    code = case_code(case.case_id)
    assert code in texts(app)
    # The only way on is to say the code was written down (no tab bar on the receipt).
    assert app.button("receipt:done").label == app.strings.t("receipt.wrote_it")
    assert not any(b.name.startswith("tab:") for b in app.last_ui.buttons)
    tap(app, "receipt:done")
    assert app.screen.name == "queue"
    assert any(code in t for t in texts(app))  # Cases lists it by its code


def _touch_nothing(app: App) -> None:
    """A touch that hits no button (the receipt's header)."""
    pygame.event.post(_finger(pygame.FINGERDOWN, (400, 30)))
    pygame.event.post(_finger(pygame.FINGERUP, (400, 30)))
    app.step(pygame.event.get())


def test_a_receipt_left_alone_goes_back_to_scan(kiosk: Kiosk) -> None:
    from kiosk.cases.case_code import case_code
    from kiosk.ui.screens.receipt import RECEIPT_IDLE_S

    app = kiosk.app
    _save_from_scan(app, demo.verdict_for("eczema", 0.82))
    tap(app, "patient_ref")
    type_text(app, "cl 9")
    tap(app, "key:done")
    tap(app, "save")
    settle(app, lambda: app.screen.name == "receipt")
    code = case_code(kiosk.store.list_cases()[0].case_id)
    kiosk.clock.now += RECEIPT_IDLE_S - 5
    _touch_nothing(app)  # a touch starts the count again
    kiosk.clock.now += RECEIPT_IDLE_S - 5
    app.step()
    assert app.screen.name == "receipt" and code in texts(app)
    kiosk.clock.now += 6
    app.step()
    # Where "Next patient" goes: a clean scan, nothing of the patient on screen.
    assert app.screen.name == "scan"
    assert app.capture is None
    assert not any(code in t or "CL 9" in t for t in texts(app))
    assert kiosk.pipeline.resets == 1  # the scan was started afresh when the case was saved
    tap(app, "tab:cases")
    assert any(code in t for t in texts(app))  # the case is there by its code


def test_an_urgent_receipt_left_alone_hides_the_code_until_shown_and_noted(
    kiosk: Kiosk,
) -> None:
    from kiosk.cases.case_code import case_code
    from kiosk.model.conditions import Urgency
    from kiosk.ui.screens.receipt import RECEIPT_IDLE_S

    app, store = kiosk.app, kiosk.store
    _save_from_scan(app, demo.verdict_for("melanoma", 0.71))
    tap(app, "use_code")
    tap(app, "save")
    settle(app, lambda: app.screen.name == "receipt")
    (case,) = store.list_cases()
    code = case_code(case.case_id)
    melanoma = app.strings.condition("melanoma")
    kiosk.clock.now += RECEIPT_IDLE_S + 1
    app.step()
    # Not left (the code must still be confirmed as written down), but nothing of the patient
    # shows: no code, no result, no urgency colour; still no tab bar to slip away through.
    assert app.screen.name == "receipt"
    shown = texts(app)
    assert not any(code in t or melanoma in t for t in shown), shown
    assert app.strings.t("receipt.hidden") in shown
    assert app.surface.get_at((5, 5))[:3] != theme.URGENCY_STYLES[Urgency.URGENT].background
    names = [b.name for b in app.last_ui.buttons]
    assert names == ["receipt:show"], names
    kiosk.clock.now += 3600  # it stays hidden, and stays, however long
    app.step()
    assert app.screen.name == "receipt" and not any(code in t for t in texts(app))
    tap(app, "receipt:show")
    assert code in texts(app)
    assert app.button("receipt:done").label == app.strings.t("receipt.wrote_it")
    tap(app, "receipt:done")  # the second tap of a double tap on "Show the code"
    assert app.screen.name == "receipt", "confirmed a code nobody had seen"
    kiosk.clock.now += RECEIPT_IDLE_S + 1  # left alone again: hidden again
    app.step()
    assert not any(code in t for t in texts(app))
    tap(app, "receipt:show")
    kiosk.clock.now += 2  # read, then confirmed
    tap(app, "receipt:done")
    assert app.screen.name == "queue"
    assert any(code in t for t in texts(app))


def test_an_urgent_case_with_a_reference_saves_without_the_code_step(kiosk: Kiosk) -> None:
    app, store = kiosk.app, kiosk.store
    _save_from_scan(app, demo.verdict_for("melanoma", 0.71))
    tap(app, "patient_ref")
    type_text(app, "m7")
    tap(app, "key:done")
    tap(app, "save")
    settle(app, lambda: app.screen.name == "receipt")
    assert store.list_cases()[0].patient_ref == "M7"
    assert app.button("receipt:done").label == app.strings.t("receipt.done")


def test_a_limb_is_saved_with_its_side_and_a_side_alone_says_why_not(kiosk: Kiosk) -> None:
    app, store = kiosk.app, kiosk.store
    _save_from_scan(app, demo.verdict_for("eczema", 0.82))
    assert not app.button("side:left").enabled
    tap(app, "side:left")  # no limb chosen: greyed out, and it says why
    assert app.strings.t("save.side_first") in texts(app)
    tap(app, "site:leg")
    tap(app, "side:right")
    tap(app, "save")
    settle(app, lambda: app.screen.name == "receipt")
    assert store.list_cases()[0].body_site == "leg_right"


def test_not_sure_makes_retake_the_main_action(kiosk: Kiosk) -> None:
    app = kiosk.app
    kiosk.pipeline.snap = demo.snapshot(demo.verdict_for("acne", 0.38))
    app.step()
    tap(app, "capture")
    shown = texts(app)
    assert app.strings.t("report.unsure_banner") in shown
    assert app.strings.advice("urgency.soon.title") not in shown  # banner and text agree
    assert app.button("scan_again").label == app.strings.t("report.retake")
    retake = app.button("scan_again").rect
    assert app.surface.get_at((retake.left + 4, retake.centery))[:3] == theme.PRIMARY
    tap(app, "scan_again")
    assert app.screen.name == "scan"


def test_the_report_picture_opens_full_screen(kiosk: Kiosk) -> None:
    app = kiosk.app
    tap(app, "capture")
    small = app.button("picture").rect
    tap(app, "picture")
    assert app.screen.name == "picture"
    big = app.button("picture:image").rect
    assert big.width * big.height > 4 * small.width * small.height
    tap(app, "picture:close")
    assert app.screen.name == "report"


def test_exit_asks_first(kiosk: Kiosk) -> None:
    app = kiosk.app
    tap(app, "tab:settings")
    for d in "2468":
        tap(app, f"pin:{d}")
    tap(app, "pin:ok")
    tap(app, "exit")
    assert app.running and app.strings.t("settings.exit_confirm") in texts(app)
    tap(app, "exit:cancel")
    assert app.running and app.button("exit").enabled  # back to the settings
    tap(app, "exit")
    tap(app, "exit:confirm")
    assert app.running is False


def test_the_language_changes_on_the_scan_screen_without_a_pin(kiosk: Kiosk) -> None:
    app = kiosk.app
    tap(app, "language")
    tap(app, "language:ar")
    assert app.strings.language == "ar" and app.screen.name == "scan"
    assert kiosk.store.get_value("ui.language") == "ar"
    assert app.button("capture").enabled


def test_shift_stays_on_until_pressed_again_and_refused_keys_say_why(kiosk: Kiosk) -> None:
    app, store = kiosk.app, kiosk.store
    case_ids = demo.fill_store(store)
    app.go("thread", case_id=case_ids[1])
    app.step()
    tap(app, "reply")
    tap(app, "key:shift")
    type_text(app, "ok")
    tap(app, "key:shift")
    type_text(app, "go")
    assert app.modal.text == "OKgo"  # caps lock: not one letter at a time
    tap(app, "key:cancel")

    tap(app, "tab:scan")
    _save_from_scan(app, demo.verdict_for("eczema", 0.82))
    tap(app, "patient_ref")
    assert "key:shift" not in {b.name for b in app.last_ui.buttons}  # capitals only
    tap(app, "key:.")
    assert app.strings.t("save.ref_chars") in texts(app)
    assert app.modal.text == ""


def test_the_pin_pad_shows_typed_digits_only(kiosk: Kiosk) -> None:
    app = kiosk.app
    tap(app, "tab:settings")
    app.step()
    empty = pygame.image.tobytes(app.surface, "RGB")
    for d in "24":
        tap(app, f"pin:{d}")
    assert pygame.image.tobytes(app.surface, "RGB") != empty
    app.screens["pin"].digits = ""
    app.step()
    assert pygame.image.tobytes(app.surface, "RGB") == empty  # nothing drawn for "expected"


def test_the_kiosk_asks_sdl_for_no_sound() -> None:
    from kiosk.ui.launch import quiet_audio

    env: dict[str, str] = {}
    quiet_audio(env)
    assert env == {"SDL_AUDIODRIVER": "dummy"}
    env = {"SDL_AUDIODRIVER": "alsa"}  # an explicit choice is kept
    quiet_audio(env)
    assert env == {"SDL_AUDIODRIVER": "alsa"}
