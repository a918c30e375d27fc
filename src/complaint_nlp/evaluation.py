"""Metrics and reports: macro-F1 per head, per-class precision/recall, confusion matrices.

Conventions (the same for the model and the baselines):

- ``is_complaint``, ``urgency``, ``scope``, ``tier`` and ``emotion`` are scored on every row;
  a non-complaint's gold tier is P4, as LABELS.md says.
- ``category`` is the category head on the rows whose gold label is a
  complaint: what the complaint is about, given that it is one.
- ``category_end_to_end`` is the same rows scored on the final output, where
  predicting "not a complaint" (no category) counts as a miss.
- Urgent recall (share of gold ``urgent`` rows predicted ``urgent``) has its own line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from . import labels

NONE_LABEL = "none"
# The reported heads, plus the end-to-end reading of category.
EVALUATED_HEADS = ("is_complaint", "category", "category_end_to_end", "urgency", "scope", "tier", "emotion")


def _classes(head: str) -> tuple[str, ...]:
    return labels.head_classes("category" if head == "category_end_to_end" else head)


def gold_labels(record: Mapping[str, Any]) -> dict[str, str | None]:
    """The reported labels of a gold record (validated by ``labels.validate_record``)."""
    return {
        "is_complaint": "true" if record["is_complaint"] else "false",
        "category": record["category"],
        "category_end_to_end": record["category"],
        "urgency": record["urgency"],
        "scope": record["scope"],
        "tier": labels.tier_for(record["urgency"], record["scope"]).name,
        "emotion": record["emotion"],
    }


def predicted_labels(result: Any) -> dict[str, str | None]:
    """The reported labels of a prediction (a ``ComplaintResult`` or a dict with the same fields).

    The category head's own answer is read from ``probabilities["category"]``
    when present, so it is scored even where the text was judged no complaint.
    """
    get = result.get if isinstance(result, Mapping) else lambda k: getattr(result, k)
    is_complaint = get("is_complaint")
    category_probs = (get("probabilities") or {}).get("category")
    return {
        "is_complaint": None if is_complaint is None else ("true" if is_complaint else "false"),
        "category": max(category_probs, key=category_probs.get) if category_probs else get("category"),
        "category_end_to_end": get("category"),
        "urgency": get("urgency"),
        "scope": get("scope"),
        "tier": get("tier"),
        "emotion": get("emotion"),
    }


@dataclass
class HeadReport:
    """Scores of one head: accuracy, macro-F1, per-class P/R/F1 and the confusion matrix."""

    head: str
    classes: list[str]
    accuracy: float
    macro_f1: float
    per_class: dict[str, dict[str, float]]
    # Rows are gold classes, columns predicted classes plus "none" (no prediction).
    confusion: list[list[int]]
    support: int

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def head_report(head: str, gold: Sequence[str | None], pred: Sequence[str | None]) -> HeadReport:
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    classes = list(_classes(head))
    rows = [(g, p if p is not None else NONE_LABEL) for g, p in zip(gold, pred) if g is not None]
    g = [r[0] for r in rows]
    p = [r[1] for r in rows]
    precision, recall, f1, support = precision_recall_fscore_support(
        g, p, labels=classes, average=None, zero_division=0)
    matrix = confusion_matrix(g, p, labels=[*classes, NONE_LABEL])[:len(classes)]
    return HeadReport(
        head=head, classes=classes,
        accuracy=float(np.mean([a == b for a, b in rows])) if rows else 0.0,
        macro_f1=float(np.mean(f1)),
        per_class={c: {"precision": float(precision[i]), "recall": float(recall[i]),
                       "f1": float(f1[i]), "support": int(support[i])} for i, c in enumerate(classes)},
        confusion=matrix.tolist(), support=len(rows))


@dataclass
class EvaluationReport:
    """All heads of one system on one data set."""

    system: str
    heads: dict[str, HeadReport] = field(default_factory=dict)

    @property
    def urgent_recall(self) -> float:
        return self.heads["urgency"].per_class["urgent"]["recall"]

    def macro_f1(self) -> dict[str, float]:
        return {name: report.macro_f1 for name, report in self.heads.items()}

    def score(self) -> float:
        """One number for early stopping: the mean macro-F1 over the reported heads."""
        return float(np.mean([self.heads[h].macro_f1 for h in labels.REPORTED_HEADS]))

    def to_dict(self) -> dict[str, Any]:
        return {"system": self.system, "urgent_recall": self.urgent_recall,
                "macro_f1": self.macro_f1(), "heads": {k: v.to_dict() for k, v in self.heads.items()}}


def evaluate_predictions(records: Sequence[Mapping[str, Any]], predictions: Sequence[Any],
                         system: str = "model") -> EvaluationReport:
    """Score predictions (results or dicts) against gold records, head by head."""
    if len(records) != len(predictions):
        raise ValueError(f"{len(records)} gold records but {len(predictions)} predictions")
    gold = [gold_labels(r) for r in records]
    pred = [predicted_labels(p) for p in predictions]
    report = EvaluationReport(system)
    for head in EVALUATED_HEADS:
        report.heads[head] = head_report(head, [g[head] for g in gold], [p[head] for p in pred])
    return report


def read_labeled(path: str | Path) -> list[dict[str, Any]]:
    """Read and validate a labelled JSONL file (LABELS.md format)."""
    records = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not valid JSON ({exc.msg})") from exc
            records.append(labels.validate_record(raw, where=f"{path}:{number}"))
    if not records:
        raise ValueError(f"{path}: no records")
    return records


def format_report(reports: Iterable[EvaluationReport]) -> str:
    """A plain-text table of several systems side by side, then per-class details of the first."""
    reports = list(reports)
    names = [r.system for r in reports]
    width = max(14, *(len(n) + 2 for n in names))
    label = 22
    lines = ["macro-F1".ljust(label) + "".join(n.rjust(width) for n in names)]
    for head in EVALUATED_HEADS:
        lines.append(head.ljust(label) + "".join(f"{r.heads[head].macro_f1:{width}.3f}" for r in reports))
    lines.append("accuracy".ljust(label))
    for head in EVALUATED_HEADS:
        lines.append(f"  {head}".ljust(label) + "".join(f"{r.heads[head].accuracy:{width}.3f}" for r in reports))
    lines.append("urgent recall".ljust(label) + "".join(f"{r.urgent_recall:{width}.3f}" for r in reports))
    main = reports[0]
    for head in EVALUATED_HEADS:
        rep = main.heads[head]
        lines.append("")
        lines.append(f"[{main.system}] {head}  (n={rep.support})")
        lines.append("  class".ljust(22) + "precision   recall       f1  support")
        for c, m in rep.per_class.items():
            lines.append(f"  {c}".ljust(22) + f"{m['precision']:9.3f}{m['recall']:9.3f}{m['f1']:9.3f}{m['support']:9d}")
        lines.append("  confusion (rows gold, columns predicted; last column: none)")
        for c, row in zip(rep.classes, rep.confusion):
            lines.append(f"  {c}".ljust(22) + "".join(f"{v:6d}" for v in row))
    return "\n".join(lines)


def plot_confusion(report: EvaluationReport, path: str | Path) -> Path:
    """Write one PNG with a confusion matrix per head."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    heads = list(EVALUATED_HEADS)
    fig, axes = plt.subplots(2, 4, figsize=(20, 9.5))
    axes.flat[-1].axis("off")
    for ax, head in zip(axes.flat, heads):
        rep = report.heads[head]
        matrix = np.array(rep.confusion)
        ax.imshow(matrix, cmap="Blues")
        ax.set_xticks(range(matrix.shape[1]), [*rep.classes, NONE_LABEL], rotation=35, ha="right")
        ax.set_yticks(range(matrix.shape[0]), rep.classes)
        for (i, j), v in np.ndenumerate(matrix):
            ax.text(j, i, str(v), ha="center", va="center",
                    color="white" if v > matrix.max() / 2 else "black", fontsize=9)
        ax.set_title(f"{head}  macro-F1 {rep.macro_f1:.3f}")
        ax.set_xlabel("predicted")
        ax.set_ylabel("gold")
    fig.suptitle(f"{report.system}: confusion matrices")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    tmp.replace(path)
    return path


def training_file_of(model_dir: str | Path | None) -> str | None:
    """The training file recorded in a model directory, if that file exists here."""
    if model_dir is None:
        return None
    record = Path(model_dir) / "training_args.json"
    if not record.is_file():
        return None
    train_file = json.loads(record.read_text(encoding="utf-8"))["args"].get("train_file")
    return train_file if train_file and Path(train_file).is_file() else None


def compare(classifier: Any, records: Sequence[Mapping[str, Any]], train_file: str | None = None,
            baselines: bool = True) -> tuple[list[EvaluationReport], str | None]:
    """The model's report, then the keyword and TF-IDF baselines' on the same records.

    The TF-IDF baseline is trained on ``train_file`` (default: the model's own
    training file); without one it is left out and the returned note says so.
    """
    texts = [r["text"] for r in records]
    reports = [evaluate_predictions(records, classifier.predict(texts), "model")]
    if not baselines:
        return reports, None
    from .baselines import KeywordBaseline, TfidfBaseline

    reports.append(evaluate_predictions(records, KeywordBaseline().predict(texts), KeywordBaseline.name))
    train_file = train_file or training_file_of(classifier.model_path)
    if train_file is None:
        return reports, "TF-IDF baseline left out: no training file found; pass --train-file"
    tfidf = TfidfBaseline().fit(read_labeled(train_file))
    reports.append(evaluate_predictions(records, tfidf.predict(texts), TfidfBaseline.name))
    return reports, None
