import json

import pytest

from complaint_nlp import labels
from complaint_nlp.baselines import KeywordBaseline, TfidfBaseline
from complaint_nlp.evaluation import (
    compare, evaluate_predictions, format_report, head_report, plot_confusion, read_labeled)


def test_head_report_on_a_hand_worked_example():
    gold = ["anger", "anger", "neutral", "anxiety"]
    pred = ["anger", "neutral", "neutral", "anger"]
    rep = head_report("emotion", gold, pred)
    assert rep.accuracy == pytest.approx(0.5)
    # anger P=1/2 R=1/2 F=.5; neutral P=1/2 R=1 F=2/3; anxiety 0; disappointment 0 (no support)
    assert rep.per_class["neutral"]["f1"] == pytest.approx(2 / 3)
    assert rep.macro_f1 == pytest.approx((0.5 + 2 / 3) / 4)
    assert rep.confusion[0] == [1, 0, 0, 1, 0]


def test_category_is_the_head_and_end_to_end_counts_a_missed_complaint_as_wrong(dev_records):
    rep = head_report("category_end_to_end", ["price", "price", None], ["price", None, "quality"])
    assert rep.support == 2 and rep.classes == list(labels.CATEGORIES)
    assert rep.per_class["price"]["recall"] == pytest.approx(0.5)
    assert rep.confusion[labels.CATEGORIES.index("price")][-1] == 1

    record = labels.validate_record(next(r for r in dev_records if r["category"] == "price"))
    missed = {"is_complaint": False, "category": None, "urgency": "normal", "scope": "individual", "tier": "P4",
              "emotion": record["emotion"], "probabilities": {"category": {"quality": 0.1, "service": 0.2,
                                                                           "price": 0.6, "false_advertising": 0.1}}}
    report = evaluate_predictions([record], [missed])
    assert report.heads["category"].accuracy == 1.0  # the head was right
    assert report.heads["category_end_to_end"].accuracy == 0.0  # but the output says "no complaint"


def test_perfect_predictions_score_one(dev_records):
    records = [labels.validate_record(r) for r in dev_records]
    report = evaluate_predictions(records, records, "gold")
    assert all(v == pytest.approx(1.0) for v in report.macro_f1().values())
    assert report.urgent_recall == 1.0


def test_read_labeled_names_a_broken_line(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"text": "好"}\n{not json}\n', encoding="utf-8")
    with pytest.raises(ValueError, match="x.jsonl:1: field 'is_complaint'"):
        read_labeled(path)
    path.write_text("{not json}\n", encoding="utf-8")
    with pytest.raises(ValueError, match="x.jsonl:1: not valid JSON"):
        read_labeled(path)


def test_baselines_learn_something_real(dev_records):
    records = [labels.validate_record(r) for r in dev_records]
    train, test = records[:450], records[450:]
    texts = [r["text"] for r in test]
    tfidf = evaluate_predictions(test, TfidfBaseline().fit(train).predict(texts), "tfidf")
    keywords = evaluate_predictions(test, KeywordBaseline().predict(texts), "keywords")
    majority = evaluate_predictions(test, [{**r, "is_complaint": True, "category": "service", "emotion": "neutral",
                                            "urgency": "normal", "scope": "individual", "tier": "P4"}
                                           for r in test], "majority")
    for head in ("category", "emotion", "is_complaint"):
        assert tfidf.heads[head].macro_f1 > majority.heads[head].macro_f1 + 0.1
    assert keywords.heads["category"].macro_f1 > majority.heads["category"].macro_f1 + 0.1


def test_compare_report_and_plot(tiny_classifier, dev_records, tmp_path):
    records = [labels.validate_record(r) for r in dev_records[:80]]
    train_file = tmp_path / "train.jsonl"
    train_file.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in dev_records[200:400]),
                          encoding="utf-8")
    reports, note = compare(tiny_classifier, records, train_file=str(train_file))
    assert note is None and [r.system for r in reports] == ["model", "keywords", "tfidf-lr"]
    text = format_report(reports)
    assert "urgent recall" in text and "tfidf-lr" in text and "confusion" in text
    png = plot_confusion(reports[0], tmp_path / "plots" / "confusion.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    reports, note = compare(tiny_classifier, records)
    assert len(reports) == 2 and "--train-file" in note
