"""Shared fixtures: a tiny real TFLite model (int8 and float) built once per session.

The tiny model is a small conv net trained for a few seconds on synthetic images whose class is
their dominant colour, so its logits are well separated and int8 and float variants can be
compared meaningfully. It exercises the runtime's mechanics, not screening quality.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kiosk.files import sha256_file
from kiosk.model.conditions import CONDITIONS
from tests.firebase_fixtures import *  # noqa: F403  (emulator fixtures)
from tests.mqtt_broker import mqtt_broker  # noqa: F401  (a real Mosquitto)

SIDE = 224
MEAN, STD = 127.0, 128.0
TEMPERATURE = 1.3
INT8_NAME = "tiny_int8.tflite"
FLOAT_NAME = "tiny_float.tflite"
METADATA_NAME = "tiny.json"

# One dominant colour per class, in CONDITIONS order.
PALETTE = np.array(
    [
        [200, 60, 60],
        [60, 200, 60],
        [60, 60, 200],
        [200, 200, 60],
        [60, 200, 200],
        [200, 60, 200],
        [128, 128, 128],
    ],
    dtype=np.float32,
)


sha256_of = sha256_file  # the project's own helper, under the name the tests use


def synthetic_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n uint8 RGB images (n, 224, 224, 3), class i % 7, and their labels."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % len(CONDITIONS)
    noise = rng.normal(0.0, 40.0, (n, SIDE, SIDE, 3)).astype(np.float32)
    images = np.clip(PALETTE[labels][:, None, None, :] + noise, 0, 255).astype(np.uint8)
    return images, labels


@dataclass(frozen=True)
class TinyModel:
    dir: Path
    metadata_path: Path
    int8_path: Path
    float_path: Path
    images: np.ndarray  # held-out uint8 images (N, 224, 224, 3)
    labels: np.ndarray

    def metadata(self) -> dict[str, Any]:
        return json.loads(self.metadata_path.read_text())

    def write_metadata(self, data: dict[str, Any]) -> None:
        self.metadata_path.write_text(json.dumps(data, indent=2))

    def edit_metadata(self, **changes: Any) -> dict[str, Any]:
        """Replace top-level keys (deep-copied) and write the metadata back."""
        data = self.metadata()
        data.update(copy.deepcopy(changes))
        self.write_metadata(data)
        return data

    def copy_to(self, directory: Path) -> TinyModel:
        directory.mkdir(parents=True, exist_ok=True)
        for p in (self.metadata_path, self.int8_path, self.float_path):
            shutil.copy2(p, directory / p.name)
        return replace(
            self,
            dir=directory,
            metadata_path=directory / self.metadata_path.name,
            int8_path=directory / self.int8_path.name,
            float_path=directory / self.float_path.name,
        )


def metadata_for(int8_path: Path, float_path: Path) -> dict[str, Any]:
    return {
        "name": "tiny-test-model",
        "version": "0.0.1-test",
        "classes": list(CONDITIONS),
        "input": {
            "height": SIDE,
            "width": SIDE,
            "channels": 3,
            "mean": MEAN,
            "std": STD,
            "preprocess": "centre square crop, area resize to 224",
        },
        "output": "logits",
        "files": {
            "int8": {
                "path": int8_path.name,
                "sha256": sha256_of(int8_path),
                "bytes": int8_path.stat().st_size,
                "quantization": "full integer int8, uint8 input and output",
            },
            "float": {
                "path": float_path.name,
                "sha256": sha256_of(float_path),
                "bytes": float_path.stat().st_size,
                "quantization": "none (float32)",
            },
        },
        "calibration": {"temperature": TEMPERATURE, "fitted_on": "nothing (test model)"},
        "thresholds": {"abstain_below": 0.5, "urgent_at": 0.3},
        "training": {"data": "synthetic colour classes", "epochs": 8},
        "metrics": {},
    }


def _build_tiny_model(directory: Path) -> TinyModel:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    from cloud.training.lite0_keras import normalise_nhwc as normalise
    from cloud.training.tflite_export import convert_float, convert_int8

    keras.utils.set_random_seed(0)
    train_x, train_y = synthetic_images(84, seed=1)
    held_x, held_y = synthetic_images(28, seed=2)

    inputs = keras.Input((SIDE, SIDE, 3))
    h = keras.layers.Conv2D(8, 3, strides=4, activation="relu")(inputs)
    h = keras.layers.Conv2D(16, 3, strides=2, activation="relu")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    outputs = keras.layers.Dense(len(CONDITIONS))(h)  # logits
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(normalise(train_x), train_y, epochs=8, batch_size=14, verbose=0)

    int8_path = directory / INT8_NAME
    with warnings.catch_warnings():
        # "Statistics for quantized inputs were expected": the representative dataset sets them.
        warnings.simplefilter("ignore", UserWarning)
        int8_path.write_bytes(convert_int8(model, train_x[:28]))
    float_path = directory / FLOAT_NAME
    float_path.write_bytes(convert_float(model))

    metadata_path = directory / METADATA_NAME
    metadata_path.write_text(json.dumps(metadata_for(int8_path, float_path), indent=2))
    return TinyModel(
        dir=directory,
        metadata_path=metadata_path,
        int8_path=int8_path,
        float_path=float_path,
        images=held_x,
        labels=held_y,
    )


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> TinyModel:
    """The session's pristine tiny model; do not modify its files (use `model_copy`)."""
    return _build_tiny_model(tmp_path_factory.mktemp("tiny_model"))


@pytest.fixture
def model_copy(tiny_model: TinyModel, tmp_path: Path) -> TinyModel:
    """A private copy of the tiny model that a test may corrupt or edit."""
    return tiny_model.copy_to(tmp_path / "model")
