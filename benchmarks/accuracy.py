"""Dev-set accuracy of a model next to the baselines, on Simplified and Traditional copies.

    python benchmarks/accuracy.py [--model DIR]

Scores the model (PyTorch fp32 and ONNX int8), the keyword rules and the
TF-IDF + logistic regression baseline (trained on train.jsonl) on dev.jsonl,
then the model on two Traditional copies of dev made with OpenCC (Taiwan
s2twp, Hong Kong s2hk), and the model at several urgent thresholds. Writes benchmarks/results/accuracy.json and a PNG of
the model's confusion matrices.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from measure import LABELED  # noqa: E402


def main() -> None:
    import opencc

    from complaint_nlp import ComplaintClassifier
    from complaint_nlp.baselines import KeywordBaseline, TfidfBaseline
    from complaint_nlp.classifier import default_model_path
    from complaint_nlp.evaluation import evaluate_predictions, format_report, plot_confusion, read_labeled

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(default_model_path()))
    parser.add_argument("--train", default=str(LABELED / "train.jsonl"))
    parser.add_argument("--dev", default=str(LABELED / "dev.jsonl"))
    parser.add_argument("--output", default=str(HERE / "results" / "accuracy.json"))
    args = parser.parse_args()

    dev = read_labeled(args.dev)
    texts = [r["text"] for r in dev]
    reports = {}
    for backend in ("torch", "onnx"):
        classifier = ComplaintClassifier(args.model, backend=backend)
        started = time.perf_counter()
        reports[f"model-{backend}"] = evaluate_predictions(dev, classifier.predict(texts), f"model-{backend}")
        print(f"{backend}: {len(texts) / (time.perf_counter() - started):.1f} texts/s")
        if backend == "torch":
            for config in ("s2twp", "s2hk"):
                converted = [opencc.OpenCC(config).convert(t) for t in texts]
                changed = sum(a != b for a, b in zip(texts, converted)) / len(texts)
                name = f"model-torch-traditional-{config}"
                reports[name] = evaluate_predictions(dev, classifier.predict(converted), name)
                print(f"{config}: {changed:.0%} of dev texts changed by the conversion")
    # The urgent threshold trades urgent recall against false alarms (and tier macro-F1).
    shipped = ComplaintClassifier(args.model).config.urgency_threshold
    sweep = []
    for threshold in sorted({0.5, 0.3, 0.15, 0.1, shipped}, reverse=True):
        report = evaluate_predictions(dev, ComplaintClassifier(args.model, urgency_threshold=threshold).predict(texts))
        urgent = report.heads["urgency"].per_class["urgent"]
        sweep.append({"urgency_threshold": round(threshold, 4), "shipped": threshold == shipped,
                      "urgent_recall": urgent["recall"], "urgent_precision": urgent["precision"],
                      "urgency_macro_f1": report.macro_f1()["urgency"], "tier_macro_f1": report.macro_f1()["tier"]})
        print(json.dumps(sweep[-1]))
    reports["keywords"] = evaluate_predictions(dev, KeywordBaseline().predict(texts), "keywords")
    reports["tfidf-lr"] = evaluate_predictions(dev, TfidfBaseline().fit(read_labeled(args.train)).predict(texts),
                                               "tfidf-lr")
    print(format_report(reports.values()))
    plot_confusion(reports["model-torch"], Path(args.output).with_name("confusion_dev.png"))
    simplified = reports["model-torch"].macro_f1()
    result = {
        "dev": args.dev, "model": args.model,
        "macro_f1": {name: r.macro_f1() for name, r in reports.items()},
        "urgent_recall": {name: r.urgent_recall for name, r in reports.items()},
        "traditional_gap_points": {
            config: {h: round(100 * (simplified[h] - reports[f"model-torch-traditional-{config}"].macro_f1()[h]), 2)
                     for h in simplified} for config in ("s2twp", "s2hk")},
        "onnx_loss_points": {h: round(100 * (simplified[h] - reports["model-onnx"].macro_f1()[h]), 2)
                             for h in simplified},
        "urgency_threshold_sweep": sweep,
        "reports": {name: r.to_dict() for name, r in reports.items()},
    }
    Path(args.output).write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")
    print(json.dumps({k: result[k] for k in ("traditional_gap_points", "onnx_loss_points")}, indent=2))


if __name__ == "__main__":
    main()
