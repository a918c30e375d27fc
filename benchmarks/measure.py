"""Run benchmark workers as separate processes, alternating A B A B, each reporting its peak memory.

Each worker prints one JSON line (what it timed itself and its peak RSS); the
parent adds the process's wall time.
Alternating the systems and reporting medians and per-pair ratios keeps a
comparison fair on a noisy shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

# The data the benchmarks read (never copied into the repository), beside the checkout unless told otherwise.
SHARED = Path(os.environ.get("COMPLAINT_NLP_SHARED", Path(__file__).resolve().parents[2] / "shared"))
LABELED = SHARED / "data" / "labeled"


def run_worker(argv: Sequence[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, *argv], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env={**os.environ, **(env or {})})
    out = proc.stdout.read()
    if proc.wait() != 0:
        raise RuntimeError(f"worker {argv} failed with status {proc.returncode}")
    result = json.loads(out.decode().strip().splitlines()[-1])
    result["process_wall_s"] = time.perf_counter() - started
    return result


def report_result(result: dict[str, Any]) -> None:
    """A worker's last line: what it timed, plus its own peak RSS.

    The peak is the process's VmHWM, not the parent's ``wait4`` figure: Linux
    carries the forked parent's RSS into a child's ``ru_maxrss`` across exec,
    which would floor every worker at the parent's size.
    """
    with open("/proc/self/status") as f:
        hwm_kb = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    print(json.dumps({**result, "peak_rss_mb": hwm_kb / 1024}), flush=True)


def alternate(workers: dict[str, Sequence[str]], runs: int, warmup: bool = True) -> dict[str, list[dict[str, Any]]]:
    """Run every worker ``runs`` times, in turn, after one warm-up round (not counted) unless told not to."""
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in workers}
    for round_number in range(0 if warmup else 1, runs + 1):
        for name, argv in workers.items():
            result = run_worker(argv)
            if round_number:
                results[name].append(result)
            print(f"  round {round_number} {name}: {json.dumps(result)}", file=sys.stderr, flush=True)
    return results


def summarize(results: dict[str, list[dict[str, Any]]], reference: str, rate_key: str = "texts_per_s") -> dict:
    """Medians per system and the per-pair ratio against ``reference`` (round i against round i)."""
    out = {}
    for name, runs in results.items():
        ratios = [r[rate_key] / ref[rate_key] for r, ref in zip(runs, results[reference])]
        out[name] = {
            rate_key: statistics.median(r[rate_key] for r in runs),
            f"{rate_key}_min_max": [min(r[rate_key] for r in runs), max(r[rate_key] for r in runs)],
            "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in runs),
            "process_wall_s": statistics.median(r["process_wall_s"] for r in runs),
            f"ratio_vs_{reference}": statistics.median(ratios),
            "runs": len(runs),
        }
    return out


def parse_args(doc: str, output: str, add_options: Callable[[argparse.ArgumentParser], None]) -> argparse.Namespace:
    """The options every benchmark takes (--model, --output, the hidden --worker) plus its own.

    In the parent process the model's ONNX export is built here, outside the timed runs.
    """
    from complaint_nlp.classifier import default_model_path
    from complaint_nlp.onnx_export import onnx_path

    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="model directory (default: the bundled model)")
    parser.add_argument("--output", default=output)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    add_options(parser)
    args = parser.parse_args()
    args.model = args.model or str(default_model_path())
    if not args.worker:
        onnx_path(args.model)
    return args
