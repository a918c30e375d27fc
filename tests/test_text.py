from complaint_nlp.text import (
    ERROR_EMPTY, ERROR_NOT_A_STRING, MAX_CHARS, WARNING_CHARACTERS_REMOVED, WARNING_NO_CHINESE, WARNING_TRUNCATED,
    clip, normalize, normalize_text, to_simplified)


def test_traditional_taiwan_and_hong_kong_become_simplified():
    assert to_simplified("我的滑鼠壞了，軟體也當機") == "我的鼠标坏了，软件也当机"
    assert to_simplified("計程車司機態度很差") == "出租车司机态度很差"
    assert to_simplified("呢間餐廳啲嘢食好難食") == "呢间餐厅啲嘢食好难食"


def test_simplified_text_is_unchanged_but_for_full_width_folding():
    assert normalize("外卖送到时汤洒了一半，商家还不给退款。").text == "外卖送到时汤洒了一半,商家还不给退款。"
    assert normalize("衛生差，綫上客服").text == normalize("卫生差,线上客服").text == "卫生差,线上客服"


def test_full_width_html_control_and_whitespace_cleanup():
    result = normalize("<p>ＡＢＣ１２３&nbsp;退款&amp;赔偿</p>\n\n  太慢\x00了\u200b！")
    assert result.text == "ABC123 退款&赔偿 太慢了!"
    assert WARNING_CHARACTERS_REMOVED in result.warnings


def test_comparison_signs_are_not_taken_for_tags():
    assert normalize("价格<100元但实收>200元").text == "价格<100元但实收>200元"


def test_bad_values_give_errors_not_exceptions():
    assert normalize(None).error.startswith(ERROR_NOT_A_STRING)
    assert "int" in normalize(42).error
    assert normalize(b"bytes").error.startswith(ERROR_NOT_A_STRING)
    for empty in ("", "   ", "\n\t", "\x00\u200b"):
        result = normalize(empty)
        assert result.text is None and result.error == ERROR_EMPTY


def test_lone_surrogates_are_removed_with_a_warning():
    result = normalize("退款\ud800太慢")
    assert result.text == "退款太慢"
    assert result.warnings == [WARNING_CHARACTERS_REMOVED]


def test_texts_without_chinese_are_flagged():
    assert WARNING_NO_CHINESE in normalize("😡😡😡").warnings
    assert WARNING_NO_CHINESE in normalize("the delivery was late").warnings
    assert normalize("快递太慢").warnings == []


def test_long_text_keeps_head_and_tail():
    text = "头" * 60_000 + "中" * 30_000 + "尾" * 10_000
    result = normalize(text)
    assert WARNING_TRUNCATED in result.warnings
    assert len(result.text) == MAX_CHARS
    assert result.text.startswith("头" * 1500) and result.text.endswith("尾" * 500)


def test_clip_rule():
    assert clip("abcdefgh", 4) == "abch"
    assert clip("abc", 4) == "abc"


def test_normalize_text_raises_on_empty_training_text():
    import pytest

    with pytest.raises(ValueError, match="empty_text"):
        normalize_text("  ")
