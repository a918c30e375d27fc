"""The model: one BERT-style encoder, mean pooling, one linear head per label.

A model directory is self-contained and loads offline:

- ``complaint_config.json``  heads, label names, max length, thresholds (this module)
- ``config.json``            the encoder's Hugging Face config
- ``model.safetensors``      encoder and head weights (never pickle)
- ``tokenizer.json`` + ``tokenizer_config.json``
- ``README.md``              the model card
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from . import labels
from .text import HEAD_SHARE, OPENCC_CONFIGS

CONFIG_NAME = "complaint_config.json"
WEIGHTS_NAME = "model.safetensors"
ENCODER_CONFIG_NAME = "config.json"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
REQUIRED_FILES = (CONFIG_NAME, ENCODER_CONFIG_NAME, WEIGHTS_NAME, *TOKENIZER_FILES)


class ModelDirectoryError(ValueError):
    """A model directory is missing a file or its files do not fit together."""


@dataclass
class HeadSpec:
    name: str
    classes: list[str]
    kind: str = "single"
    complaints_only: bool = False


@dataclass
class ComplaintModelConfig:
    """Everything needed to rebuild and run a model, saved in its directory."""

    base_model: str
    max_length: int = 128
    pooling: str = "mean"
    heads: list[HeadSpec] = field(default_factory=lambda: [
        HeadSpec(h.name, list(h.classes), h.kind, h.complaints_only) for h in labels.HEADS])
    # Decision thresholds on P(class); urgent is rare and costly to miss, so
    # its threshold is chosen for recall (see training.choose_urgency_threshold).
    urgency_threshold: float = 0.5
    complaint_threshold: float = 0.5
    multi_label_threshold: float = 0.5
    head_share: float = HEAD_SHARE
    opencc: list[str] = field(default_factory=lambda: list(OPENCC_CONFIGS))
    schema_version: str = labels.SCHEMA_VERSION

    @property
    def num_logits(self) -> int:
        return sum(len(h.classes) for h in self.heads)

    def head_slices(self) -> dict[str, slice]:
        """Where each head's logits sit in the model's single output vector."""
        slices, start = {}, 0
        for head in self.heads:
            slices[head.name] = slice(start, start + len(head.classes))
            start += len(head.classes)
        return slices

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "schema": labels.schema()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ComplaintModelConfig":
        data = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        data["heads"] = [HeadSpec(**h) for h in data.get("heads", [])]
        return cls(**data)

    def check_schema(self, where: str) -> None:
        """Refuse a model whose heads are not this library's label schema."""
        expected = [(h.name, list(h.classes)) for h in labels.HEADS]
        found = [(h.name, h.classes) for h in self.heads]
        if found != expected or self.schema_version != labels.SCHEMA_VERSION:
            raise ModelDirectoryError(
                f"{where}: heads {found} (schema v{self.schema_version}) do not match "
                f"this library's label schema v{labels.SCHEMA_VERSION} {expected}")


def _quiet_transformers() -> None:
    # Loading a base encoder into a different head layout is expected here;
    # transformers' load report would only alarm users.
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    logging.getLogger("transformers").setLevel(logging.ERROR)


class ComplaintModel(nn.Module):
    """Encoder + mean pooling + linear heads, returning all logits in one tensor.

    One tensor out keeps the ONNX graph and the batching code head-agnostic;
    ``ComplaintModelConfig.head_slices`` splits it.
    """

    def __init__(self, config: ComplaintModelConfig, encoder: nn.Module, dropout: float = 0.1):
        super().__init__()
        self.config = config
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        hidden = encoder.config.hidden_size
        self.heads = nn.ModuleDict({h.name: nn.Linear(hidden, len(h.classes)) for h in config.heads})

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if self.config.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        pooled = self.dropout(pooled)
        return torch.cat([self.heads[h.name](pooled) for h in self.config.heads], dim=-1)

    @classmethod
    def from_base(cls, base_model: str, config: ComplaintModelConfig | None = None,
                  num_layers: int | None = None) -> tuple["ComplaintModel", Any]:
        """A new model on a pretrained encoder (local path or hub name) and its tokenizer.

        ``num_layers`` keeps only the first layers of the encoder: a cheaper
        model to train and run, at some cost in accuracy. A complaint model
        directory is a base too: training then continues from its encoder and heads.
        """
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        _quiet_transformers()
        config = config or ComplaintModelConfig(base_model=base_model)
        if (Path(base_model) / CONFIG_NAME).is_file():
            trained, tokenizer = cls.from_pretrained(base_model)
            if num_layers is not None and num_layers != trained.encoder.config.num_hidden_layers:
                raise ValueError(f"{base_model} has {trained.encoder.config.num_hidden_layers} layers; "
                                 f"num_layers={num_layers} cannot change that")
            config.base_model = trained.config.base_model  # the pretrained encoder it all began from
            model = cls(config, trained.encoder)
            model.heads.load_state_dict(trained.heads.state_dict())
            return model, tokenizer
        encoder_config = AutoConfig.from_pretrained(base_model)
        if num_layers is not None:
            encoder_config.num_hidden_layers = num_layers
        encoder = _without_pooler(AutoModel.from_pretrained(base_model, config=encoder_config))
        tokenizer = AutoTokenizer.from_pretrained(base_model)
        return cls(config, encoder), tokenizer

    def save_pretrained(self, path: str | os.PathLike, tokenizer: Any, dtype: torch.dtype = torch.float32,
                        extra_files: dict[str, str] | None = None) -> Path:
        """Write the model directory atomically: a crash leaves the old one or none.

        ``extra_files`` (name -> text) go in too: the model card, the training record.
        """
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        try:
            state = {k: v.detach().to(dtype).contiguous() for k, v in self.state_dict().items()}
            save_file(state, tmp / WEIGHTS_NAME, metadata={"format": "pt"})
            self.encoder.config.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            (tmp / CONFIG_NAME).write_text(json.dumps(self.config.to_dict(), ensure_ascii=False, indent=2),
                                           encoding="utf-8")
            for name, content in (extra_files or {}).items():
                (tmp / name).write_text(content, encoding="utf-8")
            if path.exists():
                old = path.with_name(f".{path.name}.old")
                shutil.rmtree(old, ignore_errors=True)
                path.rename(old)
                tmp.rename(path)
                shutil.rmtree(old, ignore_errors=True)
            else:
                tmp.rename(path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return path

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike) -> tuple["ComplaintModel", Any]:
        """Load a saved model directory; weights only through safetensors."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        _quiet_transformers()
        config = load_config(path)
        path = Path(path)
        try:
            encoder_config = AutoConfig.from_pretrained(path)
        except Exception as exc:  # transformers raises several types for a bad config.json
            raise ModelDirectoryError(f"{path / ENCODER_CONFIG_NAME}: not a valid encoder config ({exc})") from exc
        encoder = _without_pooler(AutoModel.from_config(encoder_config))
        model = cls(config, encoder)
        try:
            state = load_file(path / WEIGHTS_NAME)
        except (SafetensorError, OSError) as exc:
            raise ModelDirectoryError(f"{path / WEIGHTS_NAME}: unreadable safetensors file ({exc})") from exc
        expected = model.state_dict()
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        wrong = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
        if missing or unexpected or wrong:
            detail = "; ".join(f"{what}: {keys[:5]}{' ...' if len(keys) > 5 else ''}"
                               for what, keys in (("missing", missing), ("unexpected", unexpected),
                                                  ("wrong shape", wrong)) if keys)
            raise ModelDirectoryError(
                f"{path / WEIGHTS_NAME}: weights do not match {CONFIG_NAME} and {ENCODER_CONFIG_NAME} ({detail})")
        model.load_state_dict({k: v.float() for k, v in state.items()})
        model.eval()
        try:
            tokenizer = AutoTokenizer.from_pretrained(path)
        except Exception as exc:
            raise ModelDirectoryError(f"{path / TOKENIZER_FILES[0]}: tokenizer does not load ({exc})") from exc
        return model, tokenizer


def _without_pooler(encoder: nn.Module) -> nn.Module:
    # BERT-family encoders carry a [CLS] pooler that mean pooling never uses;
    # dropping it keeps it out of the weights file and the ONNX graph.
    if getattr(encoder, "pooler", None) is not None:
        encoder.pooler = None
    return encoder


def load_config(path: str | os.PathLike) -> ComplaintModelConfig:
    """Read and check a model directory's files; one clear error naming the first bad file."""
    path = Path(path)
    if not path.is_dir():
        raise ModelDirectoryError(f"{path}: not a model directory")
    for name in REQUIRED_FILES:
        if not (path / name).is_file():
            raise ModelDirectoryError(f"{path / name}: missing from the model directory")
    try:
        data = json.loads((path / CONFIG_NAME).read_text(encoding="utf-8"))
        config = ComplaintModelConfig.from_dict(data)
    except (ValueError, TypeError) as exc:
        raise ModelDirectoryError(f"{path / CONFIG_NAME}: not a valid complaint model config ({exc})") from exc
    config.check_schema(str(path / CONFIG_NAME))
    return config


def encode(tokenizer: Any, texts: Sequence[str], max_length: int,
           head_share: float = HEAD_SHARE) -> tuple[np.ndarray, np.ndarray, list[bool]]:
    """Tokenise a batch, keep head+tail of long texts, pad to the longest (rounded up to a multiple of 8).

    Returns ``input_ids``, ``attention_mask`` (int64, shape batch x longest)
    and, per text, whether it was truncated. Of the ``max_length`` tokens a
    long text keeps the first ``head_share`` and the last rest.
    """
    if not texts:
        return np.zeros((0, 0), np.int64), np.zeros((0, 0), np.int64), []
    encoded = tokenizer(list(texts), add_special_tokens=True, truncation=False)["input_ids"]
    budget = max_length - 2
    head = int(budget * head_share)
    rows, truncated = [], []
    for ids in encoded:
        if len(ids) > max_length:
            body = ids[1:-1]
            ids = [ids[0], *body[:head], *body[len(body) - (budget - head):], ids[-1]]
            truncated.append(True)
        else:
            truncated.append(False)
        rows.append(ids)
    # Widths in steps of 8: few distinct shapes, so PyTorch's allocator stays flat over millions of rows.
    width = min(-(-max(len(r) for r in rows) // 8) * 8, max_length)
    input_ids = np.full((len(rows), width), tokenizer.pad_token_id, dtype=np.int64)
    attention_mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, ids in enumerate(rows):
        input_ids[i, :len(ids)] = ids
        attention_mask[i, :len(ids)] = 1
    return input_ids, attention_mask, truncated
