"""ComplaintClassifier: texts in, one typed result per text out.

``predict`` is the one inference entry point (as ``encode`` is in
sentence-transformers): it normalises, deduplicates, sorts by length to cut
padding, runs the model in batches on the chosen backend, and restores the
input order. Bad items (``None``, empty text, non-strings) get a result with
``error`` set; they never raise and never disturb the rest of the batch.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from . import labels
from .labels import CategoryName, EmotionName, ScopeName, TierName, UrgencyName
from .modeling import ComplaintModelConfig, encode, load_config
from .text import WARNING_TRUNCATED, normalize, normalize_text

MODEL_ENV_VAR = "COMPLAINT_NLP_MODEL"
DEFAULT_MODEL_NAME = "complaint-e5-small-zh"
DEFAULT_BATCH_SIZE = 32
MAX_BATCH_SIZE = 1024
BACKENDS = ("torch", "onnx")


def default_model_path() -> Path:
    """The bundled model: ``$COMPLAINT_NLP_MODEL``, else the copy in the wheel, else ``models/`` of a checkout."""
    if os.environ.get(MODEL_ENV_VAR):
        return Path(os.environ[MODEL_ENV_VAR])
    packaged = Path(__file__).parent / "default_model"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "models" / DEFAULT_MODEL_NAME


@dataclass
class ComplaintResult:
    """The labels of one text; ``error`` is set (and labels are empty) when it could not be read."""

    is_complaint: bool | None = None
    category: CategoryName | None = None
    categories: list[CategoryName] = field(default_factory=list)
    urgency: UrgencyName | None = None
    scope: ScopeName | None = None
    tier: TierName | None = None
    response_target: str | None = None
    emotion: EmotionName | None = None
    # Probability of each label given above, by head name.
    scores: dict[str, float] = field(default_factory=dict)
    # Full distributions by head (class name -> probability); tier's is derived.
    probabilities: dict[str, dict[str, float]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


Backend = Callable[[np.ndarray, np.ndarray], np.ndarray]


def torch_backend(model: Any) -> Backend:
    """Run a ``ComplaintModel`` in PyTorch (fp32, no autograd)."""
    import torch

    model.eval()

    def run(input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(input_ids), torch.from_numpy(attention_mask)).float().numpy()

    return run


class ComplaintClassifier:
    """Tags Chinese complaint texts with every label of the schema.

    ``ComplaintClassifier()`` loads the bundled default model offline;
    ``ComplaintClassifier("path/or/dir")`` loads another model directory.
    ``backend="onnx"`` runs an int8-quantised ONNX export (built and cached on first use).
    ``urgency_threshold`` overrides the model's P(urgent) threshold: lower finds
    more urgent complaints at the cost of more false alarms.
    """

    def __init__(self, model: str | os.PathLike | None = None, *, backend: str = "torch",
                 batch_size: int = DEFAULT_BATCH_SIZE, urgency_threshold: float | None = None):
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.model_path = Path(model) if model is not None else default_model_path()
        self.backend_name = backend
        self.batch_size = _check_batch_size(batch_size)
        if backend == "onnx":
            from .onnx_export import onnx_backend

            self.config = load_config(self.model_path)
            self._run, self.tokenizer = onnx_backend(self.model_path)
        else:
            from .modeling import ComplaintModel

            model_obj, self.tokenizer = ComplaintModel.from_pretrained(self.model_path)
            self.config = model_obj.config
            self._run = torch_backend(model_obj)
        if urgency_threshold is not None:
            if not 0.0 < urgency_threshold < 1.0:
                raise ValueError(f"urgency_threshold must be between 0 and 1, got {urgency_threshold}")
            self.config.urgency_threshold = urgency_threshold

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, **kwargs: Any) -> "ComplaintClassifier":
        return cls(path, **kwargs)

    @classmethod
    def from_model(cls, model: Any, tokenizer: Any, batch_size: int = DEFAULT_BATCH_SIZE) -> "ComplaintClassifier":
        """Wrap an in-memory ``ComplaintModel`` (used while training) without saving it."""
        self = cls.__new__(cls)
        self.model_path, self.backend_name = None, "torch"
        self.batch_size = _check_batch_size(batch_size)
        self.config, self.tokenizer, self._run = model.config, tokenizer, torch_backend(model)
        return self

    @property
    def labels(self) -> dict[str, Any]:
        return labels.schema()

    def classify(self, text: Any) -> ComplaintResult:
        """Label one text."""
        return self.predict([text])[0]

    def predict(self, texts: Iterable[Any], batch_size: int | None = None,
                show_progress_bar: bool = False) -> list[ComplaintResult]:
        """Label a batch of texts; one result per input, in input order."""
        if isinstance(texts, (str, bytes)):
            raise TypeError("predict takes a list of texts; use classify(text) for a single text")
        items = [normalize(v) for v in texts]
        unique: dict[str, int] = {}
        for item in items:
            if item.text is not None and item.text not in unique:
                unique[item.text] = len(unique)
        logits, truncated = self._batched_logits(list(unique), batch_size or self.batch_size, show_progress_bar)
        probs = head_probabilities(self.config, logits)
        results = []
        for item in items:
            if item.text is None:
                results.append(ComplaintResult(warnings=item.warnings, error=item.error))
                continue
            row = unique[item.text]
            warnings = list(item.warnings)
            if truncated[row] and WARNING_TRUNCATED not in warnings:
                warnings.append(WARNING_TRUNCATED)
            results.append(self._decide({k: v[row] for k, v in probs.items()}, warnings))
        return results

    def logits(self, texts: Sequence[str], show_progress_bar: bool = False) -> np.ndarray:
        """Raw model outputs (one row per text, heads side by side) for distillation and calibration.

        Unlike ``predict`` this refuses bad items: every text must normalise to a non-empty string.
        """
        normalized = [normalize_text(t) for t in texts]
        return self._batched_logits(normalized, self.batch_size, show_progress_bar)[0]

    def _batched_logits(self, texts: Sequence[str], batch_size: int,
                        show_progress_bar: bool) -> tuple[np.ndarray, np.ndarray]:
        """Model outputs for normalised texts, batched by length, in input order."""
        out = np.zeros((len(texts), self.config.num_logits), dtype=np.float32)
        truncated = np.zeros(len(texts), dtype=bool)
        batches = length_batches([len(t) for t in texts], batch_size, self.config.max_length)
        if show_progress_bar:
            from tqdm.auto import tqdm

            batches = tqdm(batches, desc="classifying", unit="batch")
        for idx in batches:
            input_ids, attention_mask, cut = encode(self.tokenizer, [texts[i] for i in idx],
                                                    self.config.max_length, self.config.head_share)
            out[idx] = self._run(input_ids, attention_mask)
            truncated[idx] = cut
        return out, truncated

    def _decide(self, p: dict[str, np.ndarray], warnings: list[str]) -> ComplaintResult:
        """Turn one text's head probabilities into labels, following LABELS.md's rules."""
        cfg = self.config

        probabilities = {h.name: {c: float(v) for c, v in zip(h.classes, p[h.name])} for h in cfg.heads}
        p_complaint = probabilities["is_complaint"]["true"]
        p_urgent = probabilities["urgency"]["urgent"]
        p_group = probabilities["scope"]["group"]
        is_complaint = p_complaint >= cfg.complaint_threshold
        if is_complaint:
            category = max(labels.CATEGORIES, key=probabilities["category"].get)
            others = [c for c in labels.CATEGORIES
                      if c != category and probabilities["categories"][c] >= cfg.multi_label_threshold]
            categories = [category, *others]
            urgency = "urgent" if p_urgent >= cfg.urgency_threshold else "normal"
            scope = "group" if p_group >= 0.5 else "individual"
        else:  # LABELS.md: a non-complaint has no category and is normal, individual
            category, categories, urgency, scope = None, [], "normal", "individual"
        tier = labels.tier_for(urgency, scope)
        # P(tier) under the same rule: a non-complaint is always P4.
        probabilities["tier"] = {
            t.name: p_complaint * (p_urgent if t.urgency == "urgent" else 1 - p_urgent)
            * (p_group if t.scope == "group" else 1 - p_group) for t in labels.TIERS.values()}
        probabilities["tier"]["P4"] += 1 - p_complaint
        emotion = max(labels.EMOTIONS, key=probabilities["emotion"].get)
        scores = {
            "is_complaint": p_complaint if is_complaint else 1 - p_complaint,
            "urgency": probabilities["urgency"][urgency],
            "scope": probabilities["scope"][scope],
            "tier": probabilities["tier"][tier.name],
            "emotion": probabilities["emotion"][emotion],
        }
        if category is not None:
            scores["category"] = probabilities["category"][category]
        return ComplaintResult(
            is_complaint=is_complaint, category=category, categories=categories, urgency=urgency,
            scope=scope, tier=tier.name, response_target=tier.response_target, emotion=emotion,
            scores=scores, probabilities=probabilities, warnings=warnings)


def length_batches(lengths: Sequence[int], batch_size: int, max_length: int) -> list[list[int]]:
    """Indices sorted by length, cut where a batch is full or its texts would differ much in length.

    Every text in a batch is padded to the longest, so a batch closes before a
    text a third longer than its first (lengths capped at ``max_length``, the
    most the model reads). A large sorted input gives full batches; a handful
    of mixed texts, as an HTTP micro-batch has, gives a few short ones instead
    of one mostly padded batch.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    for i in order:
        length = min(lengths[i], max_length)
        if (not batches or len(batches[-1]) == batch_size
                or length > 4 / 3 * min(lengths[batches[-1][0]], max_length) + 8):
            batches.append([])
        batches[-1].append(i)
    return batches


def head_probabilities(config: ComplaintModelConfig, logits: np.ndarray) -> dict[str, np.ndarray]:
    """Split a batch of logits by head: softmax for single-label heads, sigmoid for multi-label ones."""
    probs = {}
    for head in config.heads:
        z = logits[:, config.head_slices()[head.name]]
        if head.kind == "multi":
            probs[head.name] = 1.0 / (1.0 + np.exp(-z))
        else:
            e = np.exp(z - z.max(axis=1, keepdims=True))
            probs[head.name] = e / e.sum(axis=1, keepdims=True)
    return probs


def _check_batch_size(batch_size: int) -> int:
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ValueError(f"batch_size must be an int from 1 to {MAX_BATCH_SIZE}, got {batch_size!r}")
    return batch_size
