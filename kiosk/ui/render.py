"""Every screen in every language, drawn offscreen and saved as PNG (for people and tests).

`render_all_screens(out_dir)` builds the real App on made-up data (kiosk.ui.demo, a case store
in a temporary folder), walks it through each screen state and saves
`<out_dir>/<language>/<state>.png`. It returns what each frame drew, so tests can check text
overflow, touch target sizes and mirroring on exactly the pictures a person looks at.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pygame

from kiosk.cases.store import CaseStore, DiskFullError
from kiosk.cases.sync_status import SyncProblem, SyncStatus
from kiosk.config import KioskConfig
from kiosk.live.vision import PictureKind
from kiosk.ui import demo
from kiosk.ui.app import App, Services
from kiosk.ui.canvas import Button
from kiosk.ui.capture import capture_from
from kiosk.ui.i18n import ui_languages
from kiosk.ui.launch import quiet_audio
from kiosk.ui.text import TextPainter, TextRecord


@dataclass(frozen=True)
class RenderedScreen:
    language: str
    state: str
    screen: str  # the App screen's name
    path: Path
    size: tuple[int, int]
    rtl: bool
    texts: tuple[TextRecord, ...]
    buttons: tuple[Button, ...]


@dataclass
class _Sync:
    status: SyncStatus

    def __call__(self) -> SyncStatus:
        return self.status


def _states(
    app: App,
    pipeline: demo.StaticPipeline,
    sync: _Sync,
    case_ids: Sequence[str],
    config: KioskConfig,
) -> dict[str, Callable[[], None]]:
    now = datetime.now(UTC)

    def scan(verdict, **kw) -> Callable[[], None]:
        def enter() -> None:
            pipeline.snap = demo.snapshot(verdict, **kw)
            app.go("scan")

        return enter

    def report(
        verdict, hints: tuple[str, ...] = (), source_kind: str = "picamera2"
    ) -> Callable[[], None]:
        def enter() -> None:
            app.go("scan")
            # The demo clip runs with the lens mode "off": the model reads its centre square.
            kind = None if source_kind == "demo" else PictureKind.CLINICAL
            pipeline.snap = demo.snapshot(
                verdict, hints=hints, source_kind=source_kind, picture_kind=kind
            )
            app.capture = capture_from(pipeline.snap)  # as the Capture button takes it
            app.go("report")

        return enter

    def save() -> None:
        report(demo.verdict_for("eczema", 0.82))()
        app.go("save")
        screen = app.screens["save"]
        screen.consent, screen.patient_ref, screen.body_site = True, "CL-0412", "arm"
        screen.side = "left"

    def save_urgent(use_code: bool) -> Callable[[], None]:
        def enter() -> None:
            report(demo.verdict_for("melanoma", 0.71))()
            app.go("save")
            screen = app.screens["save"]
            screen.consent, screen.body_site, screen.use_code = True, "back", use_code
            if not use_code:
                screen.save()  # refused: an urgent case needs a reference or the code

        return enter

    def receipt(confirm: bool) -> Callable[[], None]:
        def enter() -> None:
            app.go("receipt", case_id=case_ids[1 if confirm else 0], confirm=confirm)

        return enter

    def receipt_hidden() -> None:
        receipt(confirm=True)()
        app.screens["receipt"].hidden = True  # left alone before the code was noted

    def picture() -> None:
        report(demo.verdict_for("melanoma", 0.71))()
        app.step()  # the report draws its picture, which the full-screen view then shows
        app.screens["report"].enlarge()

    def keyboard_refused() -> None:
        keyboard()
        assert app.modal is not None
        app.step()  # the keys exist once drawn
        app.modal.refuse(".", app.last_ui)

    def not_set_up() -> None:
        queue(SyncStatus.offline(1), set_up=False)()

    def sync_asked() -> None:
        queue(SyncStatus(True, False, 1, now - timedelta(minutes=3)))()
        app.step()
        app.screens["queue"].sync_now()

    def scan_language() -> None:
        scan(demo.verdict_for("eczema", 0.82))()
        app.screens["scan"].languages.open = True

    def settings_exit() -> None:
        app.go("settings")
        app.screens["settings"].exit()

    def pin_typing() -> None:
        app.go("pin")
        app.screens["pin"].digits = "246813"

    def save_disk_full() -> None:
        save()
        app.screens["save"].show_failure(DiskFullError("Storage is almost full"))

    def keyboard() -> None:
        save()
        app.screens["save"].edit_ref()

    def queue(status: SyncStatus, set_up: bool = True) -> Callable[[], None]:
        def enter() -> None:
            sync.status = status
            # Sending set up (a key file configured), or not set up at all.
            app.config = config if set_up else replace(config, credentials=None)
            app.go("queue")

        return enter

    def queue_full_pictures() -> None:
        # Everything sent but the full pictures that follow their compact copies (last in the
        # table: it marks the demo store's cases sent).
        store = app.services.store
        pending = [c.case_id for c in store.pending_uploads()]
        store.mark_uploaded_many(pending, full_waiting=pending)
        for message in store.pending_messages():
            store.mark_message_sent(message.message_id)
        app.refresh_counts()
        queue(SyncStatus(True, True, 0, now - timedelta(minutes=2)))()

    def pin_wrong() -> None:
        app.go("pin")
        pin = app.screens["pin"]
        pin.digits = "1111"
        pin.submit()
        pin.digits = "12"

    return {
        "scan": scan(demo.verdict_for("eczema", 0.82)),
        "scan_hint": scan(
            replace(demo.verdict_for("eczema", 0.6, stable=False), quality=("blurry",))
        ),
        "scan_urgent": scan(demo.verdict_for("melanoma", 0.66, stable=False)),
        "scan_no_camera": scan(None, source=demo.LOST),
        "scan_hold_still": scan(demo.verdict_for("eczema", 0.6, stable=False), evidence=False),
        "scan_demo": scan(demo.verdict_for("acne", 0.8), source_kind="demo", picture_kind=None),
        "report_demo": report(demo.verdict_for("acne", 0.8), source_kind="demo"),
        "report": report(demo.verdict_for("eczema", 0.82)),
        "report_urgent": report(demo.verdict_for("melanoma", 0.71), hints=("attach_dermoscope",)),
        "report_unsure": report(demo.verdict_for("acne", 0.38)),
        "report_long": report(demo.verdict_for("actinic_keratosis", 0.77)),
        "save": save,
        "save_disk_full": save_disk_full,
        "keyboard": keyboard,
        "queue": queue(SyncStatus(True, True, 3, now - timedelta(minutes=12), 2, 5)),
        "queue_offline": queue(
            SyncStatus(
                False,
                False,
                3,
                None,
                last_error="network unreachable",
                problem=SyncProblem.NO_CONNECTION,
                next_attempt_in_s=25,
                link_unstable=True,  # a flapping link: the line saying so must fit too
                cases_sent_while_unstable=4,
            )
        ),
        "inbox": lambda: app.go("inbox"),
        "thread": lambda: app.go("thread", case_id=case_ids[1]),
        "pin_wrong": pin_wrong,
        "settings": lambda: app.go("settings"),
        # Issue 18: nothing reads as an all-clear, reasons in words, codes, honest sync state.
        "scan_none_found": scan(demo.verdict_for("other", 0.9)),
        "scan_not_ruled_out": scan(demo.escalated_verdict()),
        "scan_language": scan_language,
        "report_none_found": report(demo.verdict_for("other", 0.9)),
        "report_not_ruled_out": report(demo.escalated_verdict()),
        "picture": picture,
        "save_urgent": save_urgent(use_code=False),
        "save_urgent_code": save_urgent(use_code=True),
        "keyboard_refused": keyboard_refused,
        "receipt": receipt(confirm=False),
        "receipt_urgent_code": receipt(confirm=True),
        "queue_not_set_up": not_set_up,
        "queue_sync_asked": sync_asked,
        "settings_exit": settings_exit,
        "pin_typing": pin_typing,
        "queue_full_pictures": queue_full_pictures,
        # What the model reads: through the dermoscope, the square inside its circle; with the
        # lens mode "off", the centre square (corner marks, no guide box to move).
        "scan_dermoscope": scan(
            demo.verdict_for("dermatofibroma", 0.78),
            image=demo.dermoscope_picture(),
            picture_kind=PictureKind.DERMOSCOPIC,
        ),
        "scan_field_aim": scan(None, picture_kind=None),
        "receipt_urgent_hidden": receipt_hidden,
    }


def render_all_screens(
    out_dir: str | Path,
    languages: Iterable[str] | None = None,
    size: tuple[int, int] = (800, 480),
    states: Sequence[str] | None = None,
) -> list[RenderedScreen]:
    quiet_audio()  # offscreen and silent: no sound device is probed
    pygame.init()
    out = Path(out_dir)
    painter = TextPainter()  # one font cache for all frames
    rendered: list[RenderedScreen] = []
    for language in languages or ui_languages():
        # A fresh store per language: opening a thread marks it read, and each language's
        # inbox should show unread items too.
        with tempfile.TemporaryDirectory(prefix="skinscan-ui-") as tmp:
            rendered += _render_language(Path(tmp), out, language, size, states, painter)
    return rendered


def _render_language(
    tmp: Path,
    out: Path,
    language: str,
    size: tuple[int, int],
    states: Sequence[str] | None,
    painter: TextPainter,
) -> list[RenderedScreen]:
    rendered = []
    # A key file is configured (it need not exist: no state here syncs), so the queue states
    # show online and offline; "queue_not_set_up" takes it away.
    config = KioskConfig(
        data_dir=tmp,
        kiosk_id="kiosk-demo01",
        language=language,
        credentials=tmp / "service-account.json",
    )
    with CaseStore.open(config) as store:
        case_ids = demo.fill_store(store)
        pipeline = demo.StaticPipeline(demo.snapshot(None))
        sync = _Sync(SyncStatus.offline(3))
        services = Services(pipeline, store, sync, lambda: None, "demo-1")
        app = App(services, config, pygame.Surface(size), painter=painter)
        table = _states(app, pipeline, sync, case_ids, config)
        try:
            for state in states or table:
                table[state]()
                app.step()
                path = out / language / f"{state}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                pygame.image.save(app.surface, str(path))
                ui = app.last_ui
                assert ui is not None
                rendered.append(
                    RenderedScreen(
                        language,
                        state,
                        app.screen.name if app.modal is None else "keyboard",
                        path,
                        size,
                        app.strings.rtl,
                        tuple(ui.texts),
                        tuple(ui.buttons),
                    )
                )
                app.close_keyboard()
        finally:
            app.tasks.close()
    return rendered
