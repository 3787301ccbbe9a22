"""The cpu-v2 head: a linear layer on cached Lite0 embeddings, class- and source-balanced.

Every training image contributes its centre view and each cached augmented view. Each row is
weighted so that a class carries weight n_class^(1 - class_power) (1 = every class equal) and,
within a class, each source carries an equal share when source_power is 1 (0 = natural counts).
Source balance is the point of v2: in the v1 pool nearly every non-HAM dermoscopic picture was a
melanoma, so "not HAM-looking" became evidence of melanoma. With each source weighted equally
inside a class, and ISIC 2017 nevi and keratoses in the pool, that evidence is gone.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from cloud.training.v2_data import OUTPUTS, SIX, FeatureSet
from kiosk.model.conditions import OTHER


@dataclass
class HeadConfig:
    epochs: int = 12
    batch_size: int = 512
    lr: float = 2e-3
    weight_decay: float = 1e-3
    label_smoothing: float = 0.05
    class_power: float = 0.75
    source_power: float = 1.0
    fine_power: float = 1.0  # within `other`: 1 = each fine output an equal share
    dropout: float = 0.2
    seed: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def nested_weights(keys: list[np.ndarray], powers: list[float]) -> np.ndarray:
    """Per-row weights (mean 1) that balance nested groups, outermost first.

    At each level the groups inside a parent share its weight in proportion to n^(1 - power):
    power 1 gives each group an equal share, power 0 keeps the natural counts.
    """
    n = len(keys[0])
    w = np.ones(n, dtype=np.float64)

    def split(rows: np.ndarray, level: int, total: float) -> None:
        if level == len(keys):
            w[rows] = total / len(rows)
            return
        groups, inverse = np.unique(keys[level][rows], return_inverse=True)
        counts = np.bincount(inverse, minlength=len(groups)).astype(np.float64)
        shares = counts ** (1.0 - powers[level])
        shares /= shares.sum()
        for g in range(len(groups)):
            split(rows[inverse == g], level + 1, total * shares[g])

    split(np.arange(n), 0, 1.0)
    return w / w.mean()


def row_weights(
    labels: np.ndarray,
    sources: np.ndarray,
    class_power: float,
    source_power: float,
    fine_power: float = 1.0,
) -> np.ndarray:
    """Kiosk class (the seven the kiosk reports), then fine output, then source.

    Balancing the kiosk classes, not the eleven outputs, keeps `other` (five outputs) from
    carrying five times the weight of melanoma, which would pull melanomas into `other`.
    """
    kiosk = np.array([OUTPUTS[i] if OUTPUTS[i] in SIX else OTHER for i in labels])
    return nested_weights(
        [kiosk, labels.astype(str), sources], [class_power, fine_power, source_power]
    )


def _design(train: FeatureSet) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    blocks = [train.centre, *list(train.views)]
    x = np.concatenate(blocks).astype(np.float32)
    y = np.tile(train.labels, len(blocks))
    s = np.tile(train.sources, len(blocks))
    return x, y, s


def train_head(
    train: FeatureSet, cfg: HeadConfig, init: tuple[np.ndarray, np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Weights (len(OUTPUTS), 1280) and bias of the head, by AdamW with a cosine schedule."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    x_np, y_np, s_np = _design(train)
    w_np = row_weights(y_np, s_np, cfg.class_power, cfg.source_power, cfg.fine_power)
    x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)
    rw = torch.from_numpy(w_np.astype(np.float32))
    layer = torch.nn.Linear(x.shape[1], len(OUTPUTS))
    if init is not None:
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(init[0]))
            layer.bias.copy_(torch.from_numpy(init[1]))
    opt = torch.optim.AdamW(layer.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    n = len(y)
    steps_per_epoch = max(1, n // cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    step = 0
    for _ in range(cfg.epochs):
        order = torch.from_numpy(rng.permutation(n))
        for i in range(steps_per_epoch):
            idx = order[i * cfg.batch_size : (i + 1) * cfg.batch_size]
            lr = cfg.lr * 0.5 * (1 + math.cos(math.pi * step / total))
            for group in opt.param_groups:
                group["lr"] = lr
            xb = F.dropout(x[idx], cfg.dropout, training=True)
            loss = F.cross_entropy(
                layer(xb), y[idx], reduction="none", label_smoothing=cfg.label_smoothing
            )
            loss = (loss * rw[idx]).sum() / rw[idx].sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
    return layer.weight.detach().numpy().copy(), layer.bias.detach().numpy().copy()


def head_logits(features: np.ndarray, head: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    return features.astype(np.float32) @ head[0].T + head[1]


def init_from_v1(fc_weight: np.ndarray, fc_bias: np.ndarray, v1_classes) -> tuple:
    """Start the fine-grained head from a 7-class head: each `other` output copies v1's other."""
    rows_w, rows_b = [], []
    for name in OUTPUTS:
        src = v1_classes.index(name) if name in v1_classes else v1_classes.index("other")
        rows_w.append(fc_weight[src])
        rows_b.append(fc_bias[src])
    return np.stack(rows_w).astype(np.float32), np.array(rows_b, dtype=np.float32)
