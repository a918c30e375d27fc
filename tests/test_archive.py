"""Archive labelling on real files: encodings, formats, broken rows, kill and resume."""

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from complaint_nlp import ComplaintClassifier, labels
from complaint_nlp.archive import (
    ArchiveError, detect_encoding, label_column_names, label_dataset, label_file, open_archive, parts_dir_for)

TEXTS = ["我的车子刹车失灵了，4S店不给处理，太危险了！", "外卖送到时汤洒了一半，商家还不给退款",
         "酒店房间很脏，床单上有头发", "客服态度恶劣，电话打了十几次没人管", "宣传说是全新的，结果是翻新机，骗人"]
# Taiwan script and phrasing (OpenCC s2twp), as a Big5 archive from Taiwan would hold them.
TRADITIONAL = ["我的車子剎車失靈了，4S店不給處理，太危險了！", "外賣送到時湯灑了一半，商家還不給退款",
               "酒店房間很髒，床單上有頭髮", "客服態度惡劣，電話打了十幾次沒人管", "宣傳說是全新的，結果是翻新機，騙人"]


def write_csv(path, header, rows, encoding="utf-8", delimiter=","):
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_bytes(buffer.getvalue().encode(encoding))
    return path


def read_csv(path):
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_gb18030_csv(tiny_classifier, tmp_path):
    rows = [[str(100 + i), t, "2024-01-0%d" % (i + 1)] for i, t in enumerate(TEXTS * 4)]
    src = write_csv(tmp_path / "gb.csv", ["编号", "投诉内容", "日期"], rows, "gb18030")
    summary = label_file(src, tmp_path / "out.csv", tiny_classifier, text_column="投诉内容", id_column="编号",
                         progress=False)
    assert summary.encoding == "gb18030"
    out = read_csv(tmp_path / "out.csv")
    assert [r["编号"] for r in out] == [r[0] for r in rows]
    assert [r["投诉内容"] for r in out] == [r[1] for r in rows]
    assert list(out[0])[:3] == ["编号", "投诉内容", "日期"] and "row_number" not in out[0]
    assert all(r["tier"] in labels.TIERS and r["error"] == "" for r in out)
    assert summary.rows_read == summary.labelled == 20 and summary.errors == 0
    assert sum(summary.by_tier.values()) == 20


def test_big5_csv_detected_and_forced(tiny_classifier, tmp_path):
    src = write_csv(tmp_path / "big5.csv", ["id", "text"], [[i, t] for i, t in enumerate(TRADITIONAL * 3)], "big5")
    label_file(src, tmp_path / "detected.jsonl", tiny_classifier, progress=False)
    label_file(src, tmp_path / "forced.jsonl", tiny_classifier, encoding="big5", progress=False)
    detected = [json.loads(l) for l in open(tmp_path / "detected.jsonl", encoding="utf-8")]
    forced = [json.loads(l) for l in open(tmp_path / "forced.jsonl", encoding="utf-8")]
    assert [r["text"] for r in detected] == TRADITIONAL * 3
    assert detected == forced
    assert [r["row_number"] for r in detected] == list(range(1, 16))


def test_traditional_rows_get_the_labels_of_their_simplified_twins(tiny_classifier, tmp_path):
    src = write_csv(tmp_path / "mixed.csv", ["text"], [[t] for t in TEXTS + TRADITIONAL])
    label_file(src, tmp_path / "out.csv", tiny_classifier, probs=True, progress=False)
    out = read_csv(tmp_path / "out.csv")
    drop = ("text", "row_number")
    for s, t in zip(out[:5], out[5:]):
        assert {k: v for k, v in s.items() if k not in drop} == {k: v for k, v in t.items() if k not in drop}


def test_wrong_forced_encoding_flags_rows_instead_of_mangling(tiny_classifier, tmp_path):
    src = write_csv(tmp_path / "gb.csv", ["text"], [[t] for t in TEXTS], "gb18030")
    summary = label_file(src, tmp_path / "out.jsonl", tiny_classifier, encoding="utf-8", progress=False)
    out = [json.loads(l) for l in open(tmp_path / "out.jsonl", encoding="utf-8")]
    assert len(out) == 5 and summary.errors == 5
    assert all(r["error"] == "unreadable_bytes" and r["tier"] is None for r in out)
    assert all("\\x" in r["text"] for r in out)  # the raw bytes stay visible


def test_utf16_tsv_and_utf8_bom_csv(tiny_classifier, tmp_path):
    rows = [[i, t] for i, t in enumerate(TEXTS)]
    utf16 = write_csv(tmp_path / "u16.tsv", ["id", "text"], rows, "utf-16", delimiter="\t")
    bom = write_csv(tmp_path / "bom.csv", ["id", "text"], rows, "utf-8-sig")
    assert open_archive(utf16).encoding == "utf-16"
    assert open_archive(bom).columns == ["id", "text"]
    label_file(utf16, tmp_path / "a.csv", tiny_classifier, id_column="id", progress=False)
    label_file(bom, tmp_path / "b.csv", tiny_classifier, id_column="id", progress=False)
    assert read_csv(tmp_path / "a.csv") == read_csv(tmp_path / "b.csv")
    assert [r["text"] for r in read_csv(tmp_path / "a.csv")] == TEXTS


def test_xlsx(tiny_classifier, tmp_path):
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["工单号", "内容", "金额"])
    for i, t in enumerate(TEXTS * 2):
        sheet.append([f"T{i:04d}", t, 12.5 * i])
    sheet.append([None, None, None])  # an empty row between data rows is not a row
    sheet.append(["T9999", None, 1])  # an empty text cell is a row with an error
    book.save(tmp_path / "a.xlsx")
    summary = label_file(tmp_path / "a.xlsx", tmp_path / "out.parquet", tiny_classifier, text_column="内容",
                         id_column="工单号", progress=False)
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.num_rows == 11 and summary.errors == 1
    assert table.column("工单号").to_pylist() == [f"T{i:04d}" for i in range(10)] + ["T9999"]
    assert table.column("error").to_pylist()[-1].startswith("not_a_string")
    assert table.schema.field("is_complaint").type == pa.bool_()
    assert table.schema.field("categories").type == pa.list_(pa.string())


def test_parquet_keeps_column_types(tiny_classifier, tmp_path):
    table = pa.table({"ticket": pa.array(range(10), pa.int64()), "text": TEXTS * 2,
                      "amount": pa.array([1.5] * 10, pa.float32())})
    pq.write_table(table, tmp_path / "in.parquet")
    label_file(tmp_path / "in.parquet", tmp_path / "out.parquet", tiny_classifier, id_column="ticket", probs=True,
               progress=False)
    out = pq.read_table(tmp_path / "out.parquet")
    assert out.schema.field("ticket").type == pa.int64() and out.schema.field("amount").type == pa.float32()
    assert out.column("ticket").to_pylist() == list(range(10))
    probs = [c for c in out.column_names if c.startswith("p_")]
    assert len(probs) == sum(len(labels.head_classes(h)) for h in labels.REPORTED_HEADS)
    row = out.slice(0, 1).to_pylist()[0]
    assert sum(row[f"p_tier_{t}"] for t in labels.TIERS) == pytest.approx(1.0, abs=1e-4)


def test_embedded_newlines_ragged_rows_and_nul_bytes(tiny_classifier, tmp_path):
    raw = ("id,text,source\r\n"
           '1,"第一行\n第二行：快递丢了",web\r\n'
           "2,只有两列\r\n"
           "3,多了,一个,逗号,app\r\n"
           "\r\n"
           '4,"含有\x00空字节的文本",web\r\n'
           '5,"引号""里面""的内容",web\r\n')
    (tmp_path / "messy.csv").write_bytes(raw.encode("utf-8"))
    summary = label_file(tmp_path / "messy.csv", tmp_path / "out.jsonl", tiny_classifier, id_column="id",
                         progress=False)
    out = [json.loads(l) for l in open(tmp_path / "out.jsonl", encoding="utf-8")]
    assert [r["id"] for r in out] == ["1", "2", "3", "4", "5"]
    assert out[0]["text"] == "第一行\n第二行：快递丢了"
    assert out[1]["source"] == "" and "ragged_row" in out[1]["warnings"]
    assert out[2]["text"] == "多了" and out[2]["source"] == "一个,逗号,app" and "ragged_row" in out[2]["warnings"]
    assert out[3]["error"] is None and "invalid_characters_removed" in out[3]["warnings"]
    assert out[4]["text"] == '引号"里面"的内容'
    assert summary.rows_read == 5 and summary.labelled == 5


def test_five_percent_empty_or_garbage_rows_are_kept_in_place(tiny_classifier, tmp_path):
    rows, expected_errors = [], {}
    for i in range(200):
        if i % 20 == 3:
            rows.append([i, ["", "   ", "\t"][i % 3]])
            expected_errors[i] = "empty_text"
        elif i % 20 == 11:
            rows.append([i, "\x00\u200b"])  # only characters that carry no meaning
            expected_errors[i] = "empty_text"
        else:
            rows.append([i, TEXTS[i % 5] + f"（第{i}单）"])
    src = write_csv(tmp_path / "garbage.csv", ["id", "text"], rows)
    summary = label_file(src, tmp_path / "out.csv", tiny_classifier, id_column="id", chunk_size=64, progress=False)
    out = read_csv(tmp_path / "out.csv")
    assert [int(r["id"]) for r in out] == list(range(200))
    for i, r in enumerate(out):
        if i in expected_errors:
            assert r["error"] == expected_errors[i] and r["tier"] == "" and r["category"] == ""
        else:
            assert r["error"] == "" and r["tier"] in labels.TIERS
    assert summary.errors == len(expected_errors) == 20
    assert summary.errors_by_type == {"empty_text": 20} and summary.labelled == 180


def test_broken_jsonl_lines_become_error_rows(tiny_classifier, tmp_path):
    lines = ['{"id": 1, "text": "快递丢了"}', "{broken", '["not", "an", "object"]', "",
             '{"id": 4, "content": "没有text字段"}', '{"id": 5, "text": "退款太慢", "extra": {"k": [1, 2]}}']
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    label_file(tmp_path / "in.jsonl", tmp_path / "out.csv", tiny_classifier, progress=False)
    out = read_csv(tmp_path / "out.csv")
    assert [r["row_number"] for r in out] == ["1", "2", "3", "4", "5"]
    assert [r["error"] for r in out] == ["", "invalid_json", "invalid_json", "missing_text_column", ""]
    assert list(out[0]) == ["row_number", "id", "text", "content", "extra", *label_column_names()]
    assert json.loads(out[4]["extra"]) == {"k": [1, 2]}


def test_identical_texts_are_classified_once(tiny_model_dir, tmp_path):
    classifier = ComplaintClassifier(tiny_model_dir)
    seen = []
    run = classifier._run
    classifier._run = lambda ids, mask: (seen.append(len(ids)), run(ids, mask))[1]
    rows = [[i, TEXTS[i % 3] if i % 2 else "  " + TRADITIONAL[i % 3]] for i in range(60)]
    src = write_csv(tmp_path / "dups.csv", ["id", "text"], rows)
    label_file(src, tmp_path / "out.csv", classifier, chunk_size=1000, progress=False)
    assert sum(seen) == 3
    out = read_csv(tmp_path / "out.csv")
    assert len(out) == 60 and out[1]["tier"] == out[4]["tier"]


def test_clear_errors_for_bad_arguments(tiny_classifier, tmp_path):
    src = write_csv(tmp_path / "a.csv", ["id", "内容"], [[1, "好"]])
    with pytest.raises(ArchiveError, match=r"no text column 'text'; the columns are \['id', '内容'\]"):
        label_file(src, tmp_path / "o.csv", tiny_classifier, progress=False)
    with pytest.raises(ArchiveError, match="no id column 'ticket'"):
        label_file(src, tmp_path / "o.csv", tiny_classifier, text_column="内容", id_column="ticket", progress=False)
    with pytest.raises(ArchiveError, match="unsupported output type '.xlsx'"):
        label_file(src, tmp_path / "o.xlsx", tiny_classifier, progress=False)
    with pytest.raises(ArchiveError, match="unsupported input type '.doc'"):
        label_file(tmp_path / "a.doc", tmp_path / "o.csv", tiny_classifier, progress=False)
    with pytest.raises(ArchiveError, match="unknown encoding"):
        label_file(src, tmp_path / "o.csv", tiny_classifier, encoding="klingon", progress=False)
    clash = write_csv(tmp_path / "clash.csv", ["text", "tier"], [["好", "P1"]])
    with pytest.raises(ArchiveError, match=r"\['tier'\] would be overwritten"):
        label_file(clash, tmp_path / "o.csv", tiny_classifier, progress=False)
    assert not (tmp_path / "o.csv").exists()


def test_datasets_integration(tiny_classifier):
    from datasets import Dataset

    data = Dataset.from_dict({"id": list(range(7)), "text": [*TEXTS, None, ""]})
    labelled = label_dataset(data, tiny_classifier, batch_size=3, probs=True)
    assert labelled.num_rows == 7 and labelled.column_names[:2] == ["id", "text"]
    assert set(label_column_names(True)) <= set(labelled.column_names)
    assert labelled["error"][5].startswith("not_a_string") and labelled["error"][6] == "empty_text"
    direct = tiny_classifier.predict(TEXTS)
    assert labelled["tier"][:5] == [r.tier for r in direct]


def test_detect_encoding():
    text = "编号,内容\n1,外卖送到时汤洒了一半，商家还不给退款\n" * 5
    assert detect_encoding(text.encode("gbk")) == "gb18030"
    assert detect_encoding(text.encode("utf-8")) == "utf-8"
    assert detect_encoding("\ufeff".encode("utf-8") + text.encode("utf-8")) == "utf-8-sig"
    assert detect_encoding(text.encode("utf-16")) == "utf-16"


def _label_command(src, out, model_dir, *extra):
    return [sys.executable, "-m", "complaint_nlp.cli", "label", str(src), "-o", str(out), "--model", str(model_dir),
            "--id-column", "id", "--chunk-size", "100", "--probs", *extra]


def test_killed_run_resumes_to_an_identical_output(tiny_model_dir, dev_records, tmp_path):
    rows = [[i, dev_records[i % len(dev_records)]["text"] + f" #{i}"] for i in range(12_000)]
    src = write_csv(tmp_path / "big.csv", ["id", "text"], rows)
    reference, resumed = tmp_path / "reference.csv", tmp_path / "resumed.csv"
    subprocess.run(_label_command(src, reference, tiny_model_dir, "--quiet"), check=True, capture_output=True)

    proc = subprocess.Popen(_label_command(src, resumed, tiny_model_dir), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    parts = parts_dir_for(resumed)
    deadline = time.monotonic() + 120
    while len(list(parts.glob("*.part"))) < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    finished = len(list(parts.glob("*.part")))
    assert 3 <= finished < 120 and not resumed.exists()

    done = subprocess.run(_label_command(src, resumed, tiny_model_dir, "--resume"), check=True, capture_output=True,
                          text=True)
    summary = json.loads(done.stdout)
    assert summary["rows_read"] == 12_000 and summary["resumed_rows"] == finished * 100
    assert resumed.read_bytes() == reference.read_bytes()
    assert not parts.exists()
    # progress went to stderr as JSON lines, not a bar, as stderr is not a terminal
    assert all(json.loads(line)["event"] == "progress" for line in done.stderr.splitlines() if line.strip())


def test_resume_refuses_a_changed_input(tiny_classifier, tmp_path):
    src = write_csv(tmp_path / "a.csv", ["text"], [[t] for t in TEXTS])
    out = tmp_path / "out.csv"
    parts = parts_dir_for(out)
    parts.mkdir()
    (parts / "manifest.json").write_text(json.dumps({"input": "elsewhere", "options": {}}))
    with pytest.raises(ArchiveError, match="without --resume"):
        label_file(src, out, tiny_classifier, resume=True, progress=False)
    label_file(src, out, tiny_classifier, progress=False)  # a fresh run starts over
    assert len(read_csv(out)) == 5 and not parts.exists()
