"""The EfficientNet-Lite0 architecture as plain data, shared by the PyTorch and Keras builds.

Lite0 is EfficientNet-B0 made friendly to integer accelerators: no squeeze-and-excite, ReLU6
instead of swish, and a fixed 32-channel stem and 1280-channel head. Both builds read this one
table so that a weight ported from one to the other lands in the same layer.
"""

from __future__ import annotations

from dataclasses import dataclass

BN_EPSILON = 1e-3
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
IMAGENET_CLASSES = 1000


@dataclass(frozen=True)
class BlockSpec:
    """One inverted-residual (MBConv) block."""

    index: int
    kernel: int
    stride: int
    expand_ratio: int
    in_channels: int
    out_channels: int

    @property
    def expanded_channels(self) -> int:
        return self.in_channels * self.expand_ratio

    @property
    def has_skip(self) -> bool:
        return self.stride == 1 and self.in_channels == self.out_channels


# (repeats, kernel, stride, expand_ratio, in_channels, out_channels) per stage.
_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)


def lite0_blocks() -> list[BlockSpec]:
    blocks: list[BlockSpec] = []
    for repeats, kernel, stride, expand, cin, cout in _STAGES:
        for r in range(repeats):
            blocks.append(
                BlockSpec(
                    index=len(blocks),
                    kernel=kernel,
                    stride=stride if r == 0 else 1,
                    expand_ratio=expand,
                    in_channels=cin if r == 0 else cout,
                    out_channels=cout,
                )
            )
    return blocks
