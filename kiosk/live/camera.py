"""Frame sources: the Pi camera (picamera2), a USB webcam (OpenCV), and replays of files.

Every source follows `FrameSource` and yields `Frame`s whose `image` is RGB uint8 (H, W, 3).
`ResilientSource` wraps any of them so that a camera that disappears is retried with backoff
and reported as a `SourceStatus` the UI can show, without the caller ever seeing an exception.
`open_source("auto")` picks the best available source: the Pi camera, else a webcam, else the
demo clip shipped in `kiosk/data/demo/` (made by `scripts/make_demo_clip.py`).
"""

from __future__ import annotations

import importlib
import json
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any, Literal, Protocol, runtime_checkable

import cv2
import numpy as np

from kiosk.errors import CameraError, ImageReadError
from kiosk.live.frames import Frame
from kiosk.live.imaging import load_rgb

log = logging.getLogger(__name__)

DEFAULT_FPS = 15.0
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
DEMO_DIR = Path(__file__).resolve().parents[1] / "data" / "demo"
DEMO_CLIP = DEMO_DIR / "demo.avi"

PICAMERA2_MISSING = (
    "picamera2 not installed: on Raspberry Pi OS run `sudo apt install python3-picamera2` "
    "and make the venv with --system-site-packages"
)


class EndOfStream(CameraError):  # noqa: N818 - it is an error to read past it
    """A non-looping replay has delivered its last frame."""


@runtime_checkable
class FrameSource(Protocol):
    """Anything that yields frames. `read()` blocks until the next frame and raises CameraError
    when the source fails; `open()` is idempotent and `close()` may be called at any time."""

    name: str

    def open(self) -> None: ...

    def read(self) -> Frame: ...

    def close(self) -> None: ...


def _to_rgb(bgr: np.ndarray) -> np.ndarray:
    """OpenCV's BGR (or grey / BGRA) to contiguous RGB uint8."""
    if bgr.ndim == 2:
        return cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB)
    if bgr.shape[2] == 4:
        return cv2.cvtColor(bgr, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


class _Pacer:
    """Spaces frames at least 1/fps apart (no pacing when fps is None or 0)."""

    def __init__(self, fps: float | None) -> None:
        if fps is not None and fps < 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.period = 1.0 / fps if fps else 0.0
        self._due: float | None = None

    def reset(self) -> None:
        self._due = None

    def wait(self) -> float:
        """Sleep until the next frame is due; return its timestamp (time.monotonic())."""
        now = time.monotonic()
        while self._due is not None and now < self._due:
            time.sleep(self._due - now)
            now = time.monotonic()
        self._due = now + self.period
        return now


# --------------------------------------------------------------------------- picamera2

# Picamera2, checked against its source (github.com/raspberrypi/picamera2):
# - `create_preview_configuration(main=..., lores=..., controls=...)`, `configure`, `start`,
#   `stream_configuration(name)`, `capture_array(name)`, `capture_arrays(names)`, `stop`,
#   `close` are its public methods (picamera2/picamera2.py); examples/tensorflow/
#   real_time_with_labels.py configures a main stream plus a YUV420 lores stream this way.
# - "RGB888" arrays are (h, w, 3) with the bytes in [B, G, R] order: the Picamera2 manual lists
#   "RGB888 - 24 bits per pixel, ordered [B, G, R]", and request.py's make_image maps RGB888 to
#   PIL raw mode "BGR". So main frames are reversed to RGB here.
# - "YUV420" arrays are (h * 3 // 2, stride): a Y plane, then a quarter-size U plane and a
#   quarter-size V plane (I420, converters.py), row padding left in (request.py make_array).
#   OpenCV's COLOR_YUV420p2RGB is COLOR_YUV2RGB_YV12 (V before U) and would swap the chroma
#   planes (a red scene comes out blue), so COLOR_YUV2RGB_I420 is the right one.
# - The preview configuration's default colour space is sYCC (full-range JPEG YUV); OpenCV's
#   YUV->RGB assumes video range (Y 16..235), so full range is first mapped to video range
#   with two lookup tables, or the preview would look too contrasty.
#
# Which stream feeds the model: the model sees 224x224 from a region of interest in the middle
# of the picture, and a lesion's border and texture are what tell melanoma from a naevus, so
# the ROI must come from pixels that have at least that much detail. A 320x240 lores stream
# gives a centre box of perhaps 120-200 px: upsampled, too coarse. So the main stream
# (1280x960 RGB888 by default) feeds the model (Frame.image): a guide box of half the frame
# height is still 480 px, downscaled with area interpolation. The ISP's lores stream
# (640x480 YUV420 by default, sized for the 800x480 touchscreen) is only the on-screen preview
# (Frame.preview), which saves the UI a 1280x960 resize per frame. Both come from the same
# request via `capture_arrays`: two `capture_array` calls would each take the next completed
# request, i.e. two different frames.

_FULL_TO_VIDEO_Y = np.clip(np.rint(16 + np.arange(256) * 219 / 255), 0, 255).astype(np.uint8)
_FULL_TO_VIDEO_C = np.clip(np.rint(128 + (np.arange(256) - 128) * 224 / 255), 0, 255).astype(
    np.uint8
)


def yuv420_to_rgb(yuv: np.ndarray, size: tuple[int, int], *, full_range: bool = True) -> np.ndarray:
    """Picamera2's YUV420 array (h * 3 // 2, stride) to RGB (h, w, 3), padding removed."""
    w, h = size
    if yuv.ndim != 2 or yuv.shape[0] != h * 3 // 2 or yuv.shape[1] < w or yuv.shape[1] % 2:
        raise CameraError(f"unexpected YUV420 array shape {yuv.shape} for a {w}x{h} stream")
    if full_range:
        yuv = np.concatenate(
            [cv2.LUT(yuv[:h], _FULL_TO_VIDEO_Y), cv2.LUT(yuv[h:], _FULL_TO_VIDEO_C)]
        )
    rgb = cv2.cvtColor(yuv, cv2.COLOR_YUV2RGB_I420)
    return np.ascontiguousarray(rgb[:, :w])


def _import_picamera2() -> ModuleType:
    try:
        return importlib.import_module("picamera2")
    except ImportError as e:
        raise CameraError(f"{PICAMERA2_MISSING} ({e})") from None
    except Exception as e:  # e.g. the PyPI package without Raspberry Pi's libcamera bindings
        raise CameraError(f"{PICAMERA2_MISSING} ({type(e).__name__}: {e})") from None


class Picamera2Source:
    """The Raspberry Pi camera via picamera2, configured once with its documented API.

    Frame.image is the main stream (size_main, RGB) for the model; Frame.preview is the lores
    stream (size_lores, RGB) for the screen, or None when size_lores is None.
    """

    name = "picamera2"

    def __init__(
        self,
        size_main: tuple[int, int] = (1280, 960),
        size_lores: tuple[int, int] | None = (640, 480),
        fps: float = DEFAULT_FPS,
        picamera2_module: ModuleType | None = None,
    ) -> None:
        if size_lores is not None and (
            size_lores[0] > size_main[0] or size_lores[1] > size_main[1]
        ):
            raise ValueError("picamera2's lores stream may not be larger than the main stream")
        self.size_main = tuple(size_main)
        self.size_lores = None if size_lores is None else tuple(size_lores)
        self.fps = float(fps)
        self._module = picamera2_module
        self._cam: Any = None
        self._main_size: tuple[int, int] = self.size_main
        self._lores_size: tuple[int, int] | None = self.size_lores
        self._sequence = 0

    def open(self) -> None:
        if self._cam is not None:
            return
        module = self._module if self._module is not None else _import_picamera2()
        try:
            cam = module.Picamera2()
        except Exception as e:
            raise CameraError(f"no Raspberry Pi camera found ({type(e).__name__}: {e})") from None
        try:
            streams: dict[str, Any] = {"main": {"size": self.size_main, "format": "RGB888"}}
            if self.size_lores is not None:
                streams["lores"] = {"size": self.size_lores, "format": "YUV420"}
            config = cam.create_preview_configuration(**streams, controls={"FrameRate": self.fps})
            cam.configure(config)
            # libcamera may align the sizes it was asked for: use what it configured.
            self._main_size = tuple(cam.stream_configuration("main")["size"])
            if self.size_lores is not None:
                self._lores_size = tuple(cam.stream_configuration("lores")["size"])
            cam.start()
        except Exception as e:
            _close_quietly(cam, "picamera2")
            raise CameraError(
                f"the camera could not be started ({type(e).__name__}: {e})"
            ) from None
        self._cam = cam
        self._sequence = 0
        log.info(
            "picamera2 started: main %dx%d, lores %s, %.0f fps",
            *self._main_size,
            "x".join(map(str, self._lores_size)) if self._lores_size else "off",
            self.fps,
        )

    def read(self) -> Frame:
        cam = self._cam
        if cam is None:
            raise CameraError("picamera2 source is not open")
        try:
            if self._lores_size is not None:
                (main, lores), _metadata = cam.capture_arrays(["main", "lores"])
            else:
                main, lores = cam.capture_array("main"), None
        except Exception as e:
            raise CameraError(
                f"the camera stopped delivering frames ({type(e).__name__}: {e})"
            ) from None
        timestamp = time.monotonic()
        w, h = self._main_size
        if main.shape != (h, w, 3):
            raise CameraError(f"unexpected main frame shape {main.shape}, expected {(h, w, 3)}")
        # [B, G, R] in memory -> RGB; cv2 is ~40x faster than numpy's reversed-stride copy.
        image = cv2.cvtColor(main, cv2.COLOR_BGR2RGB)
        preview = None if lores is None else yuv420_to_rgb(lores, self._lores_size)
        frame = Frame(image=image, timestamp=timestamp, sequence=self._sequence, preview=preview)
        self._sequence += 1
        return frame

    def close(self) -> None:
        cam, self._cam = self._cam, None
        if cam is not None:
            _close_quietly(cam, "picamera2")


def _close_quietly(cam: Any, name: str) -> None:
    for method in ("stop", "close"):
        try:
            getattr(cam, method)()
        except Exception as e:  # a camera that is gone may fail to stop; nothing left to do
            log.debug("%s: %s() failed while closing: %s", name, method, e)


# --------------------------------------------------------------------------- OpenCV


class OpenCVSource:
    """A USB webcam (index or /dev/videoN) or anything else cv2.VideoCapture opens.

    `size` asks the driver for a capture size (it picks the nearest it supports); None keeps
    the driver's default, often 640x480. `fps` is asked of the driver, not enforced.
    """

    def __init__(
        self,
        device: int | str,
        size: tuple[int, int] | None = None,
        fps: float | None = None,
    ) -> None:
        if isinstance(device, str) and device.strip().isdigit():
            device = int(device)
        self.device = device
        self.size = size
        self.fps = fps
        self.name = f"opencv:{device}"
        self._cap: cv2.VideoCapture | None = None
        self._sequence = 0

    def open(self) -> None:
        if self._cap is not None:
            return
        target = self.device if isinstance(self.device, int) else str(self.device)
        cap = cv2.VideoCapture(target)
        if not cap.isOpened():
            cap.release()
            raise CameraError(f"{self.name}: cannot open the camera (not connected, or busy)")
        if isinstance(self.device, int) or str(self.device).startswith("/dev/"):
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # keep the driver from queueing stale frames
            if self.size is not None:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.size[0])
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.size[1])
            if self.fps:
                cap.set(cv2.CAP_PROP_FPS, self.fps)
        self._cap = cap
        self._sequence = 0

    def read(self) -> Frame:
        cap = self._cap
        if cap is None:
            raise CameraError(f"{self.name}: source is not open")
        try:
            ok, bgr = cap.read()
        except cv2.error as e:
            raise CameraError(f"{self.name}: read failed ({e})") from None
        if not ok or bgr is None or bgr.size == 0:
            raise CameraError(f"{self.name}: no frame (camera unplugged, or end of the file)")
        frame = Frame(image=_to_rgb(bgr), timestamp=time.monotonic(), sequence=self._sequence)
        self._sequence += 1
        return frame

    def close(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()


# --------------------------------------------------------------------------- replay


class ReplaySource:
    """A folder of images (sorted by name) or a video file, delivered at `fps` and looped.

    Frames come no faster than `fps` (None or 0: as fast as they decode). An unreadable image
    inside a folder is skipped with a warning; a folder with no readable image, or a file that
    is not a readable video, is a CameraError. `last_index` is the position within the folder
    or clip of the frame last returned, so tests can map frames to the clip's segments.
    """

    def __init__(
        self,
        path: str | Path,
        fps: float | None = DEFAULT_FPS,
        loop: bool = True,
        name: str | None = None,
    ):
        self.path = Path(path)
        self.fps = fps
        self.loop = loop
        self.name = name or f"replay:{self.path.name}"
        self.last_index = -1
        self._pacer = _Pacer(fps)
        self._files: list[Path] | None = None
        self._cap: cv2.VideoCapture | None = None
        self._next = 0
        self._sequence = 0
        self._warned: set[int] = set()
        self._opened = False

    @property
    def length(self) -> int | None:
        """Frames in one pass: the number of image files, or the video's frame count."""
        if self._files is not None:
            return len(self._files)
        if self._cap is not None:
            n = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT))
            return n if n > 0 else None
        return None

    def open(self) -> None:
        if self._opened:
            return
        p = self.path
        if not p.exists():
            raise CameraError(f"replay source not found: {p}")
        if p.is_dir():
            files = sorted(
                f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
            )
            if not files:
                raise CameraError(
                    f"replay folder {p} has no images (looked for {', '.join(IMAGE_SUFFIXES)})"
                )
            self._files = files
        elif p.suffix.lower() in IMAGE_SUFFIXES:
            self._files = [p]
        else:
            self._cap = self._open_video()
        self._next = 0
        self._sequence = 0
        self.last_index = -1
        self._pacer.reset()
        self._opened = True

    def _open_video(self) -> cv2.VideoCapture:
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            cap.release()
            raise CameraError(f"cannot read {self.path} as a video (unknown format or corrupt)")
        return cap

    def read(self) -> Frame:
        if not self._opened:
            raise CameraError(f"{self.name}: source is not open")
        rgb, index = self._next_image() if self._files is not None else self._next_video_frame()
        timestamp = self._pacer.wait()
        self.last_index = index
        frame = Frame(image=rgb, timestamp=timestamp, sequence=self._sequence)
        self._sequence += 1
        return frame

    def _next_image(self) -> tuple[np.ndarray, int]:
        files = self._files
        assert files is not None
        failures = 0
        while True:
            if self._next >= len(files):
                if not self.loop:
                    raise EndOfStream(f"{self.name}: end of the replay")
                self._next = 0
            index = self._next
            self._next += 1
            try:
                return load_rgb(files[index]), index
            except ImageReadError:
                failures += 1
                if index not in self._warned:
                    self._warned.add(index)
                    # Position and type only: a file name may name a patient.
                    log.warning(
                        "replay: skipping unreadable image %d of %d (%s file)",
                        index + 1,
                        len(files),
                        files[index].suffix.lower() or "no suffix",
                    )
                if failures >= len(files):
                    raise CameraError(
                        f"none of the {len(files)} images in replay folder {self.path} "
                        "could be read"
                    ) from None

    def _next_video_frame(self) -> tuple[np.ndarray, int]:
        assert self._cap is not None
        ok, bgr = self._cap.read()
        if not ok or bgr is None:
            if self._next == 0:
                raise CameraError(f"{self.path} has no readable video frames")
            if not self.loop:
                raise EndOfStream(f"{self.name}: end of the replay")
            self._cap.release()
            self._cap = self._open_video()  # reopening rewinds any container reliably
            self._next = 0
            ok, bgr = self._cap.read()
            if not ok or bgr is None:
                raise CameraError(f"{self.path}: the video could not be read again")
        index = self._next
        self._next += 1
        return _to_rgb(bgr), index

    def close(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()
        self._files = None
        self._opened = False


# --------------------------------------------------------------------------- resilience

State = Literal["starting", "live", "reconnecting", "stopped"]


@dataclass(frozen=True)
class SourceStatus:
    """What the UI shows about the camera. `since` is time.monotonic() when `state` began;
    `retries` counts the failed attempts of the current outage (0 while live)."""

    state: State
    message: str
    retries: int = 0
    since: float = 0.0


MESSAGES: dict[str, str] = {
    "starting": "Starting the camera…",
    "live": "Camera ready",
    "reconnecting": "Camera not available. Reconnecting…",
    "stalled": "Camera not responding. Waiting…",
    "stopped": "Camera stopped",
}


class ResilientSource:
    """Keeps a source running: any failure closes it, waits (exponential backoff with jitter,
    at most `backoff_max` seconds) and opens a new one from `factory`, forever.

    A background thread reads the wrapped source into a latest-frame slot; `read(timeout)`
    returns the newest frame not yet returned, or None after `timeout` seconds, and never
    raises CameraError. `status` is safe to read from any thread. When the camera comes back,
    frames flow again after at most `backoff_max` plus the time the source takes to open.
    A live source that delivers nothing for `stall_timeout` seconds is reported as stalled
    (state "reconnecting") until a frame arrives.
    """

    def __init__(
        self,
        factory: Callable[[], FrameSource],
        backoff_initial: float = 0.2,
        backoff_max: float = 2.0,
        jitter: float = 0.25,
        *,
        stall_timeout: float | None = 5.0,
        name: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if not 0 < backoff_initial <= backoff_max:
            raise ValueError("need 0 < backoff_initial <= backoff_max")
        if not 0 <= jitter < 1:
            raise ValueError("jitter is a fraction in [0, 1)")
        self._factory = factory
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.jitter = jitter
        self.stall_timeout = stall_timeout
        self.name = name or "camera"
        self._name_given = name is not None
        self._rng = rng or random.Random()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._status = SourceStatus("starting", MESSAGES["starting"], 0, time.monotonic())
        self._latest: Frame | None = None
        self._sequence = 0
        self._returned = -1
        self._last_frame_at: float | None = None

    # -- public ------------------------------------------------------------------------------

    @property
    def status(self) -> SourceStatus:
        with self._cond:
            self._check_stall()
            return self._status

    def open(self) -> None:
        """Start the capture thread (once); returns at once, with status "starting"."""
        with self._cond:
            if self._thread is not None:
                return
            self._stop.clear()
            self._set_status("starting", MESSAGES["starting"], 0)
            self._thread = threading.Thread(
                target=self._run, name=f"capture-{self.name}", daemon=True
            )
            self._thread.start()

    def read(self, timeout: float | None = 1.0) -> Frame | None:
        """The newest frame not yet returned, waiting up to `timeout` s (None: forever) for
        one; None on timeout or once closed."""
        if self._thread is None and not self._stop.is_set():
            self.open()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                if self._stop.is_set():
                    return None
                frame = self._latest
                if frame is not None and frame.sequence > self._returned:
                    self._returned = frame.sequence
                    return frame
                self._check_stall()
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                # Wake at least every 0.5 s to notice a stall while waiting forever.
                self._cond.wait(0.5 if remaining is None else min(remaining, 0.5))

    def close(self, join_timeout: float = 3.0) -> None:
        with self._cond:
            self._stop.set()
            thread, self._thread = self._thread, None
            self._cond.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join(join_timeout)
            if thread.is_alive():
                log.warning("%s: capture thread still blocked in read() after close", self.name)
        with self._cond:
            self._latest = None
            self._set_status("stopped", MESSAGES["stopped"], 0)

    def backoff_delay(self, attempt: int) -> float:
        """Seconds to wait before retry number `attempt` (1, 2, …): doubling from
        backoff_initial up to backoff_max, minus up to `jitter` of it (never above the max)."""
        base = min(self.backoff_max, self.backoff_initial * 2 ** max(0, attempt - 1))
        return base * (1.0 - self.jitter * self._rng.random())

    def __enter__(self) -> ResilientSource:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals (the capture thread) ------------------------------------------------------

    def _set_status(self, state: State, message: str, retries: int) -> None:
        # caller holds self._cond
        old = self._status
        if old.state != state or old.message != message or old.retries != retries:
            since = old.since if old.state == state else time.monotonic()
            self._status = SourceStatus(state, message, retries, since)
            if old.state != state:
                log.info("%s: %s -> %s (%s)", self.name, old.state, state, message)

    def _check_stall(self) -> None:
        # caller holds self._cond
        if (
            self.stall_timeout is not None
            and self._status.state == "live"
            and self._last_frame_at is not None
            and time.monotonic() - self._last_frame_at > self.stall_timeout
        ):
            self._set_status("reconnecting", MESSAGES["stalled"], self._status.retries)

    def _run(self) -> None:
        attempt = 0  # failed attempts in the current outage
        while not self._stop.is_set():
            delivered, reason = self._run_once()
            attempt = 1 if delivered else attempt + 1
            delay = self.backoff_delay(attempt)
            with self._cond:
                if self._stop.is_set():
                    break
                self._set_status("reconnecting", MESSAGES["reconnecting"], attempt)
            level = logging.WARNING if attempt == 1 or attempt % 20 == 0 else logging.DEBUG
            log.log(level, "%s: %s; retry %d in %.1f s", self.name, reason, attempt, delay)
            self._stop.wait(delay)

    def _run_once(self) -> tuple[bool, str]:
        """Open a source and pump frames until it fails or close() is called; return whether
        it delivered any frame, and why it stopped."""
        source: FrameSource | None = None
        delivered = False
        reason = "closed"
        try:
            source = self._factory()
            if not self._name_given:
                self.name = getattr(source, "name", self.name)
            source.open()
            while not self._stop.is_set():
                frame = source.read()
                now = time.monotonic()
                with self._cond:
                    if self._stop.is_set():
                        break
                    self._latest = replace(frame, sequence=self._sequence)
                    self._sequence += 1
                    self._last_frame_at = now
                    self._set_status("live", MESSAGES["live"], 0)
                    self._cond.notify_all()
                delivered = True
        except CameraError as e:
            reason = str(e)
        except Exception as e:  # a bug or an unexpected driver error must not kill capture
            log.exception("%s: unexpected error from the frame source", self.name)
            reason = f"{type(e).__name__}: {e}"
        finally:
            if source is not None:
                try:
                    source.close()
                except Exception:
                    log.exception("%s: error while closing the frame source", self.name)
        return delivered, reason


# --------------------------------------------------------------------------- choosing


@dataclass(frozen=True)
class ClipSegment:
    """Frames [start, end) of a replay clip show one sample image of class `label`."""

    start: int
    end: int
    label: str
    source: str
    blurred: tuple[int, ...] = ()


def demo_clip_path() -> Path:
    """The demo clip replayed when there is no camera (kiosk/data/demo/demo.avi)."""
    if not DEMO_CLIP.is_file():
        raise CameraError(
            f"demo clip missing: {DEMO_CLIP} (make it with `python scripts/make_demo_clip.py`)"
        )
    return DEMO_CLIP


def clip_segments(clip: str | Path | None = None) -> list[ClipSegment]:
    """The segments listed in a clip's sidecar JSON (same name, .json)."""
    path = Path(clip) if clip is not None else demo_clip_path()
    sidecar = path.with_suffix(".json")
    try:
        data = json.loads(sidecar.read_text())
        return [
            ClipSegment(
                start=int(s["start"]),
                end=int(s["end"]),
                label=str(s["label"]),
                source=str(s["source"]),
                blurred=tuple(int(i) for i in s.get("blurred", ())),
            )
            for s in data["segments"]
        ]
    except FileNotFoundError:
        raise CameraError(f"no segment list beside the clip: {sidecar}") from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CameraError(f"{sidecar}: unreadable segment list ({e})") from None


SPEC_HELP = "auto, picamera2, opencv[:INDEX_OR_PATH], replay:PATH or demo"
DEMO_NAME = "demo"  # the name of the demo clip's source: cases from it are marked "demo"


def source_kind(name: str) -> str:
    """The kind of camera behind a source name (kiosk.cases.provenance.SOURCE_KINDS):
    "picamera2", "opencv", "replay" or "demo"; "" when the name says nothing of it."""
    kind = name.split(":", 1)[0].strip().lower()
    return kind if kind in ("picamera2", "opencv", "replay", DEMO_NAME) else ""


def open_source(
    spec: str,
    fps: float = DEFAULT_FPS,
    *,
    picamera2_module: ModuleType | None = None,
    opencv_device: int | str = 0,
) -> FrameSource:
    """A source from its spec: "replay:PATH", "opencv:INDEX_OR_PATH", "picamera2", "demo", or
    "auto" (picamera2 if it opens, else `opencv_device` if it opens and delivers a frame, else
    the demo clip). "auto" returns its source already open; the others are opened by the
    caller (open() is idempotent either way). Raises CameraError for a bad spec."""
    kind, _, arg = spec.strip().partition(":")
    kind = kind.strip().lower()
    arg = arg.strip()
    if kind == "replay":
        if not arg:
            raise CameraError("replay needs a path: replay:PATH (a folder of images or a video)")
        path = Path(arg).expanduser()
        if not path.exists():
            raise CameraError(f"replay source not found: {path}")
        return ReplaySource(path, fps=fps)
    if kind == "opencv":
        return OpenCVSource(arg or 0, fps=fps)
    if kind == "picamera2" and not arg:
        return Picamera2Source(fps=fps, picamera2_module=picamera2_module)
    if kind == "demo" and not arg:
        return ReplaySource(demo_clip_path(), fps=fps, name=DEMO_NAME)
    if kind == "auto" and not arg:
        return _auto_source(fps, picamera2_module, opencv_device)
    raise CameraError(f"unknown camera source {spec!r}: use {SPEC_HELP}")


def _auto_source(
    fps: float, picamera2_module: ModuleType | None, opencv_device: int | str
) -> FrameSource:
    pi = Picamera2Source(fps=fps, picamera2_module=picamera2_module)
    try:
        pi.open()
        log.info("camera: using picamera2")
        return pi
    except CameraError as e:
        log.info("camera: picamera2 not used: %s", e)
    webcam = OpenCVSource(opencv_device, fps=fps)
    try:
        webcam.open()
        webcam.read()  # some devices open but never deliver (e.g. a metadata-only node)
        log.info("camera: using %s", webcam.name)
        return webcam
    except CameraError as e:
        webcam.close()
        log.info("camera: webcam not used: %s", e)
    demo = ReplaySource(demo_clip_path(), fps=fps, name=DEMO_NAME)
    demo.open()
    log.info("camera: no camera found, replaying the demo clip")
    return demo


def resilient_source(
    spec: str,
    fps: float = DEFAULT_FPS,
    *,
    picamera2_module: ModuleType | None = None,
    opencv_device: int | str = 0,
    **options: Any,
) -> ResilientSource:
    """`open_source(spec)` wrapped in a ResilientSource (options: its backoff arguments).

    "auto" is resolved once, here: after an outage the same kind of source is reopened, so a
    kiosk whose camera drops out shows "reconnecting" instead of quietly switching to the demo
    clip. A bad spec raises CameraError at once; a camera that is absent is retried."""
    first = open_source(spec, fps, picamera2_module=picamera2_module, opencv_device=opencv_device)
    pending: list[FrameSource] = [first]

    def fresh() -> FrameSource:
        if pending:
            return pending.pop()
        if isinstance(first, Picamera2Source):
            return Picamera2Source(first.size_main, first.size_lores, first.fps, first._module)
        if isinstance(first, OpenCVSource):
            return OpenCVSource(first.device, first.size, first.fps)
        if isinstance(first, ReplaySource):
            return ReplaySource(first.path, first.fps, first.loop, first.name)
        raise CameraError(f"cannot reopen a source of type {type(first).__name__}")

    return ResilientSource(fresh, name=first.name, **options)
