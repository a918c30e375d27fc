import json
import shutil

import numpy as np
import pytest
import torch

from complaint_nlp.modeling import (
    CONFIG_NAME, WEIGHTS_NAME, ComplaintModel, ModelDirectoryError, encode, load_config)


def test_save_and_load_give_the_same_logits(tiny_model_dir, tmp_path):
    model, tokenizer = ComplaintModel.from_pretrained(tiny_model_dir)
    ids, mask, _ = encode(tokenizer, ["刹车失灵了", "快递三天没到,客服不理人"], 64)
    before = model(torch.from_numpy(ids), torch.from_numpy(mask))
    saved = model.save_pretrained(tmp_path / "copy", tokenizer)
    again, _ = ComplaintModel.from_pretrained(saved)
    after = again(torch.from_numpy(ids), torch.from_numpy(mask))
    assert torch.allclose(before, after)
    assert before.shape == (2, model.config.num_logits)


def test_saving_over_an_existing_directory_replaces_it(tiny_model_dir, tmp_path):
    model, tokenizer = ComplaintModel.from_pretrained(tiny_model_dir)
    target = tmp_path / "model"
    model.save_pretrained(target, tokenizer, extra_files={"README.md": "first"})
    model.save_pretrained(target, tokenizer, extra_files={"README.md": "second"})
    assert (target / "README.md").read_text() == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


@pytest.mark.parametrize("name", [CONFIG_NAME, WEIGHTS_NAME, "config.json", "tokenizer.json"])
def test_a_missing_file_is_named(tiny_model_dir, tmp_path, name):
    broken = shutil.copytree(tiny_model_dir, tmp_path / "broken")
    (broken / name).unlink()
    with pytest.raises(ModelDirectoryError, match=name):
        ComplaintModel.from_pretrained(broken)


def test_mismatched_weights_are_named(tiny_model_dir, tmp_path):
    broken = shutil.copytree(tiny_model_dir, tmp_path / "broken")
    encoder_config = json.loads((broken / "config.json").read_text())
    encoder_config["num_hidden_layers"] = 3
    (broken / "config.json").write_text(json.dumps(encoder_config))
    with pytest.raises(ModelDirectoryError, match=f"{WEIGHTS_NAME}.*missing.*encoder.layers?.2"):
        ComplaintModel.from_pretrained(broken)


def test_a_corrupt_weights_file_is_named(tiny_model_dir, tmp_path):
    broken = shutil.copytree(tiny_model_dir, tmp_path / "broken")
    (broken / WEIGHTS_NAME).write_bytes(b"\x80\x04not safetensors")
    with pytest.raises(ModelDirectoryError, match=WEIGHTS_NAME):
        ComplaintModel.from_pretrained(broken)


def test_a_config_for_another_label_schema_is_refused(tiny_model_dir, tmp_path):
    broken = shutil.copytree(tiny_model_dir, tmp_path / "broken")
    config = json.loads((broken / CONFIG_NAME).read_text())
    config["heads"][1]["classes"] = ["quality", "service", "price"]
    (broken / CONFIG_NAME).write_text(json.dumps(config))
    with pytest.raises(ModelDirectoryError, match="label schema"):
        load_config(broken)


def test_a_pickle_next_to_the_weights_is_never_loaded(tiny_model_dir, tmp_path):
    model_dir = shutil.copytree(tiny_model_dir, tmp_path / "with-pickle")

    class Boom:
        def __reduce__(self):
            return (exec, ("raise SystemExit('pickle was loaded')",))

    torch.save({"x": Boom()}, model_dir / "pytorch_model.bin")
    ComplaintModel.from_pretrained(model_dir)


def test_encode_keeps_head_and_tail_of_long_texts(tiny_model_dir):
    _, tokenizer = ComplaintModel.from_pretrained(tiny_model_dir)
    text = "开" + "中" * 500 + "尾"
    ids, mask, truncated = encode(tokenizer, [text, "短"], 32)
    assert ids.shape == (2, 32) and truncated == [True, False]
    full = tokenizer(text)["input_ids"]
    assert ids[0, 0] == full[0] and ids[0, -1] == full[-1]
    assert list(ids[0, 1:24]) == full[1:24]  # 3/4 of the 30-token body from the head
    assert list(ids[0, 24:31]) == full[-8:-1]  # the rest from the tail
    assert mask[1].sum() == len(tokenizer("短")["input_ids"])
    assert (ids[1, mask[1] == 0] == tokenizer.pad_token_id).all()
    assert encode(tokenizer, [], 32)[0].shape == (0, 0)


def test_encode_pads_to_a_multiple_of_eight_within_max_length(tiny_model_dir):
    _, tokenizer = ComplaintModel.from_pretrained(tiny_model_dir)
    ids, mask, _ = encode(tokenizer, ["短", "快递丢了"], 64)
    assert ids.shape[1] == 8 and mask.sum(1).max() <= 8
    ids, _, _ = encode(tokenizer, ["字" * 40], 42)
    assert ids.shape[1] == 42  # never wider than max_length
