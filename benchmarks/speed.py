"""Labelling speed on dev.jsonl: complaint-nlp against a plain transformers pipeline loop.

The reference is what a user would write first: ``pipeline("text-classification")``
over the same encoder (one linear head), called text by text. Each system runs
in its own process, alternating, so peak RSS is per system.

    python benchmarks/speed.py --runs 5

writes benchmarks/results/speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from measure import LABELED, alternate, parse_args, report_result, summarize  # noqa: E402

DEFAULT_DEV = LABELED / "dev.jsonl"


def read_texts(path: str) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f if line.strip()]


def build_pipeline_model(model_dir: str, output: str) -> None:
    """The same encoder weights as a ``BertForSequenceClassification`` directory (4-way head)."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from complaint_nlp.modeling import ComplaintModel

    model, tokenizer = ComplaintModel.from_pretrained(model_dir)
    config = AutoConfig.from_pretrained(model_dir, num_labels=4)
    reference = AutoModelForSequenceClassification.from_config(config)
    base = reference.base_model_prefix
    missing = reference.load_state_dict({f"{base}.{k}": v for k, v in model.encoder.state_dict().items()},
                                        strict=False).missing_keys
    assert all(not k.startswith(f"{base}.encoder") for k in missing), missing
    torch.manual_seed(0)
    reference.save_pretrained(output)
    tokenizer.save_pretrained(output)


def worker(args: argparse.Namespace) -> None:
    texts = read_texts(args.data)
    started = time.perf_counter()
    if args.worker == "pipeline":
        from transformers import pipeline

        classify = pipeline("text-classification", model=args.reference_dir, tokenizer=args.reference_dir,
                            device=-1)
        loaded = time.perf_counter()
        for text in texts:
            classify(text, truncation=True, max_length=args.max_length)
    else:
        from complaint_nlp import ComplaintClassifier

        classifier = ComplaintClassifier(args.model, backend=args.worker.split("-")[-1])
        loaded = time.perf_counter()
        classifier.predict(texts)
    done = time.perf_counter()
    report_result({"texts": len(texts), "load_s": loaded - started, "label_s": done - loaded,
                   "texts_per_s": len(texts) / (done - loaded)})


def main() -> None:
    def options(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--data", default=str(DEFAULT_DEV))
        parser.add_argument("--runs", type=int, default=3)
        parser.add_argument("--max-length", type=int, default=128)
        parser.add_argument("--reference-dir", help=argparse.SUPPRESS)

    args = parse_args(__doc__, str(HERE / "results" / "speed.json"), options)
    if args.worker:
        return worker(args)
    with tempfile.TemporaryDirectory() as reference_dir:
        build_pipeline_model(args.model, reference_dir)
        common = [__file__, "--model", args.model, "--data", args.data, "--max-length", str(args.max_length),
                  "--reference-dir", reference_dir, "--worker"]
        results = alternate({name: [*common, name] for name in
                             ("pipeline", "complaint-nlp-torch", "complaint-nlp-onnx")}, args.runs)
    report = {
        "what": "labelling dev.jsonl (all heads for complaint-nlp; one 4-way head for the pipeline), "
                "texts per second after loading, peak RSS of the whole process",
        "data": args.data, "texts": results["pipeline"][0]["texts"], "model": args.model,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "summary": summarize(results, "pipeline"), "runs": results,
    }
    Path(args.output).write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    print(json.dumps(report["summary"], indent=2))


if __name__ == "__main__":
    main()
