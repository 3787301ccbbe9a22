"""Cases whose picture came in two parts (kiosk.cases.cloud_schema): a compact copy with the
document, the full-resolution picture later. The cloud worker, the review console and the
retraining export, against the real Firestore and Storage emulators."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
from firebase_admin import firestore
from PIL import Image

from cloud.leases import Claim, Commit
from cloud.pictures import PART_COMPACT, PART_FULL
from cloud.retrain_data import fetch_reviewed
from cloud.tta import classify_tta
from cloud.worker import CaseWorker
from kiosk.cases import cloud_schema as schema
from kiosk.live.imaging import load_rgb
from kiosk.model.classifier import Classifier
from kiosk.model.conditions import CONDITIONS
from tests.cloud.test_cloud_console import make_app
from tests.cloud.test_console_security import signed_in
from tests.cloud_helpers import CloudEnv, case_doc, put_case, sample_images

COMPACT_SIDE = 160  # smaller than every sample, so the two parts differ in size


def compact_of(jpeg: bytes) -> tuple[bytes, int, int]:
    with Image.open(io.BytesIO(jpeg)) as im:
        im = im.convert("RGB")
        im.thumbnail((COMPACT_SIDE, COMPACT_SIDE))
        out = io.BytesIO()
        im.save(out, "JPEG", quality=80)
        return out.getvalue(), im.width, im.height


def put_compact_case(fb, image: Path, **kw) -> tuple[str, bytes]:
    """A case as a kiosk on a slow link sends it: the compact copy in Storage, the document
    with compact_image and full_image_stored False, and the full picture not in Storage yet.
    Returns the case id and the compact bytes."""
    case_id = put_case(fb, image=image, **kw)
    doc = case_doc(fb, case_id)
    fb.bucket.blob(doc["image"]["path"]).delete()  # still on its way
    data, width, height = compact_of(image.read_bytes())
    path = schema.compact_image_path(doc["kiosk_id"], case_id)
    digest = hashlib.sha256(data).hexdigest()
    blob = fb.bucket.blob(path)
    blob.metadata = {"case_id": case_id, "kiosk_id": doc["kiosk_id"], "sha256": digest}
    blob.upload_from_string(data, content_type=schema.IMAGE_CONTENT_TYPE)
    fb.db.collection(schema.CASES).document(case_id).update(
        {
            "compact_image": {
                "path": path,
                "sha256": digest,
                "bytes": len(data),
                "content_type": schema.IMAGE_CONTENT_TYPE,
                "width": width,
                "height": height,
            },
            "full_image_stored": False,
        }
    )
    return case_id, data


def full_picture_arrives(fb, case_id: str, image: Path) -> None:
    """The kiosk's resumable upload finished: the object, then the flag."""
    doc = case_doc(fb, case_id)
    fb.bucket.blob(doc["image"]["path"]).upload_from_string(
        image.read_bytes(), content_type=schema.IMAGE_CONTENT_TYPE
    )
    fb.db.collection(schema.CASES).document(case_id).update(
        {"full_image_stored": True, "full_image_stored_at": firestore.SERVER_TIMESTAMP}
    )


def size_of(jpeg: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(jpeg)).size


# --------------------------------------------------------------------------- cloud worker


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier.from_metadata(None, "float")


def worker(env: CloudEnv, classifier: Classifier) -> CaseWorker:
    return CaseWorker(env.fb.db, env.fb.bucket, classifier, "w1", 60, report=lambda o: None)


def test_the_worker_classifies_the_compact_copy_without_waiting_for_the_full_picture(
    clean, classifier, tmp_path
):
    image = sample_images()[4]
    case_id, compact = put_compact_case(clean.fb, image)
    [outcome] = worker(clean, classifier).catch_up()
    assert outcome.outcome == str(Commit.CLASSIFIED)  # the full object is not in Storage
    cloud = case_doc(clean.fb, case_id)["cloud"]
    assert cloud["image_part"] == PART_COMPACT
    file = tmp_path / "compact.jpg"
    file.write_bytes(compact)
    expected = classify_tta(classifier, load_rgb(file)).decision.probabilities
    np.testing.assert_allclose(
        [cloud["probabilities"][c] for c in CONDITIONS],
        [expected[c] for c in CONDITIONS],
        atol=1e-6,
    )


def test_the_compact_copy_is_checked_against_its_own_sha256(clean, classifier):
    image = sample_images()[0]
    case_id, _ = put_compact_case(clean.fb, image)
    full_picture_arrives(clean.fb, case_id, image)  # a correct full picture changes nothing
    doc = case_doc(clean.fb, case_id)
    clean.fb.bucket.blob(doc["compact_image"]["path"]).upload_from_string(
        compact_of(sample_images()[1].read_bytes())[0], content_type=schema.IMAGE_CONTENT_TYPE
    )
    w = worker(clean, classifier)
    assert [o.outcome for o in w.catch_up()] == ["failed"]
    doc = case_doc(clean.fb, case_id)
    assert doc["status"] == schema.STATUS_UPLOADED and "cloud" not in doc
    assert doc["cloud_error"]["reason"] == "image sha256 does not match the case"
    assert doc["cloud_error"]["sha256"] == doc["compact_image"]["sha256"]
    assert [o.outcome for o in w.catch_up()] == [str(Claim.FAILED_BEFORE)]


# --------------------------------------------------------------------------- review console


def test_the_console_shows_the_compact_copy_until_the_full_picture_is_stored(clean, tmp_path):
    fb = clean.fb
    image = sample_images()[1]
    case_id, compact = put_compact_case(fb, image)
    width, height = size_of(compact)
    client = signed_in(make_app(clean, tmp_path))

    page = client.get(f"/cases/{case_id}").get_data(as_text=True)
    kb = max(1, round(len(compact) / 1024))
    assert f"Compact picture ({width}×{height}, {kb} KB)" in page
    assert "the full-resolution picture is still on its way from the kiosk" in page
    assert 'id="full-size"' not in page  # no "Full resolution" link to a missing picture
    assert f"/cases/{case_id}/image?part=compact" in page
    assert client.get(f"/cases/{case_id}/image").data == compact
    assert client.get(f"/cases/{case_id}/image?part=compact").data == compact
    assert client.get(f"/cases/{case_id}/image?part=full").status_code == 404
    assert client.get(f"/cases/{case_id}/image?part=other").status_code == 404
    thumb = client.get(f"/cases/{case_id}/thumb")  # made from the compact: the full is absent
    assert thumb.status_code == 200 and max(size_of(thumb.data)) <= 96
    assert "Compact picture only" in client.get("/").get_data(as_text=True)

    full_picture_arrives(fb, case_id, image)
    page = client.get(f"/cases/{case_id}").get_data(as_text=True)
    kb = max(1, round(image.stat().st_size / 1024))
    assert f"Full-resolution picture (<span data-image-size></span>{kb} KB)" in page
    assert "still on its way" not in page
    assert 'id="full-size"' in page and f"/cases/{case_id}/image?part=full" in page
    assert client.get(f"/cases/{case_id}/image").data == image.read_bytes()
    assert client.get(f"/cases/{case_id}/image?part=full").data == image.read_bytes()
    assert client.get(f"/cases/{case_id}/image?part=compact").data == compact
    assert "Compact picture only" not in client.get("/").get_data(as_text=True)


def test_every_console_download_is_checked_against_the_dict_that_describes_it(clean, tmp_path):
    fb = clean.fb
    image = sample_images()[2]
    case_id, _ = put_compact_case(fb, image)
    doc = case_doc(fb, case_id)
    other = compact_of(sample_images()[3].read_bytes())[0]
    fb.bucket.blob(doc["compact_image"]["path"]).upload_from_string(other)
    client = signed_in(make_app(clean, tmp_path))
    assert client.get(f"/cases/{case_id}/image").status_code == 404
    assert client.get(f"/cases/{case_id}/thumb").status_code == 404

    full_picture_arrives(fb, case_id, image)
    assert client.get(f"/cases/{case_id}/image").data == image.read_bytes()  # full: matches
    assert client.get(f"/cases/{case_id}/image?part=compact").status_code == 404
    fb.bucket.blob(doc["image"]["path"]).upload_from_string(sample_images()[3].read_bytes())
    assert client.get(f"/cases/{case_id}/image").status_code == 404


def test_an_old_style_case_shows_its_full_picture_as_before(clean, tmp_path):
    image = sample_images()[0]
    case_id = put_case(clean.fb, image=image)
    client = signed_in(make_app(clean, tmp_path))
    page = client.get(f"/cases/{case_id}").get_data(as_text=True)
    assert "Full-resolution picture (" in page and 'id="full-size"' in page
    assert "Compact picture" not in page
    assert client.get(f"/cases/{case_id}/image").data == image.read_bytes()
    assert client.get(f"/cases/{case_id}/image?part=compact").status_code == 404
    assert client.get(f"/cases/{case_id}/thumb").status_code == 200


# --------------------------------------------------------------------------- retraining


def test_retraining_uses_the_full_picture_when_stored_else_the_compact_copy(clean):
    fb = clean.fb
    images = sample_images()
    reviewed = {"status": schema.STATUS_REVIEWED, "label": "acne"}
    old_style = put_case(fb, image=images[0], **reviewed)
    pending, compact = put_compact_case(fb, images[1], **reviewed)
    arrived, _ = put_compact_case(fb, images[2], **reviewed)
    full_picture_arrives(fb, arrived, images[2])
    broken, _ = put_compact_case(fb, images[3], **reviewed)
    fb.bucket.blob(case_doc(fb, broken)["compact_image"]["path"]).upload_from_string(b"other")
    for case_id in (old_style, pending, arrived, broken):
        fb.db.collection(schema.CASES).document(case_id).update({"review": {"label": "acne"}})

    cases, skipped = fetch_reviewed(fb.db, fb.bucket)
    used = {c.case_id: c for c in cases}
    assert set(used) == {old_style, pending, arrived}
    assert skipped["image_mismatch"] == 1  # the compact copy that is not what it says
    picked = {case_id: (c.image_part, c.image) for case_id, c in used.items()}
    assert picked[old_style] == (PART_FULL, images[0].read_bytes())
    assert picked[pending] == (PART_COMPACT, compact)
    assert picked[arrived] == (PART_FULL, images[2].read_bytes())
