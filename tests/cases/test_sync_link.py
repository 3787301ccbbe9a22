"""The rules behind sync on a bad link (kiosk.cases.link, kiosk.cases.send_window): which
failures are the link's and which a server's, how often a down link is probed, when the link
counts as unstable, and how many images go at once."""

from __future__ import annotations

import random

import pytest
import requests
from google.api_core import exceptions as gexc

from kiosk.cases.firebase import CredentialsError, LinkDownError, OfflineError
from kiosk.cases.link import (
    PROBE_FIRST_S,
    UNSTABLE_WINDOW_S,
    Failure,
    LinkMonitor,
    classify,
    probe_delay,
)
from kiosk.cases.send_window import SLOW_UPLOAD_S, SendWindow


def _wrapped(cause: BaseException) -> OfflineError:
    """As sync_once hands a mid-pass failure on: an OfflineError raised from the cause."""
    try:
        try:
            raise cause
        except BaseException as e:
            raise OfflineError(f"sync failed: {type(e).__name__}") from e
    except OfflineError as wrapped:
        return wrapped


class _Answer:
    status_code = 503


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (LinkDownError("cannot reach 127.0.0.1:1"), Failure.LINK),
        (_wrapped(requests.ConnectionError("Connection aborted")), Failure.LINK),
        (_wrapped(ConnectionResetError(104, "reset")), Failure.LINK),
        (_wrapped(requests.exceptions.ReadTimeout("read timed out")), Failure.LINK),
        # gRPC reports a cut stream as UNAVAILABLE without any HTTP answer.
        (_wrapped(gexc.ServiceUnavailable("Stream removed")), Failure.LINK),
        (_wrapped(gexc.RetryError("gave up", ConnectionError("refused"))), Failure.LINK),
        # A server that answered: its trouble, not the network's.
        (_wrapped(gexc.ServiceUnavailable("busy", response=_Answer())), Failure.SERVER),
        (_wrapped(gexc.InternalServerError("boom")), Failure.SERVER),
        (_wrapped(gexc.TooManyRequests("quota")), Failure.SERVER),
        (_wrapped(gexc.ResourceExhausted("quota")), Failure.SERVER),
        (_wrapped(gexc.PermissionDenied("no")), Failure.SERVER),
        (_wrapped(ValueError("a bug")), Failure.SERVER),
        (CredentialsError("credentials file not found"), Failure.CREDENTIALS),
    ],
)
def test_failures_are_told_apart(error: BaseException, kind: Failure) -> None:
    assert classify(error) is kind


def test_a_down_link_is_probed_soon_then_less_often_never_beyond_the_interval() -> None:
    rng = random.Random(5)
    soon = [probe_delay(0.0, 3.0, rng) for _ in range(200)]
    later = [probe_delay(600.0, 3.0, rng) for _ in range(200)]
    assert max(soon) <= PROBE_FIRST_S * 1.25
    assert min(soon) >= PROBE_FIRST_S * 0.75
    assert max(later) <= 3.0 * 1.25 and min(later) >= 3.0 * 0.75
    assert len({round(d, 4) for d in later}) > 150, "probes must be jittered"
    assert probe_delay(4.0, 3.0, random.Random(1)) < probe_delay(8.0, 3.0, random.Random(1))


def test_two_drops_make_the_link_unstable_and_a_quiet_window_steady_again() -> None:
    now = [1000.0]
    link = LinkMonitor(clock=lambda: now[0])
    link.sent(5000)
    assert not link.report().unstable
    assert link.report().cases_sent_while_unstable == 0, "nothing dropped yet"
    link.dropped()
    link.sent(3000)
    assert not link.report().unstable
    now[0] += 10
    link.dropped()
    link.sent(4000)
    report = link.report()
    assert report.unstable and report.drops_recent == 2
    assert (report.cases_sent_while_unstable, report.bytes_sent_while_unstable) == (2, 7000)
    now[0] += UNSTABLE_WINDOW_S + 1
    report = link.report()
    assert not report.unstable and report.drops_recent == 0
    assert report.cases_sent_while_unstable == 0


def test_send_window_grows_on_quick_uploads_and_falls_to_one_on_a_cut_or_slow_one() -> None:
    window = SendWindow(maximum=4)
    assert window.size == 1
    for _ in range(5):
        window.finished(0.1, 20_000)
    assert window.size == 4, "capped at sync_concurrency"
    assert window.state().rate_bytes_per_s == pytest.approx(200_000)
    window.cut()
    assert window.size == 1
    window.finished(0.2, 20_000)
    window.finished(0.2, 20_000)
    assert window.size == 3
    window.finished(1.5, 20_000)  # neither quick nor slow: hold
    assert window.size == 3
    window.finished(SLOW_UPLOAD_S + 0.5, 20_000)
    assert window.size == 1
    with pytest.raises(ValueError, match="at least 1"):
        SendWindow(maximum=0)


def test_the_probe_interval_setting_is_checked(tmp_path) -> None:
    from kiosk.config import ConfigError, load_config

    environ = {"SKINSCAN_DATA_DIR": str(tmp_path), "SKINSCAN_LINK_PROBE_INTERVAL_S": "1.5"}
    assert load_config(None, environ).link_probe_interval_s == 1.5
    for bad in ("0", "-2", "soon"):
        with pytest.raises(ConfigError, match=r"(?i)link_probe_interval_s"):
            load_config(None, {**environ, "SKINSCAN_LINK_PROBE_INTERVAL_S": bad})


def test_the_cases_screen_says_when_the_link_keeps_dropping(tmp_path) -> None:
    from datetime import UTC, datetime

    from kiosk.cases.sync_status import SyncStatus
    from kiosk.config import KioskConfig
    from kiosk.ui.i18n import Strings, ui_languages
    from kiosk.ui.sync_view import sync_view

    config = KioskConfig(data_dir=tmp_path, kiosk_id="k", firestore_emulator_host="127.0.0.1:1")
    steady = SyncStatus(True, False, 2, datetime.now(UTC))
    assert sync_view(config, steady, 2).unstable_sent is None
    flapping = SyncStatus(
        False, False, 2, None, link_unstable=True, cases_sent_while_unstable=3, link_drops_recent=5
    )
    assert sync_view(config, flapping, 2).unstable_sent == 3
    for language in ui_languages():
        line = Strings.for_language(language).t("queue.link_unstable", n=3)
        assert "3" in line and "{" not in line, language
