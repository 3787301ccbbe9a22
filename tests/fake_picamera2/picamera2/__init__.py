"""A stand-in for Raspberry Pi's `picamera2` package, for tests on machines without a Pi camera.

It follows the documented Picamera2 API for the calls the kiosk makes, with the same names,
argument shapes and return shapes (picamera2/picamera2.py and picamera2/request.py upstream):

- `Picamera2(camera_num=0)`; raises RuntimeError when no camera is connected.
- `create_preview_configuration(main={}, lores=None, raw={}, transform=None, colour_space=None,
  buffer_count=4, controls={}, display="main", encode="main", queue=True, sensor={},
  use_case="preview") -> dict`; main defaults to XBGR8888 640x480, lores must be YUV and no
  larger than main.
- `configure(camera_config="preview")`, `camera_configuration()`,
  `stream_configuration(name="main") -> dict` (with "size", "format", "stride", "framesize").
- `start()`, `stop()`, `close()`.
- `capture_array(name="main", wait=None, signal_function=None) -> np.ndarray` and
  `capture_arrays(names=["main"], wait=None, signal_function=None) -> (list, metadata)`:
  one frame per call, paced by the "FrameRate" control (a real camera blocks until its next
  frame). Arrays have the shapes `Helpers.make_array` gives: "RGB888" is (h, w, 3) with the
  bytes in [B, G, R] order (the Picamera2 manual: "RGB888 - 24 bits per pixel, ordered
  [B, G, R]"), "BGR888" is [R, G, B], "XBGR8888" is (h, w, 4) [R, G, B, 255], "XRGB8888"
  [B, G, R, 255], and "YUV420" is (h * 3 // 2, stride): a Y plane, then quarter-size U and V
  planes with stride / 2, full-range (the default preview colour space is sYCC), with the
  stride padding left in, as libcamera leaves it.

Test controls live in the module-level `control` object: the scene the camera sees, whether
the camera is connected, failing after N frames and coming back after a delay, and a record of
every call. This package must never be importable outside tests: tests load it by path or
pass the module in.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

__all__ = ["Picamera2", "control"]

STRIDE_ALIGN = 64  # bytes; libcamera pads each row of a stream to an aligned stride
RGB_FORMATS = {"RGB888": (3, (2, 1, 0)), "BGR888": (3, (0, 1, 2))}
RGBX_FORMATS = {"XBGR8888": (0, 1, 2), "XRGB8888": (2, 1, 0)}
YUV_FORMATS = {"YUV420", "YVU420"}


def _align(n: int, to: int) -> int:
    return (n + to - 1) // to * to


class _Control:
    """What the fake camera sees and how it misbehaves; shared by all instances."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.connected = True
            self.scene: np.ndarray | tuple[int, int, int] = (200, 120, 90)  # RGB
            self.fail_after_frames: int | None = None
            self.down_for_s: float | None = None
            self.back_at: float | None = None  # time.monotonic() when the camera returns
            self.went_down_at: float | None = None
            self.frames = 0  # frames delivered, all instances together
            self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
            self.instances: list[Picamera2] = []
            self.pace = True

    def fail_after(self, frames: int, down_for_s: float | None = None) -> None:
        """After `frames` more frames the camera disappears (a pulled ribbon cable); with
        `down_for_s` it comes back that many seconds later, otherwise at `reconnect()`."""
        with self._lock:
            self.fail_after_frames = self.frames + frames
            self.down_for_s = down_for_s

    def disconnect(self) -> None:
        with self._lock:
            self._go_down()

    def reconnect(self) -> None:
        with self._lock:
            self.connected = True
            self.back_at = time.monotonic()

    def is_connected(self) -> bool:
        with self._lock:
            return self._refresh()

    def record(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        with self._lock:
            self.calls.append((name, args, kwargs))

    def call_names(self) -> list[str]:
        with self._lock:
            return [c[0] for c in self.calls]

    def count_frame(self) -> bool:
        """Count one delivered frame; False (and the camera goes down) when it is due to fail."""
        with self._lock:
            if not self._refresh():
                return False
            if self.fail_after_frames is not None and self.frames >= self.fail_after_frames:
                self._go_down()
                return False
            self.frames += 1
            return True

    def _go_down(self) -> None:
        self.connected = False
        self.fail_after_frames = None
        now = time.monotonic()
        self.went_down_at = now
        self.back_at = now + self.down_for_s if self.down_for_s is not None else None

    def _refresh(self) -> bool:
        if not self.connected and self.back_at is not None and time.monotonic() >= self.back_at:
            self.connected = True
        return self.connected


control = _Control()


def _scene_rgb(size: tuple[int, int]) -> np.ndarray:
    w, h = size
    scene = control.scene
    if isinstance(scene, np.ndarray):
        ys = np.linspace(0, scene.shape[0] - 1, h).astype(int)
        xs = np.linspace(0, scene.shape[1] - 1, w).astype(int)
        return np.ascontiguousarray(scene[ys][:, xs, :3]).astype(np.uint8)
    return np.broadcast_to(np.array(scene, np.uint8), (h, w, 3)).copy()


def _rgb_to_yuv420(rgb: np.ndarray, stride: int, *, swap_uv: bool = False) -> np.ndarray:
    """Full-range (JPEG / sYCC) BT.601 planar 4:2:0, shaped (h * 3 // 2, stride)."""
    h, w = rgb.shape[:2]
    f = rgb.astype(np.float32)
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    u = 128 - 0.168736 * r - 0.331264 * g + 0.5 * b
    v = 128 + 0.5 * r - 0.418688 * g - 0.081312 * b

    def sub(p: np.ndarray) -> np.ndarray:
        return p.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))

    def plane(p: np.ndarray, rows: int, row_stride: int) -> np.ndarray:
        out = np.zeros((rows, row_stride), np.uint8)  # padding bytes are zero
        out[:, : p.shape[1]] = np.clip(np.rint(p), 0, 255).astype(np.uint8)
        return out.ravel()

    first, second = (sub(v), sub(u)) if swap_uv else (sub(u), sub(v))
    flat = np.concatenate(
        [plane(y, h, stride), plane(first, h // 2, stride // 2), plane(second, h // 2, stride // 2)]
    )
    return flat.reshape(h * 3 // 2, stride)


class Picamera2:
    """The subset of picamera2.Picamera2 the kiosk uses, with the documented signatures."""

    def __init__(self, camera_num: int = 0, verbose_console: Any = None, tuning: Any = None):
        control.record("__init__", (camera_num,), {})
        if not control.is_connected():
            raise RuntimeError("Camera __init__ sequence did not complete.")
        self.camera_num = camera_num
        self.camera_config: dict[str, Any] | None = None
        self.started = False
        self.is_open = True
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self._last_frame_at: float | None = None
        self._broken = False  # a camera that went away stays dead for this instance
        control.instances.append(self)

    def _record(self, name: str, *args: Any, **kwargs: Any) -> None:
        self.calls.append((name, args, kwargs))
        control.record(name, args, kwargs)

    # -- configuration -----------------------------------------------------------------------

    @staticmethod
    def _stream(defaults: dict[str, Any], given: dict[str, Any] | None) -> dict[str, Any] | None:
        if given is None:
            return None
        stream = dict(defaults)
        for key, value in given.items():
            if key not in ("format", "size", "stride", "framesize", "preserve_ar"):
                raise ValueError(f"Bad key {key!r}: valid stream configuration keys are ...")
            stream[key] = value
        stream["size"] = tuple(stream["size"])
        return stream

    def create_preview_configuration(
        self,
        main: dict[str, Any] | None = None,
        lores: dict[str, Any] | None = None,
        raw: dict[str, Any] | None = None,
        transform: Any = None,
        colour_space: Any = None,
        buffer_count: int = 4,
        controls: dict[str, Any] | None = None,
        display: str | None = "main",
        encode: str | None = "main",
        queue: bool = True,
        sensor: dict[str, Any] | None = None,
        use_case: str = "preview",
    ) -> dict[str, Any]:
        self._record(
            "create_preview_configuration",
            main=main,
            lores=lores,
            raw=raw,
            controls=controls,
            buffer_count=buffer_count,
            queue=queue,
        )
        if not self.is_open:
            raise RuntimeError("Camera not opened")
        main_cfg = self._stream({"format": "XBGR8888", "size": (640, 480)}, main or {})
        lores_cfg = self._stream({"format": "YUV420", "size": main_cfg["size"]}, lores)
        return {
            "use_case": use_case,
            "transform": transform,
            "colour_space": colour_space or "sYCC",
            "buffer_count": buffer_count,
            "queue": queue,
            "main": main_cfg,
            "lores": lores_cfg,
            "raw": raw,
            "controls": {"NoiseReductionMode": "Minimal", "FrameDurationLimits": (100, 83333)}
            | dict(controls or {}),
            "sensor": sensor or {},
            "display": display,
            "encode": encode,
        }

    def configure(self, camera_config: dict[str, Any] | str | None = "preview") -> None:
        self._record("configure", camera_config)
        if not self.is_open:
            raise RuntimeError("Camera not opened")
        if self.started:
            raise RuntimeError("Camera must be stopped before configuring")
        if not isinstance(camera_config, dict):
            camera_config = self.create_preview_configuration()
        config = {k: (dict(v) if isinstance(v, dict) else v) for k, v in camera_config.items()}
        main = config["main"]
        fmt = main["format"]
        if fmt not in RGB_FORMATS and fmt not in RGBX_FORMATS and fmt not in YUV_FORMATS:
            raise RuntimeError(f"Bad format {fmt!r} for main stream")
        self._finish_stream(main)
        lores = config.get("lores")
        if lores is not None:
            if lores["format"] not in YUV_FORMATS:
                raise RuntimeError("lores stream must be YUV")
            lw, lh = lores["size"]
            mw, mh = main["size"]
            if lw > mw or lh > mh:
                raise RuntimeError("lores stream dimensions may not exceed main stream")
            self._finish_stream(lores)
        self.camera_config = config

    @staticmethod
    def _finish_stream(stream: dict[str, Any]) -> None:
        w, h = stream["size"]
        if w % 2 or h % 2:  # libcamera aligns sizes; the fake only rounds odd ones down
            w, h = w - w % 2, h - h % 2
            stream["size"] = (w, h)
        fmt = stream["format"]
        if fmt in YUV_FORMATS:
            stream["stride"] = _align(w, STRIDE_ALIGN)
            stream["framesize"] = stream["stride"] * h * 3 // 2
        else:
            bpp = 3 if fmt in RGB_FORMATS else 4
            stream["stride"] = _align(w * bpp, STRIDE_ALIGN)
            stream["framesize"] = stream["stride"] * h

    def camera_configuration(self) -> dict[str, Any] | None:
        return self.camera_config

    def stream_configuration(self, name: str = "main") -> dict[str, Any]:
        if self.camera_config is None:
            raise RuntimeError("Camera has not been configured")
        return self.camera_config[name]

    # -- running -----------------------------------------------------------------------------

    def start(self, config: Any = None, show_preview: bool | None = False) -> None:
        self._record("start")
        if not self.is_open:
            raise RuntimeError("Camera not opened")
        if self.camera_config is None:
            raise RuntimeError("Camera has not been configured")
        if not control.is_connected():
            raise RuntimeError("Failed to start camera: Device or resource busy")
        self.started = True

    def stop(self) -> None:
        self._record("stop")
        self.started = False

    def close(self) -> None:
        self._record("close")
        self.started = False
        self.is_open = False

    # -- capture -----------------------------------------------------------------------------

    def _wait_for_frame(self) -> None:
        if not self.started:
            raise RuntimeError("Camera is not running")
        if self._broken:
            raise RuntimeError("Camera frontend has timed out! Device disconnected?")
        assert self.camera_config is not None
        fps = float(self.camera_config["controls"].get("FrameRate", 30.0))
        now = time.monotonic()
        if control.pace and self._last_frame_at is not None:
            due = self._last_frame_at + 1.0 / fps
            if now < due:
                time.sleep(due - now)
        self._last_frame_at = time.monotonic()
        if not control.count_frame():
            self._broken = True
            # What a pulled cable looks like from Python: the request never completes and
            # libcamera reports a timeout / dequeue failure.
            raise RuntimeError("Camera frontend has timed out! Device disconnected?")

    def _make_array(self, name: str) -> np.ndarray:
        assert self.camera_config is not None
        stream = self.camera_config.get(name)
        if stream is None:
            raise RuntimeError(f"Stream {name!r} is not defined")
        fmt = stream["format"]
        rgb = _scene_rgb(stream["size"])
        if fmt in RGB_FORMATS:
            _, order = RGB_FORMATS[fmt]
            return np.ascontiguousarray(rgb[..., list(order)])
        if fmt in RGBX_FORMATS:
            out = np.full((*rgb.shape[:2], 4), 255, np.uint8)
            out[..., :3] = rgb[..., list(RGBX_FORMATS[fmt])]
            return out
        return _rgb_to_yuv420(rgb, stream["stride"], swap_uv=fmt == "YVU420")

    def capture_array(
        self, name: str = "main", wait: Any = None, signal_function: Any = None
    ) -> np.ndarray:
        self._record("capture_array", name, wait=wait, signal_function=signal_function)
        self._wait_for_frame()
        return self._make_array(name)

    def capture_arrays(
        self,
        names: list[str] | None = None,
        wait: Any = None,
        signal_function: Any = None,
    ) -> tuple[list[np.ndarray], dict[str, Any]]:
        names = ["main"] if names is None else names
        self._record("capture_arrays", list(names), wait=wait, signal_function=signal_function)
        self._wait_for_frame()
        metadata = {"SensorTimestamp": time.monotonic_ns(), "FrameDuration": 66666}
        return [self._make_array(n) for n in names], metadata
