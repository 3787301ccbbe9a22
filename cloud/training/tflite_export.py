"""Keras → TFLite: a float32 model for the cloud and a full-integer int8 model for the kiosk."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from cloud.training.lite0_keras import normalise_nhwc


def range_pinning_image(side: int) -> np.ndarray:
    """One image holding every value 0..255, so calibration sees the full pixel range.

    With the range pinned, the converter picks input scale 1/128 and zero point 127: the
    kiosk's raw uint8 pixels are then exactly the normalised input, with no rescaling step.
    """
    ramp = np.arange(side * side * 3, dtype=np.int64) % 256
    return ramp.reshape(side, side, 3).astype(np.uint8)


def convert_float(keras_model) -> bytes:
    import tensorflow as tf

    return tf.lite.TFLiteConverter.from_keras_model(keras_model).convert()


def convert_int8(keras_model, representative_uint8: np.ndarray) -> bytes:
    """Full-integer model: uint8 in, uint8 logits out, only integer kernels inside."""
    import tensorflow as tf

    side = representative_uint8.shape[1]
    samples = np.concatenate([range_pinning_image(side)[None], representative_uint8])

    def representative() -> Iterator[list[np.ndarray]]:
        for img in samples:
            yield [normalise_nhwc(img[None])]

    conv = tf.lite.TFLiteConverter.from_keras_model(keras_model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.uint8
    conv.inference_output_type = tf.uint8
    return conv.convert()


def float_tensor_names(model_bytes: bytes) -> list[str]:
    """Tensors of a float type in the graph (weights and activations); empty for full int8."""
    from kiosk.model.classifier import load_interpreter_class

    interpreter = load_interpreter_class()(model_content=model_bytes)
    return [d["name"] for d in interpreter.get_tensor_details() if np.dtype(d["dtype"]).kind == "f"]
