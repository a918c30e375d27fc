import numpy as np
import onnx
import pytest

from complaint_nlp import ComplaintClassifier, labels
from complaint_nlp.classifier import length_batches
from complaint_nlp.text import ERROR_EMPTY, ERROR_NOT_A_STRING, WARNING_NO_CHINESE, WARNING_TRUNCATED

BAD_INPUTS = [None, "", "   \n", 42, 3.5, ["list"], "😀😀😀", "Delivery was late and the box was broken.",
              "退" * 100_000, "退款\ud800太慢"]


def test_bad_items_get_errors_and_the_rest_of_the_batch_is_unaffected(tiny_classifier, dev_records):
    good = [r["text"] for r in dev_records[:6]]
    alone = tiny_classifier.predict(good)
    mixed = tiny_classifier.predict([*BAD_INPUTS[:5], *good, *BAD_INPUTS[5:]])
    assert len(mixed) == len(BAD_INPUTS) + len(good)
    errors = [r.error for r in mixed[:5]]
    assert errors[0].startswith(ERROR_NOT_A_STRING) and errors[3].startswith(ERROR_NOT_A_STRING)
    assert errors[4] == "not_a_string: expected str, got float"
    assert errors[1] == errors[2] == ERROR_EMPTY
    assert all(r.tier is None and r.category is None for r in mixed[:5])
    for a, b in zip(alone, mixed[5:11]):
        assert (a.tier, a.category, a.emotion) == (b.tier, b.category, b.emotion)
        assert a.scores == pytest.approx(b.scores, abs=1e-5)
    a_list, emoji, english, huge, surrogate = mixed[11:]
    assert a_list.error == "not_a_string: expected str, got list"
    assert WARNING_NO_CHINESE in emoji.warnings and emoji.tier is not None
    assert WARNING_NO_CHINESE in english.warnings
    assert WARNING_TRUNCATED in huge.warnings and huge.error is None
    assert surrogate.error is None and "invalid_characters_removed" in surrogate.warnings


def test_results_follow_the_schema_rules(tiny_classifier, dev_records):
    for result in tiny_classifier.predict([r["text"] for r in dev_records[:40]]):
        tier = labels.TIERS[result.tier]
        assert (tier.urgency, tier.scope) == (result.urgency, result.scope)
        assert result.response_target == tier.response_target
        assert result.emotion in labels.EMOTIONS
        assert sum(result.probabilities["tier"].values()) == pytest.approx(1.0, abs=1e-5)
        assert 0.0 <= min(result.scores.values()) and max(result.scores.values()) <= 1.0
        if result.is_complaint:
            assert result.category in labels.CATEGORIES and result.categories[0] == result.category
        else:
            assert result.category is None and result.categories == []
            assert result.tier == "P4"
        assert set(result.to_dict()) >= {"is_complaint", "category", "categories", "urgency", "scope", "tier",
                                         "response_target", "emotion", "scores", "probabilities", "warnings", "error"}


def test_order_batch_size_and_duplicates_do_not_change_results(tiny_model_dir, dev_records):
    texts = [r["text"] for r in dev_records[:30]]
    texts = texts + texts[:5]  # duplicates, classified once
    one = ComplaintClassifier(tiny_model_dir, batch_size=1).predict(texts)
    many = ComplaintClassifier(tiny_model_dir, batch_size=16).predict(list(reversed(texts)))[::-1]
    for a, b in zip(one, many):
        assert a.tier == b.tier and a.emotion == b.emotion and a.category == b.category
        assert a.scores == pytest.approx(b.scores, abs=1e-4)
    assert one[0].to_dict() == one[30].to_dict()


def test_traditional_and_simplified_get_the_same_result(tiny_classifier):
    simplified, traditional = tiny_classifier.predict(["我的鼠标坏了,软件也当机", "我的滑鼠壞了，軟體也當機"])
    assert simplified.to_dict() == traditional.to_dict()


def test_a_single_string_is_not_taken_for_a_batch(tiny_classifier):
    with pytest.raises(TypeError, match="classify"):
        tiny_classifier.predict("一条投诉")
    assert tiny_classifier.classify("一条投诉").tier in labels.TIERS


@pytest.mark.parametrize("batch_size", [0, -1, 100_000, "8"])
def test_batch_size_is_bounded(tiny_model_dir, batch_size):
    with pytest.raises(ValueError, match="batch_size"):
        ComplaintClassifier(tiny_model_dir, batch_size=batch_size)


def test_unknown_backend_is_refused(tiny_model_dir):
    with pytest.raises(ValueError, match="backend"):
        ComplaintClassifier(tiny_model_dir, backend="tensorflow")


def test_onnx_backend_matches_torch(tiny_model_dir, dev_records, tmp_path, monkeypatch):
    monkeypatch.setenv("COMPLAINT_NLP_CACHE", str(tmp_path))
    texts = [r["text"] for r in dev_records[:40]]
    torch_results = ComplaintClassifier(tiny_model_dir).predict(texts)
    onnx_results = ComplaintClassifier(tiny_model_dir, backend="onnx").predict(texts)
    [exported] = tmp_path.glob("onnx/*.int8-v2.onnx")
    ops = {n.name: n.op_type for n in onnx.load(str(exported)).graph.node}
    ffn_out = [name for name in ops if name.endswith("/output/dense/MatMul") and "/attention/" not in name]
    assert ffn_out and all(ops[name] == "MatMul" for name in ffn_out)  # kept in fp32
    assert "MatMulInteger" in ops.values()  # the rest quantised
    diffs = [abs(a.probabilities["emotion"][e] - b.probabilities["emotion"][e])
             for a, b in zip(torch_results, onnx_results) for e in labels.EMOTIONS]
    assert np.mean(diffs) < 0.02
    agree = np.mean([a.emotion == b.emotion for a, b in zip(torch_results, onnx_results)])
    assert agree >= 0.9


def test_urgency_threshold_override(tiny_model_dir, dev_records):
    texts = [r["text"] for r in dev_records[:30]]
    always = ComplaintClassifier(tiny_model_dir, urgency_threshold=1e-9).predict(texts)
    never = ComplaintClassifier(tiny_model_dir, urgency_threshold=1 - 1e-9).predict(texts)
    assert all(r.urgency == "urgent" for r in always if r.is_complaint)
    assert all(r.urgency == "normal" for r in never)
    with pytest.raises(ValueError, match="urgency_threshold"):
        ComplaintClassifier(tiny_model_dir, urgency_threshold=1.5)


def test_length_batches_cover_every_text_once_with_little_padding():
    lengths = [5, 300, 12, 6, 7, 140, 40, 41, 9, 500]
    batches = length_batches(lengths, batch_size=3, max_length=128)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert max(len(b) for b in batches) <= 3
    # short texts together, never padded to a long one; everything past max_length counts as max_length
    assert batches == [[0, 3, 4], [8, 2], [6, 7], [5, 1, 9]]
    assert length_batches([60] * 100, 32, 128) == [list(range(i, min(i + 32, 100))) for i in range(0, 100, 32)]
