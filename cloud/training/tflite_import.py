"""A float Lite0 `.tflite` back into a PyTorch state dict, so training can continue from it.

Until model v2 only the converted `.tflite` files of the shipped model were kept, not its
training checkpoint. The float file still holds every weight: the converter folded each
BatchNorm into the bias of the convolution before it, so a conv's (weight, bias) pair is the
whole layer. In the PyTorch Lite0 that layer is conv (no bias) + BatchNorm; the BatchNorm is made
an identity that adds the folded bias: gamma 1, beta = bias, running mean 0 and running variance
1 - eps, so (x - 0) / sqrt(1 - eps + eps) * 1 + bias = x + bias exactly.

The graph's ops come in topological order, which for this chain-with-skips network is the layer
order of `lite0_spec` (stem, then per block expand / depthwise / project, head, classifier).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from cloud.training.lite0_spec import BN_EPSILON, lite0_blocks


class TfliteImportError(ValueError):
    pass


def _layer_keys() -> list[tuple[str, str, str]]:
    """(op type, conv weight key, BatchNorm prefix) per layer, in graph order."""
    keys = [("CONV_2D", "_conv_stem.weight", "_bn0")]
    for spec in lite0_blocks():
        t = f"_blocks.{spec.index}."
        if spec.expand_ratio != 1:
            keys.append(("CONV_2D", t + "_expand_conv.weight", t + "_bn0"))
        keys.append(("DEPTHWISE_CONV_2D", t + "_depthwise_conv.weight", t + "_bn1"))
        keys.append(("CONV_2D", t + "_project_conv.weight", t + "_bn2"))
    keys.append(("CONV_2D", "_conv_head.weight", "_bn1"))
    return keys


def _identity_bn(prefix: str, bias: np.ndarray) -> dict[str, torch.Tensor]:
    c = bias.shape[0]
    return {
        f"{prefix}.weight": torch.ones(c),
        f"{prefix}.bias": torch.from_numpy(bias.astype(np.float32)),
        f"{prefix}.running_mean": torch.zeros(c),
        f"{prefix}.running_var": torch.full((c,), 1.0 - BN_EPSILON),
        f"{prefix}.num_batches_tracked": torch.tensor(0),
    }


def lite0_state_from_tflite(path: Path) -> dict[str, torch.Tensor]:
    """The PyTorch Lite0 state dict (lukemelas key layout) equivalent to a float Lite0 .tflite."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    # No delegate: XNNPACK may take ownership of constant buffers, and we read them back.
    it = Interpreter(
        model_path=str(path),
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    it.allocate_tensors()
    details = {t["index"]: t for t in it.get_tensor_details()}
    if any(np.dtype(t["dtype"]) != np.float32 for t in details.values() if t["shape"].size > 1):
        raise TfliteImportError(f"{path.name}: not a float32 model (import the float twin)")
    ops = [o for o in it._get_ops_details() if o["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    fcs = [o for o in it._get_ops_details() if o["op_name"] == "FULLY_CONNECTED"]
    keys = _layer_keys()
    if len(ops) != len(keys) or len(fcs) != 1:
        raise TfliteImportError(
            f"{path.name}: {len(ops)} conv ops and {len(fcs)} dense, want {len(keys)} and 1"
        )
    state: dict[str, torch.Tensor] = {}
    for op, (kind, weight_key, bn_prefix) in zip(ops, keys, strict=True):
        if op["op_name"] != kind:
            raise TfliteImportError(f"{path.name}: {op['op_name']} where {kind} was expected")
        w = it.get_tensor(int(op["inputs"][1]))
        b = it.get_tensor(int(op["inputs"][2]))
        # conv OHWI → OIHW; depthwise (1, H, W, C) → (C, 1, H, W)
        w = w.transpose(0, 3, 1, 2) if kind == "CONV_2D" else w.transpose(3, 0, 1, 2)
        state[weight_key] = torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32))
        state |= _identity_bn(bn_prefix, b)
    fc = fcs[0]
    state["_fc.weight"] = torch.from_numpy(it.get_tensor(int(fc["inputs"][1])).astype(np.float32))
    state["_fc.bias"] = torch.from_numpy(it.get_tensor(int(fc["inputs"][2])).astype(np.float32))
    return state


def float_tflite_logits(path: Path, images_uint8: np.ndarray) -> np.ndarray:
    """Logits of a float .tflite on uint8 NHWC images (normalised as in training)."""
    from ai_edge_litert.interpreter import Interpreter

    from cloud.training.lite0_keras import normalise_nhwc

    it = Interpreter(model_path=str(path), num_threads=2)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    rows = []
    for img in images_uint8:
        it.set_tensor(inp, normalise_nhwc(img[None]))
        it.invoke()
        rows.append(it.get_tensor(out)[0].copy())
    return np.stack(rows)
