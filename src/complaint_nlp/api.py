"""The HTTP service: FastAPI around one ``ComplaintClassifier``.

Requests from concurrent clients are gathered for a few milliseconds and sent
to the model as one batch (``MicroBatcher``), on a worker thread so the event
loop keeps answering. Every bad request gets a 4xx JSON error: malformed
JSON, wrong types, an empty or oversized list, an oversized text (422), an
oversized body (413), a missing or wrong token (401).
"""


import asyncio
import json
import logging
import os
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from typing import Annotated, Any, AsyncIterator, Callable, Sequence

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import __version__, labels
from .classifier import BACKENDS, ComplaintClassifier, ComplaintResult

logger = logging.getLogger(__name__)

SETTINGS_ENV_VAR = "COMPLAINT_NLP_SERVE"
API_KEY_ENV_VAR = "COMPLAINT_NLP_API_KEY"


@dataclass
class ServiceSettings:
    """Limits and options of one service; ``complaint-nlp serve`` fills them from its flags."""

    model: str | None = None
    backend: str = "torch"
    batch_size: int = 32
    urgency_threshold: float | None = None
    max_texts: int = 64
    max_text_chars: int = 10_000
    max_body_bytes: int = 1 << 20
    batch_window_ms: float = 5.0
    max_batch_texts: int = 256
    api_key: str | None = None

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        for name in ("max_texts", "max_text_chars", "max_body_bytes", "max_batch_texts"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")

    def to_env(self) -> dict[str, str]:
        """Settings for worker processes, which uvicorn starts from an import string; the key travels apart."""
        public = {k: v for k, v in asdict(self).items() if k != "api_key"}
        env = {SETTINGS_ENV_VAR: json.dumps(public)}
        if self.api_key:
            env[API_KEY_ENV_VAR] = self.api_key
        return env

    @classmethod
    def from_env(cls) -> "ServiceSettings":
        values = json.loads(os.environ.get(SETTINGS_ENV_VAR, "{}"))
        return cls(**values, api_key=os.environ.get(API_KEY_ENV_VAR) or None)


# ----------------------------------------------------------------------------- request and response models

def request_model(max_texts: int, max_text_chars: int) -> type[BaseModel]:
    """The request body, with this service's limits in its schema."""
    Text = Annotated[str, StringConstraints(max_length=max_text_chars)]

    class ClassifyRequest(BaseModel):
        """Either one ``text`` or a list of ``texts``."""

        model_config = ConfigDict(extra="forbid", json_schema_extra={
            "examples": [{"texts": ["外卖送到时汤洒了一半，商家还不给退款", "刹车失灵差点出事故"]},
                         {"text": "客服电话一直打不通"}]})
        text: Text | None = None
        texts: list[Text] | None = Field(None, min_length=1, max_length=max_texts)

        @model_validator(mode="after")
        def one_of_text_or_texts(self) -> "ClassifyRequest":
            if (self.text is None) == (self.texts is None):
                raise ValueError("give exactly one of 'text' or 'texts'")
            return self

        def all_texts(self) -> list[str]:
            return [self.text] if self.text is not None else list(self.texts or [])

    return ClassifyRequest


class ClassifyResponse(BaseModel):
    model: str
    results: list[ComplaintResult]


class ErrorResponse(BaseModel):
    error: str
    message: str
    details: list[dict[str, Any]] | None = None


def error_response(status: int, error: str, message: str, details: list[dict[str, Any]] | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body = ErrorResponse(error=error, message=message, details=details).model_dump(exclude_none=True)
    return JSONResponse(body, status_code=status, headers=headers)


# ----------------------------------------------------------------------------- micro-batching

class MicroBatcher:
    """Gathers texts from concurrent requests for ``window_s`` and labels them in one ``predict`` call."""

    def __init__(self, predict: Callable[[list[str]], list[ComplaintResult]], window_s: float, max_texts: int):
        self.predict, self.window_s, self.max_texts = predict, window_s, max_texts
        self.queue: asyncio.Queue[tuple[list[str], asyncio.Future]] = asyncio.Queue()
        # One thread: the model runs off the event loop, one batch at a time.
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="complaint-model")
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        self.executor.shutdown(wait=True)

    async def submit(self, texts: Sequence[str]) -> list[ComplaintResult]:
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((list(texts), future))
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self.queue.get()]
            size = len(batch[0][0])
            deadline = loop.time() + self.window_s
            while size < self.max_texts:
                timeout = deadline - loop.time()
                if timeout <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self.queue.get(), timeout)
                except asyncio.TimeoutError:
                    break
                batch.append(item)
                size += len(item[0])
            texts = [t for item, _ in batch for t in item]
            try:
                results = await loop.run_in_executor(self.executor, self.predict, texts)
            except Exception as exc:  # a model failure fails these requests, not the service
                logger.exception("prediction failed for a batch of %d texts", len(texts))
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            start = 0
            for item, future in batch:
                if not future.done():
                    future.set_result(results[start:start + len(item)])
                start += len(item)


# ----------------------------------------------------------------------------- metrics

class Metrics:
    """Prometheus metrics of one app (its own registry, so several apps in a process do not clash)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("complaint_nlp_http_requests", "HTTP requests", ["path", "status"],
                                registry=self.registry)
        self.latency = Histogram("complaint_nlp_http_request_seconds", "Request latency", ["path"],
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
                                 registry=self.registry)
        self.texts = Counter("complaint_nlp_texts_classified", "Texts classified", registry=self.registry)
        self.text_errors = Counter("complaint_nlp_text_errors", "Texts answered with an error", ["error"],
                                   registry=self.registry)
        self.batch_size = Histogram("complaint_nlp_model_batch_texts", "Texts per model call",
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256), registry=self.registry)

    def render(self) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


# ----------------------------------------------------------------------------- the app

class BodyLimit:
    """ASGI middleware: a request body over ``max_bytes`` gets 413 before any parsing."""

    def __init__(self, app: Any, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        too_big = declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes)
        body, more = b"", True
        while more and not too_big:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            too_big = len(body) > self.max_bytes
        if too_big:
            response = error_response(413, "body_too_large", f"request body over {self.max_bytes} bytes")
            return await response(scope, receive, send)

        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def create_app(settings: ServiceSettings | None = None, classifier: ComplaintClassifier | None = None) -> FastAPI:
    """The service. The model loads in the background: /healthz answers at once, /readyz once it is warm."""
    settings = settings or ServiceSettings()
    metrics = Metrics()
    state: dict[str, Any] = {"classifier": classifier, "batcher": None, "ready": False, "load_error": None}

    def load_and_warm() -> ComplaintClassifier:
        model = state["classifier"] or ComplaintClassifier(
            settings.model, backend=settings.backend, batch_size=settings.batch_size,
            urgency_threshold=settings.urgency_threshold)
        model.predict(["预热：外卖送到时汤洒了一半"])
        return model

    def predict(texts: list[str]) -> list[ComplaintResult]:
        metrics.batch_size.observe(len(texts))
        return state["classifier"].predict(texts)

    async def load() -> None:
        try:
            state["classifier"] = await asyncio.to_thread(load_and_warm)
        except Exception as exc:
            state["load_error"] = str(exc)
            logger.error("model failed to load: %s", exc)
            return
        batcher = MicroBatcher(predict, settings.batch_window_ms / 1000, settings.max_batch_texts)
        batcher.start()
        state["batcher"], state["ready"] = batcher, True

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loading = asyncio.create_task(load())
        yield
        # uvicorn has let in-flight requests finish before this point.
        await asyncio.gather(loading, return_exceptions=True)
        if state["batcher"] is not None:
            await state["batcher"].stop()

    app = FastAPI(title="complaint-nlp", version=__version__, lifespan=lifespan,
                  description="Tags Chinese customer complaints with category, tier (P1-P4) and emotion.")
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    ClassifyRequest = request_model(settings.max_texts, settings.max_text_chars)

    @app.middleware("http")
    async def record(request: Request, call_next: Callable) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = route.path if route is not None else "unmatched"
        metrics.latency.labels(path).observe(time.perf_counter() - started)
        metrics.requests.labels(path, str(response.status_code)).inc()
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Echo where and why, never the input itself (it may be large or private).
        details = [{"loc": list(e.get("loc", [])), "type": e.get("type"), "msg": e.get("msg")} for e in exc.errors()]
        return error_response(422, "invalid_request", "the request body does not match the schema", details)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:  # FastAPI could not decode the body at all (e.g. bytes that are not UTF-8)
            return error_response(422, "invalid_request", "the request body is not UTF-8 JSON",
                                  [{"loc": ["body"], "type": "json_invalid", "msg": "not UTF-8 JSON"}])
        return error_response(exc.status_code, "http_error", str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unexpected error on %s", request.url.path)
        return error_response(500, "internal_error", "the service failed to answer this request")

    def require_key(request: Request) -> None:
        if not settings.api_key:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(token.encode(), settings.api_key.encode()):
            raise StarletteHTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})

    def model_name() -> str:
        path = getattr(state["classifier"], "model_path", None)
        return path.name if path is not None else "in-memory"

    errors = {401: {"model": ErrorResponse}, 413: {"model": ErrorResponse}, 422: {"model": ErrorResponse},
              503: {"model": ErrorResponse}}

    @app.post("/v1/classify", response_model=ClassifyResponse, responses=errors, dependencies=[Depends(require_key)])
    async def classify(body: ClassifyRequest) -> Any:  # type: ignore[valid-type]
        """Label one text or a list of texts; one result per text, in order, with warnings or an error."""
        if not state["ready"]:
            return error_response(503, "not_ready", state["load_error"] or "the model is still loading")
        results = await state["batcher"].submit(body.all_texts())
        metrics.texts.inc(len(results))
        for r in results:
            if r.error:
                metrics.text_errors.labels(r.error.split(":")[0]).inc()
        return ClassifyResponse(model=model_name(), results=results)

    @app.get("/v1/labels", dependencies=[Depends(require_key)], responses=errors)
    async def label_schema() -> dict[str, Any]:
        """The label schema: names, Chinese display names, tiers and their response targets."""
        return labels.schema()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", responses={503: {"model": ErrorResponse}})
    async def readyz() -> Any:
        """The model is loaded and a warm-up prediction is done."""
        if state["ready"]:
            return {"status": "ready", "model": model_name()}
        return error_response(503, "not_ready", state["load_error"] or "the model is still loading")

    @app.get("/metrics", include_in_schema=False)
    async def prometheus() -> Response:
        return metrics.render()

    return app


def create_app_from_env() -> FastAPI:
    """Entry point for uvicorn worker processes (``--workers N``)."""
    return create_app(ServiceSettings.from_env())


def serve(settings: ServiceSettings, host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
          log_level: str = "info") -> None:
    """Run the service under uvicorn; SIGTERM lets in-flight requests finish (up to 30 s)."""
    import uvicorn

    common = {"host": host, "port": port, "log_level": log_level, "timeout_graceful_shutdown": 30}
    if workers == 1:
        uvicorn.run(create_app(settings), **common)
        return
    os.environ.update(settings.to_env())
    # Each worker is its own process with its own model; share the cores between them.
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))
    uvicorn.run("complaint_nlp.api:create_app_from_env", factory=True, workers=workers, **common)
