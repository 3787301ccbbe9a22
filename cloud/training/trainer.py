"""Fine-tuning Lite0 on the skin images: the loop behind scripts/train.py.

Two recipes share this code:
- `gpu`: every block trainable (BatchNorm frozen), augmentation on the fly, many epochs.
- `cpu`: the lower blocks stay frozen, so their output is computed once for a few augmented
  views of every training image and cached; only the top blocks and the head train on that
  cache. This is what lets a 2-core machine finish in well under 90 minutes.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from tqdm import tqdm

from cloud.training.augment import augment, centre_view
from cloud.training.lite0_torch import (
    Lite0,
    freeze_below,
    load_imagenet_lite0,
    run_blocks,
    run_head,
    set_batchnorm_eval,
)
from kiosk.files import atomic_write_bytes
from kiosk.model.conditions import CONDITIONS

INPUT_SIDE = 224
NUM_BLOCKS = 16


@dataclass
class TrainConfig:
    out_dir: Path
    device: str = "cpu"
    seed: int = 0
    head_epochs: int = 2
    epochs: int = 12
    first_trainable_block: int = 12  # 0 = everything trainable
    cache_views: int = 2  # > 0: cache the frozen trunk's output for this many views (cpu recipe)
    batch_size: int = 64
    head_lr: float = 2e-3
    lr: float = 5e-4
    weight_decay: float = 1e-4
    label_smoothing: float = 0.05
    balance_power: float = 0.5  # sample class c with weight n_c^-power per image (1 = balanced)
    ema_decay: float = 0.998
    max_minutes: float = 0.0  # > 0: shorten the fine-tune stage to end within this budget
    eval_every: int = 0  # quick validation every N epochs (0: only at the end)
    threads: int = 2
    extra: dict = field(default_factory=dict)


@dataclass
class TrainData:
    train_images: np.ndarray  # uint8 (N, S, S, 3)
    train_labels: np.ndarray  # int64 (N,)
    val_images: np.ndarray
    val_labels: np.ndarray
    val_names: list[str]  # file or synthetic name per val image
    val_source_classes: list[str]


def _sampling_weights(labels: np.ndarray, power: float) -> np.ndarray:
    counts = np.bincount(labels, minlength=len(CONDITIONS)).astype(np.float64)
    w = 1.0 / np.maximum(counts[labels], 1) ** power
    return w / w.sum()


def save_atomic(obj: object, path: Path) -> None:
    """torch.save through kiosk.files: a crash mid-write never leaves a torn checkpoint."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


class Trainer:
    def __init__(self, cfg: TrainConfig, data: TrainData) -> None:
        self.cfg = cfg
        self.data = data
        self.device = torch.device(cfg.device)
        torch.manual_seed(cfg.seed)
        if self.device.type == "cpu":
            torch.set_num_threads(cfg.threads)
        self.gen = torch.Generator(device=self.device).manual_seed(cfg.seed)
        self.rng = np.random.default_rng(cfg.seed)
        self.model = self._init_model().to(self.device).to(memory_format=torch.channels_last)
        self.ema = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.history: list[dict] = []
        self.checkpoint = cfg.out_dir / "checkpoint.pt"
        self.start_epoch = 0
        self.started = time.time()
        self.trunk_cache: torch.Tensor | None = None
        self.trunk_cache_labels: torch.Tensor | None = None

    def _init_model(self) -> Lite0:
        model = Lite0(len(CONDITIONS))
        imagenet = load_imagenet_lite0().state_dict()
        imagenet = {k: v for k, v in imagenet.items() if not k.startswith("_fc.")}
        missing, _ = model.load_state_dict(imagenet, strict=False)
        assert set(missing) == {"_fc.weight", "_fc.bias"}, missing
        return model

    # ---- schedule -------------------------------------------------------------------------

    @property
    def total_epochs(self) -> int:
        return self.cfg.head_epochs + self.cfg.epochs

    def _stage(self, epoch: int) -> str:
        return "head" if epoch < self.cfg.head_epochs else "finetune"

    def _optimizer(self, stage: str) -> torch.optim.Optimizer:
        if stage == "head":
            freeze_below(self.model, NUM_BLOCKS)
            for p in self.model._conv_head.parameters():
                p.requires_grad = False
        else:
            freeze_below(self.model, self.cfg.first_trainable_block)
        params = [p for p in self.model.parameters() if p.requires_grad]
        lr = self.cfg.head_lr if stage == "head" else self.cfg.lr
        return torch.optim.AdamW(params, lr=lr, weight_decay=self.cfg.weight_decay)

    def _lr_at(self, stage: str, progress: float) -> float:
        """Linear warm-up for the first 5% of a stage, then cosine to 2% of the peak."""
        peak = self.cfg.head_lr if stage == "head" else self.cfg.lr
        if progress < 0.05:
            return peak * (0.1 + 0.9 * progress / 0.05)
        return peak * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * (progress - 0.05) / 0.95)))

    # ---- data paths -----------------------------------------------------------------------

    def _epoch_indices(self) -> np.ndarray:
        n = len(self.data.train_labels)
        p = _sampling_weights(self.data.train_labels, self.cfg.balance_power)
        return self.rng.choice(n, size=n, replace=True, p=p)

    def _uses_trunk_cache(self, stage: str) -> bool:
        # The head stage trains on the cache too: blocks above it are frozen then, and cheap.
        del stage
        return self.cfg.cache_views > 0 and self.cfg.first_trainable_block > 0

    @torch.no_grad()
    def _build_trunk_cache(self) -> None:
        """Frozen blocks' output for `cache_views` augmented views of every training image."""
        k = self.cfg.first_trainable_block
        self.model.eval()
        chunks, labels = [], []
        n = len(self.data.train_labels)
        bs = self.cfg.batch_size
        bar = tqdm(total=n * self.cfg.cache_views, desc="trunk cache", unit="img")
        for _ in range(self.cfg.cache_views):
            for i in range(0, n, bs):
                batch = torch.from_numpy(self.data.train_images[i : i + bs]).to(self.device)
                x = augment(batch, INPUT_SIDE, self.gen).contiguous(
                    memory_format=torch.channels_last
                )
                chunks.append(run_blocks(self.model, x, 0, k).half().cpu())
                bar.update(len(batch))
            labels.append(torch.from_numpy(self.data.train_labels))
        bar.close()
        self.trunk_cache = torch.cat(chunks)
        self.trunk_cache_labels = torch.cat(labels)

    # ---- loop -----------------------------------------------------------------------------

    def _loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float(), y, label_smoothing=self.cfg.label_smoothing)

    def _autocast(self):
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return torch.autocast("cpu", enabled=False)

    def _train_epoch(self, epoch: int, opt: torch.optim.Optimizer) -> float:
        stage = self._stage(epoch)
        stage_start = 0 if stage == "head" else self.cfg.head_epochs
        stage_len = self.cfg.head_epochs if stage == "head" else self.cfg.epochs
        self.model.train()
        set_batchnorm_eval(self.model)
        cached = self._uses_trunk_cache(stage)
        if cached:
            assert self.trunk_cache is not None and self.trunk_cache_labels is not None
            n = len(self.trunk_cache_labels)
            p = _sampling_weights(self.trunk_cache_labels.numpy(), self.cfg.balance_power)
            order = self.rng.choice(n, size=len(self.data.train_labels), replace=True, p=p)
        else:
            order = self._epoch_indices()
        bs = self.cfg.batch_size
        steps = max(1, len(order) // bs)
        losses = []
        bar = tqdm(range(steps), desc=f"epoch {epoch + 1}/{self.total_epochs} {stage}", unit="step")
        for step in bar:
            idx = np.sort(order[step * bs : (step + 1) * bs])
            progress = ((epoch - stage_start) + step / steps) / max(stage_len, 1)
            for group in opt.param_groups:
                group["lr"] = self._lr_at(stage, progress)
            with self._autocast():
                if cached:
                    feats = self.trunk_cache[idx].to(self.device).float()
                    y = self.trunk_cache_labels[idx].to(self.device)
                    feats = feats.contiguous(memory_format=torch.channels_last)
                    logits = run_head(
                        self.model,
                        run_blocks(self.model, feats, self.cfg.first_trainable_block, NUM_BLOCKS),
                    )
                else:
                    batch = torch.from_numpy(self.data.train_images[idx]).to(self.device)
                    y = torch.from_numpy(self.data.train_labels[idx]).to(self.device)
                    x = augment(batch, INPUT_SIDE, self.gen).contiguous(
                        memory_format=torch.channels_last
                    )
                    logits = self.model(x)
                loss = self._loss(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            self._update_ema()
            losses.append(float(loss.detach()))
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
        return float(np.mean(losses))

    @torch.no_grad()
    def _update_ema(self) -> None:
        d = self.cfg.ema_decay
        for k, v in self.model.state_dict().items():
            if v.dtype.is_floating_point:
                self.ema[k].mul_(d).add_(v.detach(), alpha=1 - d)
            else:
                self.ema[k].copy_(v)

    @torch.no_grad()
    def predict_logits(self, images: np.ndarray, state: dict | None = None) -> np.ndarray:
        """Logits for un-augmented images with the given weights (default: the EMA weights)."""
        model = Lite0(len(CONDITIONS)).to(self.device).to(memory_format=torch.channels_last)
        model.load_state_dict(state or self.ema)
        model.eval()
        out = []
        for i in range(0, len(images), 128):
            batch = torch.from_numpy(images[i : i + 128]).to(self.device)
            x = centre_view(batch, INPUT_SIDE).contiguous(memory_format=torch.channels_last)
            out.append(model(x).float().cpu())
        return torch.cat(out).numpy()

    def _quick_val(self) -> dict:
        logits = self.predict_logits(self.data.val_images)
        pred = logits.argmax(1)
        y = self.data.val_labels
        recalls = [float((pred[y == c] == c).mean()) for c in np.unique(y)]
        return {"val_accuracy": float((pred == y).mean()), "val_balanced": float(np.mean(recalls))}

    def _save_checkpoint(self, epoch: int, opt: torch.optim.Optimizer) -> None:
        save_atomic(
            {
                "epoch": epoch,
                "model": self.model.state_dict(),
                "ema": self.ema,
                "optimizer": opt.state_dict(),
                "rng": self.rng.bit_generator.state,
                "gen": self.gen.get_state(),
                "history": self.history,
            },
            self.checkpoint,
        )

    def resume(self) -> None:
        if not self.checkpoint.exists():
            return
        ckpt = torch.load(self.checkpoint, map_location=self.device, weights_only=False)
        self.model.load_state_dict(ckpt["model"])
        self.ema = ckpt["ema"]
        self.rng.bit_generator.state = ckpt["rng"]
        self.gen.set_state(ckpt["gen"])
        self.history = ckpt["history"]
        self.start_epoch = ckpt["epoch"] + 1
        self._resume_opt_state = ckpt["optimizer"]
        print(f"resuming after epoch {self.start_epoch}")

    def _fit_budget(self, epoch: int, stage: str, epoch_seconds: float) -> None:
        """Early in fine-tuning, cut the epoch count so the run ends within the time budget.

        Done once, early, so the cosine schedule still runs its whole course.
        """
        # The second fine-tune epoch: the first one carries warm-up costs (cuDNN autotuning,
        # allocator growth) that once made a GPU run cut itself to a quarter of its budget.
        measured_epoch = epoch == self.cfg.head_epochs + 1
        if not (self.cfg.max_minutes > 0 and stage == "finetune" and measured_epoch):
            return
        left = self.cfg.max_minutes * 60 - (time.time() - self.started)
        affordable = 1 + int(left / (epoch_seconds * 1.05))
        if affordable < self.cfg.epochs:
            print(f"time budget: fine-tuning {affordable} epochs instead of {self.cfg.epochs}")
            self.cfg.epochs = max(affordable, 1)

    def fit(self) -> dict:
        eval_every = self.cfg.eval_every
        opt, opt_stage = None, None
        epoch = self.start_epoch
        while epoch < self.total_epochs:  # total_epochs may shrink under a time budget
            stage = self._stage(epoch)
            if stage != opt_stage:
                opt, opt_stage = self._optimizer(stage), stage
                if stage == "finetune":
                    # EMA restarts when the whole network starts moving; before, only the head did.
                    self.ema = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
                if getattr(self, "_resume_opt_state", None) is not None:
                    with contextlib.suppress(ValueError):
                        opt.load_state_dict(self._resume_opt_state)
                    self._resume_opt_state = None
                if self._uses_trunk_cache(stage) and self.trunk_cache is None:
                    self._build_trunk_cache()
            t0 = time.time()
            loss = self._train_epoch(epoch, opt)
            row = {"epoch": epoch + 1, "stage": stage, "loss": loss, "seconds": time.time() - t0}
            if (eval_every and (epoch + 1) % eval_every == 0) or epoch + 1 == self.total_epochs:
                row |= self._quick_val()
            self.history.append(row)
            self._fit_budget(epoch, stage, row["seconds"])
            print(json.dumps(row), flush=True)
            self._save_checkpoint(epoch, opt)
            epoch += 1
        return {"config": {k: str(v) for k, v in asdict(self.cfg).items()}, "history": self.history}
