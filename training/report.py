"""An evaluation as `python -m training evaluate` prints it: plain fixed-width text tables."""

from __future__ import annotations

from typing import Any

from streamer.core.policy import DecisionPolicy
from training.evaluation import METRIC_LABELS, Evaluation


def report_lines(evaluation: Evaluation) -> list[str]:
    """Header, metrics, calibration, policy confusion and fairness, separated by blank lines."""
    return [
        *_header(evaluation),
        "",
        *_metrics(evaluation),
        "",
        *_calibration(evaluation),
        "",
        *_confusion(evaluation),
        "",
        *_fairness(evaluation),
    ]


def _header(evaluation: Evaluation) -> list[str]:
    data = evaluation.data
    described = (
        f"{data['rows']} rows, default rate {data['default_rate']:.3f}, sha256 {str(data.get('sha256'))[:12]}..."
    )
    return [
        f"subject    {evaluation.subject}",
        f"method     {evaluation.method}",
        f"data       {data.get('path', '?')} ({described})",
        *(f"note       {note}" for note in evaluation.notes),
    ]


def _metrics(evaluation: Evaluation) -> list[str]:
    lines = [f"{'metric':<12} {'value':>7}   95% CI            fold mean +/- std"]
    for name, values in evaluation.metrics.items():
        folds = f"{values['fold_mean']:.4f} +/- {values['fold_std']:.4f}" if "fold_mean" in values else "-"
        ci = f"[{values['ci_low']:.4f}, {values['ci_high']:.4f}]"
        lines.append(f"{METRIC_LABELS[name]:<12} {values['value']:>7.4f}   {ci:<17} {folds}")
    return lines


def _calibration(evaluation: Evaluation) -> list[str]:
    lines = [
        "calibration (deciles of P(default); counts per CV repeat when cross-validated)",
        f"{'bin':>3} {'P from':>7} {'P to':>7} {'count':>7} {'mean P':>7} {'observed':>8}",
    ]
    for r in evaluation.calibration:
        bounds = f"{r['pd_from']:>7.3f} {r['pd_to']:>7.3f}"
        lines.append(f"{r['bin']:>3} {bounds} {r['count']:>7.1f} {r['mean_pd']:>7.3f} {r['default_rate']:>8.3f}")
    return lines


def _confusion(evaluation: Evaluation) -> list[str]:
    policy = DecisionPolicy()
    lines = [
        f"confusion at the policy (approve < {policy.approve_below}, decline >= {policy.decline_at}; "
        "counts per CV repeat when cross-validated)",
        f"{'actual':<11} {'approve':>8} {'review':>8} {'decline':>8}",
    ]
    for actual, row in evaluation.confusion.items():
        lines.append(f"{actual:<11} {row['approve']:>8.1f} {row['review']:>8.1f} {row['decline']:>8.1f}")
    return lines


def _fairness(evaluation: Evaluation) -> list[str]:
    lines = [
        "fairness (approval = P(default) < approve threshold; AIR = approval rate / best group's)",
        f"{'attribute':<15} {'group':<12} {'count':>5} {'default':>7} {'approve':>7} {'AUC':>6} {'AIR':>6}",
    ]
    return lines + [_fairness_row(r) for r in evaluation.fairness]


def _fairness_row(r: dict[str, Any]) -> str:
    auc = f"{r['auc']:.3f}" if r["auc"] is not None else "-"
    flag = "" if r["four_fifths_ok"] in (True, None) else "  < 4/5"
    small = "  (small group)" if r["small_group"] else ""
    rates = f"{r['default_rate']:>7.3f} {r['approval_rate']:>7.3f} {auc:>6} {r['adverse_impact_ratio']:>6.3f}"
    return f"{r['attribute']:<15} {r['group']:<12} {r['count']:>5} {rates}{flag}{small}"
