"""Build the pool of unlabelled in-domain texts used to distil the bundled model.

Reads the public sets in ../shared/data/raw (see ../shared/data/SOURCES.md;
they are research data and are not copied into this repository), takes the
text field of each, samples per source with a fixed seed, and writes JSONL
``{"text", "source"}``. Texts of the labelled train and dev sets are left
out by the training code itself.

    python scripts/unlabeled_pool.py --output runs/unlabeled.jsonl
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
from pathlib import Path

RAW = Path(os.environ.get("COMPLAINT_NLP_SHARED", Path(__file__).resolve().parents[2] / "shared")) / "data" / "raw"

# source -> (files, how to get the text, how many to keep)
SOURCES = {
    "heimao": (["heimao_fin_complaints_celine/train.csv", "heimao_fin_complaints_celine/dev.csv",
                "heimao_fin_complaints_celine/test.csv"], lambda row: row[0], 5000),
    "gov_hotline": (["gov_messages_tipdm2020/附件3__15625103741.csv", "gov_messages_tipdm2020/附件4__15625103741.csv",
                     "gov_messages_tipdm2020/测试数据_unlabeled__15625103741.csv"], "留言详情", 5000),
    "car_12365auto": (["car_complain_12365auto/car_complain__David-YYJ_DataEngine.csv",
                       "car_complain_12365auto/car_complain__wo580_BI-.csv"], "desc", 1200),
    "car_forum": (["bdci2018_car_subject_sentiment/train_2.csv", "bdci2018_car_subject_sentiment/test_public_2.csv"],
                  "content", 3000),
    "shopping": (["online_shopping_10_cats/online_shopping_10_cats.csv"], "review", 5000),
    "waimai": (["waimai_10k/waimai_10k.csv"], "review", 3000),
    "hotel": (["chnsenticorp_htl/ChnSentiCorp_htl_all.csv"], "review", 2500),
    "restaurant": (["aichallenger2018_fsauor_ktmud/chinese_valid.csv"], "content", 1000),
    "weibo": (["smp2020_ewect/usual_test_labeled.txt", "smp2020_ewect/virus_train.txt"], "content", 3000),
}
ENCODINGS = ("utf-8-sig", "gb18030")


def read_rows(path: Path):
    if path.suffix == ".txt":  # SMP2020: a JSON array of objects
        yield from json.loads(path.read_text(encoding="utf-8"))
        return
    for encoding in ENCODINGS:
        try:
            text = path.read_text(encoding=encoding)
            break
        except UnicodeDecodeError:
            continue
    headerless = "heimao" in str(path)
    rows = csv.reader(text.splitlines()) if headerless else csv.DictReader(text.splitlines())
    yield from rows


def build_pool(seed: int = 13, scale: float = 1.0, quotas: dict[str, int] | None = None) -> list[dict[str, str]]:
    """Distinct texts per source, sampled with ``seed``; ``quotas`` overrides the per-source counts."""
    rng = random.Random(seed)
    out = []
    for source, (files, field, quota) in SOURCES.items():
        quota = (quotas or {}).get(source, quota)
        texts = {}
        for name in files:
            for row in read_rows(RAW / name):
                text = field(row) if callable(field) else row.get(field)
                if isinstance(text, str) and len(text.strip()) >= 4:
                    texts[text.strip()] = None
        chosen = rng.sample(sorted(texts), min(len(texts), int(quota * scale)))
        out += [{"text": t, "source": source} for t in chosen]
        print(f"{source}: {len(chosen)} of {len(texts)} distinct texts")
    rng.shuffle(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default="runs/unlabeled.jsonl")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every source's quota")
    args = parser.parse_args()
    out = build_pool(args.seed, args.scale)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as f:
        for row in out:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{len(out)} texts -> {args.output}")


if __name__ == "__main__":
    main()
