"""The SIGKILL fault loop, shared by tests/cases/test_sync_faults.py (a short run in CI) and
scripts/sync_kill_test.py (the long run).

A real `kiosk sync --once` process is killed with SIGKILL at a random moment, again and again,
while new cases and messages keep arriving; then one pass runs to the end. Afterwards Firebase
must hold exactly one document and one object per case (bytes identical) and exactly one copy
of every message.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from google.cloud.firestore_v1.base_query import FieldFilter

from kiosk.cases import cloud_schema as schema
from kiosk.cases.firebase import FirebaseClients
from kiosk.cases.store import CaseStatus, CaseStore, FullUpload, OnDeviceResult
from kiosk.config import KioskConfig
from kiosk.live.imaging import load_rgb

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "tests" / "data" / "samples" / "melanoma_ISIC_0024545.jpg"


@dataclass
class KillLoopResult:
    rounds: int = 0
    kills: int = 0
    kills_mid_queue: int = 0  # kills after which some, but not all, queued cases were sent
    # Kills that left a case in Firestore but still queued on the kiosk: the window that
    # exactly-once has to survive (the next pass sends it again).
    kills_between_send_and_mark: int = 0
    cases: int = 0
    messages: int = 0
    problems: list[str] = field(default_factory=list)


def sync_environment(config: KioskConfig) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKINSCAN_")}
    env.update(
        {
            "SKINSCAN_DATA_DIR": str(config.data_dir),
            "SKINSCAN_KIOSK_ID": config.kiosk_id,
            "SKINSCAN_FIREBASE_PROJECT": config.firebase_project,
            "SKINSCAN_FIREBASE_BUCKET": config.firebase_bucket,
            "SKINSCAN_MIN_FREE_MB": "0",
            "SKINSCAN_SYNC_CONCURRENCY": str(config.sync_concurrency),
            "FIRESTORE_EMULATOR_HOST": config.firestore_emulator_host or "",
            "STORAGE_EMULATOR_HOST": config.storage_emulator_host or "",
            "PYTHONPATH": str(REPO),
        }
    )
    return env


def add_cases(store: CaseStore, rng: np.random.Generator, n: int) -> list[str]:
    ids = []
    for _ in range(n):
        # Smooth noise compresses like a photo (tens of kB), so uploads take real time.
        small = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
        picture = np.kron(small, np.ones((8, 8, 1), dtype=np.uint8))
        result = OnDeviceResult("acne", 0.8, {"acne": 0.8}, False, "routine", "test")
        ids.append(store.save_case(picture, result).case_id)
    return ids


def large_picture(side: int, seed: int = 0) -> np.ndarray:
    """A real lesion photo enlarged to `side` px with sensor-like noise: a full JPEG of
    100-300 KB whose compact copy is ~20 KB, as a camera capture would be."""
    rgb = load_rgb(SAMPLE)
    h = round(side * rgb.shape[0] / rgb.shape[1])
    big = cv2.resize(rgb, (side, h), interpolation=cv2.INTER_CUBIC).astype(np.int16)
    noise = np.random.default_rng(seed).normal(0, 5, big.shape)
    return np.clip(big + noise, 0, 255).astype(np.uint8)


def kiosk_cases_query(clients: FirebaseClients, kiosk_id: str) -> Any:
    return clients.db.collection(schema.CASES).where(filter=FieldFilter("kiosk_id", "==", kiosk_id))


def remote_case_ids(clients: FirebaseClients, kiosk_id: str) -> set[str]:
    return {d.id for d in kiosk_cases_query(clients, kiosk_id).select([]).stream()}


def kiosk_docs(clients: FirebaseClients, kiosk_id: str) -> dict[str, dict[str, Any]]:
    return {d.id: d.to_dict() for d in kiosk_cases_query(clients, kiosk_id).stream()}


def kiosk_blobs(clients: FirebaseClients, kiosk_id: str) -> dict[str, bytes]:
    prefix = f"{schema.CASES}/{kiosk_id}/"
    # A fresh blob per name: a listed one downloads from its stored media link, which names
    # the host the upload came through (a test relay that may be gone by now).
    return {
        b.name: clients.bucket.blob(b.name).download_as_bytes()
        for b in clients.bucket.list_blobs(prefix=prefix)
    }


def _wait_until_sent(
    clients: FirebaseClients, kiosk_id: str, queued: set[str], child: subprocess.Popen[bytes]
) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and child.poll() is None:
        if queued & remote_case_ids(clients, kiosk_id):
            return
        time.sleep(0.02)


def run_kill_loop(
    config: KioskConfig,
    store: CaseStore,
    clients: FirebaseClients,
    kills: int,
    seed: int = 0,
    new_cases_per_round: int = 4,
    max_delay_s: float = 2.0,
) -> KillLoopResult:
    """Rounds until `kills` processes were killed (a pass that finished before its moment
    came does not count) and at least one kill landed mid-queue; at most 4 × `kills` rounds."""
    rng = random.Random(seed)
    pictures = np.random.default_rng(seed)
    env = sync_environment(config)
    result = KillLoopResult()
    for round_no in range(4 * kills):
        if result.kills >= kills and result.kills_mid_queue > 0:
            break
        result.rounds += 1
        add_cases(store, pictures, new_cases_per_round)
        # Notes on any case: those on a case still queued wait for it (sync sends the case
        # before its thread).
        cases = store.list_cases(limit=None)
        for case in rng.sample(cases, min(2, len(cases))):
            store.add_message(case.case_id, f"note {round_no}")
        queued = {c.case_id for c in store.pending_uploads()}
        child = subprocess.Popen(
            [sys.executable, "-m", "kiosk", "sync", "--once"],
            env=env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if round_no % 2 == 0:
            # Any moment: start-up, connecting, uploading, catching up.
            time.sleep(rng.uniform(0.2, max_delay_s))
        else:
            # Aimed at the upload window, the one exactly-once is about: just after the
            # first of this round's cases reaches Firestore.
            _wait_until_sent(clients, store.kiosk_id, queued, child)
            time.sleep(rng.uniform(0.0, 0.15))
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
            result.kills += 1
        child.wait(timeout=60)
        remote = remote_case_ids(clients, store.kiosk_id)
        sent = queued & remote
        if 0 < len(sent) < len(queued):
            result.kills_mid_queue += 1
        still_queued = {c.case_id for c in store.pending_uploads()}
        if still_queued & remote:
            result.kills_between_send_and_mark += 1
    final = subprocess.run(
        [sys.executable, "-m", "kiosk", "sync", "--once"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if final.returncode != 0:
        result.problems.append(f"final pass failed ({final.returncode}): {final.stderr[-500:]}")
    return result


def check_exactly_once(store: CaseStore, clients: FirebaseClients, result: KillLoopResult) -> None:
    """Fill result.problems with every deviation from one document and one full picture per
    case (plus the compact copy its document describes, when it has one), all stored."""
    cases = store.list_cases(limit=None)
    result.cases = len(cases)
    docs = kiosk_docs(clients, store.kiosk_id)
    blobs = kiosk_blobs(clients, store.kiosk_id)
    if len(docs) != len(cases):
        result.problems.append(f"{len(docs)} documents for {len(cases)} cases")
    copies = sum("compact_image" in docs.get(c.case_id, {}) for c in cases)
    if len(blobs) != len(cases) + copies:
        result.problems.append(f"{len(blobs)} objects for {len(cases)} cases and {copies} copies")
    for case in cases:
        if case.status != CaseStatus.UPLOADED or case.full_upload != FullUpload.DONE:
            result.problems.append(f"case {case.case_id} is {case.status}/{case.full_upload}")
        doc = docs.get(case.case_id)
        if doc is None:
            result.problems.append(f"case {case.case_id} has no document")
            continue
        if "compact_image" in doc:
            copy = blobs.get(schema.compact_image_path(store.kiosk_id, case.case_id))
            if copy is None or hashlib.sha256(copy).hexdigest() != doc["compact_image"]["sha256"]:
                result.problems.append(f"case {case.case_id}: compact copy missing or differs")
        if not schema.full_image_available(doc):
            result.problems.append(f"case {case.case_id}: full picture not marked stored")
        data = blobs.get(schema.case_image_path(store.kiosk_id, case.case_id))
        if data is None:
            result.problems.append(f"case {case.case_id} has no object")
            continue
        if hashlib.sha256(data).hexdigest() != case.image_sha256:
            result.problems.append(f"case {case.case_id}: stored bytes differ")
    for case in cases:
        local = {m.message_id for m in store.messages(case.case_id)}
        remote = [
            d.id
            for d in clients.db.collection(schema.CASES)
            .document(case.case_id)
            .collection(schema.MESSAGES)
            .stream()
        ]
        result.messages += len(remote)
        if sorted(remote) != sorted(local):
            result.problems.append(f"case {case.case_id}: messages {len(remote)} != {len(local)}")
