"""The ``complaint-nlp`` command: parses arguments and calls the library, nothing more."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import typing
from pathlib import Path
from typing import Any, Sequence

from .classifier import BACKENDS, DEFAULT_BATCH_SIZE


def _classifier(args: argparse.Namespace) -> Any:
    from .classifier import ComplaintClassifier

    model = None if args.model in (None, "default") else args.model
    return ComplaintClassifier(model, backend=args.backend, batch_size=args.batch_size,
                               urgency_threshold=args.urgency_threshold)


def _model_options(parser: argparse.ArgumentParser, positional: bool = False) -> None:
    if positional:
        parser.add_argument("model", help="model directory ('default' for the bundled model)")
    else:
        parser.add_argument("--model", default=None, help="model directory (default: the bundled model)")
    parser.add_argument("--backend", choices=BACKENDS, default="torch",
                        help="torch (fp32) or onnx (int8, exported and cached on first use)")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="texts per model call")
    parser.add_argument("--urgency-threshold", type=float, default=None,
                        help="P(urgent) above which a complaint is urgent (default: the model's)")


def cmd_classify(args: argparse.Namespace) -> int:
    result = _classifier(args).classify(args.text)
    print(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
    return 0


def cmd_label(args: argparse.Namespace) -> int:
    from .archive import label_file

    summary = label_file(args.input, args.output, _classifier(args), text_column=args.text_column,
                         id_column=args.id_column, encoding=args.encoding, sheet=args.sheet, probs=args.probs,
                         chunk_size=args.chunk_size, resume=args.resume, progress=not args.quiet)
    print(json.dumps(summary.to_dict(), ensure_ascii=False))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .training import TrainingArguments, train

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    kwargs = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainingArguments)}
    output, report = train(TrainingArguments(**kwargs))
    print(json.dumps({"output_dir": str(output), "dev_macro_f1": report.macro_f1(),
                      "urgent_recall": report.urgent_recall}, ensure_ascii=False))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluation import compare, format_report, plot_confusion, read_labeled

    classifier = _classifier(args)
    records = read_labeled(args.data)
    reports, note = compare(classifier, records, train_file=args.train_file, baselines=not args.no_baselines)
    print(format_report(reports))
    if note:
        print(f"\nnote: {note}")
    if args.plot:
        print(f"confusion matrices: {plot_confusion(reports[0], args.plot)}")
    if args.json:
        Path(args.json).write_text(json.dumps([r.to_dict() for r in reports], ensure_ascii=False, indent=2),
                                   encoding="utf-8")
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from .modeling import load_config
    from .training import calibrate_urgency

    output, report = calibrate_urgency(args.model, args.data, args.urgent_recall_target)
    print(json.dumps({"model": str(output), "urgency_threshold": load_config(output).urgency_threshold,
                      "macro_f1": report.macro_f1(), "urgent_recall": report.urgent_recall}, ensure_ascii=False))
    return 0


def cmd_export_onnx(args: argparse.Namespace) -> int:
    from .onnx_export import export_onnx

    print(export_onnx(args.model, args.output, quantize=not args.no_quantize))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from .api import API_KEY_ENV_VAR, ServiceSettings, serve

    model = None if args.model in (None, "default") else args.model
    settings = ServiceSettings(model=model, backend=args.backend, batch_size=args.batch_size,
                               urgency_threshold=args.urgency_threshold, max_texts=args.max_texts,
                               max_text_chars=args.max_text_chars, max_body_bytes=args.max_body_bytes,
                               batch_window_ms=args.batch_window_ms,
                               api_key=args.api_key or os.environ.get(API_KEY_ENV_VAR) or None)
    serve(settings, host=args.host, port=args.port, workers=args.workers, log_level=args.log_level)
    return 0


def _add_training_options(parser: argparse.ArgumentParser) -> None:
    """One option per ``TrainingArguments`` field, so the CLI never drifts from the dataclass."""
    from .training import TrainingArguments

    hints = typing.get_type_hints(TrainingArguments)
    required = {"base_model", "train_file", "output_dir"}
    for f in dataclasses.fields(TrainingArguments):
        kind = next((t for t in typing.get_args(hints[f.name]) if t is not type(None)), hints[f.name])
        flag = "--" + f.name.replace("_", "-")
        if f.name in required:
            parser.add_argument(flag, dest=f.name, type=kind, required=True)
        else:
            parser.add_argument(flag, dest=f.name, type=kind, default=f.default, help=f"default: {f.default}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="complaint-nlp", description="Tag Chinese customer complaints.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("classify", help="label one text and print the result as JSON")
    p.add_argument("text")
    _model_options(p)
    p.set_defaults(func=cmd_classify)

    p = sub.add_parser("label", help="label every row of a CSV/TSV/JSONL/XLSX/Parquet archive")
    p.add_argument("input")
    p.add_argument("-o", "--output", required=True, help="output file: .csv, .jsonl or .parquet")
    p.add_argument("--text-column", default="text")
    p.add_argument("--id-column", default=None, help="column carried as the row id (default: add row_number)")
    p.add_argument("--encoding", default=None, help="force the input encoding (default: detect)")
    p.add_argument("--sheet", default=None, help="Excel sheet name (default: the first)")
    p.add_argument("--probs", action="store_true", help="add a probability column per class")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from its checkpoint")
    p.add_argument("--chunk-size", type=int, default=4096, help="rows per checkpointed chunk")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    _model_options(p)
    p.set_defaults(func=cmd_label)

    p = sub.add_parser("train", help="fine-tune a model on labelled JSONL")
    _add_training_options(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="score a model on labelled JSONL next to two baselines")
    _model_options(p, positional=True)
    p.add_argument("data", help="labelled JSONL (LABELS.md format)")
    p.add_argument("--train-file", default=None,
                   help="training data for the TF-IDF baseline (default: the model's own, if present)")
    p.add_argument("--no-baselines", action="store_true")
    p.add_argument("--plot", default="confusion.png", help="PNG of the confusion matrices ('' for none)")
    p.add_argument("--json", default=None, help="also write the full report as JSON")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("calibrate", help="re-choose a model's urgent threshold on labelled JSONL (rewrites MODEL)")
    p.add_argument("model")
    p.add_argument("data", help="labelled JSONL (LABELS.md format)")
    p.add_argument("--urgent-recall-target", type=float, default=0.9,
                   help="share of the urgent rows the threshold must keep (default: 0.9)")
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("serve", help="run the HTTP API")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1, help="processes, each with its own model")
    _model_options(p)
    p.add_argument("--api-key", default=None,
                   help="require 'Authorization: Bearer KEY' on /v1/ (or set COMPLAINT_NLP_API_KEY)")
    p.add_argument("--max-texts", type=int, default=64, help="texts per request")
    p.add_argument("--max-text-chars", type=int, default=10_000, help="characters per text")
    p.add_argument("--max-body-bytes", type=int, default=1 << 20, help="bytes per request body")
    p.add_argument("--batch-window-ms", type=float, default=5.0, help="how long to gather concurrent requests")
    p.add_argument("--log-level", default="info")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("export-onnx", help="export a model directory to ONNX (int8 by default)")
    p.add_argument("model")
    p.add_argument("output")
    p.add_argument("--no-quantize", action="store_true")
    p.set_defaults(func=cmd_export_onnx)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, OSError) as exc:  # bad input, model directory or archive: one clear line
        print(f"complaint-nlp {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
