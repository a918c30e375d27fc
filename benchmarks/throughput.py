"""Archive labelling throughput: `label_file` (ONNX int8 and PyTorch) against a naive row-by-row loop.

Builds a realistic archive from the public sets in ../shared/data/raw: a
GB18030 CSV of complaints and reviews from all nine kinds of source (median
about 60 characters), with 3% repeated texts and 2% empty cells, as exported
archives have. Then, each in its own process, in turn:

- onnx:  ``label_file(..., ComplaintClassifier(backend="onnx"))``
- torch: ``label_file(..., ComplaintClassifier())``
- naive: ``classifier.predict([text])`` row by row on the PyTorch model (on the first rows only)

and, for memory, the onnx run on a 10x larger archive.

    python benchmarks/throughput.py --rows 10000 --naive-rows 1000 --memory-scale 10

writes benchmarks/results/throughput.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "scripts"))
from measure import alternate, parse_args, report_result, summarize  # noqa: E402

# Per-source quotas for a median of about 60 characters (p90 about 270): the mix of short reviews and long
# petitions that complaint archives have.
QUOTAS = {"heimao": 4900, "gov_hotline": 3500, "car_12365auto": 600, "car_forum": 3000, "shopping": 4500,
          "waimai": 1500, "hotel": 5500, "restaurant": 300, "weibo": 3000}


def build_archive(path: Path, rows: int, seed: int = 7) -> dict:
    from unlabeled_pool import build_pool

    pool = [r for r in build_pool(seed=seed, quotas=QUOTAS)]
    rng = random.Random(seed)
    out = []
    for i in range(rows):
        roll = rng.random()
        if roll < 0.02:
            text = rng.choice(["", "   "])
        elif roll < 0.05 and out:
            text = rng.choice(out)[1]
        else:
            text = pool[i % len(pool)]["text"]
        out.append((f"GD{i:08d}", text, pool[i % len(pool)]["source"], f"2023-{1 + i % 12:02d}-{1 + i % 28:02d}"))
    with open(path, "w", encoding="gb18030", errors="replace", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["工单号", "投诉内容", "渠道", "日期"])
        writer.writerows(out)
    lengths = sorted(len(t) for _, t, _, _ in out if t.strip())
    return {"rows": rows, "median_chars": statistics.median(lengths), "p90_chars": lengths[int(0.9 * len(lengths))],
            "empty": sum(1 for _, t, _, _ in out if not t.strip()),
            "distinct_texts": len({t for _, t, _, _ in out})}


def worker(args: argparse.Namespace) -> None:
    from complaint_nlp import ComplaintClassifier

    backend = "torch" if args.worker == "naive" else args.worker
    classifier = ComplaintClassifier(args.model, backend=backend)
    if args.worker == "naive":
        with open(args.archive, encoding="gb18030", newline="") as f:
            texts = [row["投诉内容"] for _, row in zip(range(args.naive_rows), csv.DictReader(f))]
        started = time.perf_counter()
        for text in texts:
            classifier.predict([text])
        seconds = time.perf_counter() - started
        report_result({"rows": len(texts), "seconds": seconds, "rows_per_s": len(texts) / seconds})
        return
    from complaint_nlp.archive import label_file

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        summary = label_file(args.archive, Path(tmp) / "out.csv", classifier, text_column="投诉内容",
                             id_column="工单号", progress=False)
        seconds = time.perf_counter() - started
    report_result({"rows": summary.rows_read, "seconds": seconds, "rows_per_s": summary.rows_read / seconds,
                   "errors": summary.errors, "by_tier": dict(summary.by_tier)})


def main() -> None:
    def options(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--rows", type=int, default=20_000)
        parser.add_argument("--naive-rows", type=int, default=1500)
        parser.add_argument("--memory-scale", type=int, default=10, help="rows multiplier of the memory run")
        parser.add_argument("--runs", type=int, default=1)
        parser.add_argument("--archive", help=argparse.SUPPRESS)

    args = parse_args(__doc__, str(HERE / "results" / "throughput.json"), options)
    if args.worker:
        return worker(args)
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "archive.csv"
        archive_info = build_archive(archive, args.rows)
        print(json.dumps(archive_info), file=sys.stderr)
        common = [__file__, "--model", args.model, "--archive", str(archive), "--naive-rows", str(args.naive_rows),
                  "--worker"]
        results = alternate({name: [*common, name] for name in ("naive", "torch", "onnx")}, args.runs)
        big = Path(tmp) / "archive_big.csv"
        big_info = build_archive(big, args.rows * args.memory_scale)
        memory = alternate({"onnx-big": [__file__, "--model", args.model, "--archive", str(big), "--worker", "onnx"]},
                           1, warmup=False)
    report = {
        "what": "rows per second of the whole labelling run (read, normalise, deduplicate, label, write CSV) "
                "after the model is loaded; naive = predict([text]) per row on PyTorch; peak RSS per process",
        "archive": archive_info, "model": args.model,
        "summary": summarize(results, "naive", rate_key="rows_per_s"),
        "memory": {"rows": big_info["rows"], "peak_rss_mb": memory["onnx-big"][0]["peak_rss_mb"],
                   "rows_per_s": memory["onnx-big"][0]["rows_per_s"],
                   "small_archive_peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in results["onnx"])},
        "runs": results,
    }
    Path(args.output).write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    print(json.dumps({k: report[k] for k in ("archive", "summary", "memory")}, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
