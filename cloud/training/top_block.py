"""Retrain Lite0's top block, head conv and classifier on cached top-block inputs.

The trunk below block 15 stays frozen (its output for every augmented view is cached by
feature_cache), so one training step costs only the 7×7 top of the network: ~15× cheaper than
the whole net, which is what makes feature learning affordable on 2 CPU cores. BatchNorm stays
frozen (the warm start's BatchNorms are identities carrying the folded biases).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from cloud.training.feature_cache import TOP_BLOCK
from cloud.training.head import row_weights
from cloud.training.lite0_torch import Lite0, freeze_below, run_blocks, run_head, set_batchnorm_eval
from cloud.training.v2_data import OUTPUTS, FeatureSet

NUM_BLOCKS = 16


@dataclass
class TopBlockConfig:
    epochs: int = 8
    batch_size: int = 128
    lr: float = 3e-4
    head_lr: float = 1e-3
    weight_decay: float = 1e-4
    label_smoothing: float = 0.05
    class_power: float = 1.0
    source_power: float = 0.5
    fine_power: float = 1.0
    seed: int = 0
    threads: int = 2
    max_minutes: float = 0.0  # > 0: fewer epochs when an epoch is slower than planned

    def as_dict(self) -> dict:
        return asdict(self)


def build_model(warm_state: dict, head: tuple[np.ndarray, np.ndarray]) -> Lite0:
    """Lite0 with the warm trunk and the fine-grained head, top block trainable."""
    model = Lite0(len(OUTPUTS))
    state = {k: v for k, v in warm_state.items() if not k.startswith("_fc.")}
    state["_fc.weight"] = torch.from_numpy(np.ascontiguousarray(head[0], dtype=np.float32))
    state["_fc.bias"] = torch.from_numpy(np.ascontiguousarray(head[1], dtype=np.float32))
    model.load_state_dict(state)
    freeze_below(model, TOP_BLOCK)
    return model


def _to_nchw(top_nhwc: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(np.asarray(top_nhwc, dtype=np.float32)).permute(0, 3, 1, 2)
    return x.contiguous(memory_format=torch.channels_last)


@torch.no_grad()
def top_logits(model: Lite0, top_nhwc: np.ndarray, batch: int = 256) -> np.ndarray:
    model.eval()
    out = []
    for i in range(0, len(top_nhwc), batch):
        x = _to_nchw(top_nhwc[i : i + batch])
        out.append(run_head(model, run_blocks(model, x, TOP_BLOCK, NUM_BLOCKS)).numpy())
    return np.concatenate(out)


def train_top_block(
    train: FeatureSet, model: Lite0, cfg: TopBlockConfig, log=print, on_epoch=None
) -> dict:
    """Train in place. Each epoch shows every image once, in a random one of its cached views
    (the centre view counts as one); rows are weighted as in head.row_weights."""
    assert train.centre_top is not None and train.views_top is not None
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    rng = np.random.default_rng(cfg.seed)
    sources = [train.centre_top, *train.views_top]
    n = len(train.labels)
    w = torch.from_numpy(
        row_weights(
            train.labels, train.sources, cfg.class_power, cfg.source_power, cfg.fine_power
        ).astype(np.float32)
    )
    y_all = torch.from_numpy(train.labels)
    head_params = list(model._fc.parameters())
    body = [
        p for p in model.parameters() if p.requires_grad and all(p is not h for h in head_params)
    ]
    opt = torch.optim.AdamW(
        [{"params": body, "lr": cfg.lr}, {"params": head_params, "lr": cfg.head_lr}],
        weight_decay=cfg.weight_decay,
    )
    peaks = [cfg.lr, cfg.head_lr]
    steps = max(1, n // cfg.batch_size)
    epochs = cfg.epochs
    history = []
    started = time.time()
    epoch = 0
    while epoch < epochs:
        t0 = time.time()
        model.train()
        set_batchnorm_eval(model)
        order = rng.permutation(n)
        view = rng.integers(0, len(sources), n)
        losses = []
        for s in range(steps):
            idx = np.sort(order[s * cfg.batch_size : (s + 1) * cfg.batch_size])
            progress = (epoch + s / steps) / epochs
            for group, peak in zip(opt.param_groups, peaks, strict=True):
                group["lr"] = peak * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress)))
            rows = np.empty((len(idx), *train.centre_top.shape[1:]), dtype=np.float16)
            for v in np.unique(view[idx]):
                sel = view[idx] == v
                rows[sel] = sources[v][idx[sel]]
            x = _to_nchw(rows)
            logits = run_head(model, run_blocks(model, x, TOP_BLOCK, NUM_BLOCKS))
            loss = F.cross_entropy(
                logits, y_all[idx], reduction="none", label_smoothing=cfg.label_smoothing
            )
            loss = (loss * w[idx]).sum() / w[idx].sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        seconds = time.time() - t0
        row = {"epoch": epoch + 1, "loss": float(np.mean(losses)), "seconds": seconds}
        if on_epoch is not None:
            row |= on_epoch(model)
        history.append(row)
        log(f"top block epoch {epoch + 1}/{epochs}: {row}")
        if epoch == 0 and cfg.max_minutes > 0:
            left = cfg.max_minutes * 60 - (time.time() - started)
            affordable = 1 + int(left / (seconds * 1.05))
            if affordable < epochs:
                log(f"time budget: {affordable} top-block epochs instead of {epochs}")
                epochs = max(affordable, 1)
        epoch += 1
    return {"history": history, "epochs_run": epochs, "config": cfg.as_dict()}
