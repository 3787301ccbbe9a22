"""Where things live in Firestore and Cloud Storage: the one contract between the kiosks, the
cloud worker, the review console and model publishing.

Firestore
- `cases/{case_id}` (case ids are UUIDs made on the kiosk, so every write is idempotent):
  kiosk_id, created_at (timestamp), updated_at (server timestamp, bumped by every writer),
  patient_ref (pseudonymous, may be ""), body_site, consent (bool),
  image {path, sha256, bytes, content_type}: the full-resolution picture (`{case_id}.jpg`),
  compact_image {path, sha256, bytes, content_type, width, height}: a small copy of it
  (`{case_id}.compact.jpg`, tens of KB) that the kiosk sends before the document on a slow
  link, so the cloud classifier and the dermatologist's first look need not wait for the full
  picture; absent when the picture is small enough to go whole (and on cases from before it),
  full_image_stored (bool): False at creation when compact_image is there and the full picture
  is still on its way (a resumable upload); set True by the kiosk, with full_image_stored_at
  (server timestamp), once Storage holds the full picture and its checksum matched. Absent
  means stored (the full picture went before the document). Read both through
  first_look_image() and full_image_available(), never by hand,
  on_device {label, confidence, probabilities {class: p}, abstained, urgency, model_version},
  urgency_rank (0 urgent … 3 none, from on_device; the console sorts on it),
  case_code (kiosk.cases.case_code: the six characters the kiosk shows; the console
  searches by it),
  provenance {source, demo, lens, picture_kind, quality, reasons, crop_box, frame_size,
  frames_averaged, model_version} (kiosk.cases.provenance; absent for cases saved before it),
  demo (bool: the picture came from the bundled demo clip, never a patient),
  status: "uploaded" → "classified" (cloud worker) → "reviewed" (console),
  cloud {label, confidence, probabilities, abstained, urgency, model_version, classified_at,
  worker, views, image_part} (worker: which cloud worker wrote it, so duplicates would show;
  views: how many test-time-augmented views were averaged; image_part: "compact" or "full",
  the picture it classified, i.e. first_look_image(); absent on results from before it),
  cloud_error {reason, sha256, worker, at} (cloud worker only: this image cannot be classified,
  so workers stop retrying it until an image with another sha256 arrives; sha256 is that of
  the picture the worker tried, first_look_image()),
  awaiting_reply (bool): set True by the kiosk right after it creates a health worker's
  message; set False by the console once every question in the thread has a signed answer,
  and only if the case is unchanged since it read the thread,
  review {label, recommendation, reviewer (display name), reviewer_username (staff username),
  author ("dermatologist"), reviewed_at, signed_at, signature} (console only; signed_at and
  signature as kiosk.cases.specialist_signature says: SignedContent(kind "review", case_id,
  kiosk_id, message_id "", author, author_name = reviewer, reviewer = reviewer_username, label,
  text = recommendation, signed_at); reviews from before signing have neither),
  lease {worker, expires_at} (cloud worker only).
- `cases/{case_id}/messages/{message_id}`: case_id, kiosk_id, author ("health_worker" or
  "dermatologist"), author_name (reviewer's display name, "" from the kiosk), body, created_at;
  a dermatologist's message also has reviewer_username, signed_at and signature
  (SignedContent(kind "message", case_id, kiosk_id, message_id = the document id, author,
  author_name, reviewer = reviewer_username, label "", text = body, signed_at)).
  Both sides create messages with ids they made, so a retried send never duplicates; the
  console makes its ids on the server and writes them create-only (an existing id is refused).
- `kiosks/{kiosk_id}`: kiosk_id, last_seen (server timestamp), model_version, queue_depth,
  app_version, last_sync, model_rejected (the releases the last check skipped as
  "version: reason", joined by "; ", at most 5 named then "and N more"; null when none).
- `model_releases/{version}`: see kiosk.cases.releases (signed manifest).
- `audit/{event_id}` (review console only; never read by kiosks): action ("review",
  "message"), case_id, actor (staff username), at (server timestamp), detail {label,
  message_id, text_sha256} — who reviewed or answered what and when. Append-only: every entry
  is a new document (create-only), never an update of an earlier one.

Cloud Storage
- `cases/{kiosk_id}/{case_id}.jpg`: the case image at full resolution (JPEG, EXIF stripped on
  the kiosk), with metadata case_id, kiosk_id, sha256.
- `cases/{kiosk_id}/{case_id}.compact.jpg`: its compact copy (when the document has
  compact_image), same metadata.
- `models/{version}/{file}`: a release's model file and metadata JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kiosk.model.conditions import Urgency

CASES = "cases"
MESSAGES = "messages"
KIOSKS = "kiosks"
MODEL_RELEASES = "model_releases"
AUDIT = "audit"

STATUS_UPLOADED = "uploaded"
STATUS_CLASSIFIED = "classified"
STATUS_REVIEWED = "reviewed"

AUTHOR_HEALTH_WORKER = "health_worker"
AUTHOR_DERMATOLOGIST = "dermatologist"

IMAGE_CONTENT_TYPE = "image/jpeg"

URGENCY_RANK: dict[str, int] = {
    Urgency.URGENT: 0,
    Urgency.SOON: 1,
    Urgency.ROUTINE: 2,
    Urgency.NONE: 3,
}


def case_image_path(kiosk_id: str, case_id: str) -> str:
    return f"{CASES}/{kiosk_id}/{case_id}.jpg"


def compact_image_path(kiosk_id: str, case_id: str) -> str:
    return f"{CASES}/{kiosk_id}/{case_id}.compact.jpg"


def first_look_image(doc: Mapping[str, Any]) -> Mapping[str, Any]:
    """The picture a reader can use now: the compact copy when the kiosk sent one (it is
    always in Storage before the document exists), else the full picture."""
    compact = doc.get("compact_image")
    if isinstance(compact, Mapping) and compact.get("path"):
        return compact
    image = doc.get("image")
    return image if isinstance(image, Mapping) else {}


def full_image_available(doc: Mapping[str, Any]) -> bool:
    """Storage holds the full-resolution picture (`image`) of this case document."""
    if not isinstance(doc.get("compact_image"), Mapping):
        return True  # sent whole, before the document
    return doc.get("full_image_stored") is True


def model_blob_path(version: str, file_name: str) -> str:
    return f"models/{version}/{file_name}"
