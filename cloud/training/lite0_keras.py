"""EfficientNet-Lite0 in Keras, built from the same spec as the PyTorch model, for TFLite export.

Training happens in PyTorch (it runs on a GPU when one is lent, and on the CPU otherwise); the
TFLite converter needs a Keras model. `port_torch_weights` copies a trained PyTorch state dict
layer by layer; `max_logit_difference` proves the two compute the same function.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from cloud.training.lite0_spec import BN_EPSILON, HEAD_CHANNELS, STEM_CHANNELS, lite0_blocks


def build_keras_lite0(num_classes: int, side: int = 224):
    """Inference graph only (no dropout); input is the normalised image, output the logits."""
    import keras
    from keras import layers

    def bn(name: str):
        return layers.BatchNormalization(epsilon=BN_EPSILON, name=name)

    def relu6(x):
        return layers.ReLU(max_value=6.0)(x)

    inp = keras.Input((side, side, 3), name="image")
    x = layers.Conv2D(STEM_CHANNELS, 3, 2, "same", use_bias=False, name="stem_conv")(inp)
    x = relu6(bn("stem_bn")(x))
    for spec in lite0_blocks():
        p = f"block{spec.index}_"
        y = x
        if spec.expand_ratio != 1:
            y = layers.Conv2D(spec.expanded_channels, 1, use_bias=False, name=p + "expand")(y)
            y = relu6(bn(p + "expand_bn")(y))
        y = layers.DepthwiseConv2D(
            spec.kernel, spec.stride, "same", use_bias=False, name=p + "depthwise"
        )(y)
        y = relu6(bn(p + "depthwise_bn")(y))
        y = layers.Conv2D(spec.out_channels, 1, use_bias=False, name=p + "project")(y)
        y = bn(p + "project_bn")(y)
        x = layers.Add(name=p + "add")([x, y]) if spec.has_skip else y
    x = layers.Conv2D(HEAD_CHANNELS, 1, use_bias=False, name="head_conv")(x)
    x = relu6(bn("head_bn")(x))
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    out = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inp, out, name="skinscan_lite0")


def _np(t) -> np.ndarray:
    return t.detach().cpu().float().numpy() if hasattr(t, "detach") else np.asarray(t)


def port_torch_weights(model, state: Mapping) -> None:
    """Copy a PyTorch Lite0 state dict into `build_keras_lite0`'s layers (exact names)."""

    def conv(layer: str, key: str) -> None:  # OIHW → HWIO
        model.get_layer(layer).set_weights([_np(state[key]).transpose(2, 3, 1, 0)])

    def depthwise(layer: str, key: str) -> None:  # (C, 1, k, k) → (k, k, C, 1)
        model.get_layer(layer).set_weights([_np(state[key]).transpose(2, 3, 0, 1)])

    def bn(layer: str, prefix: str) -> None:
        model.get_layer(layer).set_weights(
            [_np(state[f"{prefix}.{k}"]) for k in ("weight", "bias", "running_mean", "running_var")]
        )

    conv("stem_conv", "_conv_stem.weight")
    bn("stem_bn", "_bn0")
    for spec in lite0_blocks():
        p, t = f"block{spec.index}_", f"_blocks.{spec.index}."
        if spec.expand_ratio != 1:
            conv(p + "expand", t + "_expand_conv.weight")
            bn(p + "expand_bn", t + "_bn0")
        depthwise(p + "depthwise", t + "_depthwise_conv.weight")
        bn(p + "depthwise_bn", t + "_bn1")
        conv(p + "project", t + "_project_conv.weight")
        bn(p + "project_bn", t + "_bn2")
    conv("head_conv", "_conv_head.weight")
    bn("head_bn", "_bn1")
    model.get_layer("logits").set_weights([_np(state["_fc.weight"]).T, _np(state["_fc.bias"])])


def max_logit_difference(keras_model, torch_state: Mapping, images_uint8: np.ndarray) -> float:
    """Largest |logit difference| between the Keras port and the PyTorch model on real images."""
    import torch

    from cloud.training.lite0_torch import Lite0, normalise

    n_classes = int(torch_state["_fc.bias"].shape[0])
    ref = Lite0(n_classes)
    ref.load_state_dict(dict(torch_state))
    ref.eval()
    with torch.no_grad():
        want = ref(normalise(torch.from_numpy(images_uint8))).numpy()
    got = keras_model.predict(normalise_nhwc(images_uint8), verbose=0)
    return float(np.abs(got - want).max())


def normalise_nhwc(images_uint8: np.ndarray) -> np.ndarray:
    from cloud.training.lite0_torch import INPUT_MEAN, INPUT_STD

    return ((images_uint8.astype(np.float32) - INPUT_MEAN) / INPUT_STD).astype(np.float32)
