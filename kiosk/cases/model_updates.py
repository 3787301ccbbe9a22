"""Installing signed model releases on the kiosk, with rollback.

Layout in `data_dir/models/`: one folder per installed version holding the metadata JSON and
the int8 model, and `current.json` naming the active and the previous version. A release is
downloaded to a temporary folder, checked (signature, sha256 of both files, sizes, the metadata
agreeing with the manifest, and the model really opening in the interpreter), renamed into
place, and only then does `current.json` switch, atomically. A power cut at any point leaves
either the old or the new model active, never half of one.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kiosk.cases.cloud_schema import MODEL_RELEASES
from kiosk.cases.releases import ReleaseError, ReleaseManifest, verify_manifest
from kiosk.errors import ModelError
from kiosk.files import atomic_write_json, fsync_directory, sha256_file
from kiosk.model.classifier import default_metadata_path, load_metadata

if TYPE_CHECKING:
    from kiosk.cases.firebase import FirebaseClients
    from kiosk.config import KioskConfig

log = logging.getLogger(__name__)

CURRENT_FILE = "current.json"
METADATA_NAME = "skinscan.json"


@dataclass(frozen=True)
class InstalledModel:
    version: str
    metadata_path: Path


@dataclass(frozen=True)
class UpdateResult:
    installed: str | None = None  # the version now active, when it changed
    rejected: str | None = None  # "version: reason"


def active_metadata_path(config: KioskConfig) -> Path:
    """The model the kiosk should run: the configured one, else the installed release, else
    the model shipped with the package."""
    if config.model is not None:
        return config.model
    installed = current_release(config.models_dir)
    if installed is not None:
        return installed.metadata_path
    return default_metadata_path()


def current_release(models_dir: Path) -> InstalledModel | None:
    pointer = _read_pointer(models_dir)
    version = pointer.get("current")
    if not version:
        return None
    path = models_dir / version / METADATA_NAME
    if not path.is_file():
        log.error("installed model %s is missing its metadata; using the shipped model", version)
        return None
    return InstalledModel(version=version, metadata_path=path)


def rollback(models_dir: Path) -> InstalledModel:
    """Switch back to the previously active release (the shipped model if there was none)."""
    pointer = _read_pointer(models_dir)
    current = pointer.get("current")
    if not current:
        raise ModelError("no installed release to roll back from")
    previous = pointer.get("previous")
    atomic_write_json(models_dir / CURRENT_FILE, {"current": previous, "previous": current})
    if previous:
        return InstalledModel(previous, models_dir / previous / METADATA_NAME)
    return InstalledModel("shipped", default_metadata_path())


def _read_pointer(models_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((models_dir / CURRENT_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        log.error("unreadable %s (%s); using the shipped model", CURRENT_FILE, e)
        return {}
    return data if isinstance(data, dict) else {}


class ModelUpdater:
    """Checks Firestore for the newest release and installs it when it verifies.

    `on_installed(metadata_path)` is called after a switch so the running app can load the new
    classifier without a restart."""

    def __init__(
        self,
        config: KioskConfig,
        on_installed: Callable[[Path], None] | None = None,
    ) -> None:
        self.config = config
        self.models_dir = config.models_dir
        self.on_installed = on_installed
        self._rejected: dict[str, str] = {}  # version+signature -> reason, not retried

    def running_version(self) -> str:
        try:
            return load_metadata(active_metadata_path(self.config)).version
        except ModelError:
            return "unknown"

    def check(self, clients: FirebaseClients) -> UpdateResult:
        docs = (
            clients.db.collection(MODEL_RELEASES)
            .order_by("published_at", direction="DESCENDING")
            .limit(1)
            .get()
        )
        if not docs:
            return UpdateResult()
        doc = docs[0].to_dict() or {}
        version = str(doc.get("version", docs[0].id))
        if version == self.running_version():
            return UpdateResult()
        key = f"{version}:{doc.get('signature', '')}"
        if key in self._rejected:  # not downloaded again, but still reported
            return UpdateResult(rejected=f"{version}: {self._rejected[key]}")
        try:
            manifest = ReleaseManifest.from_document(doc)
            self.install(manifest, clients)
        except (ReleaseError, ModelError, OSError) as e:
            reason = str(e)
            self._rejected[key] = reason
            log.error("model release %s rejected: %s", version, reason)
            return UpdateResult(rejected=f"{version}: {reason}")
        return UpdateResult(installed=manifest.version)

    def install(self, manifest: ReleaseManifest, clients: FirebaseClients) -> Path:
        verify_manifest(manifest, self.config.model_public_key)
        self.models_dir.mkdir(parents=True, exist_ok=True)
        final = self.models_dir / manifest.version
        staging = Path(tempfile.mkdtemp(dir=self.models_dir, prefix=f".{manifest.version}."))
        try:
            metadata_file = staging / METADATA_NAME
            self._download(clients, manifest.metadata_path, metadata_file)
            _check_sha256(metadata_file, manifest.metadata_sha256, "metadata")
            metadata = load_metadata(metadata_file)
            if metadata.version != manifest.version:
                raise ReleaseError(
                    f"metadata says version {metadata.version}, manifest says {manifest.version}"
                )
            entry = metadata.model_file("int8")
            if entry.sha256 != manifest.model_sha256:
                raise ReleaseError("the metadata's int8 sha256 differs from the manifest's")
            model_file = staging / entry.path
            if model_file.parent != staging:
                raise ReleaseError(f"model file name {entry.path!r} must be a plain name")
            self._download(clients, manifest.model_path, model_file)
            if model_file.stat().st_size != manifest.model_bytes:
                raise ReleaseError("the downloaded model has the wrong size")
            _check_sha256(model_file, manifest.model_sha256, "model")
            _check_opens(metadata_file)
            for path in staging.iterdir():
                with path.open("rb") as f:
                    os.fsync(f.fileno())
            fsync_directory(staging)
            if final.exists():
                shutil.rmtree(final)
            staging.rename(final)
            fsync_directory(self.models_dir)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        previous = current_release(self.models_dir)
        atomic_write_json(
            self.models_dir / CURRENT_FILE,
            {"current": manifest.version, "previous": previous.version if previous else None},
        )
        self._prune(keep={manifest.version, previous.version if previous else ""})
        log.info("model release %s installed", manifest.version)
        installed = final / METADATA_NAME
        if self.on_installed is not None:
            self.on_installed(installed)
        return installed

    @staticmethod
    def _download(clients: FirebaseClients, blob_path: str, target: Path) -> None:
        blob = clients.bucket.blob(blob_path)
        try:
            blob.download_to_filename(str(target), timeout=60)
        except Exception as e:  # the storage client raises many kinds; all mean "not usable"
            target.unlink(missing_ok=True)
            raise ReleaseError(f"could not download {blob_path}: {type(e).__name__}") from None

    def _prune(self, keep: set[str]) -> None:
        """Installed versions other than the active and the previous one are removed."""
        for path in self.models_dir.iterdir():
            if path.is_dir() and not path.name.startswith(".") and path.name not in keep:
                shutil.rmtree(path, ignore_errors=True)


def _check_sha256(path: Path, expected: str, what: str) -> None:
    actual = sha256_file(path)
    if actual != expected:
        raise ReleaseError(f"the {what} file's sha256 {actual[:12]}… is not {expected[:12]}…")


def _check_opens(metadata_file: Path) -> None:
    """The interpreter must accept the model and its tensors must match the metadata: a file
    that verifies but cannot run is still a bad release."""
    from kiosk.model.classifier import Classifier

    try:
        Classifier.open(metadata_file, num_threads=1)
    except ModelError as e:
        raise ReleaseError(f"the model does not load: {e}") from None
