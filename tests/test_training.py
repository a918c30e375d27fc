import json
import random

import numpy as np
import pytest
from safetensors.torch import load_file

from complaint_nlp import ComplaintClassifier, labels
from complaint_nlp.training import (
    TrainingArguments, calibrate_urgency, choose_urgency_threshold, class_weights, label_arrays,
    length_grouped_batches, train)


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def small_data(tmp_path_factory, dev_records):
    folder = tmp_path_factory.mktemp("data")
    return write_jsonl(folder / "train.jsonl", dev_records[:96]), write_jsonl(folder / "dev.jsonl", dev_records[96:160])


def args_for(tiny_encoder_dir, small_data, output, **kw):
    train_file, dev_file = small_data
    settings = {"max_length": 48, "epochs": 2, "batch_size": 16, **kw}
    return TrainingArguments(base_model=str(tiny_encoder_dir), train_file=train_file, dev_file=dev_file,
                             output_dir=str(output), **settings)


def test_training_writes_a_complete_model_directory_and_is_deterministic(tiny_encoder_dir, small_data, tmp_path):
    out1, report = train(args_for(tiny_encoder_dir, small_data, tmp_path / "a"))
    out2, _ = train(args_for(tiny_encoder_dir, small_data, tmp_path / "b"))
    names = {p.name for p in out1.iterdir()}
    assert {"model.safetensors", "config.json", "complaint_config.json", "tokenizer.json", "README.md",
            "training_args.json"} <= names
    w1, w2 = load_file(out1 / "model.safetensors"), load_file(out2 / "model.safetensors")
    assert w1.keys() == w2.keys() and all((w1[k] == w2[k]).all() for k in w1)
    assert str(w1["heads.emotion.weight"].dtype) == "torch.float16"
    card = (out1 / "README.md").read_text()
    assert "macro-F1" in card and "urgent recall" in card and "## Limits" in card
    record = json.loads((out1 / "training_args.json").read_text())
    assert record["dev"]["macro_f1"] == pytest.approx(report.macro_f1())
    assert len(record["history"]) == 2
    results = ComplaintClassifier(out1).predict(["刹车失灵差点出事故", "好评"])
    assert all(r.tier in labels.TIERS for r in results)


def test_without_a_dev_file_train_is_split(tiny_encoder_dir, small_data, tmp_path):
    args = args_for(tiny_encoder_dir, small_data, tmp_path / "m", epochs=1)
    args.dev_file, args.dev_split = None, 0.25
    _, report = train(args)
    assert report.heads["emotion"].support == 24


def test_early_stopping_stops_after_patience(tiny_encoder_dir, small_data, tmp_path):
    # With a learning rate of 0 the dev score never improves: one evaluation, one stale, stop.
    out, _ = train(args_for(tiny_encoder_dir, small_data, tmp_path / "m", epochs=6, eval_steps=1, patience=1,
                            learning_rate=0.0, head_learning_rate=0.0))
    history = json.loads((out / "training_args.json").read_text())["history"]
    assert [h["step"] for h in history] == [1, 2]


def test_a_bad_training_row_is_named(tiny_encoder_dir, small_data, tmp_path, dev_records):
    rows = [dict(r) for r in dev_records[:5]]
    rows[3]["emotion"] = "furious"
    bad = write_jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(ValueError, match=r"bad.jsonl:4: field 'emotion'"):
        train(TrainingArguments(base_model=str(tiny_encoder_dir), train_file=bad, output_dir=str(tmp_path / "m")))


def test_label_arrays_mask_category_of_non_complaints(dev_records):
    records = [labels.validate_record(r) for r in dev_records[:50]]
    arrays = label_arrays(records)
    for r, cat, multi in zip(records, arrays["category"], arrays["categories"]):
        if r["is_complaint"]:
            assert labels.CATEGORIES[cat] == r["category"] and multi[cat] == 1.0
            assert multi.sum() == len(r["categories"])
        else:
            assert cat == -100 and multi.sum() == 0


def test_rare_classes_weigh_more():
    weights = class_weights(np.array([0] * 90 + [1] * 10 + [-100] * 5), 2, 0.5)
    assert weights[1] == pytest.approx(3 * weights[0])


def test_length_grouped_batches_cover_every_row_once():
    lengths = [random.Random(i).randint(1, 300) for i in range(1000)]
    batches = length_grouped_batches(lengths, 16, random.Random(0))
    assert sorted(i for b in batches for i in b) == list(range(1000))
    assert max(len(b) for b in batches) == 16


def test_urgency_threshold_reaches_the_recall_target_with_a_margin():
    p = np.array([0.9, 0.8, 0.3, 0.2, 0.05, 0.6, 0.01])
    urgent = np.array([True, True, True, True, True, False, False])
    threshold = choose_urgency_threshold(p, urgent, 0.8)
    # halfway in log-odds between the last kept urgent score (0.2) and the next score below (0.05)
    assert threshold == pytest.approx(1 / (1 + np.exp(-(np.log(0.2 / 0.8) + np.log(0.05 / 0.95)) / 2)))
    assert (p[urgent] >= threshold).mean() >= 0.8 and (p >= threshold).sum() == 5
    assert choose_urgency_threshold(np.array([0.99, 0.98]), np.array([True, True]), 0.9) == 0.5
    # rows scored 0 (judged no complaint) cannot be reached: the target is met as far as it can be
    assert choose_urgency_threshold(np.array([0.3, 0.0, 0.1]), np.array([True, True, False]), 1.0) < 0.3


def test_calibrate_rewrites_threshold_card_and_record_but_not_the_weights(tiny_encoder_dir, small_data, tmp_path,
                                                                          dev_records):
    out, _ = train(args_for(tiny_encoder_dir, small_data, tmp_path / "m", epochs=1))
    weights_before = (out / "model.safetensors").read_bytes()
    data = write_jsonl(tmp_path / "domain.jsonl", dev_records[200:400])
    same, report = calibrate_urgency(out, data, urgent_recall_target=1.0)
    urgent_rows = [r for r in dev_records[200:400] if r["urgency"] == "urgent"]
    reachable = [res.is_complaint for res in ComplaintClassifier(out).predict([r["text"] for r in urgent_rows])]
    # every urgent row judged a complaint is found; the others are never urgent, whatever the threshold
    assert same == out and report.urgent_recall == pytest.approx(np.mean(reachable))
    assert (out / "model.safetensors").read_bytes() == weights_before
    record = json.loads((out / "training_args.json").read_text())
    threshold = ComplaintClassifier(out).config.urgency_threshold
    assert record["calibration"] == {"data_file": data, "rows": 200, "urgent_recall_target": 1.0,
                                     "urgency_threshold": threshold}
    assert f"P(urgent) >= {threshold:.4f}, re-chosen on `{data}` (200 rows)" in (out / "README.md").read_text()
    with pytest.raises(ValueError, match="urgent_recall_target"):
        calibrate_urgency(out, data, urgent_recall_target=0.0)


def test_distillation_from_a_teacher_with_unlabelled_texts(tiny_encoder_dir, tiny_model_dir, small_data, tmp_path,
                                                           dev_records):
    unlabeled = write_jsonl(tmp_path / "pool.jsonl", [{"text": r["text"]} for r in dev_records[300:340]]
                            + [{"text": dev_records[0]["text"]}, {"text": "  "}])
    args = args_for(tiny_encoder_dir, small_data, tmp_path / "student", epochs=1, teacher=str(tiny_model_dir),
                    unlabeled_file=unlabeled, distill_weight=2.0)
    out, report = train(args)
    record = json.loads((out / "training_args.json").read_text())
    assert record["args"]["teacher"] == str(tiny_model_dir)
    # 96 labelled rows + 40 new texts (the duplicate of a training text and the empty one are dropped): 9 batches
    assert record["history"][-1]["step"] == 9
    with pytest.raises(ValueError, match="needs a teacher"):
        train(args_for(tiny_encoder_dir, small_data, tmp_path / "x", unlabeled_file=unlabeled))


def test_continue_from_a_trained_model_with_an_ensemble_teacher(tiny_model_dir, small_data, tmp_path):
    from complaint_nlp.modeling import ComplaintModel

    args = args_for(tiny_model_dir, small_data, tmp_path / "student", epochs=1, learning_rate=0.0,
                    head_learning_rate=0.0, teacher=f"{tiny_model_dir},{tiny_model_dir}", teacher_tfidf_weight=0.5)
    out, _ = train(args)
    before, _ = ComplaintModel.from_pretrained(tiny_model_dir)
    after, _ = ComplaintModel.from_pretrained(out)
    assert after.config.base_model == before.config.base_model == "tiny-test"  # the encoder it began from
    # learning rate 0: the continued model starts from, and keeps, the trained encoder and heads
    for (name, a), b in zip(before.state_dict().items(), after.state_dict().values()):
        assert (a.half().float() == b).all(), name
    with pytest.raises(ValueError, match="num_layers"):
        train(args_for(tiny_model_dir, small_data, tmp_path / "x", num_layers=1))
