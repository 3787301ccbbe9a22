"""Where things live in Firestore and Cloud Storage: the one contract between the kiosks, the
cloud worker, the review console and model publishing.

Firestore
- `cases/{case_id}` (case ids are UUIDs made on the kiosk, so every write is idempotent):
  kiosk_id, created_at (timestamp), updated_at (server timestamp, bumped by every writer),
  patient_ref (pseudonymous, may be ""), body_site, consent (bool),
  image {path, sha256, bytes, content_type},
  on_device {label, confidence, probabilities {class: p}, abstained, urgency, model_version},
  urgency_rank (0 urgent … 3 none, from on_device; the console sorts on it),
  case_code (kiosk.cases.case_code: the six characters the kiosk shows; the console
  searches by it),
  provenance {source, demo, lens, picture_kind, quality, reasons, crop_box, frame_size,
  frames_averaged, model_version} (kiosk.cases.provenance; absent for cases saved before it),
  demo (bool: the picture came from the bundled demo clip, never a patient),
  status: "uploaded" → "classified" (cloud worker) → "reviewed" (console),
  cloud {label, confidence, probabilities, abstained, urgency, model_version, classified_at,
  worker, views} (worker: which cloud worker wrote it, so duplicates would show; views: how
  many test-time-augmented views were averaged),
  cloud_error {reason, sha256, worker, at} (cloud worker only: this image cannot be classified,
  so workers stop retrying it until an image with another sha256 arrives),
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
- `cases/{kiosk_id}/{case_id}.jpg`: the case image (JPEG, EXIF stripped on the kiosk), with
  metadata case_id, kiosk_id, sha256.
- `models/{version}/{file}`: a release's model file and metadata JSON.
"""

from __future__ import annotations

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


def model_blob_path(version: str, file_name: str) -> str:
    return f"models/{version}/{file_name}"
