"""The cpu-v2 recipe: warm start, cached augmented views, fine-grained head, top block.

    warm start (the shipped model's weights, from its checkpoint or its float .tflite)
    → embeddings + top-block inputs of N source-erasing views of every training image (LiteRT)
    → linear head on the embeddings, 11 outputs, class- and source-balanced
    → leave-one-source-out runs and a kNN out-of-distribution measurement (head only: cheap)
    → the top block + head conv + head retrained on the cached top-block inputs (kept only if
      it scores better on validation)
    → model.pt (float32 state dict, 11 outputs), val_logits.npz, summary.json

scripts/train.py --recipe cpu-v2 runs it; scripts/convert.py and scripts/evaluate.py follow.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from cloud.training.head import HeadConfig, head_logits, init_from_v1, train_head
from cloud.training.referral import (
    BENIGN_LESIONS,
    auc,
    cancer_score,
    choose_rule,
    melanoma_vs_benign_auc,
    merge_outputs,
    operating_table,
)
from cloud.training.top_block import TopBlockConfig, build_model, top_logits, train_top_block
from cloud.training.v2_data import OTHER_OUTPUTS, OUTPUTS, SIX, FeatureSet, prepare
from kiosk.files import atomic_write_bytes
from kiosk.model.classifier import softmax
from kiosk.model.conditions import CONDITIONS, OTHER

V1_TEMPERATURE = 0.9967  # the shipped v1 model's calibration, for its "before" numbers


@dataclass
class V2Config:
    data: Path
    out: Path
    warm_start: Path
    views: int = 12
    seed: int = 0
    val_fraction: float = 0.2
    top_block_epochs: int = 5
    max_minutes: float = 0.0
    threads: int = 2
    workers: int = 4
    device: str = "cpu"
    limit_per_class: int = 0
    head: HeadConfig = field(default_factory=HeadConfig)


def load_warm_start(path: Path) -> dict[str, torch.Tensor]:
    """A Lite0 state dict from a checkpoint (.pt, fp16 allowed) or a float .tflite."""
    if path.suffix == ".tflite":
        from cloud.training.tflite_import import lite0_state_from_tflite

        return lite0_state_from_tflite(path)
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = state.get("model", state)
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


def _initial_head(warm: dict) -> tuple[np.ndarray, np.ndarray]:
    w, b = warm["_fc.weight"].numpy(), warm["_fc.bias"].numpy()
    if w.shape[0] == len(OUTPUTS):
        return w.copy(), b.copy()
    if w.shape[0] == len(CONDITIONS):
        return init_from_v1(w, b, CONDITIONS)
    raise ValueError(f"warm start has {w.shape[0]} outputs; expected 7 (v1) or {len(OUTPUTS)}")


def probs7(fine_logits: np.ndarray) -> np.ndarray:
    """Kiosk probabilities (CONDITIONS order) from fine or 7-class logits (v1 temperature)."""
    if fine_logits.shape[1] == len(CONDITIONS):
        return softmax(fine_logits, V1_TEMPERATURE)
    return merge_outputs(softmax(fine_logits), OUTPUTS, OTHER_OUTPUTS)


def kinds_of(fs: FeatureSet) -> np.ndarray:
    return np.array([OUTPUTS[i] for i in fs.labels])


def quick_report(fine_logits: np.ndarray, kinds: np.ndarray, sources: np.ndarray) -> dict:
    """Validation numbers used to compare recipes (the full evaluation is scripts/evaluate.py)."""
    p = probs7(fine_logits)
    score = cancer_score(p)
    pred = p.argmax(1)
    y7 = np.array(
        [CONDITIONS.index(k) if k in CONDITIONS else CONDITIONS.index(OTHER) for k in kinds]
    )
    recall = {
        c: float((pred[y7 == i] == i).mean()) for i, c in enumerate(CONDITIONS) if (y7 == i).any()
    }
    six = [recall[c] for c in SIX if c in recall]
    out = {
        "balanced_accuracy_six": float(np.mean(six)) if six else None,
        "recall": recall,
        "out_of_scope_as_other": recall.get(OTHER),
        "melanoma_vs_benign_auc": melanoma_vs_benign_auc(score, kinds),
        "by_source_auc": {
            s: melanoma_vs_benign_auc(score[sources == s], kinds[sources == s])
            for s in sorted(set(sources.tolist()))
            if melanoma_vs_benign_auc(score[sources == s], kinds[sources == s]) is not None
        },
    }
    if (kinds == "melanoma").any():
        rule = choose_rule(score, kinds)
        table = operating_table(score, kinds, {"urgent": rule.urgent_at, "soon": rule.soon_at})
        out["referral"] = {"rule": rule.as_dict(), "table": table}
    return out


def leave_one_source_out(
    train: FeatureSet, val: FeatureSet, cfg: HeadConfig, init, warm_head
) -> dict:
    """Head trained without a source, melanoma-vs-benign AUC on that source.

    ISIC (2017 + archive) held out: tested on every ISIC 2017 picture (train and validation:
    neither the warm-start trunk nor the head saw any). HAM10000 held out: tested on its
    validation pictures (the trunk was fine-tuned on HAM10000's training part). `before` is the
    warm-start model's own head on the same pictures.
    """
    results = {}
    both = FeatureSet(
        np.concatenate([train.centre, val.centre]),
        np.concatenate([train.labels, val.labels]),
        np.concatenate([train.sources, val.sources]),
        train.names + val.names,
        [],
    )
    plans = {
        "isic": (["isic2017", "isic_archive"], both, "isic2017"),
        "ham10000": (["ham10000"], val, "ham10000"),
    }
    for name, (drop, test, test_source) in plans.items():
        keep = ~np.isin(train.sources, drop)
        if keep.all() or not (test.sources == test_source).any():
            continue
        head = train_head(train.subset(keep), cfg, init)
        sel = test.sources == test_source
        kinds = kinds_of(test)[sel]
        after = cancer_score(probs7(head_logits(test.centre[sel], head)))
        before = cancer_score(probs7(head_logits(test.centre[sel], warm_head)))
        results[name] = {
            "trained_without": drop,
            "tested_on": f"{test_source} ({int(sel.sum())} pictures)",
            "auc_before": melanoma_vs_benign_auc(before, kinds),
            "auc_after": melanoma_vs_benign_auc(after, kinds),
        }
    return results


def knn_distance(train_feats: np.ndarray, feats: np.ndarray, k: int = 10) -> np.ndarray:
    """Cosine distance to the k-th nearest training embedding."""
    a = train_feats.astype(np.float32)
    a /= np.linalg.norm(a, axis=1, keepdims=True) + 1e-6
    b = feats.astype(np.float32)
    b /= np.linalg.norm(b, axis=1, keepdims=True) + 1e-6
    out = np.empty(len(b), dtype=np.float32)
    for i in range(0, len(b), 512):
        sim = b[i : i + 512] @ a.T
        out[i : i + 512] = 1 - np.partition(sim, -k, axis=1)[:, -k]
    return out


def knn_measurement(train: FeatureSet, val: FeatureSet, fine_logits: np.ndarray) -> dict:
    """Does an embedding kNN distance tell out-of-scope pictures better than low confidence?

    Out of scope here: non-skin and healthy-skin validation pictures (the kiosk must answer
    `other` or abstain), against the pictures of the six conditions."""
    kinds = kinds_of(val)
    oos = np.isin(kinds, ["non_skin", "healthy_skin"])
    six = np.isin(kinds, SIX)
    sel = oos | six
    dist = knn_distance(train.centre, val.centre)
    p = probs7(fine_logits)
    unsure = 1 - p.max(1)
    not_six = p[:, CONDITIONS.index(OTHER)]
    knn_auc, other_auc = auc(dist[sel], oos[sel]), auc(not_six[sel], oos[sel])
    better = knn_auc is not None and other_auc is not None and knn_auc > other_auc
    return {
        "verdict": "the kNN distance separates better than p(other): worth adding"
        if better
        else "the kNN distance separates worse than p(other), so it is not used",
        "auc_knn_distance": knn_auc,
        "auc_one_minus_confidence": auc(unsure[sel], oos[sel]),
        "auc_p_other": other_auc,
        "out_of_scope_pictures": int(oos.sum()),
        "condition_pictures": int(six.sum()),
    }


def _benign_referred(r: dict) -> float:
    table = (r.get("referral") or {}).get("table") or [{}]
    value = table[0].get("benign_referred")
    return 1.0 if value is None else value  # a perfect 0.0 is a result, not a missing one


def _better(new: dict, old: dict) -> bool:
    """Keep the top-block model when it refers fewer benign lesions at the policy's
    sensitivity and separates melanoma from benign lesions at least as well, without losing
    more than 2 points of balanced accuracy over the six conditions."""
    return (
        _benign_referred(new) < _benign_referred(old)
        and (new["melanoma_vs_benign_auc"] or 0) >= (old["melanoma_vs_benign_auc"] or 0)
        and new["balanced_accuracy_six"] >= old["balanced_accuracy_six"] - 0.02
    )


@torch.no_grad()
def _pooled(model, top_nhwc: np.ndarray) -> np.ndarray:
    from cloud.training.feature_cache import TOP_BLOCK
    from cloud.training.lite0_torch import run_blocks
    from cloud.training.top_block import NUM_BLOCKS, _to_nchw

    model.eval()
    out = []
    for i in range(0, len(top_nhwc), 256):
        x = run_blocks(model, _to_nchw(top_nhwc[i : i + 256]), TOP_BLOCK, NUM_BLOCKS)
        x = torch.nn.functional.relu6(model._bn1(model._conv_head(x)))
        out.append(x.mean(dim=(2, 3)).numpy().astype(np.float16))
    return np.concatenate(out)


def refit_head(model, train: FeatureSet, cfg: HeadConfig) -> None:
    """Retrain the linear head on the retrained top block's embeddings, in place."""
    feats = FeatureSet(
        _pooled(model, train.centre_top),
        train.labels,
        train.sources,
        train.names,
        [_pooled(model, v) for v in train.views_top or []],
    )
    init = (model._fc.weight.detach().numpy().copy(), model._fc.bias.detach().numpy().copy())
    w, b = train_head(feats, cfg, init)
    with torch.no_grad():
        model._fc.weight.copy_(torch.from_numpy(w))
        model._fc.bias.copy_(torch.from_numpy(b))


def final_state(warm: dict, head: tuple[np.ndarray, np.ndarray], model=None) -> dict:
    if model is not None:
        return {
            k: v.detach().float().cpu() if v.is_floating_point() else v.cpu()
            for k, v in model.state_dict().items()
        }
    state = {k: v for k, v in warm.items() if not k.startswith("_fc.")}
    state["_fc.weight"] = torch.from_numpy(np.ascontiguousarray(head[0], dtype=np.float32))
    state["_fc.bias"] = torch.from_numpy(np.ascontiguousarray(head[1], dtype=np.float32))
    return state


def run(cfg: V2Config, limit=None, log=print) -> dict:
    started = time.time()
    torch.set_num_threads(cfg.threads)
    warm = load_warm_start(cfg.warm_start)
    deadline = started + cfg.max_minutes * 60 * 0.55 if cfg.max_minutes > 0 else 0.0
    prep = prepare(
        cfg.data,
        cfg.out / "cache",
        warm,
        cfg.views,
        cfg.seed,
        cfg.val_fraction,
        limit,
        30 if cfg.limit_per_class <= 0 else 2,
        cfg.workers,
        cfg.threads,
        deadline,
        log,
    )
    train, val = prep.train, prep.val
    kinds_val = kinds_of(val)
    init = _initial_head(warm)
    warm_head = (warm["_fc.weight"].numpy(), warm["_fc.bias"].numpy())
    summary: dict = {"timings": dict(prep.timings)}
    summary["warm_start_on_val"] = quick_report(
        head_logits(val.centre, warm_head), kinds_val, val.sources
    )

    t0 = time.time()
    head = train_head(train, cfg.head, init)
    head_val = head_logits(val.centre, head)
    summary["head_only"] = quick_report(head_val, kinds_val, val.sources)
    summary["timings"]["head_s"] = time.time() - t0
    log(f"head only: {_short(summary['head_only'])}")

    t0 = time.time()
    summary["leave_one_source_out"] = leave_one_source_out(train, val, cfg.head, init, warm_head)
    summary["knn_ood"] = knn_measurement(train, val, head_val)
    summary["timings"]["loso_knn_s"] = time.time() - t0
    log(f"leave one source out: {summary['leave_one_source_out']}; kNN: {summary['knn_ood']}")

    chosen, model, val_logits = "head_only", None, head_val
    if cfg.top_block_epochs > 0 and train.views_top is not None:
        t0 = time.time()
        left = cfg.max_minutes - (time.time() - started) / 60 - 2 if cfg.max_minutes > 0 else 0
        top_cfg = TopBlockConfig(
            epochs=cfg.top_block_epochs,
            class_power=cfg.head.class_power,
            source_power=cfg.head.source_power,
            fine_power=cfg.head.fine_power,
            seed=cfg.seed,
            threads=cfg.threads,
            max_minutes=max(left, 1.0) if cfg.max_minutes > 0 else 0.0,
        )
        model = build_model(warm, head)

        def on_epoch(m) -> dict:
            r = quick_report(top_logits(m, val.centre_top), kinds_val, val.sources)
            return {k: r[k] for k in ("balanced_accuracy_six", "melanoma_vs_benign_auc")}

        summary["top_block_training"] = train_top_block(train, model, top_cfg, log, on_epoch)
        summary["top_block_before_refit"] = quick_report(
            top_logits(model, val.centre_top), kinds_val, val.sources
        )
        # The head trained jointly with the block under a cosine schedule ends a little off for
        # the new features; a linear refit on them (all cached views) is cheap and recovers it.
        refit_head(model, train, cfg.head)
        top_val = top_logits(model, val.centre_top)
        summary["top_block"] = quick_report(top_val, kinds_val, val.sources)
        summary["timings"]["top_block_s"] = time.time() - t0
        log(f"top block: {_short(summary['top_block'])}")
        if _better(summary["top_block"], summary["head_only"]):
            chosen, val_logits = "top_block", top_val
        else:
            model = None
    summary["chosen"] = chosen
    state = final_state(warm, head, model)
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(cfg.out / "model.pt", buf.getvalue())
    npz = io.BytesIO()
    np.savez_compressed(
        npz,
        logits=val_logits,
        labels=val.labels,
        names=np.array(val.names),
        sources=val.sources,
        kinds=kinds_val,
    )
    atomic_write_bytes(cfg.out / "val_logits.npz", npz.getvalue())
    summary["outputs"] = list(OUTPUTS)
    summary["other_outputs"] = list(OTHER_OUTPUTS)
    summary["benign_lesions"] = list(BENIGN_LESIONS)
    summary["minutes"] = (time.time() - started) / 60
    return summary


def _short(r: dict) -> str:
    ref = r.get("referral", {}).get("table", [{}])[0].get("benign_referred")
    return (
        f"balanced six {r['balanced_accuracy_six']:.3f}, mel-vs-benign AUC "
        f"{r['melanoma_vs_benign_auc']:.3f}, benign referred {ref}, by source {r['by_source_auc']}"
    )
