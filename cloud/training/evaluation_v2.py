"""The model-v2 additions to scripts/evaluate.py: referral ROC and operating points, bootstrap
intervals, per-source results, float-vs-int8 recall, and the old model beside the new.

Inputs are the kiosk's own probabilities (CONDITIONS order) plus, per validation picture, its
kind (folder class: nevus, melanoma …) and its source (ham10000, isic2017 …).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from cloud.training.calibration import urgent_mask
from cloud.training.referral import (
    ANCHORS,
    BENIGN_LESIONS,
    CANCERS,
    ReferralRule,
    bootstrap_interval,
    cancer_score,
    melanoma_vs_benign_auc,
    operating_table,
    roc_points,
)
from kiosk.model.conditions import CONDITIONS, OTHER

OUT_OF_SCOPE = ("nevus", "benign_keratosis", "vascular_lesion", "healthy_skin", "non_skin")


def _share(mask: np.ndarray) -> float | None:
    return float(mask.mean()) if mask.size else None


def kiosk_flags(
    probs: np.ndarray, abstain_below: float, urgent_at: float, soon_at: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """(urgent, urgent-or-cancer-soon) as decide() sets them, for every picture."""
    urgent = urgent_mask(probs, CONDITIONS, urgent_at, abstain_below)
    score = cancer_score(probs)
    soon = urgent | (score >= soon_at) if soon_at is not None else urgent
    return urgent, soon


def referral_report(
    probs: np.ndarray,
    kinds: Sequence[str],
    sources: Sequence[str],
    abstain_below: float,
    rule: ReferralRule | Mapping[str, Any],
) -> dict:
    """AUC, operating-point table and the kiosk's full-rule rates."""
    kinds_a, sources_a = np.asarray(kinds), np.asarray(sources)
    urgent_at = rule.urgent_at if isinstance(rule, ReferralRule) else rule["urgent_at"]
    soon_at = rule.soon_at if isinstance(rule, ReferralRule) else rule.get("soon_at")
    score = cancer_score(probs)
    thresholds = {"urgent_at": urgent_at}
    if soon_at is not None:
        thresholds["soon_at"] = soon_at
    mel = score[kinds_a == "melanoma"]
    for sens in (0.90, 0.95, 0.99):
        if mel.size:
            k = max(1, int(np.ceil(sens * mel.size - 1e-9)))
            thresholds[f"melanoma {sens:.0%}"] = float(np.sort(mel)[::-1][k - 1])
    urgent, soon = kiosk_flags(probs, abstain_below, urgent_at, soon_at)
    benign = np.isin(kinds_a, BENIGN_LESIONS)
    full_rule = {f"{k}_urgent": _share(urgent[kinds_a == k]) for k in (*CANCERS, *BENIGN_LESIONS)}
    full_rule["benign_urgent"] = _share(urgent[benign])
    full_rule["benign_urgent_or_soon"] = _share(soon[benign])
    full_rule["melanoma_urgent_or_soon"] = _share(soon[kinds_a == "melanoma"])
    by_source = {}
    for s in sorted(set(sources_a.tolist())):
        sel = sources_a == s
        a = melanoma_vs_benign_auc(score[sel], kinds_a[sel])
        if a is not None:
            by_source[s] = a
    return {
        "melanoma_vs_benign_auc": melanoma_vs_benign_auc(score, kinds_a),
        "auc_by_source": by_source,
        "operating_points": operating_table(score, kinds_a, thresholds),
        "kiosk_rule": full_rule,
    }


def roc_curve(probs: np.ndarray, kinds: Sequence[str]) -> tuple[np.ndarray, np.ndarray, float]:
    kinds_a = np.asarray(kinds)
    sel = (kinds_a == "melanoma") | np.isin(kinds_a, BENIGN_LESIONS)
    score = cancer_score(probs)[sel]
    fpr, tpr = roc_points(score, kinds_a[sel] == "melanoma")
    return fpr, tpr, melanoma_vs_benign_auc(score, kinds_a[sel])


def class_intervals(
    probs: np.ndarray, labels: np.ndarray, abstain_below: float, rounds: int = 1000
) -> dict:
    """Per-class sensitivity (correct and not abstained) with a 95% bootstrap interval."""
    pred = probs.argmax(1)
    hit = (pred == labels) & (probs.max(1) >= abstain_below)
    out = {}
    for i, c in enumerate(CONDITIONS):
        sel = labels == i
        if sel.any():
            lo, hi = bootstrap_interval(hit[sel], rounds, seed=i)
            out[c] = {"sensitivity": float(hit[sel].mean()), "ci95": [lo, hi], "n": int(sel.sum())}
    return out


def per_source(
    probs: np.ndarray,
    labels: np.ndarray,
    kinds: Sequence[str],
    sources: Sequence[str],
    abstain_below: float,
    urgent_at: float,
) -> dict:
    """Per source: pictures, accuracy, and the urgent rate of each kind."""
    kinds_a, sources_a = np.asarray(kinds), np.asarray(sources)
    pred = probs.argmax(1)
    answered = probs.max(1) >= abstain_below
    urgent = urgent_mask(probs, CONDITIONS, urgent_at, abstain_below)
    other = CONDITIONS.index(OTHER)
    out = {}
    for s in sorted(set(sources_a.tolist())):
        sel = sources_a == s
        row: dict[str, Any] = {
            "n": int(sel.sum()),
            "accuracy": float(((pred == labels) & answered)[sel].mean()),
        }
        for k in sorted(set(kinds_a[sel].tolist())):
            ks = sel & (kinds_a == k)
            row[f"{k}_urgent"] = float(urgent[ks].mean())
            if k in OUT_OF_SCOPE:
                row[f"{k}_other_or_abstain"] = float(((pred == other) | ~answered)[ks].mean())
        out[s] = row
    return out


def float_vs_int8(probs_int8: np.ndarray, probs_float: np.ndarray, labels: np.ndarray) -> dict:
    out = {}
    for i, c in enumerate(CONDITIONS):
        sel = labels == i
        if sel.any():
            out[c] = {
                "int8": float((probs_int8.argmax(1) == i)[sel].mean()),
                "float": float((probs_float.argmax(1) == i)[sel].mean()),
            }
    return out


def _knn_verdict(knn: Mapping[str, Any]) -> str:
    a, b = knn.get("auc_knn_distance"), knn.get("auc_p_other")
    if a is not None and b is not None and a > b:
        return "the kNN distance separates better than p(other): worth adding"
    return "the kNN distance separates worse than p(other), so it is not used"


# ---- markdown -----------------------------------------------------------------------------


def _pct(x: Any) -> str:
    return "–" if x is None else f"{100 * float(x):.1f}%"


def _f3(x: Any) -> str:
    return "–" if x is None else f"{float(x):.3f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def markdown_sections(v2: Mapping[str, Any], baseline: Mapping[str, Any] | None) -> str:
    """The v2 sections of MODEL_CARD.md."""
    base_v2 = (baseline or {}).get("v2", {}) if baseline else {}
    parts = []
    policy = v2.get("policy")
    ref = v2["referral"]
    parts.append(
        "## Referral rule (chosen on validation)\n\n"
        f"Policy: {policy or 'not recorded'}.\n\n"
        "Score: p(melanoma) + p(basal cell carcinoma) of the int8 model. At or above "
        "`urgent_at` the kiosk says URGENT; between `soon_at` and `urgent_at` it says SOON, "
        '"skin cancer cannot be ruled out; see a doctor in the coming weeks" (reason '
        "`cancer_not_ruled_out`). A top-1 melanoma or BCC is urgent whatever its score.\n\n"
        "![referral ROC](referral_roc.png)\n\n"
        f"Anchors on the plot: {', '.join(f'{k} {s:.1%}/{p:.1%}' for k, (s, p) in ANCHORS.items())}"
        " (sensitivity / specificity, published, other data).\n"
    )
    rows = []
    base_points = {
        r["threshold"]: r for r in base_v2.get("referral", {}).get("operating_points", [])
    }
    for r in ref["operating_points"]:
        b = base_points.get(r["threshold"], {})
        rows.append(
            (
                r["threshold"],
                _f3(r["value"]),
                _pct(r.get("melanoma")),
                _pct(r.get("basal_cell_carcinoma")),
                _pct(r.get("benign_referred")),
                _pct(b.get("benign_referred")) if b else "–",
            )
        )
    parts.append(
        "### Operating points (validation, score only)\n\n"
        + _table(
            ["threshold", "value", "melanoma", "BCC", "benign referred", "v1 benign referred"],
            rows,
        )
    )
    kr, bkr = ref["kiosk_rule"], base_v2.get("referral", {}).get("kiosk_rule", {})
    rows = [(k.replace("_", " "), _pct(v), _pct(bkr.get(k))) for k, v in kr.items()]
    parts.append(
        "### The kiosk's full rule on validation (v2 vs v1)\n\n"
        + _table(["rate", "v2", "v1"], rows)
    )
    rows = [
        (
            "all sources",
            _f3(ref["melanoma_vs_benign_auc"]),
            _f3(base_v2.get("referral", {}).get("melanoma_vs_benign_auc")),
        )
    ]
    for s, a in ref["auc_by_source"].items():
        rows.append((s, _f3(a), _f3(base_v2.get("referral", {}).get("auc_by_source", {}).get(s))))
    parts.append(
        "### Melanoma-vs-benign AUC by source (validation)\n\n"
        + _table(["source", "v2", "v1"], rows)
    )
    loso = v2.get("leave_one_source_out") or {}
    if loso:
        rows = [
            (
                ", ".join(r["trained_without"]),
                r["tested_on"],
                _f3(r["auc_before"]),
                _f3(r["auc_after"]),
            )
            for r in loso.values()
        ]
        parts.append(
            "### Leave one source out (head trained without the source)\n\n"
            "Before: the v1 model's head on the same pictures; after: the v2 head (same "
            "trunk, source-balanced, fine-grained) trained without that source. Target >= 0.85.\n\n"
            + _table(["trained without", "tested on", "AUC before", "AUC after"], rows)
        )
    ci, bci = v2["class_intervals"], base_v2.get("class_intervals", {})
    rows = [
        (
            c,
            v["n"],
            f"{_pct(v['sensitivity'])} [{_pct(v['ci95'][0])}, {_pct(v['ci95'][1])}]",
            _pct(bci.get(c, {}).get("sensitivity")),
        )
        for c, v in ci.items()
    ]
    parts.append(
        "### Per-class sensitivity with 95% bootstrap intervals (int8)\n\n"
        + _table(["class", "n", "v2 [95% CI]", "v1"], rows)
    )
    ps = v2["per_source"]
    rows = []
    for s, r in ps.items():
        rates = ", ".join(
            f"{k.replace('_', ' ')} {_pct(v)}" for k, v in r.items() if k not in ("n", "accuracy")
        )
        rows.append((s, r["n"], _pct(r["accuracy"]), rates))
    parts.append(
        "### Per source (int8, validation)\n\n" + _table(["source", "n", "accuracy", "rates"], rows)
    )
    fi = v2["float_vs_int8"]
    rows = [(c, _pct(v["float"]), _pct(v["int8"])) for c, v in fi.items()]
    parts.append(
        "### Float vs int8 recall (top-1, no abstention)\n\n"
        + _table(["class", "float", "int8"], rows)
    )
    knn = v2.get("knn_ood")
    if knn:
        parts.append(
            "### Embedding kNN distance as an abstain signal (measured, not shipped)\n\n"
            "AUROC for telling non-skin and healthy-skin pictures from the six conditions: "
            f"kNN cosine distance {_f3(knn.get('auc_knn_distance'))}, 1 - top-1 confidence "
            f"{_f3(knn.get('auc_one_minus_confidence'))}, p(other) {_f3(knn.get('auc_p_other'))}. "
            + "The kiosk keeps p(other) and abstention: "
            + (knn.get("verdict") or _knn_verdict(knn))
            + ".\n"
        )
    return "\n".join(parts)


_HEADLINE = (
    ("accuracy", "accuracy (abstain = miss)"),
    ("balanced_accuracy", "balanced accuracy (7 classes)"),
    ("melanoma_sensitivity_urgent", "melanoma flagged urgent"),
    ("bcc_sensitivity_urgent", "BCC flagged urgent"),
    ("out_of_scope_rate", "out of scope → other or abstain"),
    ("abstain_rate", "abstain rate"),
    ("ece", "ECE"),
    ("urgent_at", "urgent threshold"),
)


def old_vs_new_markdown(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """The headline numbers of the previous model and this one on the same validation split."""
    rows = []
    for key, name in _HEADLINE:
        fmt = _f3 if key in ("ece", "urgent_at") else _pct
        rows.append((name, fmt(old.get(key)), fmt(new.get(key))))
    return "## Previous model vs this one (same validation split, int8)\n\n" + _table(
        ["", "previous", "this model"], rows
    )


def recipe_markdown(training: Mapping[str, Any]) -> str:
    """What the cpu-v2 run measured on its way (from the run summary in the metadata)."""
    if training.get("recipe") != "cpu-v2":
        return ""
    rows = []
    for name, key in (
        ("warm start (v1 head)", "warm_start_on_val"),
        ("fine-grained head", "head_only"),
        ("+ top block retrained", "top_block"),
    ):
        r = training.get(key)
        if not isinstance(r, Mapping):
            continue
        table = (r.get("referral") or {}).get("table") or [{}]
        rows.append(
            (
                name + (" (shipped)" if training.get("chosen") == key else ""),
                _pct(r.get("balanced_accuracy_six")),
                _f3(r.get("melanoma_vs_benign_auc")),
                _f3((r.get("by_source_auc") or {}).get("isic2017")),
                _pct(table[0].get("benign_referred")),
                _pct(r.get("out_of_scope_as_other")),
            )
        )
    cfg = training.get("config") or {}
    t = training.get("timings") or {}
    timing = ", ".join(f"{k} {v:.0f}" for k, v in t.items() if isinstance(v, int | float))
    text = (
        "## Model v2 recipe (cpu-v2) and what it measured\n\n"
        "Warm start from the v1 weights (read back from its float .tflite: BatchNorm folded, "
        "re-expressed as identity BatchNorms carrying the folded biases; logits match the .tflite "
        "to < 1e-5). Embeddings and top-block inputs of the kiosk's centre view and of "
        f"{cfg.get('views', '?')} source-erasing augmented views per training image (resolution "
        "round trip, JPEG quality 30-95, dermoscope vignette or border, Shades-of-Gray colour "
        "constancy on a quarter of the views, colour, blur, crop, rotation) are computed once "
        "with LiteRT. A linear head with 11 outputs (the six conditions, nevus, benign keratosis, "
        "vascular lesion, healthy skin, non-skin; the last five summed into `other` by the kiosk) "
        "is trained on them, each kiosk class weighted equally and, within a class, sources "
        "weighted by n^0.5. Validation numbers (float, centre view, no abstention; the policy "
        "threshold for the benign referral rate):\n\n"
        + _table(
            [
                "stage",
                "balanced acc. (six)",
                "mel-vs-benign AUC",
                "AUC ISIC 2017",
                "benign referred",
                "out of scope → other",
            ],
            rows,
        )
        + f"\nTimings on the shared 2-core machine (seconds; view_rounds is a count): {timing}.\n"
    )
    return text
