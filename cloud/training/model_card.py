"""The model card (models/MODEL_CARD.md), rendered from the evaluation reports.

`render_model_card` takes plain dicts (the shipped metadata JSON, `EvaluationReport.to_dict()`
of the int8 model and optionally of the float model, and `extra` facts from training) and
renders whatever is present: a missing optional key leaves out its line or table, never
crashes.

Keys read from `extra` (all optional):
  split            {split_name: {class: count, ...} or count}; nested dicts are flattened
  evaluated_on     name of the split the reports come from (default "validation")
  test_report      an EvaluationReport dict on the held-out lesion-disjoint test split
  temperature      fitted temperature (also read from metadata or extra["calibration"])
  ece_before, ece_after   top-1 ECE before / after temperature scaling (or in "calibration")
  target_sensitivity, max_abstain_rate   how the thresholds were chosen (or in "thresholds")
  abstain_below, urgent_at   thresholds (else from metadata, else from the int8 report)
  int8_float_agreement   share of images with the same top-1 (else from the int8 report)
  latency          {name: value} from the benchmark (device, mean_ms, p95_ms ...)
  notes            list of extra limitation lines
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from kiosk.model.conditions import CONDITIONS, URGENCY_BY_CONDITION, URGENT_CONDITIONS

_URGENCY_TEXT = {
    "urgent": "urgent — refer now (possible skin cancer)",
    "soon": "soon — see a doctor in the coming weeks",
    "routine": "routine — self-care; see a doctor if it does not improve",
    "none": "none — none of the six conditions found (not an all-clear)",
}

DATA_SOURCES: tuple[tuple[str, str, str, str], ...] = (
    (
        "HAM10000 (ViDIR, Vienna / Queensland)",
        "melanoma, basal_cell_carcinoma, actinic_keratosis, dermatofibroma; nevus, "
        "benign_keratosis, vascular_lesion → other",
        "CC BY-NC 4.0",
        "dermoscopic; the copy used is 200×150, upscaled to the 224×224 input",
    ),
    (
        "ISIC Archive",
        "the same lesion classes",
        "CC BY-NC 4.0; CC-0 images treated as CC BY-NC 4.0",
        "dermoscopic",
    ),
    (
        "Roboflow acne dataset",
        "acne",
        "CC BY 4.0; includes ACNE04 images, which are for research use only",
        "clinical photos",
    ),
    (
        "DermNet",
        "eczema",
        "research / educational use only",
        "clinical photos",
    ),
    (
        "11k Hands",
        "healthy_skin → other",
        "research use only",
        "clinical photos of hands",
    ),
)

_OVERALL_ROWS: tuple[tuple[str, str, str], ...] = (
    ("n", "images", "int"),
    ("accuracy", "accuracy (abstained = miss)", "pct"),
    ("balanced_accuracy", "balanced accuracy (mean recall)", "pct"),
    ("melanoma_sensitivity_urgent", "melanoma flagged urgent", "pct"),
    ("bcc_sensitivity_urgent", "basal cell carcinoma flagged urgent", "pct"),
    ("urgent_rate_non_urgent", "non-urgent images flagged urgent", "pct"),
    ("out_of_scope_rate", "out-of-scope (other) → other or abstained", "pct"),
    ("abstain_rate", "abstained", "pct"),
    ("ece", "ECE (top-1, 15 bins)", "f3"),
)


def _num(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    return float(x) if math.isfinite(x) else None


def _fmt(x: Any, kind: str = "auto") -> str:
    if x is None:
        return "–"
    v = _num(x)
    if v is None:
        if isinstance(x, list | tuple):
            return ", ".join(_fmt(i) for i in x)
        if isinstance(x, Mapping):
            return json.dumps(x, sort_keys=True, default=str)
        return str(x)
    if kind == "pct":
        return f"{100 * v:.1f}%"
    if kind == "int" or (kind == "auto" and isinstance(x, int)):
        return str(int(v))
    if kind == "f3":
        return f"{v:.3f}"
    if kind == "f1":
        return f"{v:.1f}"
    return f"{v:.4g}"


def _cell(x: Any) -> str:
    return _fmt(x).replace("|", "\\|").replace("\n", " ")


_NUMERIC_CELL = re.compile(r"^(–|-?[\d.,]+(%| ms)?)?$")


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A Markdown table; columns whose cells are all numbers are right-aligned."""
    rows = [[str(c) for c in row] for row in rows]
    align = [
        "---:|" if j and rows and all(_NUMERIC_CELL.match(r[j]) for r in rows) else "---|"
        for j in range(len(header))
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "".join(align)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _get(sources: Iterable[Mapping[str, Any] | None], *keys: str) -> Any:
    """The first value found for any of `keys` in the first source that has one."""
    for src in sources:
        if not isinstance(src, Mapping):
            continue
        for k in keys:
            if src.get(k) is not None:
                return src[k]
    return None


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + " / "))
        else:
            out[key] = v
    return out


# What the model section shows of metadata["training"] and of its training "config".
_TRAINING_KEYS = (
    "architecture",
    "note",
    "recipe",
    "minutes",
    "port_max_logit_difference",
    "representative_images",
)
_CONFIG_KEYS = (
    "head_epochs",
    "epochs",
    "first_trainable_block",
    "batch_size",
    "lr",
    "balance_power",
    "label_smoothing",
    "seed",
)


def _section_model(metadata: Mapping[str, Any]) -> str:
    rows = [
        (f"`{k}`", _cell(v))
        for k, v in metadata.items()
        if k != "classes" and not isinstance(v, Mapping) and v is not None
    ]
    training = metadata.get("training")
    training = training if isinstance(training, Mapping) else {}
    config = training.get("config")
    for facts, keys in ((training, _TRAINING_KEYS), (config, _CONFIG_KEYS)):
        if isinstance(facts, Mapping):
            rows += [
                (f"training: {k}", _cell(facts[k])) for k in keys if facts.get(k) not in (None, "")
            ]
    if not rows:
        return ""
    return "## Model\n\n" + _table(["field", "value"], rows)


def _section_intended_use() -> str:
    return (
        "## Intended use\n\n"
        "- A **screening aid** for rural clinics, used under the supervision of a health "
        "worker. It suggests which of six skin conditions a photo may show and how soon to see "
        "a doctor.\n"
        "- It is **not a diagnosis** and does not replace examination by a clinician or a "
        'biopsy. Every result, including "other", must be read by the health worker.\n'
        "- Out of scope: self-diagnosis without a health worker, ruling out skin cancer, "
        "children's rashes, wounds, burns, nails, hair, mucosa, and any non-skin photo.\n"
        "- **Non-commercial use only** (see the data licenses below).\n"
    )


def _section_classes(
    classes: Sequence[str], urgent_at: Any, abstain_below: Any, soon_at: Any = None
) -> str:
    rows = []
    for c in classes:
        urgency = URGENCY_BY_CONDITION.get(c)
        rows.append((f"`{c}`", _URGENCY_TEXT.get(str(urgency), str(urgency or "–"))))
    urgent = " + ".join(f"p({c})" for c in URGENT_CONDITIONS)
    text = (
        "## Classes and urgency\n\n"
        "Output order of the model (the metadata JSON repeats it):\n\n"
        + _table(["class", "urgency"], rows)
        + "\nDecision rule on the temperature-scaled probabilities:\n\n"
        f"- **urgent** when {urgent} ≥ the urgent threshold"
        f" ({_fmt(urgent_at, 'f3')}), or when the top-1 class is urgent and the kiosk did not "
        "abstain — so triage may flag more images than top-1 alone;\n"
        + (
            f'- **soon** ("skin cancer cannot be ruled out") when that sum is at least the soon'
            f" threshold ({_fmt(soon_at, 'f3')}) but below the urgent one;\n"
            if soon_at is not None
            else ""
        )
        + f'- **abstain** ("unsure — retake the photo / ask the health worker") when the top-1 '
        f"probability < {_fmt(abstain_below, 'f3')}; an abstention never hides an urgent "
        "flag;\n"
        "- otherwise the urgency of the top-1 class.\n"
    )
    return text


def _section_data(extra: Mapping[str, Any]) -> str:
    rows = [(name, classes, lic, kind) for name, classes, lic, kind in DATA_SOURCES]
    text = (
        "## Training data and licenses\n\n"
        + _table(["source", "classes", "license", "images"], rows)
        + "\nBecause several sources are CC BY-NC 4.0 or research / educational use only, "
        "**the model is for NON-COMMERCIAL use only**: it may not be sold or used in a paid "
        "service. Attribution: HAM10000 (Tschandl et al., 2018), the ISIC Archive, the Roboflow "
        "acne dataset authors and ACNE04 (Wu et al., 2019), DermNet, 11k Hands (Afifi, 2019).\n"
    )
    split = extra.get("split")
    text += (
        "\n### Split\n\n"
        "Lesion-disjoint: all images of one lesion (HAM10000/ISIC `lesion_id`) or of one "
        "DermNet photo series fall on one side, stratified by folder class, so near-duplicate "
        "photos of a lesion never appear in both training and evaluation.\n"
    )
    if isinstance(split, Mapping) and split:
        flat = {
            name: (_flatten(v) if isinstance(v, Mapping) else {"images": v})
            for name, v in split.items()
        }
        names = list(flat)
        keys: list[str] = []
        for v in flat.values():
            keys += [k for k in v if k not in keys]
        rows = [[f"`{k}`"] + [_cell(flat[n].get(k)) for n in names] for k in keys]
        text += "\n" + _table(["", *names], rows)
    return text


def _report_columns(
    report_int8: Mapping[str, Any], report_float: Mapping[str, Any] | None, extra: Mapping
) -> list[tuple[str, Mapping[str, Any]]]:
    where = str(extra.get("evaluated_on") or "validation")
    cols: list[tuple[str, Mapping[str, Any]]] = [(f"int8, {where}", report_int8)]
    if isinstance(report_float, Mapping):
        cols.append((f"float, {where}", report_float))
    test = extra.get("test_report")
    if isinstance(test, Mapping):
        cols.append(("int8, test", test))
    return cols


def _section_metrics(
    report_int8: Mapping[str, Any], report_float: Mapping[str, Any] | None, extra: Mapping
) -> str:
    where = str(extra.get("evaluated_on") or "validation")
    cols = _report_columns(report_int8, report_float, extra)
    text = f"## Evaluation\n\nNumbers on the lesion-disjoint {where} split unless marked.\n"

    rows = []
    for key, label, kind in _OVERALL_ROWS:
        vals = [r.get(key) for _, r in cols]
        if any(v is not None for v in vals):
            rows.append([label, *(_fmt(v, kind) for v in vals)])
    if rows:
        text += "\n### Overall\n\n" + _table(["metric", *(n for n, _ in cols)], rows)

    per_class = report_int8.get("per_class")
    if isinstance(per_class, Mapping) and per_class:
        float_pc = (report_float or {}).get("per_class") or {}
        header = ["class", "support", "sensitivity", "specificity"]
        if float_pc:
            header.append("sensitivity (float)")
        rows = []
        for c, m in per_class.items():
            m = m if isinstance(m, Mapping) else {}
            row = [
                f"`{c}`",
                _fmt(m.get("support"), "int"),
                _fmt(m.get("sensitivity"), "pct"),
                _fmt(m.get("specificity"), "pct"),
            ]
            if float_pc:
                row.append(_fmt((float_pc.get(c) or {}).get("sensitivity"), "pct"))
            rows.append(row)
        text += (
            "\n### Per class (int8)\n\n"
            "Sensitivity = share of the class's images named correctly and not abstained.\n\n"
            + _table(header, rows)
        )

    confusion = report_int8.get("confusion")
    classes = report_int8.get("classes")
    if isinstance(confusion, list) and isinstance(classes, list) and confusion:
        columns = report_int8.get("confusion_columns") or [*classes, "abstained"]
        rows = [
            [f"**{c}**", *(_fmt(v, "int") for v in row)]
            for c, row in zip(classes, confusion, strict=False)
        ]
        text += "\n### Confusion (int8; rows true, columns predicted)\n\n" + _table(
            ["true \\ predicted", *columns], rows
        )

    by_source = report_int8.get("out_of_scope_by_source")
    if isinstance(by_source, Mapping) and by_source:
        rows = []
        for s, m in by_source.items():
            m = m if isinstance(m, Mapping) else {}
            rows.append(
                [
                    f"`{s}`",
                    _fmt(m.get("support"), "int"),
                    _fmt(m.get("rate"), "pct"),
                    _fmt(m.get("abstained"), "pct"),
                    _fmt(m.get("urgent"), "pct"),
                ]
            )
        text += "\n### Out-of-scope images by source class (true label other, int8)\n\n" + _table(
            ["source class", "images", "other or abstained", "abstained", "urgent"], rows
        )

    agreement = _get([extra, report_int8], "int8_float_agreement")
    latency = extra.get("latency") if isinstance(extra.get("latency"), Mapping) else {}
    lat_rows = [
        (label, _fmt(report_int8.get(key), "f1") + " ms")
        for key, label in (("latency_ms_mean", "mean latency"), ("latency_ms_p95", "p95 latency"))
        if report_int8.get(key) is not None
    ]
    lat_rows += [(str(k), _cell(v)) for k, v in _flatten(latency).items()]
    if agreement is not None or lat_rows:
        rows = []
        if agreement is not None:
            rows.append(("int8 vs float top-1 agreement", _fmt(agreement, "pct")))
        rows += lat_rows
        text += "\n### int8 model: agreement and latency\n\n" + _table(["", "value"], rows)
    return text


def _section_calibration(metadata: Mapping[str, Any], extra: Mapping[str, Any]) -> str:
    cal = extra.get("calibration") if isinstance(extra.get("calibration"), Mapping) else None
    temperature = _get([metadata, extra, cal], "temperature")
    before = _get([extra, cal], "ece_before", "ece_uncalibrated")
    after = _get([extra, cal], "ece_after", "ece_calibrated")
    rows = []
    if temperature is not None:
        rows.append(("temperature T", _fmt(temperature, "f3")))
    if before is not None:
        rows.append(("ECE before scaling", _fmt(before, "f3")))
    if after is not None:
        rows.append(("ECE after scaling", _fmt(after, "f3")))
    return (
        "## Calibration\n\n"
        "Temperature scaling: the probabilities are softmax(logits / T), with T fitted to "
        "minimise the negative log-likelihood on the validation split; top-1 accuracy is "
        "unchanged. ECE is the top-1 expected calibration error (15 equal-width bins).\n"
        + ("\n" + _table(["", "value"], rows) if rows else "")
    )


def _section_thresholds(
    metadata: Mapping[str, Any], report_int8: Mapping[str, Any], extra: Mapping[str, Any]
) -> str:
    th = extra.get("thresholds") if isinstance(extra.get("thresholds"), Mapping) else None
    urgent_at = _get([extra, th, metadata, report_int8], "urgent_at", "urgent_threshold")
    abstain = _get([extra, th, metadata, report_int8], "abstain_below", "abstain_threshold")
    target = _get([extra, th, metadata], "target_sensitivity")
    max_abstain = _get([extra, th, metadata], "max_abstain_rate")
    urgent = " + ".join(f"p({c})" for c in URGENT_CONDITIONS)
    urgent_how = (
        f"the largest threshold on {urgent} that flags at least "
        f"{_fmt(target, 'pct') if target is not None else 'the target share'} of the validation "
        "melanoma images. Melanoma carries the target because a missed melanoma is the costliest "
        "error (it can spread early and is easily taken for a benign mole); basal cell "
        "carcinoma shares the summed score and its sensitivity is reported above."
    )
    abstain_how = (
        "the top-1 threshold that maximises (share of images answered correctly) + (share of "
        "out-of-scope images answered other or abstained) on validation, with at most "
        f"{_fmt(max_abstain, 'pct') if max_abstain is not None else 'a capped share'} of images "
        "abstained."
    )
    md_th = metadata.get("thresholds") if isinstance(metadata.get("thresholds"), Mapping) else {}
    soon_at = md_th.get("soon_at")
    if soon_at is not None:
        # Model v2: both referral tiers come from the ROC against benign lesions, to a policy.
        urgent_how = (
            f"from the referral ROC on validation, to the policy: {md_th.get('chosen_for')}"
        )
    rows = [("urgent threshold", _fmt(urgent_at, "f3"), urgent_how)]
    if soon_at is not None:
        rows.append(
            (
                "soon threshold",
                _fmt(soon_at, "f3"),
                "between it and the urgent threshold the kiosk says SOON: skin cancer cannot be "
                "ruled out, see a doctor in the coming weeks (see the referral rule below)",
            )
        )
    rows.append(("abstain below", _fmt(abstain, "f3"), abstain_how))
    return "## Thresholds\n\n" + _table(["threshold", "value", "chosen as"], rows)


def _section_limitations(extra: Mapping[str, Any]) -> str:
    items = [
        "**Skin-tone coverage is unknown and likely dominated by light skin.** HAM10000 comes "
        "from Austria and Australia; none of the sources records skin type. Expect lower "
        "accuracy on darker skin until this is measured on local data.",
        "**Dermoscopic vs. clinical photos.** The four lesion classes (melanoma, basal cell "
        "carcinoma, actinic keratosis, dermatofibroma) and the lesions in `other` (nevus, "
        "benign keratosis, vascular lesion) are dermoscopic images; acne, eczema and healthy "
        "skin are ordinary photos. The model may partly learn the "
        "photo type instead of the disease. A mole photographed without a dermoscope is out of "
        "distribution, and its result is less reliable.",
        "**Low-resolution sources.** The HAM10000 images used are 200×150 pixels, upscaled to "
        "the 224×224 input; fine detail is not there to learn.",
        "**Small classes.** Dermatofibroma has only about 100 images (and few lesions); its "
        "numbers are noisy.",
        '**"other" is not an all-clear.** It means none of the six conditions was recognised, '
        "not that the skin is healthy; many skin diseases were never in the training data.",
        "**Non-skin inputs.** `other` was trained with crops of a handful of bundled photos "
        "and synthetic textures only (see `non_skin` above for unseen scenes); that is no "
        "reliable reject class: the quality gate's skin check, the abstain threshold and the "
        "health worker are the safeguards.",
        "**One split.** The validation numbers come from a single lesion-disjoint split that "
        "was also used to fit the temperature and the thresholds, so they are optimistic; a "
        "separate lesion-disjoint test split is held out for the final figures.",
    ]
    notes = extra.get("notes")
    if isinstance(notes, str):
        items.append(notes)
    elif isinstance(notes, Sequence):
        items += [str(n) for n in notes]
    return "## Limitations\n\n" + "".join(f"- {i}\n" for i in items)


def render_model_card(
    metadata: Mapping[str, Any],
    report_int8: Mapping[str, Any],
    report_float: Mapping[str, Any] | None,
    extra: Mapping[str, Any],
) -> str:
    """Markdown for models/MODEL_CARD.md from the metadata, the reports (as `to_dict()` dicts)
    and training facts in `extra` (keys: see the module docstring)."""
    metadata = metadata if isinstance(metadata, Mapping) else {}
    report_int8 = report_int8 if isinstance(report_int8, Mapping) else {}
    extra = extra if isinstance(extra, Mapping) else {}
    classes = _get([metadata, report_int8], "classes") or list(CONDITIONS)
    th = extra.get("thresholds") if isinstance(extra.get("thresholds"), Mapping) else None
    urgent_at = _get([extra, th, metadata, report_int8], "urgent_at", "urgent_threshold")
    abstain = _get([extra, th, metadata, report_int8], "abstain_below", "abstain_threshold")
    name = _get([metadata], "name", "model_name") or "Skinscan skin-condition classifier"
    version = _get([metadata], "version", "model_version")
    title = f"# Model card: {name}" + (f" ({version})" if version is not None else "")
    parts = [
        title + "\n\n> **Screening aid, not a diagnosis. Non-commercial use only** (training data "
        "licenses: CC BY-NC 4.0 and research-only sources).\n",
        _section_model(metadata),
        _section_intended_use(),
        _section_classes(
            [str(c) for c in classes],
            urgent_at,
            abstain,
            _get(
                [th, metadata.get("thresholds") if isinstance(metadata, Mapping) else None],
                "soon_at",
            ),
        ),
        _section_data(extra),
        _section_metrics(report_int8, report_float, extra),
        _section_calibration(metadata, extra),
        _section_thresholds(metadata, report_int8, extra),
        _section_limitations(extra),
    ]
    return "\n".join(p for p in parts if p)
