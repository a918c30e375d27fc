#!/usr/bin/env bash
# Reproduces the bundled model (models/complaint-e5-small-zh) on 2 CPU cores, about 4 hours in all.
# Reads ../shared (not part of this repository); writes runs/ (git-ignored) and models/.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${COMPLAINT_NLP_SHARED:-../shared}
BASE=$SHARED/pretrained/multilingual-e5-small-zh
DATA="--train-file $SHARED/data/labeled/train.jsonl --dev-file $SHARED/data/labeled/dev.jsonl"

# 1. Two fine-tuned models: the first 6 layers of the encoder, and all 12 (the teacher).
complaint-nlp train --base-model "$BASE" $DATA --output-dir runs/l6 --num-layers 6 --epochs 5 --learning-rate 1e-4
complaint-nlp train --base-model "$BASE" $DATA --output-dir runs/l12 --epochs 6 --learning-rate 8e-5

# 2. ~28k unlabelled texts from the public raw sets (train and dev texts are left out by train itself).
python scripts/unlabeled_pool.py --output runs/unlabeled.jsonl

# 3. The 6-layer model, continued with distillation from the ensemble (6-layer + 12-layer + TF-IDF)
#    on the labelled and the unlabelled texts.
complaint-nlp train --base-model runs/l6 $DATA --output-dir models/complaint-e5-small-zh \
    --teacher runs/l6,runs/l12 --teacher-tfidf-weight 0.7 --unlabeled-file runs/unlabeled.jsonl \
    --epochs 3 --learning-rate 5e-5 --head-learning-rate 5e-4 --eval-steps 500 --patience 4
