import pytest

from complaint_nlp import labels


def test_tiers_follow_urgency_and_scope():
    assert labels.tier_for("urgent", "group").name == "P1"
    assert labels.tier_for("urgent", "individual").name == "P2"
    assert labels.tier_for("normal", "group").name == "P3"
    assert labels.tier_for("normal", "individual").name == "P4"
    assert labels.TIERS["P1"].response_minutes == 30
    assert labels.TIERS["P4"].response_minutes == 24 * 60
    with pytest.raises(ValueError, match="urgency"):
        labels.tier_for("high", "group")


def test_schema_names_match_labels_md():
    schema = labels.schema()
    assert [v["name"] for v in schema["category"]["values"]] == ["quality", "service", "price", "false_advertising"]
    assert [v["name"] for v in schema["emotion"]["values"]] == ["anger", "anxiety", "disappointment", "neutral"]
    assert [t["name"] for t in schema["tier"]["values"]] == ["P1", "P2", "P3", "P4"]
    assert schema["category"]["values"][3]["zh"] == "虚假宣传"


def test_validate_record_accepts_real_rows_and_derives_tier(dev_records):
    for i, raw in enumerate(dev_records):
        record = labels.validate_record(raw, where=f"dev:{i}")
        assert record["tier"] == labels.tier_for(raw["urgency"], raw["scope"]).name
        if record["is_complaint"]:
            assert record["categories"][0] == record["category"]


@pytest.mark.parametrize("change, field", [
    ({"category": "delivery"}, "category"),
    ({"urgency": "high"}, "urgency"),
    ({"emotion": "joy"}, "emotion"),
    ({"text": ""}, "text"),
    ({"is_complaint": "yes"}, "is_complaint"),
    ({"is_complaint": False}, "category"),
])
def test_validate_record_names_the_bad_field(change, field):
    good = {"text": "太慢了", "is_complaint": True, "category": "service", "categories": ["service"],
            "urgency": "normal", "scope": "individual", "emotion": "neutral"}
    with pytest.raises(ValueError, match=f"train.jsonl:7: field '{field}'"):
        labels.validate_record({**good, **change}, where="train.jsonl:7")
