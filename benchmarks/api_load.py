"""Load test of the HTTP API: a real `complaint-nlp serve` on 127.0.0.1, called over HTTP.

1. single-text latency (p50, p99) at 1 and at 16 concurrent clients;
2. texts per second with batches of 32 texts (4 concurrent clients);
3. 5,000 requests at 16 concurrency mixing valid and malformed bodies: the
   status codes (no 5xx allowed) and the server's RSS before and after.

    python benchmarks/api_load.py [--backend onnx]

writes benchmarks/results/api_load.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from measure import LABELED  # noqa: E402

DEV = LABELED / "dev.jsonl"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


async def latency_run(url: str, texts: list[str], clients: int, requests_per_client: int) -> dict:
    latencies: list[float] = []

    async def client(i: int, http: httpx.AsyncClient) -> None:
        for j in range(requests_per_client):
            text = texts[(i * requests_per_client + j) % len(texts)]
            started = time.perf_counter()
            response = await http.post(url, json={"text": text})
            latencies.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text

    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=clients)) as http:
        await asyncio.gather(*(client(i, http) for i in range(clients)))
    wall = time.perf_counter() - started
    return {"clients": clients, "requests": len(latencies), "p50_ms": 1000 * percentile(latencies, 0.5),
            "p99_ms": 1000 * percentile(latencies, 0.99), "texts_per_s": len(latencies) / wall}


async def batch_run(url: str, texts: list[str], batch: int, clients: int, batches_per_client: int) -> dict:
    async def client(i: int, http: httpx.AsyncClient) -> int:
        done = 0
        for j in range(batches_per_client):
            start = ((i * batches_per_client + j) * batch) % (len(texts) - batch)
            response = await http.post(url, json={"texts": texts[start:start + batch]})
            assert response.status_code == 200, response.text
            done += batch
        return done

    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=300) as http:
        total = sum(await asyncio.gather(*(client(i, http) for i in range(clients))))
    return {"batch": batch, "clients": clients, "texts": total, "texts_per_s": total / (time.perf_counter() - started)}


def mixed_bodies(texts: list[str], n: int, seed: int = 3) -> list[tuple[str, bytes]]:
    rng = random.Random(seed)
    kinds = [
        ("valid_text", lambda: json.dumps({"text": rng.choice(texts)[:2000]}).encode()),
        ("valid_texts", lambda: json.dumps({"texts": rng.sample(texts, 4)}).encode()),
        ("malformed_json", lambda: b'{"texts": ["unterminated'),
        ("wrong_type", lambda: json.dumps({"texts": [1, None, {"a": 1}]}).encode()),
        ("empty_list", lambda: b'{"texts": []}'),
        ("too_many", lambda: json.dumps({"texts": ["好"] * 65}).encode()),
        ("too_long_text", lambda: json.dumps({"text": "长" * 10_001}, ensure_ascii=False).encode()),
        ("too_large_body", lambda: b'{"text": "' + b"x" * (1 << 20) + b'"}'),
        ("not_json_object", lambda: b"[1, 2, 3]"),
        ("binary", lambda: bytes(rng.randrange(256) for _ in range(64))),
        ("empty_text", lambda: b'{"text": ""}'),
    ]
    return [(name, make()) for name, make in (rng.choice(kinds) for _ in range(n))]


async def mixed_run(url: str, bodies: list[tuple[str, bytes]], concurrency: int) -> dict:
    statuses: Counter = Counter()
    by_kind: dict[str, Counter] = {}
    queue: asyncio.Queue = asyncio.Queue()
    for item in bodies:
        queue.put_nowait(item)

    async def client(http: httpx.AsyncClient) -> None:
        while not queue.empty():
            kind, body = queue.get_nowait()
            response = await http.post(url, content=body, headers={"content-type": "application/json"})
            statuses[response.status_code] += 1
            by_kind.setdefault(kind, Counter())[response.status_code] += 1

    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=120) as http:
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
    return {"requests": len(bodies), "seconds": time.perf_counter() - started,
            "statuses": {str(k): v for k, v in sorted(statuses.items())},
            "by_kind": {k: {str(s): n for s, n in sorted(v.items())} for k, v in sorted(by_kind.items())},
            "server_errors": sum(v for k, v in statuses.items() if k >= 500)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None)
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--output", default=str(HERE / "results" / "api_load.json"))
    args = parser.parse_args()
    texts = [json.loads(line)["text"] for line in DEV.open(encoding="utf-8")]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "complaint_nlp.cli", "serve", "--port", str(port), "--backend", args.backend,
               "--log-level", "warning"] + (["--model", args.model] if args.model else [])
    server = subprocess.Popen(command)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        url = f"{base}/v1/classify"
        report = {"backend": args.backend, "rss_ready_mb": rss_mb(server.pid)}
        report["latency_1_client"] = asyncio.run(latency_run(url, texts, 1, 200))
        report["latency_16_clients"] = asyncio.run(latency_run(url, texts, 16, 25))
        report["batches_of_32"] = asyncio.run(batch_run(url, texts, 32, 4, 5))
        rss_before = rss_mb(server.pid)
        report["mixed"] = asyncio.run(mixed_run(url, mixed_bodies(texts, args.requests), 16))
        report["mixed"]["rss_before_mb"], report["mixed"]["rss_after_mb"] = rss_before, rss_mb(server.pid)
        metrics = httpx.get(f"{base}/metrics").text
        report["metrics_sample"] = [l for l in metrics.splitlines() if l.startswith("complaint_nlp_model_batch_texts_")]
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)
    report["server_exit_code"] = server.returncode
    Path(args.output).write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    print(json.dumps(report, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
