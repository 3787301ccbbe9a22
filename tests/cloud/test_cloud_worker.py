"""The cloud worker against the real Firestore emulator and gcp-storage-emulator, with the
shipped float model: leases, exactly-once classification, crash recovery, test-time
augmentation."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import threading
import time
import uuid

import numpy as np
import pytest
from firebase_admin import firestore
from google.api_core import exceptions as gexc

from cloud import leases
from cloud.leases import Claim, Commit
from cloud.pictures import PART_FULL as FULL
from cloud.transactions import ContendedError, run_transaction
from cloud.tta import classify_tta, dihedral_views
from cloud.worker import CaseWorker, quiet_listener_errors
from kiosk.cases import cloud_schema as schema
from kiosk.live.imaging import load_rgb
from kiosk.model.classifier import Classifier
from kiosk.model.conditions import CONDITIONS
from tests.cloud_helpers import CLOUD_CLI, CloudEnv, case_doc, put_case, sample_images
from tests.servers import wait_for


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier.from_metadata(None, "float")


def worker_for(env: CloudEnv, classifier: Classifier, name: str, lease_s: float = 60) -> CaseWorker:
    outcomes: list = []
    w = CaseWorker(env.fb.db, env.fb.bucket, classifier, name, lease_s, report=outcomes.append)
    w.outcomes = outcomes  # type: ignore[attr-defined]
    return w


# --------------------------------------------------------------------------- augmentation


def test_dihedral_views_are_the_eight_distinct_symmetries():
    image = np.arange(4 * 4 * 3, dtype=np.uint8).reshape(4, 4, 3)
    views = dihedral_views(image)
    assert len({v.tobytes() for v in views}) == 8


def test_tta_result_does_not_depend_on_orientation(classifier: Classifier):
    rgb = load_rgb(sample_images()[0])
    side = min(rgb.shape[:2])
    square = rgb[:side, :side]
    upright = classify_tta(classifier, square)
    turned = classify_tta(classifier, np.ascontiguousarray(np.rot90(square[:, ::-1])))
    assert upright.views == 8
    a = np.array([upright.decision.probabilities[c] for c in CONDITIONS])
    b = np.array([turned.decision.probabilities[c] for c in CONDITIONS])
    np.testing.assert_allclose(a, b, atol=2e-3)  # same 8 views, resized in another order
    assert upright.decision.label == turned.decision.label
    single = classifier.predict(square[: classifier.input_side, : classifier.input_side])
    assert not np.allclose(single.probabilities, a, atol=1e-6)  # averaging changed something


# --------------------------------------------------------------------------- in-process


def test_worker_classifies_each_case_and_a_second_pass_does_nothing(clean, classifier):
    ids = [put_case(clean.fb, image=p) for p in sample_images()[:3]]
    before = {i: case_doc(clean.fb, i)["updated_at"] for i in ids}
    worker = worker_for(clean, classifier, "w1")
    outcomes = worker.catch_up()
    assert sorted(o.case_id for o in outcomes) == sorted(ids)
    assert {o.outcome for o in outcomes} == {str(Commit.CLASSIFIED)}
    for case_id in ids:
        case = case_doc(clean.fb, case_id)
        assert case["status"] == schema.STATUS_CLASSIFIED
        assert "lease" not in case
        cloud = case["cloud"]
        assert cloud["label"] in CONDITIONS
        assert abs(sum(cloud["probabilities"].values()) - 1) < 1e-6
        assert cloud["model_version"] == classifier.metadata.version
        assert cloud["worker"] == "w1" and cloud["views"] == 8
        assert cloud["image_part"] == FULL  # an old-style case: no compact copy
        assert cloud["urgency"] in schema.URGENCY_RANK
        assert case["updated_at"] > before[case_id]
        assert case["on_device"]["label"] == "eczema"  # the kiosk's result is left alone
    assert worker.catch_up() == []
    assert leases.claim(clean.fb.db, ids[0], "w2", 60) is Claim.NOT_PENDING


def test_racing_claims_on_one_case_have_one_winner(clean):
    case_id = put_case(clean.fb, image=sample_images()[0])
    results: list[Claim] = []
    barrier = threading.Barrier(6)

    def racer(name: str) -> None:
        barrier.wait()
        results.append(leases.claim(clean.fb.db, case_id, name, 60))

    threads = [threading.Thread(target=racer, args=(f"w{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(Claim.CLAIMED) == 1
    assert results.count(Claim.LEASED) == 5
    winner = case_doc(clean.fb, case_id)["lease"]["worker"]
    assert winner.startswith("w")


def test_a_case_reviewed_meanwhile_keeps_its_review_status(clean, classifier):
    case_id = put_case(clean.fb, image=sample_images()[1])
    assert leases.claim(clean.fb.db, case_id, "w1", 60) is Claim.CLAIMED
    clean.fb.db.collection(schema.CASES).document(case_id).update(
        {"status": schema.STATUS_REVIEWED, "review": {"label": "melanoma"}}
    )
    result = classify_tta(classifier, load_rgb(sample_images()[1]))
    assert leases.commit(clean.fb.db, case_id, "w1", result, image_part=FULL) is Commit.ATTACHED
    case = case_doc(clean.fb, case_id)
    assert case["status"] == schema.STATUS_REVIEWED
    assert case["review"]["label"] == "melanoma"
    assert case["cloud"]["worker"] == "w1"


def test_a_stale_worker_cannot_write_after_losing_its_lease(clean, classifier):
    case_id = put_case(clean.fb, image=sample_images()[2])
    assert leases.claim(clean.fb.db, case_id, "slow", 0.5) is Claim.CLAIMED
    assert leases.claim(clean.fb.db, case_id, "fast", 60) is Claim.LEASED
    time.sleep(0.7)
    assert leases.claim(clean.fb.db, case_id, "fast", 60) is Claim.CLAIMED
    result = classify_tta(classifier, load_rgb(sample_images()[2]))
    assert leases.commit(clean.fb.db, case_id, "slow", result, image_part=FULL) is Commit.LOST_LEASE
    assert case_doc(clean.fb, case_id)["status"] == schema.STATUS_UPLOADED
    assert leases.commit(clean.fb.db, case_id, "fast", result, image_part=FULL) is Commit.CLASSIFIED


def test_an_image_that_does_not_match_its_sha256_is_not_classified(clean, classifier):
    case_id = put_case(clean.fb, image=sample_images()[0])
    path = case_doc(clean.fb, case_id)["image"]["path"]
    clean.fb.bucket.blob(path).upload_from_string(
        sample_images()[1].read_bytes(), content_type="image/jpeg"
    )
    worker = worker_for(clean, classifier, "w1")
    assert [o.outcome for o in worker.catch_up()] == ["failed"]
    case = case_doc(clean.fb, case_id)
    assert case["status"] == schema.STATUS_UPLOADED  # still in the dermatologists' queue
    assert "cloud" not in case and "lease" not in case
    assert case["cloud_error"]["reason"] == "image sha256 does not match the case"
    assert [o.outcome for o in worker.catch_up()] == [str(Claim.FAILED_BEFORE)]


def test_a_missing_blob_is_retried_later(clean, classifier):
    case_id = put_case(clean.fb, image=sample_images()[0])
    path = case_doc(clean.fb, case_id)["image"]["path"]
    clean.fb.bucket.blob(path).delete()
    worker = worker_for(clean, classifier, "w1")
    assert [o.outcome for o in worker.catch_up()] == ["retry"]
    case = case_doc(clean.fb, case_id)
    assert "lease" not in case and "cloud_error" not in case
    put_case(clean.fb, image=sample_images()[0], case_id=case_id)  # the kiosk uploads again
    assert [o.outcome for o in worker.catch_up()] == [str(Commit.CLASSIFIED)]


def test_a_running_worker_retries_a_missing_blob_per_catch_up_not_in_a_loop(clean, classifier):
    # Releasing the case modifies it, and the listener would hand it straight back.
    case_id = put_case(clean.fb, image=sample_images()[0])
    clean.fb.bucket.blob(case_doc(clean.fb, case_id)["image"]["path"]).delete()
    worker = worker_for(clean, classifier, "w1")
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(2.0, stop), daemon=True)
    thread.start()
    time.sleep(5.0)  # catch-ups at about 0, 2 and 4 s
    stop.set()
    thread.join(timeout=30)
    retries = [o for o in worker.outcomes if o.case_id == case_id and o.outcome == "retry"]
    assert 1 <= len(retries) <= 4, f"{len(retries)} attempts in 5 s"
    assert "lease" not in case_doc(clean.fb, case_id)


def test_a_transaction_that_keeps_colliding_is_reported_as_contention(clean):
    db = clean.fb.db
    ref = db.collection("contention-probe").document("doc")
    ref.set({"n": 0})

    @firestore.transactional
    def collide(transaction):
        ref.get(transaction=transaction)  # this transaction now holds the document's lock
        ref.set({"n": 1})  # a write outside it waits on that lock until the emulator aborts
        return "committed"

    with pytest.raises(ContendedError) as raised:
        run_transaction(db, collide)
    assert isinstance(raised.value, gexc.GoogleAPIError)  # so the worker loop logs it and goes on
    assert ref.get().to_dict() == {"n": 0}


def test_a_listener_thread_error_is_one_json_line_not_a_traceback(capsys):
    def stream_removed() -> None:
        raise gexc.Cancelled("Stream removed")  # what the client's watch thread raises

    default = threading.excepthook
    try:
        quiet_listener_errors()
        thread = threading.Thread(target=stream_removed)
        thread.start()
        thread.join()
    finally:
        threading.excepthook = default
    out, err = capsys.readouterr()
    line = json.loads(out.strip().splitlines()[-1])
    assert line == {"event": "error", "error": "Cancelled", "where": "listener"}
    assert "Traceback" not in err


# --------------------------------------------------------------------------- processes


def start_worker(env: CloudEnv, name: str, *extra: str, **environ: str) -> subprocess.Popen:
    return subprocess.Popen(
        [str(CLOUD_CLI), "worker", "--worker-id", name, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env.environ(**environ),
    )


def events(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_two_worker_processes_classify_fifty_cases_exactly_once(clean):
    workers = [
        start_worker(clean, name, SKINSCAN_CLOUD_CATCH_UP_INTERVAL_S="2") for name in ("A", "B")
    ]
    try:
        for w in workers:  # both listening before the cases arrive, so they really race
            line = w.stdout.readline()
            assert json.loads(line)["event"] == "listening", line
        images = sample_images()
        ids = [put_case(clean.fb, image=images[i % len(images)]) for i in range(50)]
        cases = clean.fb.db.collection(schema.CASES)

        def all_classified() -> bool:
            docs = [d.to_dict() for d in cases.stream()]
            return sum(d["status"] == schema.STATUS_CLASSIFIED for d in docs) == 50

        wait_for(all_classified, 180, "50 classified cases")
    finally:
        outputs = []
        for w in workers:
            w.send_signal(signal.SIGTERM)
            out, err = w.communicate(timeout=30)
            outputs.append((out, err))
    done: dict[str, list[str]] = {}
    for name, (out, err) in zip("AB", outputs, strict=True):
        assert "Traceback" not in err, err[-2000:]
        done[name] = [
            e["case"]
            for e in events(out)
            if e["event"] == "case" and e["outcome"] == str(Commit.CLASSIFIED)
        ]
    assert sorted(done["A"] + done["B"]) == sorted(ids)  # every case, none twice
    by_doc = {i: case_doc(clean.fb, i)["cloud"]["worker"] for i in ids}
    assert {i for i, w in by_doc.items() if w == "A"} == set(done["A"])
    print(f"worker A classified {len(done['A'])}, worker B {len(done['B'])}")


class HangingStorage:
    """A storage endpoint that accepts connections and never answers: a worker downloading an
    image from it is stuck mid-case, the moment this test kills it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


def test_a_killed_worker_loses_its_lease_and_another_finishes_the_case(clean):
    case_id = put_case(clean.fb, image=sample_images()[0])
    hanging = HangingStorage()
    lease_s = 6.0
    try:
        victim = start_worker(
            clean,
            "victim",
            "--once",
            STORAGE_EMULATOR_HOST=f"http://127.0.0.1:{hanging.port}",
            SKINSCAN_CLOUD_LEASE_S=str(lease_s),
        )
        wait_for(lambda: hanging.held, 60, "the worker to start downloading the image")
        lease = case_doc(clean.fb, case_id)["lease"]
        assert lease["worker"] == "victim"
        victim.send_signal(signal.SIGKILL)
        victim.communicate(timeout=10)
    finally:
        hanging.close()

    # While the dead worker's lease lasts, nobody else takes the case.
    early = subprocess.run(
        [str(CLOUD_CLI), "worker", "--once", "--worker-id", "rescuer"],
        capture_output=True,
        text=True,
        env=clean.environ(),
        timeout=120,
    )
    assert early.returncode == 0, early.stderr[-2000:]
    if case_doc(clean.fb, case_id)["lease"]["expires_at"].timestamp() > time.time():
        assert [e["outcome"] for e in events(early.stdout) if e["event"] == "case"] == [
            str(Claim.LEASED)
        ]
        assert case_doc(clean.fb, case_id)["status"] == schema.STATUS_UPLOADED

    wait_for(
        lambda: case_doc(clean.fb, case_id)["lease"]["expires_at"].timestamp() < time.time(),
        lease_s + 5,
        "the lease to expire",
    )
    late = subprocess.run(
        [str(CLOUD_CLI), "worker", "--once", "--worker-id", "rescuer"],
        capture_output=True,
        text=True,
        env=clean.environ(),
        timeout=120,
    )
    assert late.returncode == 0, late.stderr[-2000:]
    case = case_doc(clean.fb, case_id)
    assert case["status"] == schema.STATUS_CLASSIFIED
    assert case["cloud"]["worker"] == "rescuer"
    assert "lease" not in case


def test_worker_output_has_no_patient_data(clean, classifier, capsys):
    put_case(clean.fb, image=sample_images()[0], label="melanoma", urgency="urgent")
    worker = CaseWorker(clean.fb.db, clean.fb.bucket, classifier, "w1", 60)
    worker.catch_up()
    out = capsys.readouterr().out
    line = json.loads(out.strip().splitlines()[-1])
    assert set(line) == {"event", "case", "outcome", "ms"}
    for word in ("melanoma", "forearm", "kiosk-test", *CONDITIONS):
        assert word not in out


def _put_through_restart(fb, case_id: str, image) -> bool:
    try:
        put_case(fb, image=image, case_id=case_id)  # same id: a repeat is the same case
    except (gexc.Cancelled, gexc.ServiceUnavailable):
        return False
    return True


def test_a_running_worker_survives_a_firestore_restart(clean, classifier):
    outcomes: list = []
    worker = CaseWorker(
        clean.fb.db, clean.fb.bucket, classifier, "steady", 60, report=outcomes.append
    )
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(1.0, stop), daemon=True)
    thread.start()
    try:
        first = put_case(clean.fb, image=sample_images()[0])
        wait_for(lambda: case_doc(clean.fb, first)["status"] == "classified", 60, "first case")
        clean.firestore.kill()  # the emulator dies (its data with it) and comes back
        time.sleep(2)
        clean.firestore.start()
        second = str(uuid.uuid4())
        # The test's own client may have its first call after the restart cancelled (its
        # channel still points at the dead server): the same document again, until it lands.
        wait_for(
            lambda: _put_through_restart(clean.fb, second, sample_images()[1]),
            30,
            "the test's write after the restart",
        )
        wait_for(
            lambda: (case_doc(clean.fb, second) or {}).get("status") == "classified",
            60,
            "a case written after the restart",
        )
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert [o.case_id for o in outcomes if o.outcome == "classified"] == [first, second]
