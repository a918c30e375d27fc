"""Shared fixtures: a tiny randomly initialised model built from the real tokenizer, and real data.

Tests never train the full model. Labelled data comes from ``../shared/data``
(set ``COMPLAINT_NLP_SHARED`` to point elsewhere); the tokenizer is the
bundled model's.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from complaint_nlp.classifier import default_model_path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("COMPLAINT_NLP_SHARED", REPO.parent / "shared"))
LABELED = SHARED / "data" / "labeled"


def read_jsonl(path: Path, limit: int | None = None) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            rows.append(json.loads(line))
            if limit and len(rows) >= limit:
                break
    return rows


@pytest.fixture(scope="session")
def dev_records() -> list[dict]:
    path = LABELED / "dev.jsonl"
    assert path.is_file(), f"{path} is missing: the tests read real labelled data from ../shared"
    return read_jsonl(path)


@pytest.fixture(scope="session")
def tokenizer_dir() -> Path:
    return default_model_path()


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory: pytest.TempPathFactory, tokenizer_dir: Path) -> Path:
    """A 2-layer, 32-wide BERT in Hugging Face format with the real tokenizer: a base model for training tests."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=514, pad_token_id=tokenizer.pad_token_id)
    path = tmp_path_factory.mktemp("tiny-encoder")
    BertModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, tiny_encoder_dir: Path) -> Path:
    """A complete complaint model directory with random weights."""
    import torch

    from complaint_nlp.modeling import ComplaintModel, ComplaintModelConfig

    torch.manual_seed(0)
    model, tokenizer = ComplaintModel.from_base(str(tiny_encoder_dir),
                                                ComplaintModelConfig(base_model="tiny-test", max_length=64))
    return model.save_pretrained(tmp_path_factory.mktemp("models") / "tiny", tokenizer)


@pytest.fixture(scope="session")
def tiny_classifier(tiny_model_dir: Path):
    from complaint_nlp import ComplaintClassifier

    return ComplaintClassifier(tiny_model_dir, batch_size=8)
