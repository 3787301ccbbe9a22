"""The screening model: its metadata, and running it with LiteRT (or tflite-runtime).

A model directory holds one metadata JSON (`skinscan.json`) and the model files it lists under
`files` (an int8 and a float variant). Nothing is trusted blindly: before an interpreter is built
the file's size and sha256 must match the metadata and the classes must be exactly CONDITIONS;
after it is built the input and output tensors must match the metadata too. Quantization
parameters always come from the interpreter's tensor details, never from assumptions.

The model outputs logits; probabilities are softmax(logits / temperature), where the
temperature (fitted on the validation split) is the calibration shipped in the metadata.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np

from kiosk.errors import ModelError, RuntimeUnavailableError
from kiosk.model.conditions import CONDITIONS, OTHER
from kiosk.model.decision import Thresholds

METADATA_ENV = "SKINSCAN_MODEL_METADATA"
DEFAULT_VARIANT = "int8"
DEFAULT_THREADS = 2

_QUANTIZED_DTYPES = (np.uint8, np.int8)
_INPUT_DTYPES = (np.uint8, np.int8, np.float32)
# A quantized input whose (scale, zero point) cannot hold (x - mean) / std for more than this
# share of the 256 pixel values was converted with a different normalisation than the metadata's.
_MAX_CLIPPED_INPUT_LEVELS = 0.10


def default_metadata_path() -> Path:
    """The shipped models/skinscan.json, or the file named by $SKINSCAN_MODEL_METADATA."""
    override = os.environ.get(METADATA_ENV)
    if override:
        return Path(override).expanduser()
    return Path(__file__).resolve().parents[2] / "models" / "skinscan.json"


# --------------------------------------------------------------------------- metadata


@dataclass(frozen=True)
class InputSpec:
    height: int
    width: int
    channels: int
    mean: float  # float input = (uint8 pixel - mean) / std
    std: float
    preprocess: str


@dataclass(frozen=True)
class ModelFile:
    path: str  # a file name in the metadata's directory
    sha256: str  # lower-case hex
    bytes: int
    quantization: str
    # The interpreter's input and output tensor types must be these: a float model put in the
    # int8 slot (with a matching sha256) is refused. From `input_dtype` / `output_dtype`, or
    # read from the `quantization` text of older metadata.
    input_dtype: str = ""
    output_dtype: str = ""


_DTYPE_NAMES = ("uint8", "int8", "float32")


def _dtypes_from_quantization(text: str) -> tuple[str, str] | None:
    """(input, output) tensor types named by an older metadata's `quantization` text."""
    t = text.lower()
    if "uint8 input and output" in t:
        return "uint8", "uint8"
    if "int8 input and output" in t:
        return "int8", "int8"
    if "float32" in t and "int8" not in t:
        return "float32", "float32"
    return None


@dataclass(frozen=True)
class Calibration:
    temperature: float  # probabilities = softmax(logits / temperature)
    fitted_on: str


@dataclass(frozen=True)
class ModelMetadata:
    path: Path  # the metadata JSON file itself
    name: str
    version: str
    classes: tuple[str, ...]
    input: InputSpec
    output: str
    files: Mapping[str, ModelFile]  # variant ("int8", "float") -> file
    calibration: Calibration
    thresholds: Thresholds
    training: Mapping[str, Any]
    metrics: Mapping[str, Any]
    # The model's output vector, one name each. Older models output `classes` directly; a
    # fine-grained model has more outputs, and those in `other_outputs` are summed into `other`.
    outputs: tuple[str, ...] = ()
    other_outputs: tuple[str, ...] = ()

    def model_file(self, variant: str) -> ModelFile:
        try:
            return self.files[variant]
        except KeyError:
            listed = ", ".join(self.files)
            raise ModelError(
                f"model metadata {self.path} has no {variant!r} model; it lists: {listed}"
            ) from None

    def model_path(self, variant: str) -> Path:
        return self.path.parent / self.model_file(variant).path

    def variant_of(self, file_name: str) -> str | None:
        """The variant whose file is called `file_name`, or None."""
        for variant, entry in self.files.items():
            if entry.path == file_name:
                return variant
        return None


def load_metadata(path: str | Path) -> ModelMetadata:
    """Read and validate a model metadata JSON. Raises ModelError naming the problem."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ModelError(
            f"model metadata not found: {p} (pass --model or set {METADATA_ENV})"
        ) from None
    except IsADirectoryError:
        raise ModelError(f"model metadata {p} is a directory, not a JSON file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ModelError(f"cannot read model metadata {p}: {e}") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        raise ModelError(f"model metadata {p} is not valid JSON: {e}") from None
    r = _Reader(p)
    root = r.obj(raw, "")
    inp = r.obj(root.get("input"), "input")
    cal = r.obj(root.get("calibration"), "calibration")
    thr = r.obj(root.get("thresholds"), "thresholds")
    files_raw = r.obj(root.get("files"), "files")
    if not files_raw:
        raise r.error("'files' lists no model file")
    files: dict[str, ModelFile] = {}
    for variant, entry_raw in files_raw.items():
        entry = r.obj(entry_raw, f"files.{variant}")
        file_name = r.text(entry, "path", f"files.{variant}")
        if Path(file_name).name != file_name or file_name in (".", ".."):
            raise r.error(
                f"files.{variant}.path must be a file name beside the JSON, not {file_name!r}"
            )
        sha = r.text(entry, "sha256", f"files.{variant}").lower()
        if len(sha) != 64 or any(ch not in "0123456789abcdef" for ch in sha):
            raise r.error(f"files.{variant}.sha256 is not a 64-digit hex sha256: {sha!r}")
        size = r.integer(entry, "bytes", f"files.{variant}")
        if size <= 0:
            raise r.error(f"files.{variant}.bytes must be positive, got {size}")
        quantization = r.text(entry, "quantization", f"files.{variant}")
        if "input_dtype" in entry or "output_dtype" in entry:
            dtypes = (
                r.text(entry, "input_dtype", f"files.{variant}"),
                r.text(entry, "output_dtype", f"files.{variant}"),
            )
            for name in dtypes:
                if name not in _DTYPE_NAMES:
                    raise r.error(
                        f"files.{variant}: tensor type {name!r} is not one of "
                        f"{', '.join(_DTYPE_NAMES)}"
                    )
        else:
            found = _dtypes_from_quantization(quantization)
            if found is None:
                raise r.error(
                    f"files.{variant}: cannot tell the tensor types from quantization "
                    f"{quantization!r}; give input_dtype and output_dtype"
                )
            dtypes = found
        files[variant] = ModelFile(
            path=file_name,
            sha256=sha,
            bytes=size,
            quantization=quantization,
            input_dtype=dtypes[0],
            output_dtype=dtypes[1],
        )
    classes_raw = root.get("classes")
    if not isinstance(classes_raw, list) or not all(isinstance(c, str) for c in classes_raw):
        raise r.error("'classes' must be a list of class names")
    outputs, other_outputs = _read_outputs(r, root, tuple(classes_raw))
    input_spec = InputSpec(
        height=r.integer(inp, "height", "input"),
        width=r.integer(inp, "width", "input"),
        channels=r.integer(inp, "channels", "input"),
        mean=r.number(inp, "mean", "input"),
        std=r.number(inp, "std", "input"),
        preprocess=r.text(inp, "preprocess", "input"),
    )
    if input_spec.height <= 0 or input_spec.height != input_spec.width:
        raise r.error(
            f"input must be square (the kiosk centre-crops a square), got "
            f"{input_spec.height}×{input_spec.width}"
        )
    if input_spec.channels != 3:
        raise r.error(f"input.channels must be 3 (RGB), got {input_spec.channels}")
    if input_spec.std <= 0:
        raise r.error(f"input.std must be positive, got {input_spec.std}")
    output = r.text(root, "output", "")
    if output != "logits":
        raise r.error(f"'output' must be \"logits\" (the runtime applies softmax), got {output!r}")
    temperature = r.number(cal, "temperature", "calibration")
    if temperature <= 0:
        raise r.error(f"calibration.temperature must be positive, got {temperature}")
    fitted_on = cal.get("fitted_on", "")
    try:
        thresholds = Thresholds(
            abstain_below=r.number(thr, "abstain_below", "thresholds"),
            urgent_at=r.number(thr, "urgent_at", "thresholds"),
            soon_at=r.number(thr, "soon_at", "thresholds") if "soon_at" in thr else None,
        )
    except ValueError as e:
        raise r.error(str(e)) from None
    training = root.get("training", {})
    metrics = root.get("metrics", {})
    if not isinstance(training, dict) or not isinstance(metrics, dict):
        raise r.error("'training' and 'metrics' must be JSON objects")
    return ModelMetadata(
        path=p,
        name=r.text(root, "name", ""),
        version=r.text(root, "version", ""),
        classes=tuple(classes_raw),
        outputs=outputs,
        other_outputs=other_outputs,
        input=input_spec,
        output=output,
        files=MappingProxyType(files),
        calibration=Calibration(temperature=temperature, fitted_on=str(fitted_on)),
        thresholds=thresholds,
        training=MappingProxyType(training),
        metrics=MappingProxyType(metrics),
    )


def _read_outputs(
    r: _Reader, root: Mapping[str, Any], classes: tuple[str, ...]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """`outputs` and `other_outputs`, checked: each output is one of the conditions or is
    summed into `other`, none twice, every condition present."""
    if "outputs" not in root and "other_outputs" not in root:
        return classes, ()
    raw_outputs = root.get("outputs", list(classes))
    raw_other = root.get("other_outputs", [])
    for key, value in (("outputs", raw_outputs), ("other_outputs", raw_other)):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise r.error(f"'{key}' must be a list of output names")
        dupes = sorted({v for v in value if value.count(v) > 1})
        if dupes:
            raise r.error(f"'{key}' names {', '.join(dupes)} more than once")
    outputs, other = tuple(raw_outputs), tuple(raw_other)
    unknown = [o for o in other if o not in outputs]
    if unknown:
        raise r.error(f"other_outputs names {', '.join(unknown)}, which 'outputs' does not list")
    named = [o for o in other if o in CONDITIONS and o != OTHER]
    if named:
        raise r.error(
            f"other_outputs includes {', '.join(named)}: a condition cannot be summed into other"
        )
    stray = [o for o in outputs if o not in CONDITIONS and o not in other]
    if stray:
        raise r.error(
            f"output {', '.join(stray)} is neither a condition nor listed in other_outputs"
        )
    missing = [c for c in CONDITIONS if c != OTHER and c not in outputs]
    if OTHER not in outputs and not other:
        missing.append(OTHER)
    if missing:
        raise r.error(f"'outputs' lacks {', '.join(missing)}")
    return outputs, other


class _Reader:
    """Typed field access with error messages naming the metadata file and key."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def error(self, message: str) -> ModelError:
        return ModelError(f"model metadata {self.path}: {message}")

    def _get(self, d: Mapping[str, Any], key: str, where: str) -> Any:
        if key not in d:
            raise self.error(f"missing key '{where + '.' if where else ''}{key}'")
        return d[key]

    def obj(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.error(f"'{where or '(top level)'}' must be a JSON object")
        return value

    def text(self, d: Mapping[str, Any], key: str, where: str) -> str:
        v = self._get(d, key, where)
        if not isinstance(v, str):
            raise self.error(f"'{where + '.' if where else ''}{key}' must be a string, got {v!r}")
        return v

    def integer(self, d: Mapping[str, Any], key: str, where: str) -> int:
        v = self._get(d, key, where)
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.error(f"'{where + '.' if where else ''}{key}' must be an integer, got {v!r}")
        return v

    def number(self, d: Mapping[str, Any], key: str, where: str) -> float:
        v = self._get(d, key, where)
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise self.error(f"'{where + '.' if where else ''}{key}' must be a number, got {v!r}")
        return float(v)


def find_metadata_for(model_path: str | Path) -> tuple[ModelMetadata, str]:
    """The metadata JSON beside a .tflite file that lists it, and the file's variant."""
    p = Path(model_path)
    if not p.is_file():
        what = "is a directory, not a model file" if p.is_dir() else "not found"
        raise ModelError(f"model file {p} {what}")
    matches: list[tuple[Path, str]] = []
    for candidate in sorted(p.parent.glob("*.json")):
        try:
            raw = json.loads(candidate.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue  # not a metadata file; one that lists the model is validated below
        files = raw.get("files") if isinstance(raw, dict) else None
        if not isinstance(files, dict):
            continue
        for variant, entry in files.items():
            if isinstance(entry, dict) and entry.get("path") == p.name:
                matches.append((candidate, variant))
    if not matches:
        raise ModelError(
            f"no model metadata (*.json) in {p.parent} lists {p.name} under 'files'; "
            "the metadata JSON must sit beside the model file"
        )
    if len(matches) > 1:
        names = ", ".join(f"{m.name} ({v})" for m, v in matches)
        raise ModelError(f"{p.name} is listed by more than one metadata entry: {names}")
    metadata_path, variant = matches[0]
    return load_metadata(metadata_path), variant


def resolve_model(path: str | Path | None = None) -> tuple[ModelMetadata, str]:
    """Metadata and variant for a --model argument: a metadata .json (its int8 model), a model
    file (the metadata beside it), or None (default_metadata_path())."""
    if path is None:
        return load_metadata(default_metadata_path()), DEFAULT_VARIANT
    p = Path(path)
    if p.suffix.lower() == ".json":
        return load_metadata(p), DEFAULT_VARIANT
    return find_metadata_for(p)


# --------------------------------------------------------------------------- arithmetic


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Real value of quantized integers: (q - zero_point) * scale, as float32."""
    return ((np.asarray(q).astype(np.float32) - np.float32(zero_point)) * np.float32(scale)).astype(
        np.float32
    )


def quantize(x: np.ndarray, scale: float, zero_point: int, dtype: type[np.integer]) -> np.ndarray:
    """Quantize real values: round(x / scale) + zero_point (half away from zero), clipped to
    the dtype's range — what TFLite's QUANTIZE op does."""
    info = np.iinfo(dtype)
    v = np.asarray(x, dtype=np.float64) / scale
    rounded = np.sign(v) * np.floor(np.abs(v) + 0.5) + zero_point
    return np.clip(rounded, info.min, info.max).astype(dtype)


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """softmax(logits / temperature) along the last axis, in float64, numerically stable.

    The one definition of the kiosk's probabilities: evaluation and calibration use it too."""
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    z = np.asarray(logits, dtype=np.float64) / temperature
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# --------------------------------------------------------------------------- runtime


def load_interpreter_class() -> type:
    """LiteRT's Interpreter, else tflite-runtime's; RuntimeUnavailableError if neither."""
    problems: list[str] = []
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter
    except ImportError as e:
        problems.append(f"ai_edge_litert: {e}")
    try:
        from tflite_runtime.interpreter import Interpreter

        return Interpreter
    except ImportError as e:
        problems.append(f"tflite_runtime: {e}")
    raise RuntimeUnavailableError(
        "no TFLite runtime can be imported ("
        + "; ".join(problems)
        + "). Install LiteRT with `pip install ai-edge-litert==2.3.0`, or the fallback "
        "tflite-runtime with `pip install tflite-runtime==2.14.0 'numpy<2'`"
    )


class Category(NamedTuple):
    label: str
    score: float


@dataclass(frozen=True, eq=False)
class Prediction:
    logits: np.ndarray  # float32, one per class in CONDITIONS order (read-only)
    probabilities: np.ndarray  # float64 calibrated softmax(logits / temperature) (read-only)
    invoke_ms: float  # time spent in the interpreter's invoke()

    def top_k(self, k: int = 3) -> list[Category]:
        order = np.argsort(-self.probabilities, kind="stable")[:k]
        return [Category(CONDITIONS[i], float(self.probabilities[i])) for i in order]

    @property
    def top(self) -> Category:
        return self.top_k(1)[0]

    def as_dict(self) -> dict[str, float]:
        return {c: float(p) for c, p in zip(CONDITIONS, self.probabilities, strict=True)}


class Classifier:
    """One verified model with its interpreter, built once and reused.

    Not re-entrant by design of the TFLite interpreter; calls are serialised with a lock so a
    camera thread and the UI may share one Classifier.
    """

    def __init__(
        self,
        metadata: ModelMetadata,
        variant: str = DEFAULT_VARIANT,
        *,
        num_threads: int = DEFAULT_THREADS,
    ) -> None:
        if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1:
            raise ValueError(f"num_threads must be a positive integer, got {num_threads!r}")
        self.metadata = metadata
        self.variant = variant
        self.num_threads = num_threads
        self.model_path = metadata.model_path(variant)
        self._check_classes()
        content = self._read_verified(metadata.model_file(variant))
        interpreter_class = load_interpreter_class()
        self.runtime = interpreter_class.__module__.split(".")[0]
        try:
            self._interpreter = interpreter_class(model_content=content, num_threads=num_threads)
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise ModelError(
                f"model file {self.model_path} cannot be loaded by {self.runtime}: {e}"
            ) from None
        self._lock = threading.Lock()
        self._setup_input()
        self._setup_output()
        self.temperature = metadata.calibration.temperature

    # -- construction helpers

    @classmethod
    def from_metadata(
        cls,
        metadata_path: str | Path | None = None,
        variant: str = DEFAULT_VARIANT,
        num_threads: int = DEFAULT_THREADS,
    ) -> Classifier:
        """The `variant` model listed by a metadata JSON (default: default_metadata_path())."""
        path = default_metadata_path() if metadata_path is None else metadata_path
        return cls(load_metadata(path), variant, num_threads=num_threads)

    @classmethod
    def from_model_file(
        cls, tflite_path: str | Path, num_threads: int = DEFAULT_THREADS
    ) -> Classifier:
        """A .tflite file, checked against the metadata JSON beside it that lists it."""
        metadata, variant = find_metadata_for(tflite_path)
        return cls(metadata, variant, num_threads=num_threads)

    @classmethod
    def open(cls, path: str | Path | None = None, num_threads: int = DEFAULT_THREADS) -> Classifier:
        """From a --model argument: a .json, a .tflite, or None for the default model."""
        metadata, variant = resolve_model(path)
        return cls(metadata, variant, num_threads=num_threads)

    def _check_classes(self) -> None:
        classes = self.metadata.classes
        if len(classes) != len(CONDITIONS):
            raise ModelError(
                f"model metadata {self.metadata.path} lists {len(classes)} classes; this kiosk "
                f"needs {len(CONDITIONS)}: {', '.join(CONDITIONS)}"
            )
        if classes != CONDITIONS:
            diffs = "; ".join(
                f"#{i} is {got!r}, expected {want!r}"
                for i, (got, want) in enumerate(zip(classes, CONDITIONS, strict=True))
                if got != want
            )
            raise ModelError(
                f"model metadata {self.metadata.path}: classes differ from the kiosk's "
                f"CONDITIONS (order matters): {diffs}"
            )

    def _read_verified(self, entry: ModelFile) -> bytes:
        p = self.model_path
        if not p.exists():
            raise ModelError(f"model file not found: {p} (listed by {self.metadata.path})")
        if not p.is_file():
            raise ModelError(f"model file {p} is not a regular file")
        try:
            content = p.read_bytes()
        except OSError as e:
            raise ModelError(f"cannot read model file {p}: {e.strerror or e}") from None
        if len(content) != entry.bytes:
            raise ModelError(
                f"model file {p} is {len(content)} bytes, metadata says {entry.bytes}: "
                "file truncated or replaced"
            )
        digest = hashlib.sha256(content).hexdigest()
        if digest != entry.sha256:
            raise ModelError(
                f"model file {p} sha256 {digest[:12]}… does not match metadata "
                f"{entry.sha256[:12]}…: file corrupt or replaced"
            )
        return content

    def _setup_input(self) -> None:
        details = self._interpreter.get_input_details()
        if len(details) != 1:
            raise ModelError(f"model file {self.model_path} has {len(details)} inputs, expected 1")
        d = details[0]
        spec = self.metadata.input
        expected = (1, spec.height, spec.width, spec.channels)
        shape = tuple(int(s) for s in d["shape"])
        if shape != expected:
            raise ModelError(
                f"model file {self.model_path} input shape {shape} does not match metadata "
                f"{expected}"
            )
        dtype = np.dtype(d["dtype"])
        if dtype not in [np.dtype(t) for t in _INPUT_DTYPES]:
            raise ModelError(
                f"model file {self.model_path} input dtype {dtype} is not supported "
                "(uint8, int8 or float32)"
            )
        self._check_declared_dtype(
            dtype, self.metadata.model_file(self.variant).input_dtype, "input"
        )
        self._input_index = d["index"]
        self.input_dtype = dtype
        levels = np.arange(256, dtype=np.float64)
        normalised = (levels - spec.mean) / spec.std
        if dtype == np.float32:
            self.input_quantization: tuple[float, int] | None = None
            self._lut: np.ndarray | None = normalised.astype(np.float32)
            return
        scale, zero_point = _tensor_quantization(d, self.model_path, "input")
        self.input_quantization = (scale, zero_point)
        lut = quantize(normalised, scale, zero_point, dtype.type)
        info = np.iinfo(dtype)
        unclipped = np.round(normalised / scale) + zero_point
        clipped = np.count_nonzero((unclipped < info.min - 0.5) | (unclipped > info.max + 0.5))
        if clipped > _MAX_CLIPPED_INPUT_LEVELS * 256:
            raise ModelError(
                f"model file {self.model_path} input quantization (scale {scale:g}, zero point "
                f"{zero_point}) cannot represent (pixel - {spec.mean:g}) / {spec.std:g}: the "
                "metadata's input.mean/std do not match how the model was converted"
            )
        # The usual case (uint8 input, scale 1/std, zero point mean) is the identity: the uint8
        # image is fed as it is.
        identity = dtype == np.uint8 and np.array_equal(lut, levels.astype(np.uint8))
        self._lut = None if identity else lut

    def _setup_output(self) -> None:
        details = self._interpreter.get_output_details()
        if len(details) != 1:
            raise ModelError(f"model file {self.model_path} has {len(details)} outputs, expected 1")
        d = details[0]
        outputs = self.metadata.outputs or self.metadata.classes
        expected = (1, len(outputs))
        shape = tuple(int(s) for s in d["shape"])
        if shape != expected:
            raise ModelError(
                f"model file {self.model_path} output shape {shape} does not match the "
                f"{len(outputs)} outputs in the metadata (expected {expected})"
            )
        dtype = np.dtype(d["dtype"])
        self._check_declared_dtype(
            dtype, self.metadata.model_file(self.variant).output_dtype, "output"
        )
        self._output_index = d["index"]
        self._merge = _merge_plan(outputs, self.metadata.other_outputs)
        if dtype == np.float32:
            self.output_quantization: tuple[float, int] | None = None
        elif dtype in [np.dtype(t) for t in _QUANTIZED_DTYPES]:
            self.output_quantization = _tensor_quantization(d, self.model_path, "output")
        else:
            raise ModelError(
                f"model file {self.model_path} output dtype {dtype} is not supported "
                "(uint8, int8 or float32)"
            )

    def _check_declared_dtype(self, dtype: np.dtype, declared: str, which: str) -> None:
        if declared and dtype != np.dtype(declared):
            raise ModelError(
                f"model file {self.model_path} has a {dtype} {which} but the metadata's "
                f"{self.variant!r} entry says {declared}: wrong model file in this slot"
            )

    # -- inference

    @property
    def input_side(self) -> int:
        return self.metadata.input.height

    @property
    def thresholds(self) -> Thresholds:
        return self.metadata.thresholds

    def _check_image(self, image: np.ndarray) -> None:
        spec = self.metadata.input
        expected = (spec.height, spec.width, spec.channels)
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
            kind = image.dtype if isinstance(image, np.ndarray) else type(image).__name__
            raise ValueError(f"image must be a uint8 numpy array, got {kind}")
        if image.shape != expected:
            raise ValueError(
                f"image shape {image.shape} does not match the model input {expected}; "
                "use kiosk.live.imaging.square_resize first"
            )

    def _run(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        self._check_image(image)
        tensor = image if self._lut is None else self._lut[image]
        tensor = np.ascontiguousarray(tensor[np.newaxis], dtype=self.input_dtype)
        with self._lock:
            self._interpreter.set_tensor(self._input_index, tensor)
            start = time.perf_counter()
            self._interpreter.invoke()
            invoke_ms = (time.perf_counter() - start) * 1000.0
            raw = self._interpreter.get_tensor(self._output_index)[0].copy()
        if self.output_quantization is None:
            logits = raw.astype(np.float32)
        else:
            logits = dequantize(raw, *self.output_quantization)
        if self._merge is not None:
            logits = merge_logits(logits[np.newaxis], self._merge)[0]
        return logits, invoke_ms

    def logits(self, image: np.ndarray) -> np.ndarray:
        """Float logits (dequantized for an int8 model) for one side×side×3 uint8 RGB image."""
        return self._run(image)[0]

    def predict(self, image: np.ndarray) -> Prediction:
        """Logits, calibrated probabilities and invoke time for one uint8 RGB image."""
        logits, invoke_ms = self._run(image)
        probabilities = softmax(logits, self.temperature)
        logits.setflags(write=False)
        probabilities.setflags(write=False)
        return Prediction(logits=logits, probabilities=probabilities, invoke_ms=invoke_ms)

    def classify(self, image: np.ndarray, k: int = 3) -> list[Category]:
        """The k most probable classes with their calibrated probabilities."""
        return self.predict(image).top_k(k)


def _merge_plan(outputs: tuple[str, ...], other_outputs: tuple[str, ...]) -> list[list[int]] | None:
    """For each of CONDITIONS, the output indices that sum into it; None when 1:1 in order."""
    if outputs == CONDITIONS and not other_outputs:
        return None
    plan = []
    for c in CONDITIONS:
        names = [*other_outputs, *([OTHER] if OTHER in outputs else [])] if c == OTHER else [c]
        plan.append([outputs.index(n) for n in names])
    return plan


def merge_logits(logits: np.ndarray, plan: list[list[int]]) -> np.ndarray:
    """(N, outputs) logits → (N, CONDITIONS) logits: log-sum-exp over each group, so that the
    softmax of the result is the sum of the fine softmax probabilities of each group."""
    z = np.asarray(logits, dtype=np.float64)
    cols = []
    for idx in plan:
        sub = z[:, idx]
        m = sub.max(axis=1)
        cols.append(m + np.log(np.exp(sub - m[:, None]).sum(axis=1)))
    return np.stack(cols, axis=1).astype(np.float32)


def _tensor_quantization(detail: Mapping[str, Any], path: Path, which: str) -> tuple[float, int]:
    params = detail.get("quantization_parameters") or {}
    scales = np.asarray(params.get("scales", []), dtype=np.float64).reshape(-1)
    zero_points = np.asarray(params.get("zero_points", []), dtype=np.int64).reshape(-1)
    if scales.size == 0:
        scale, zero_point = detail.get("quantization", (0.0, 0))
        scales, zero_points = np.array([scale], dtype=np.float64), np.array([zero_point])
    if scales.size != 1 or zero_points.size != 1:
        raise ModelError(
            f"model file {path} {which} is quantized per channel ({scales.size} scales); "
            "a per-tensor scale is expected"
        )
    scale, zero_point = float(scales[0]), int(zero_points[0])
    if not (math.isfinite(scale) and scale > 0):
        raise ModelError(f"model file {path} {which} is quantized but has no valid scale ({scale})")
    return scale, zero_point
