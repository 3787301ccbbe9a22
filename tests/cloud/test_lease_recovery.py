"""Short leases, renewed while a worker works: real `skinscan-cloud worker` processes against the
real emulators. A slow but live worker keeps its case past many lease lengths; once it is
SIGKILLed, another running worker takes the case within one lease plus one catch-up interval.

Storage reaches the slow worker through a throttled relay (tests/servers.py), so its download
of the image takes far longer than its lease."""

from __future__ import annotations

import json
import signal
import subprocess
import time

from cloud import leases
from cloud.leases import Commit
from kiosk.cases import cloud_schema as schema
from tests.cloud_helpers import CLOUD_CLI, CloudEnv, case_doc, put_case, sample_images
from tests.servers import TcpProxy, wait_for

LEASE_S = 3.0
CATCH_UP_S = 1.0


def start_worker(env: CloudEnv, name: str, *extra: str, **environ: str) -> subprocess.Popen:
    return subprocess.Popen(
        [str(CLOUD_CLI), "worker", "--worker-id", name, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env.environ(
            SKINSCAN_CLOUD_LEASE_S=str(LEASE_S),
            SKINSCAN_CLOUD_CATCH_UP_INTERVAL_S=str(CATCH_UP_S),
            **environ,
        ),
    )


def lease_of(env: CloudEnv, case_id: str) -> leases.Lease | None:
    return leases.Lease.from_document((case_doc(env.fb, case_id) or {}).get("lease"))


def test_a_live_worker_keeps_its_case_and_a_dead_ones_is_taken_within_a_lease(
    clean: CloudEnv,
) -> None:
    case_id = put_case(clean.fb, image=sample_images()[0])
    # ~15 KB at 400 B/s: the download alone outlasts ten leases.
    slow_storage = TcpProxy(clean.storage.port, rate_bytes_per_s=400)
    slow_storage.start()
    victim = rival = None
    try:
        victim = start_worker(
            clean, "victim", "--once", STORAGE_EMULATOR_HOST=f"http://127.0.0.1:{slow_storage.port}"
        )
        wait_for(
            lambda: (lease := lease_of(clean, case_id)) is not None and lease.worker == "victim",
            120,
            "the victim's claim",
        )
        rival = start_worker(clean, "rival")
        line = rival.stdout.readline()
        assert json.loads(line)["event"] == "listening", line
        # The victim works on for three lease lengths: renewals keep the case its own, and
        # the rival (catching up every second) leaves it alone.
        expiries = set()
        until = time.monotonic() + 3 * LEASE_S
        while time.monotonic() < until:
            lease = lease_of(clean, case_id)
            assert lease is not None and lease.worker == "victim", "a live worker lost its case"
            expiries.add(lease.expires_at)
            time.sleep(0.2)
        assert len(expiries) >= 3, f"the lease was renewed {len(expiries) - 1} times in 9 s"
        assert case_doc(clean.fb, case_id)["status"] == schema.STATUS_UPLOADED

        victim.send_signal(signal.SIGKILL)
        victim.communicate(timeout=30)
        killed_at = time.monotonic()
        wait_for(
            lambda: case_doc(clean.fb, case_id)["status"] == schema.STATUS_CLASSIFIED,
            120,
            "the rival to classify the dead worker's case",
        )
        recovered_s = time.monotonic() - killed_at
    finally:
        for worker in (victim, rival):
            if worker is not None and worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        outputs = [w.communicate(timeout=30) for w in (victim, rival) if w is not None]
        slow_storage.stop()
    case = case_doc(clean.fb, case_id)
    assert case["cloud"]["worker"] == "rival"
    assert "lease" not in case
    # At most one lease (from the victim's last renewal) plus one catch-up, plus the rival's
    # own download and classification on a loaded machine.
    assert recovered_s <= LEASE_S + CATCH_UP_S + 15, f"recovered after {recovered_s:.1f} s"
    rival_out, rival_err = outputs[-1]
    assert "Traceback" not in rival_err, rival_err[-2000:]
    done = [
        json.loads(x)
        for x in rival_out.splitlines()
        if x.startswith("{") and json.loads(x).get("case") == case_id
    ]
    assert [e["outcome"] for e in done if e["outcome"] == str(Commit.CLASSIFIED)] == [
        str(Commit.CLASSIFIED)
    ]


def test_renew_extends_only_the_holders_lease(clean: CloudEnv) -> None:
    case_id = put_case(clean.fb, image=sample_images()[1])
    assert leases.claim(clean.fb.db, case_id, "w1", 1.0) is leases.Claim.CLAIMED
    first = lease_of(clean, case_id)
    assert first is not None
    # Renewed for long enough that a slow, shared machine cannot let it lapse mid-test.
    assert leases.renew(clean.fb.db, case_id, "w1", 60.0)
    renewed = lease_of(clean, case_id)
    assert renewed is not None and renewed.expires_at > first.expires_at
    assert not leases.renew(clean.fb.db, case_id, "w2", 60.0), "only the holder renews"
    assert lease_of(clean, case_id) == renewed
    time.sleep(1.2)  # the first lease would be over by now; the renewed one is not
    assert leases.claim(clean.fb.db, case_id, "w2", 5.0) is leases.Claim.LEASED
    assert not leases.renew(clean.fb.db, "no-such-case", "w1", 5.0)
