"""The model card written into every model directory: data, settings, dev figures, limits."""

from __future__ import annotations

from typing import Any, Sequence

from . import labels

LIMITS = """\
## Limits

- Trained on nine public Chinese sources (consumer-complaint platform, citizen
  hotline, car complaints and forum, e-commerce, food delivery, hotels,
  restaurants, Weibo). Other domains (telecom, insurance, utilities) are
  unseen; check a sample before trusting the labels there.
- Training labels come from language-model annotators with a second pass
  (agreement 91-99% per field), so expect a few percent label noise, most in `emotion`.
- `urgent` is rare (about 6% of the training rows). Its threshold is set for
  recall, so expect false alarms; a person should confirm P1/P2 tickets.
- The model reads at most `max_length` tokens: the first 3/4 and the last 1/4
  of a long text. Details in the middle of a very long petition are not seen.
- Traditional Chinese is converted to Simplified (OpenCC) before the model
  sees it. Text with no Chinese characters is labelled with a warning; the
  labels are unreliable there.
"""


def _table(report: Any) -> str:
    rows = ["| head | macro-F1 | accuracy |", "|---|---|---|"]
    for head in report.heads:
        h = report.heads[head]
        rows.append(f"| `{head}` | {h.macro_f1:.3f} | {h.accuracy:.3f} |")
    rows.append(f"| urgent recall | {report.urgent_recall:.3f} | |")
    return "\n".join(rows)


def model_card(args: Any, base_model: str, urgency_threshold: float, report: Any,
               history: Sequence[dict[str, Any]], n_train: int, n_dev: int,
               calibration: dict[str, Any] | None = None) -> str:
    """Markdown for ``README.md`` in the model directory."""
    if calibration:
        threshold = (f"re-chosen on `{calibration['data_file']}` ({calibration['rows']} rows) for urgent recall "
                     f">= {calibration['urgent_recall_target']}; the figures below are on that file")
    else:
        threshold = f"chosen on dev for urgent recall >= {args.urgent_recall_target}"
    settings = "\n".join(f"| `{k}` | `{v}` |" for k, v in args.to_dict().items())
    curve = "\n".join(f"| {h['step']} | {h['epoch']} | {h['score']:.4f} |" for h in history)
    return f"""---
language: zh
library_name: complaint-nlp
pipeline_tag: text-classification
base_model: {base_model}
---

# complaint-nlp model

Tags Chinese customer complaints with the label schema v{labels.SCHEMA_VERSION} of complaint-nlp:
`is_complaint`, `category` ({", ".join(labels.CATEGORIES)}), `categories`,
`urgency` x `scope` -> `tier` (P1-P4), and `emotion` ({", ".join(labels.EMOTIONS)}).

## Use

```python
from complaint_nlp import ComplaintClassifier
clf = ComplaintClassifier("path/to/this/directory")
clf.predict(["外卖送到时汤洒了一半，商家还不给退款"])
```

## Training data

- train: `{args.train_file}` ({n_train} rows)
- dev (early stopping, threshold choice): `{args.dev_file or f"{args.dev_split:.0%} split of train"}` ({n_dev} rows)
- urgent when P(urgent) >= {urgency_threshold:.4f}, {threshold}

## Dev figures

Measured on the dev set above, which also chose the checkpoint and the urgent
threshold, so these figures are optimistic; expect a held-out set to score somewhat lower.

{_table(report)}

Training curve (mean macro-F1 over the reported heads on dev):

| step | epoch | score |
|---|---|---|
{curve}

## Settings

| setting | value |
|---|---|
{settings}

{LIMITS}"""
