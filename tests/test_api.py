"""The HTTP API, served for real by uvicorn on a free loopback port and called over HTTP."""

import concurrent.futures
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest
import uvicorn

from complaint_nlp import ComplaintClassifier, labels
from complaint_nlp.api import ServiceSettings, create_app

TEXTS = ["外卖送到时汤洒了一半，商家还不给退款", "我的車子煞車失靈了，太危險", "客服态度很差", "好评", "",
         "刚买的手机屏幕就碎了，要求换货"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """uvicorn in a thread; ``stop`` asks it to exit the way SIGTERM does."""

    def __init__(self, app):
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    timeout_graceful_shutdown=30))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.port}"
        wait_ready(self.url)

    def stop(self):
        self.server.should_exit = True
        self.thread.join(30)


def wait_ready(url: str, timeout: float = 60, headers=None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{url} not ready")


@pytest.fixture(scope="module")
def server(tiny_model_dir):
    running = Server(create_app(ServiceSettings(model=str(tiny_model_dir), max_texts=8, max_text_chars=500,
                                                max_body_bytes=20_000)))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def reference(tiny_model_dir):
    return ComplaintClassifier(tiny_model_dir)


def same(api_result: dict, python_result) -> None:
    expected = python_result.to_dict()
    for key in ("is_complaint", "category", "categories", "urgency", "scope", "tier", "response_target", "emotion",
                "warnings", "error"):
        assert api_result[key] == expected[key], key
    assert api_result["scores"] == pytest.approx(expected["scores"], abs=1e-4)


def test_health_ready_labels_and_docs(server):
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{server.url}/readyz").json()["status"] == "ready"
    assert httpx.get(f"{server.url}/v1/labels").json() == json.loads(json.dumps(labels.schema()))
    schema = httpx.get(f"{server.url}/openapi.json").json()
    result_schema = json.dumps(schema["components"]["schemas"])
    assert "false_advertising" in result_schema and "P4" in result_schema
    assert httpx.get(f"{server.url}/docs").status_code == 200


def test_classify_matches_the_python_api(server, reference):
    batch = httpx.post(f"{server.url}/v1/classify", json={"texts": TEXTS}).json()
    assert batch["model"] == "tiny" and len(batch["results"]) == len(TEXTS)
    for got, want in zip(batch["results"], reference.predict(TEXTS)):
        same(got, want)
    assert batch["results"][4]["error"] == "empty_text"
    single = httpx.post(f"{server.url}/v1/classify", json={"text": TEXTS[1]}).json()
    same(single["results"][0], reference.classify(TEXTS[1]))
    assert single["results"][0]["response_target"] == labels.TIERS[single["results"][0]["tier"]].response_target


@pytest.mark.parametrize("body, status, where", [
    (b"{not json", 422, "json_invalid"),
    (b'{"text": "\xff\xfe\x00garbage"}', 422, "json_invalid"),  # not UTF-8
    (b'{"texts": "one string"}', 422, "list_type"),
    (b'{"texts": [1, 2]}', 422, "string_type"),
    (b'{"texts": [null]}', 422, "string_type"),
    (b'{"texts": []}', 422, "too_short"),
    (json.dumps({"texts": ["好"] * 9}).encode(), 422, "too_long"),
    (json.dumps({"text": "长" * 501}).encode(), 422, "string_too_long"),
    (b'{"text": "a", "texts": ["b"]}', 422, "value_error"),
    (b"{}", 422, "value_error"),
    (b'{"text": "a", "mode": "fast"}', 422, "extra_forbidden"),
    (b"[]", 422, "model_attributes_type"),
    (b"", 422, "missing"),
    (json.dumps({"texts": ["字" * 450] * 8}).encode(), 413, "body_too_large"),  # 21.6 kB escaped
])
def test_bad_requests_get_clear_4xx(server, body, status, where):
    response = httpx.post(f"{server.url}/v1/classify", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status
    assert where in response.text
    assert response.json()["error"] in ("invalid_request", "body_too_large")
    assert "字字字" not in response.text  # inputs are not echoed back


def test_chunked_oversized_body_is_refused(server):
    def chunks():
        for _ in range(30):
            yield b" " * 1000

    response = httpx.post(f"{server.url}/v1/classify", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_wrong_method_and_path(server):
    assert httpx.get(f"{server.url}/v1/classify").status_code == 405
    missing = httpx.get(f"{server.url}/v2/nothing")
    assert missing.status_code == 404 and missing.json()["error"] == "http_error"


def test_concurrent_clients_are_batched_and_get_their_own_answers(server, reference, dev_records):
    texts = [r["text"] for r in dev_records if len(r["text"]) <= 500][:48]
    expected = reference.predict(texts)

    def call(i):
        return httpx.post(f"{server.url}/v1/classify", json={"text": texts[i]}, timeout=60).json()["results"][0]

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(call, range(len(texts))))
    for got, want in zip(answers, expected):
        same(got, want)
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'complaint_nlp_http_requests_total{path="/v1/classify",status="200"}' in metrics
    assert "complaint_nlp_http_request_seconds_bucket" in metrics
    assert "complaint_nlp_texts_classified_total" in metrics
    assert 'complaint_nlp_text_errors_total{error="empty_text"}' in metrics
    batch_count = float(metrics.split("complaint_nlp_model_batch_texts_count ")[1].split()[0])
    batch_sum = float(metrics.split("complaint_nlp_model_batch_texts_sum ")[1].split()[0])
    assert batch_sum / batch_count > 1.0  # some requests shared a model call


def test_bearer_token(tiny_model_dir):
    running = Server(create_app(ServiceSettings(model=str(tiny_model_dir), api_key="s3cret-token")))
    try:
        url = f"{running.url}/v1/classify"
        assert httpx.post(url, json={"text": "好"}).status_code == 401
        wrong = httpx.post(url, json={"text": "好"}, headers={"Authorization": "Bearer wrong"})
        assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
        assert "s3cret" not in wrong.text
        assert httpx.get(f"{running.url}/v1/labels").status_code == 401
        ok = httpx.post(url, json={"text": "好"}, headers={"Authorization": "Bearer s3cret-token"})
        assert ok.status_code == 200
        assert httpx.get(f"{running.url}/healthz").status_code == 200
        assert httpx.get(f"{running.url}/metrics").status_code == 200
    finally:
        running.stop()


class SlowClassifier(ComplaintClassifier):
    """The real tiny model, made slow, to have a request in flight at shutdown."""

    def predict(self, texts, **kwargs):
        time.sleep(1.0)
        return super().predict(texts, **kwargs)


def test_not_ready_then_ready_and_in_flight_requests_finish_at_shutdown(tiny_model_dir):
    classifier = SlowClassifier(tiny_model_dir)
    running = Server.__new__(Server)
    running.port = free_port()
    running.url = f"http://127.0.0.1:{running.port}"
    running.server = uvicorn.Server(uvicorn.Config(create_app(classifier=classifier), host="127.0.0.1",
                                                   port=running.port, log_level="warning"))
    running.thread = threading.Thread(target=running.server.run, daemon=True)
    running.thread.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # warm-up takes a second: not ready yet, but alive
        try:
            ready = httpx.get(f"{running.url}/readyz")
            break
        except httpx.TransportError:
            time.sleep(0.02)
    assert ready.status_code == 503 and httpx.get(f"{running.url}/healthz").status_code == 200
    assert httpx.post(f"{running.url}/v1/classify", json={"text": "好"}).status_code == 503
    wait_ready(running.url)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(httpx.post, f"{running.url}/v1/classify", json={"texts": TEXTS}, timeout=30)
        time.sleep(0.3)
        running.stop()
        response = in_flight.result()
    assert response.status_code == 200 and len(response.json()["results"]) == len(TEXTS)
    assert not running.thread.is_alive()


def test_serve_command_with_two_workers_and_a_key_from_the_environment(tiny_model_dir):
    port = free_port()
    env = {**os.environ, "COMPLAINT_NLP_API_KEY": "k3y"}
    proc = subprocess.Popen([sys.executable, "-m", "complaint_nlp.cli", "serve", "--port", str(port), "--model",
                             str(tiny_model_dir), "--workers", "2", "--log-level", "warning"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, timeout=120)
        assert httpx.post(f"{url}/v1/classify", json={"text": "好"}).status_code == 401
        ok = httpx.post(f"{url}/v1/classify", json={"texts": TEXTS}, headers={"Authorization": "Bearer k3y"})
        assert ok.status_code == 200 and len(ok.json()["results"]) == len(TEXTS)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert "k3y" not in stderr
