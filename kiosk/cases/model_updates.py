"""Installing signed model releases on the kiosk, with rollback, and which model runs.

Layout in `data_dir/models/`: one folder per installed version holding the metadata JSON, the
int8 model and the verified manifest (`release.json`, for its publication time), and
`current.json` naming the active and the previous version and any rollback pin. A release is
downloaded to a temporary folder, checked (signature, sha256 of both files, sizes, the metadata
agreeing with the manifest, and the model really opening in the interpreter), renamed into
place, and only then does `current.json` switch, atomically. A power cut at any point leaves
either the old or the new model active, never half of one.

Every release published since the running one is considered, newest first, and the newest
that verifies is installed: a bad or fake release (anyone with a Firestore credential can
write one dated 2099) is reported and skipped, never blocks a good one. The signature check
comes first, so a fake costs no download. `kiosk model rollback` pins: the rolled-back release,
and anything not published after it, is not installed again until a newer one verifies or
`kiosk model unpin`. What was rejected is kept in `rejected.json` for `kiosk status`.

`open_active_classifier` is the one way every command (run, scan, classify, case add) picks
its model: a --model argument, else the configured `model`, else the installed release, else
the shipped model. An installed release that does not load falls back to the shipped model
with the reason reported; an explicitly chosen model that does not load is an error.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kiosk.cases.cloud_schema import MODEL_RELEASES
from kiosk.cases.releases import ReleaseError, ReleaseManifest, verify_manifest
from kiosk.errors import ModelError, RuntimeUnavailableError
from kiosk.files import atomic_write_json, fsync_directory, sha256_file
from kiosk.model.classifier import default_metadata_path, load_metadata

if TYPE_CHECKING:
    from kiosk.cases.firebase import FirebaseClients
    from kiosk.config import KioskConfig
    from kiosk.model.classifier import Classifier

log = logging.getLogger(__name__)

CURRENT_FILE = "current.json"
METADATA_NAME = "skinscan.json"
RELEASE_FILE = "release.json"  # the verified manifest, beside the installed files
REJECTED_FILE = "rejected.json"
MAX_REPORTED = 5  # rejected releases named in one report line


@dataclass(frozen=True)
class InstalledModel:
    version: str
    metadata_path: Path


@dataclass(frozen=True)
class Pin:
    """Set by a rollback: `version` and whatever was published at or before it stay out."""

    version: str
    published_at: str  # "" when the rolled-back release's publication time is unknown


@dataclass(frozen=True)
class RejectedRelease:
    version: str
    reason: str

    def line(self) -> str:
        return f"{self.version}: {self.reason}"


@dataclass(frozen=True)
class UpdateResult:
    installed: str | None = None  # the version now active, when it changed
    rejected_releases: tuple[RejectedRelease, ...] = ()

    @property
    def rejected(self) -> str | None:
        """'version: reason' for each release skipped this check (the first few), '; '
        between them: one line for the log, the heartbeat and the fleet state."""
        if not self.rejected_releases:
            return None
        shown = [r.line() for r in self.rejected_releases[:MAX_REPORTED]]
        more = len(self.rejected_releases) - len(shown)
        return "; ".join(shown) + (f"; and {more} more" if more else "")


@dataclass(frozen=True)
class ActiveModel:
    """The model a command runs, and why that one."""

    version: str
    metadata_path: Path
    source: str  # "argument" | "config" | "release" | "shipped"
    problems: tuple[str, ...] = field(default=())  # models passed over, and why

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "source": self.source,
            "path": str(self.metadata_path),
            "problems": list(self.problems),
        }


def open_active_classifier(
    config: KioskConfig, model_argument: str | Path | None = None, num_threads: int = 2
) -> tuple[Classifier, ActiveModel]:
    """The classifier a command runs, and which model that is. Raises ModelError (or
    RuntimeUnavailableError) only when nothing usable is left."""
    from kiosk.model.classifier import Classifier

    def opened(path: str | Path | None, source: str, problems: tuple[str, ...] = ()):
        classifier = Classifier.open(path, num_threads=num_threads)
        metadata_path = Path(classifier.metadata.path)
        version = classifier.metadata.version
        return classifier, ActiveModel(version, metadata_path, source, problems)

    if model_argument:
        return opened(model_argument, "argument")
    if config.model is not None:
        return opened(config.model, "config")
    problems: tuple[str, ...] = ()
    installed = current_release(config.models_dir)
    if installed is not None:
        try:
            return opened(installed.metadata_path, "release")
        except ModelError as e:
            problem = f"installed release {installed.version} does not load: {e}"
            log.error("%s; running the shipped model", problem)
            problems = (problem,)
    return opened(None, "shipped", problems)


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
    """Switch back to the previously active release (the shipped model if there was none) and
    pin it: the release rolled back from is not installed again (see module docstring)."""
    pointer = _read_pointer(models_dir)
    current = pointer.get("current")
    if not current:
        raise ModelError("no installed release to roll back from")
    previous = pointer.get("previous")
    pin = current_pin(models_dir)
    if pin is not None and previous == pin.version:
        previous = None  # going back past a rollback: not forward again to the pinned one
    new_pin = Pin(version=current, published_at=release_published_at(models_dir, current) or "")
    atomic_write_json(
        models_dir / CURRENT_FILE,
        {"current": previous, "previous": current, "pin": new_pin.__dict__},
    )
    if previous:
        return InstalledModel(previous, models_dir / previous / METADATA_NAME)
    return InstalledModel("shipped", default_metadata_path())


def unpin(models_dir: Path) -> Pin | None:
    """Lift a rollback pin (the next sync installs the newest release that verifies)."""
    pointer = _read_pointer(models_dir)
    pin = current_pin(models_dir)
    if pin is not None:
        pointer.pop("pin", None)
        atomic_write_json(models_dir / CURRENT_FILE, pointer)
    return pin


def current_pin(models_dir: Path) -> Pin | None:
    raw = _read_pointer(models_dir).get("pin")
    if not isinstance(raw, dict) or not isinstance(raw.get("version"), str):
        return None
    published = raw.get("published_at")
    return Pin(version=raw["version"], published_at=published if isinstance(published, str) else "")


def release_published_at(models_dir: Path, version: str) -> str | None:
    """When an installed release was published, from its verified manifest (None: unknown,
    e.g. installed before manifests were kept)."""
    try:
        data = json.loads((models_dir / version / RELEASE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = data.get("published_at") if isinstance(data, dict) else None
    return value if isinstance(value, str) and value else None


def rejected_releases(models_dir: Path) -> list[RejectedRelease]:
    """What the last update check rejected (for `kiosk status`)."""
    try:
        data = json.loads((models_dir / REJECTED_FILE).read_text(encoding="utf-8"))
        return [RejectedRelease(str(r["version"]), str(r["reason"])) for r in data["rejected"]]
    except (OSError, ValueError, KeyError, TypeError):
        return []


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
    """Checks Firestore for releases newer than the running one and installs the newest that
    verifies.

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
        self._running: tuple[Path, str] | None = None  # (metadata path, version) last opened

    def running_version(self) -> str:
        """The version that actually runs: the installed release only if it loads. Opened
        once per path (a heartbeat every pass must not rebuild an interpreter)."""
        path = active_metadata_path(self.config)
        if self._running is None or self._running[0] != path:
            try:
                _, active = open_active_classifier(self.config, num_threads=1)
                version = active.version
            except (ModelError, RuntimeUnavailableError):
                version = "unknown"
            self._running = (path, version)
        return self._running[1]

    def check(self, clients: FirebaseClients) -> UpdateResult:
        running = self.running_version()
        installed = current_release(self.models_dir)
        running_published = (
            release_published_at(self.models_dir, running)
            if installed is not None and installed.version == running
            else None
        )
        pin = current_pin(self.models_dir)
        query = clients.db.collection(MODEL_RELEASES)
        if running_published:
            from google.cloud.firestore_v1.base_query import FieldFilter

            # ">=": two releases published in the same second are both still candidates.
            query = query.where(filter=FieldFilter("published_at", ">=", running_published))
        rejected: list[RejectedRelease] = []
        result = UpdateResult()
        for snapshot in query.order_by("published_at", direction="DESCENDING").stream():
            doc = snapshot.to_dict() or {}
            version = str(doc.get("version", snapshot.id))
            if version == running:
                if running_published:
                    continue  # the floor bounds the query; one published in the same second
                break  # the shipped model: nothing older than it is installed
            if pin is not None and not _after_pin(doc.get("published_at"), version, pin):
                continue
            key = f"{version}:{doc.get('signature', '')}"
            if key in self._rejected:  # not downloaded again, but still reported
                rejected.append(RejectedRelease(version, self._rejected[key]))
                continue
            try:
                manifest = ReleaseManifest.from_document(doc)
                self.install(manifest, clients)
            except (ReleaseError, ModelError, OSError) as e:
                reason = str(e)
                self._rejected[key] = reason
                log.error("model release %s rejected: %s", version, reason)
                rejected.append(RejectedRelease(version, reason))
                continue
            result = UpdateResult(installed=manifest.version)
            break
        result = UpdateResult(installed=result.installed, rejected_releases=tuple(rejected))
        self._record_rejected(result.rejected_releases)
        return result

    def _record_rejected(self, rejected: tuple[RejectedRelease, ...]) -> None:
        """For `kiosk status`, which runs in another process. Written only when the list
        changed: every sync pass checks, and each rewrite wears the SD card."""
        path = self.models_dir / REJECTED_FILE
        listed = [{"version": r.version, "reason": r.reason} for r in rejected]
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            stored = {"rejected": []}  # no file says that nothing was rejected
        except (OSError, ValueError):
            stored = None  # damaged: written anew
        if isinstance(stored, dict) and stored.get("rejected") == listed:
            return
        self.models_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(
            path,
            {"changed_at": datetime.now(UTC).isoformat(timespec="seconds"), "rejected": listed},
        )

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
            # The verified manifest, for its publication time (the next check's floor).
            atomic_write_json(staging / RELEASE_FILE, manifest.to_document())
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
        # No pin: only a release published after the pinned one gets this far.
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


def _after_pin(published_at: Any, version: str, pin: Pin) -> bool:
    """A release may replace a pinned rollback only when published after the pinned one."""
    if version == pin.version:
        return False
    if not pin.published_at:
        return True  # unknown publication time: only the pinned version itself stays out
    return isinstance(published_at, str) and published_at > pin.published_at


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
