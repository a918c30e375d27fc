"""The command line, run as users run it: a real subprocess."""

import json
import subprocess
import sys

import pytest

from complaint_nlp import labels
from complaint_nlp.classifier import default_model_path


def cli(*args, env=None, check=True):
    result = subprocess.run([sys.executable, "-m", "complaint_nlp.cli", *map(str, args)], capture_output=True,
                            text=True, env=env)
    if check and result.returncode != 0:
        raise AssertionError(result.stderr)
    return result


def test_classify_with_the_bundled_model_offline(monkeypatch):
    import os

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("COMPLAINT_NLP_MODEL", None)
    result = json.loads(cli("classify", "刚买的电动车充电时突然冒烟起火，差点烧到孩子！", env=env).stdout)
    assert result["tier"] in labels.TIERS and result["error"] is None
    assert result["is_complaint"] is True and result["urgency"] == "urgent"


def test_classify_prints_every_field(tiny_model_dir):
    result = json.loads(cli("classify", "快递丢了客服不管", "--model", tiny_model_dir).stdout)
    assert set(result) >= {"is_complaint", "category", "categories", "urgency", "scope", "tier", "response_target",
                           "emotion", "scores", "probabilities", "warnings", "error"}


def test_label_and_evaluate(tiny_model_dir, dev_records, tmp_path):
    data = tmp_path / "dev.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in dev_records[:40]), encoding="utf-8")
    texts = tmp_path / "texts.jsonl"  # gold label columns would clash with the label columns written
    texts.write_text("".join(json.dumps({"id": r["id"], "text": r["text"]}, ensure_ascii=False) + "\n"
                             for r in dev_records[:40]), encoding="utf-8")
    summary = json.loads(cli("label", texts, "-o", tmp_path / "out.jsonl", "--model", tiny_model_dir,
                             "--quiet").stdout)
    assert summary["rows_read"] == 40 and summary["labelled"] == 40
    out = [json.loads(l) for l in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in out] == [r["id"] for r in dev_records[:40]]

    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in dev_records[100:300]),
                     encoding="utf-8")
    result = cli("evaluate", tiny_model_dir, data, "--train-file", train, "--plot", tmp_path / "cm.png",
                 "--json", tmp_path / "report.json")
    assert "urgent recall" in result.stdout and "tfidf-lr" in result.stdout and "keywords" in result.stdout
    assert (tmp_path / "cm.png").stat().st_size > 10_000
    report = json.loads((tmp_path / "report.json").read_text())
    assert [r["system"] for r in report] == ["model", "keywords", "tfidf-lr"]


@pytest.mark.parametrize("args, message", [
    (["classify", "好", "--model", "/nonexistent/model"], "/nonexistent/model: not a model directory"),
    (["label", "missing.csv", "-o", "out.csv"], "missing.csv: no such file"),
    (["classify", "好", "--batch-size", "0"], "batch_size must be"),
])
def test_errors_are_one_clear_line(args, message, tmp_path):
    result = cli(*args, check=False)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_train_options_mirror_the_training_arguments():
    result = cli("train", "--help")
    for option in ("--base-model", "--train-file", "--num-layers", "--class-weight-power", "--urgent-recall-target"):
        assert option in result.stdout


def test_bundled_model_is_small_and_self_contained():
    path = default_model_path()
    size = sum(p.stat().st_size for p in path.iterdir())
    assert size < 80 * 2**20
    assert {"model.safetensors", "complaint_config.json", "config.json", "tokenizer.json", "README.md"} <= {
        p.name for p in path.iterdir()}
    assert not list(path.glob("*.bin")) and not list(path.glob("*.pt"))
