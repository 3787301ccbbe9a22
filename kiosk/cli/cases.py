"""`kiosk case add`, `kiosk cases`, `kiosk inbox`, `kiosk sync`, `kiosk status`, `kiosk model`:
the case store and sync from the command line (for health workers' scripts, support staff and
tests).

Exit statuses follow kiosk.cli.main: 0 success, 1 the input or the network failed (nothing lost),
2 the configuration, model or store cannot be used.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kiosk.cli.common import EXIT_INPUT_FAILED as EXIT_FAILED
from kiosk.cli.common import EXIT_OK, EXIT_UNUSABLE
from kiosk.cli.common import print_error as error
from kiosk.errors import ImageReadError, ModelError, RuntimeUnavailableError, SkinscanError

if TYPE_CHECKING:
    from kiosk.cases.store import Case, CaseStore
    from kiosk.config import KioskConfig

StoreCommand = Callable[[argparse.Namespace, "KioskConfig", "CaseStore"], int]


def with_store(run: StoreCommand) -> Callable[[argparse.Namespace], int]:
    """The command with the config loaded and the case store open (closed afterwards); a
    config or store that cannot be used ends it with EXIT_UNUSABLE and one line."""

    def command(args: argparse.Namespace) -> int:
        from kiosk.cases.store import CaseStore
        from kiosk.config import load_config, resolve_kiosk_id

        try:
            config = resolve_kiosk_id(load_config(args.config))
            store = CaseStore.open(config)
        except SkinscanError as e:
            error(str(e))
            return EXIT_UNUSABLE
        with store:
            return run(args, config, store)

    return command


def _common(parser: argparse.ArgumentParser) -> None:
    from kiosk.cli.common import add_config_argument

    add_config_argument(parser)


def case_summary(case: Case) -> dict[str, Any]:
    """What the CLI shows of a case. The patient reference stays out: listings end up in
    terminals, tickets and logs."""
    return {
        "case_id": case.case_id,
        "created_at": case.created_at.isoformat(timespec="seconds"),
        "status": str(case.status),
        "label": case.on_device.label,
        "confidence": case.on_device.confidence,
        "abstained": case.on_device.abstained,
        "urgency": case.on_device.urgency,
        "body_site": case.body_site,
        "quarantined": case.quarantine_error,
        # "waiting": the case is sent as its compact copy and its full picture still follows.
        "full_picture": str(case.full_upload) if case.status != "saved" else None,
        # Only a review whose signature verified counts (Case.review); one kept aside is
        # flagged, never shown as the specialist's.
        "reviewed_label": case.review.label if case.review else None,
        "unread_review": bool(case.review and not case.review_read),
        "unverified_review": case.unverified_review is not None,
        "model_version": case.on_device.model_version,
    }


# --------------------------------------------------------------------------- case add


def case_arguments(parser: argparse.ArgumentParser) -> None:
    from kiosk.cases.store import BODY_SITES
    from kiosk.cli.common import add_model_argument

    sub = parser.add_subparsers(dest="case_command", metavar="ACTION", required=True)
    add = sub.add_parser("add", help="classify an image file and save it as a case")
    add.add_argument("image", metavar="IMAGE")
    add.add_argument("--patient", default="", metavar="REF", help="pseudonymous reference")
    add.add_argument("--site", default="", choices=("", *BODY_SITES), help="body site")
    add.add_argument("--json", action="store_true")
    add_model_argument(add)
    _common(add)
    note = sub.add_parser("note", help="add a note or question to a case's thread")
    note.add_argument("case_id")
    note.add_argument("text")
    _common(note)


def run_case(args: argparse.Namespace) -> int:
    if args.case_command == "note":
        return _run_note(args)
    return _run_case_add(args)


@with_store
def _run_case_add(args: argparse.Namespace, config: KioskConfig, store: CaseStore) -> int:
    from kiosk.cases.model_updates import open_active_classifier
    from kiosk.cases.provenance import SOURCE_FILE, Provenance
    from kiosk.cases.store import OnDeviceResult
    from kiosk.live.imaging import load_still, square_resize
    from kiosk.model.decision import decide

    try:
        # The model the scanner runs (the installed release), unless --model says otherwise;
        # the case records its version.
        classifier, _ = open_active_classifier(config, args.model, num_threads=2)
    except SkinscanError as e:  # a bad model, or no runtime
        error(str(e))
        return EXIT_UNUSABLE
    try:
        rgb = load_still(args.image)
        prediction = classifier.predict(square_resize(rgb, classifier.input_side))
        decision = decide(prediction.probabilities, classifier.thresholds)
        case = store.save_case(
            rgb,
            OnDeviceResult.from_decision(decision, classifier.metadata.version),
            patient_ref=args.patient,
            body_site=args.site,
            provenance=Provenance(source=SOURCE_FILE, model_version=classifier.metadata.version),
        )
    except (ImageReadError, ValueError, SkinscanError) as e:
        error(str(e))
        return EXIT_FAILED
    print(json.dumps(case_summary(case)) if args.json else case.case_id, flush=True)
    return EXIT_OK


@with_store
def _run_note(args: argparse.Namespace, config: KioskConfig, store: CaseStore) -> int:
    try:
        message = store.add_message(args.case_id, args.text)
    except (ValueError, SkinscanError) as e:
        error(str(e))
        return EXIT_FAILED
    print(message.message_id, flush=True)
    return EXIT_OK


# --------------------------------------------------------------------------- cases


def cases_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action",
        nargs="?",
        choices=("list", "recover"),
        default="list",
        help="list (default): saved cases, newest first; recover: rebuild the case database "
        "from the pictures and their records after it was lost or damaged (moves the old "
        "database aside, deletes nothing)",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per case per line")
    parser.add_argument("--limit", type=int, default=100, metavar="N")
    _common(parser)


def run_cases(args: argparse.Namespace) -> int:
    if args.action == "recover":
        return _run_recover(args)
    return _run_list(args)


def _run_recover(args: argparse.Namespace) -> int:
    """Without opening the store first: recovery is for a store that refuses to open."""
    from kiosk.cases.recovery import recover
    from kiosk.config import load_config, resolve_kiosk_id

    try:
        config = resolve_kiosk_id(load_config(args.config))
        report = recover(config.cases_db, config.images_dir, config.kiosk_id, config.min_free_mb)
    except (SkinscanError, OSError) as e:
        error(f"recovery failed, nothing was deleted: {e}")
        return EXIT_UNUSABLE
    if args.json:
        print(json.dumps(report.as_dict()), flush=True)
    else:
        print(
            f"recovered: {report.rows_kept} cases from the old database, "
            f"{report.from_sidecars} rebuilt from their pictures, "
            f"{len(report.quarantined)} quarantined (kept, not sent: no usable record); "
            f"old database kept as {', '.join(report.moved_aside) or '(none was there)'}",
            flush=True,
        )
    return EXIT_OK


@with_store
def _run_list(args: argparse.Namespace, config: KioskConfig, store: CaseStore) -> int:
    if store.unrecorded_pictures:
        error(
            f"{len(store.unrecorded_pictures)} case picture(s) have no record: run "
            "`kiosk cases recover` to add them back (nothing was deleted)"
        )
    cases = store.list_cases(limit=args.limit)
    if not args.json:
        print(f"{'case':<36}  {'saved (UTC)':<19}  {'status':<10}  {'label':<22}  urgency")
    for case in cases:
        row = case_summary(case)
        if args.json:
            print(json.dumps(row), flush=True)
            continue
        label = row["label"] + (" (unsure)" if row["abstained"] else "")
        status = "QUARANTINED" if row["quarantined"] else row["status"]
        print(
            f"{row['case_id']:<36}  {row['created_at'][:19]:<19}  {status:<10}  "
            f"{label:<22}  {row['urgency']}",
            flush=True,
        )
    return EXIT_OK


# --------------------------------------------------------------------------- inbox


def inbox_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="one JSON object per item per line")
    parser.add_argument("--limit", type=int, default=200, metavar="N")
    _common(parser)


def inbox_row(item: Any) -> dict[str, Any]:
    """One inbox item as the CLI shows it. `verified` false: kept aside, NOT from the
    specialist (never on the touchscreen, never unread or urgent)."""
    return {
        "case_id": item.case_id,
        "kind": item.kind,
        "at": item.at.isoformat(timespec="seconds"),
        "verified": item.verified,
        "unread": item.verified and not item.read,
        "urgent": item.urgent,
        "label": item.label or None,
        "author_name": item.author_name,
        "body": item.body,
    }


@with_store
def run_inbox(args: argparse.Namespace, config: KioskConfig, store: CaseStore) -> int:
    items = store.inbox(limit=args.limit, include_unverified=True)
    items.sort(key=lambda item: item.at, reverse=True)  # newest first, whatever is unread
    for item in items:
        row = inbox_row(item)
        if args.json:
            print(json.dumps(row, ensure_ascii=False), flush=True)
            continue
        mark = "*" if row["unread"] else " "
        what = row["kind"] + (f" {row['label']}" if row["label"] else "")
        who = row["author_name"] if row["verified"] else "UNVERIFIED, not from the specialist"
        urgent = " URGENT" if row["urgent"] else ""
        body = " ".join(row["body"].split())  # one line per item, whatever the text holds
        print(
            f"{mark} {row['at'][:16]}  {row['case_id']}  {what}{urgent}  ({who}): {body}",
            flush=True,
        )
    if not args.json and not items:
        print("no reviews or messages")
    return EXIT_OK


# --------------------------------------------------------------------------- sync


def sync_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--once", action="store_true", help="one pass, then exit")
    parser.add_argument("--json", action="store_true", help="print the pass report as JSON")
    _common(parser)


@with_store
def run_sync(args: argparse.Namespace, config: KioskConfig, store: CaseStore) -> int:
    from kiosk.cases.firebase import CredentialsError, OfflineError
    from kiosk.cases.sync import SyncService
    from kiosk.cli.common import package_version

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    service = SyncService(config, store, app_version=package_version())
    try:
        if not args.once:
            return _sync_forever(config, service)
        report = service.sync_once()
    except CredentialsError as e:
        error(str(e))
        return EXIT_UNUSABLE
    except OfflineError as e:
        error(f"offline: {e}; {store.queue_depth()} item(s) stay queued")
        return EXIT_FAILED
    finally:
        service.close()
    print(json.dumps(report.as_dict()) if args.json else _report_line(report), flush=True)
    return EXIT_FAILED if report.failed else EXIT_OK


def _report_line(report: Any) -> str:
    d = report.as_dict()
    return (
        f"uploaded {d['uploaded']}, failed {d['failed']}, quarantined {d['quarantined']}, "
        f"messages sent {d['messages_sent']}, updates from the cloud {d['remote_updates']}"
        + (f", model {d['model_installed']} installed" if d["model_installed"] else "")
        + (f", model release rejected: {d['model_rejected']}" if d["model_rejected"] else "")
    )


def _sync_forever(config: KioskConfig, service: Any) -> int:
    stop = threading.Event()
    telemetry = _sync_telemetry(config, service)

    def request_stop(signum: int, frame: Any) -> None:
        stop.set()
        service.request_sync()  # wakes the loop so it notices the stop at once

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        service.run_forever(stop)
    finally:
        if telemetry is not None:
            telemetry.stop()
    return EXIT_OK


def _sync_telemetry(config: KioskConfig, service: Any) -> Any:
    """Fleet status for a sync-only process (published under <kiosk_id>/sync/, so its last
    will never marks the kiosk itself offline); None when MQTT is not configured."""
    if not config.mqtt.enabled:
        return None
    from kiosk.cli.common import package_version
    from kiosk.fleet.link import ask_for_sync, with_sync_status
    from kiosk.fleet.mqtt import Telemetry, TelemetryError, TelemetryState

    def state() -> TelemetryState:
        base = TelemetryState(
            app_version=package_version(), model_version=service.updater.running_version()
        )
        return with_sync_status(base, service)

    try:
        telemetry = Telemetry(config, state, component="sync")
        telemetry.on_command("sync_now", lambda: ask_for_sync(service))
        return telemetry.start()
    except (TelemetryError, OSError) as e:
        error(f"fleet telemetry off: {e}")
        return None


# --------------------------------------------------------------------------- status


def status_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true")
    _common(parser)


def model_status(config: KioskConfig) -> dict[str, Any]:
    """Which model actually runs (opened, not just its metadata read: a corrupt or wrong-type
    model fails here as it would in the kiosk), what was passed over, the rollback pin and
    the releases the last check rejected."""
    from kiosk.cases.model_updates import current_pin, open_active_classifier, rejected_releases

    running, error, problems = None, None, []
    try:
        _, active = open_active_classifier(config, num_threads=1)
        running, problems = active.as_dict(), list(active.problems)
    except (ModelError, RuntimeUnavailableError) as e:
        error = f"the configured model cannot load: {e}"
    pin = current_pin(config.models_dir)
    return {
        "running": running,
        "error": error,
        "problems": problems,
        "pinned": pin.__dict__ if pin is not None else None,
        "rejected": [r.__dict__ for r in rejected_releases(config.models_dir)],
    }


def kiosk_status(config: KioskConfig, store: CaseStore) -> dict[str, Any]:
    from kiosk.cases.firebase import OfflineError, probe
    from kiosk.cases.sync import LAST_SYNC_KEY, stored_link_status

    try:
        probe(config)
        online, reason = True, None
    except OfflineError as e:
        online, reason = False, str(e)
    model = model_status(config)
    model_version = (
        model["running"]["version"] if model["running"] else f"unusable: {model['error']}"
    )
    return {
        "kiosk_id": config.kiosk_id,
        "online": online,
        "offline_reason": reason,
        "queue_depth": store.queue_depth(),
        "cases": store.counts(),
        "last_sync": store.get_value(LAST_SYNC_KEY),
        "model_version": model_version,
        "model": model,
        "inbox_unread": store.unread_count(),
        "unverified_items": store.unverified_count(),
        "link": stored_link_status(store),  # what the sync process saw of the link lately
        "full_pictures_waiting": _full_backlog(store),
    }


def _full_backlog(store: CaseStore) -> dict[str, int]:
    """Full pictures still to follow cases that are sent (their compact copies are up)."""
    count, nbytes = store.full_upload_backlog()
    return {"count": count, "bytes": nbytes}


@with_store
def run_status(args: argparse.Namespace, config: KioskConfig, store: CaseStore) -> int:
    status = kiosk_status(config, store)
    if args.json:
        print(json.dumps(status), flush=True)
        return EXIT_OK
    print(f"kiosk          {status['kiosk_id']}")
    online = "yes" if status["online"] else f"no ({status['offline_reason']})"
    print(f"online         {online}")
    print(f"queue          {status['queue_depth']} waiting to upload")
    counts = ", ".join(f"{k} {v}" for k, v in status["cases"].items())
    print(f"cases          {counts}")
    print(f"last sync      {status['last_sync'] or 'never'}")
    full = status["full_pictures_waiting"]
    if full["count"]:
        print(
            f"full pictures  {full['count']} to follow their cases "
            f"({full['bytes'] // 1024} KB left; the cases themselves are sent)"
        )
    link = status["link"]
    if link["unstable"]:
        print(
            f"link           unstable: {link['drops_recent']} drops in the last minutes; "
            f"{link['cases_sent_while_unstable']} case(s), "
            f"{link['bytes_sent_while_unstable'] // 1024} KB sent meanwhile"
        )
    model = status["model"]
    if model["running"]:
        print(f"model          {model['running']['version']} ({model['running']['source']})")
    else:
        print(f"model          none: {model['error']}")
    for problem in model["problems"]:
        print(f"model problem  {problem}")
    if model["pinned"]:
        print(f"model pinned   rolled back from {model['pinned']['version']} (kiosk model unpin)")
    for rejected in model["rejected"]:
        print(f"rejected       release {rejected['version']}: {rejected['reason']}")
    print(f"inbox          {status['inbox_unread']} unread")
    if status["unverified_items"]:
        print(
            f"unverified     {status['unverified_items']} review(s)/message(s) kept aside: "
            "not signed by the review console, not shown"
        )
    return EXIT_OK


# --------------------------------------------------------------------------- model


def model_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="model_command", metavar="ACTION", required=True)
    _common(sub.add_parser("current", help="which model the kiosk runs"))
    _common(
        sub.add_parser(
            "rollback",
            help="go back to the previously installed model and stay there until a newer "
            "release verifies (or unpin)",
        )
    )
    _common(sub.add_parser("unpin", help="let sync install the newest release again"))


def run_model(args: argparse.Namespace) -> int:
    from kiosk.cases.model_updates import open_active_classifier, rollback, unpin
    from kiosk.config import load_config

    try:
        config = load_config(args.config)
        if args.model_command == "rollback":
            installed = rollback(config.models_dir)
            print(
                f"now running {installed.version} ({installed.metadata_path}); pinned until a "
                "newer release verifies or `kiosk model unpin`"
            )
            return EXIT_OK
        if args.model_command == "unpin":
            pin = unpin(config.models_dir)
            print(f"unpinned (was rolled back from {pin.version})" if pin else "not pinned")
            return EXIT_OK
        _, active = open_active_classifier(config, num_threads=1)
        print(f"{active.version} ({active.source}: {active.metadata_path})")
        for problem in active.problems:
            print(f"passed over: {problem}")
    except SkinscanError as e:
        error(str(e))
        return EXIT_UNUSABLE
    return EXIT_OK
