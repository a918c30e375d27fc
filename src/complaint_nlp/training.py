"""Fine-tuning: one encoder, all heads at once, early stopping on dev macro-F1.

CPU-first choices: batches are grouped by length (little padding), the
encoder may be cut to its first ``num_layers`` layers, and the dev set is
scored with the same ``ComplaintClassifier.predict`` users call.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from . import labels
from .evaluation import EvaluationReport, evaluate_predictions, gold_labels
from .modeling import ComplaintModel, ComplaintModelConfig, encode
from .text import normalize_text

logger = logging.getLogger(__name__)


@dataclass
class TrainingArguments:
    """Everything a training run depends on; saved next to the model."""

    base_model: str
    train_file: str
    output_dir: str
    dev_file: str | None = None
    # Share of train held out as dev when no dev file is given.
    dev_split: float = 0.1
    num_layers: int | None = None
    max_length: int = 128
    pooling: str = "mean"
    epochs: int = 5
    batch_size: int = 16
    learning_rate: float = 1e-4
    head_learning_rate: float = 1e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    # Rare classes (urgent, group, anxiety...) weigh (n / (k * n_class)) ** power in the loss.
    class_weight_power: float = 0.5
    # Weight of the multi-label ``categories`` loss next to the single-label heads.
    multi_label_weight: float = 0.5
    # Evaluate every this many steps (0: once per epoch); stop after ``patience`` evaluations without gain.
    eval_steps: int = 0
    patience: int = 2
    # Urgent is chosen at the highest threshold that still reaches this recall on dev.
    urgent_recall_target: float = 0.9
    seed: int = 42
    save_dtype: str = "float16"
    max_train_samples: int | None = None
    # Knowledge distillation: trained model directories (comma-separated) whose averaged predictions the
    # new model also learns, on the training texts and on extra unlabelled texts (JSONL with a "text" field);
    # the TF-IDF baseline, fitted on train_file, can join that ensemble with this weight (0: left out).
    teacher: str | None = None
    teacher_tfidf_weight: float = 0.0
    unlabeled_file: str | None = None
    distill_weight: float = 1.0
    temperature: float = 2.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def set_seed(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_split(args: TrainingArguments) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Load and validate train and dev records with ``datasets``; split train when there is no dev file."""
    from datasets import load_dataset

    def load(path: str) -> Any:
        data = load_dataset("json", data_files=path, split="train")
        for i, row in enumerate(data):
            labels.validate_record(row, where=f"{path}:{i + 1}")
        return data

    train = load(args.train_file)
    if args.dev_file:
        dev = load(args.dev_file)
    else:
        parts = train.train_test_split(test_size=args.dev_split, seed=args.seed)
        train, dev = parts["train"], parts["test"]
    if args.max_train_samples:
        train = train.shuffle(seed=args.seed).select(range(min(args.max_train_samples, len(train))))
    return ([labels.validate_record(r) for r in train], [labels.validate_record(r) for r in dev])


def label_arrays(records: Sequence[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Targets per head; -100 marks a head that does not apply (category of a non-complaint)."""
    out: dict[str, np.ndarray] = {}
    for head in labels.HEADS:
        if head.kind == "multi":
            out[head.name] = np.array([[float(c in r["categories"]) for c in head.classes] for r in records],
                                      dtype=np.float32)
            continue
        values = [gold_labels(r)[head.name] for r in records]
        out[head.name] = np.array([-100 if v is None else head.classes.index(v) for v in values], dtype=np.int64)
    return out


def class_weights(targets: np.ndarray, num_classes: int, power: float) -> np.ndarray:
    counts = np.bincount(targets[targets >= 0], minlength=num_classes).astype(np.float64)
    weights = (counts.sum() / (num_classes * np.maximum(counts, 1.0))) ** power
    return (weights / weights.mean()).astype(np.float32)


def length_grouped_batches(lengths: Sequence[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffle, sort by length within windows of 50 batches, shuffle the batches: little padding, still random."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = batch_size * 50
    batches = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start:start + window], key=lambda i: lengths[i])
        batches.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def choose_urgency_threshold(p_urgent: np.ndarray, is_urgent: np.ndarray, target_recall: float) -> float:
    """The highest threshold (at most 0.5) whose urgent recall reaches the target.

    It sits halfway, in log-odds, between the lowest urgent score it must keep
    and the next score below it, so the small numeric changes of fp16 weights,
    int8 quantisation or other batching do not flip that row.
    """
    scores = np.sort(p_urgent[is_urgent])
    # A row scored 0 (judged no complaint, so never urgent) is out of any threshold's reach.
    k = min(math.ceil(target_recall * len(scores)), int((scores > 0).sum()))
    if k == 0:
        return 0.5
    kept = scores[len(scores) - k]
    below = p_urgent[p_urgent < kept]
    if kept >= 0.5:
        return 0.5
    if below.size == 0:
        return float(kept / 2)
    log_odds = [math.log(p / (1 - p)) for p in np.clip([kept, below.max()], 1e-7, 1 - 1e-7)]
    return float(1 / (1 + math.exp(-sum(log_odds) / 2)))


def evaluate_model(model: Any, tokenizer: Any, records: Sequence[dict[str, Any]]) -> tuple[EvaluationReport, np.ndarray]:
    """Dev report through the public predict path, plus P(urgent) per row for threshold choice.

    P(urgent) is 0 where the text is judged no complaint: those are never urgent, whatever the threshold.
    """
    from .classifier import ComplaintClassifier

    model.eval()
    results = ComplaintClassifier.from_model(model, tokenizer, batch_size=64).predict([r["text"] for r in records])
    p_urgent = np.array([r.probabilities["urgency"]["urgent"] if r.is_complaint else 0.0 for r in results])
    return evaluate_predictions(records, results), p_urgent


def calibrate(model: Any, tokenizer: Any, records: Sequence[dict[str, Any]],
              urgent_recall_target: float) -> EvaluationReport:
    """Set the model's urgent threshold on labelled records; returns the report with it set."""
    _, p_urgent = evaluate_model(model, tokenizer, records)
    is_urgent = np.array([r["urgency"] == "urgent" for r in records])
    model.config.urgency_threshold = choose_urgency_threshold(p_urgent, is_urgent, urgent_recall_target)
    report, _ = evaluate_model(model, tokenizer, records)
    logger.info("urgency threshold %.4f: %s urgent recall %.3f", model.config.urgency_threshold,
                {k: round(v, 4) for k, v in report.macro_f1().items()}, report.urgent_recall)
    return report


class MultiHeadLoss:
    """The training objective: one term per head, plus distillation from a teacher's logits when given.

    Single-label heads: class-weighted cross-entropy (rows where the head does
    not apply are ignored). ``categories``: binary cross-entropy on complaints
    only. Distillation: KL divergence to the teacher's softened distribution
    per head (``categories``: cross-entropy to its sigmoid), the category
    heads weighted by the teacher's P(complaint).
    """

    def __init__(self, config: ComplaintModelConfig, targets: dict[str, np.ndarray], args: TrainingArguments,
                 teacher_logits: np.ndarray | None = None):
        import torch
        from torch import nn

        self.config, self.args, self.slices = config, args, config.head_slices()
        self.targets = {k: torch.from_numpy(v) for k, v in targets.items()}
        self.teacher = None if teacher_logits is None else torch.from_numpy(teacher_logits)
        self.gold = {}
        for head in labels.HEADS:
            if head.kind == "multi":
                self.gold[head.name] = nn.BCEWithLogitsLoss(reduction="none")
            else:
                weight = class_weights(targets[head.name], len(head.classes), args.class_weight_power)
                self.gold[head.name] = nn.CrossEntropyLoss(weight=torch.from_numpy(weight), ignore_index=-100)

    def __call__(self, logits: Any, batch: Sequence[int]) -> Any:
        import torch
        import torch.nn.functional as F

        index = torch.tensor(batch)
        labelled = self.targets["category"][index] >= 0  # rows that are gold complaints
        loss = torch.zeros(())
        for head in labels.HEADS:
            z = logits[:, self.slices[head.name]]
            y = self.targets[head.name][index]
            if head.kind == "multi":
                if labelled.any():
                    per_row = self.gold[head.name](z[labelled], y[labelled]).mean(dim=1)
                    loss = loss + self.args.multi_label_weight * per_row.mean()
            elif (y >= 0).any():
                loss = loss + self.gold[head.name](z, y)
        if self.teacher is None:
            return loss
        t_all = self.teacher[index]
        temperature = self.args.temperature
        p_complaint = t_all[:, self.slices["is_complaint"]].softmax(-1)[:, 1]
        distill = torch.zeros(())
        for head in labels.HEADS:
            z, t = logits[:, self.slices[head.name]], t_all[:, self.slices[head.name]]
            if head.kind == "multi":
                per_row = F.binary_cross_entropy_with_logits(z / temperature, torch.sigmoid(t / temperature),
                                                             reduction="none").mean(dim=1)
            else:
                per_row = F.kl_div(F.log_softmax(z / temperature, -1), F.log_softmax(t / temperature, -1),
                                   log_target=True, reduction="none").sum(dim=1)
            weight = p_complaint if head.complaints_only else torch.ones_like(p_complaint)
            distill = distill + (per_row * weight).mean() * temperature ** 2
        return loss + self.args.distill_weight * distill


def read_unlabeled(path: str, exclude: set[str]) -> list[str]:
    """Normalised, deduplicated texts of a JSONL file with a ``text`` field, minus ``exclude``."""
    from .text import normalize

    texts: dict[str, None] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                text = normalize(json.loads(line).get("text")).text
                if text is not None and text not in exclude:
                    texts[text] = None
    return list(texts)


def ensemble_logits(config: ComplaintModelConfig, args: TrainingArguments, texts: Sequence[str],
                    train_records: Sequence[dict[str, Any]]) -> np.ndarray:
    """Targets for distillation: the teachers' averaged probabilities, as logits in the student's layout.

    Single-label heads become log-probabilities (their softmax is the average),
    the multi-label head the logit of the averaged sigmoid.
    """
    from .baselines import TfidfBaseline
    from .classifier import ComplaintClassifier, head_probabilities

    members: list[tuple[float, dict[str, np.ndarray]]] = []
    for path in args.teacher.split(","):
        logger.info("teacher %s: scoring %d texts", path, len(texts))
        teacher = ComplaintClassifier(path.strip(), batch_size=64)
        members.append((1.0, head_probabilities(teacher.config, teacher.logits(texts))))
    if args.teacher_tfidf_weight > 0:
        members.append((args.teacher_tfidf_weight, TfidfBaseline().fit(train_records).predict_proba(texts)))
    columns = []
    for head in config.heads:
        parts = [(w, probs[head.name]) for w, probs in members if head.name in probs]
        p = sum(w * q for w, q in parts) / sum(w for w, _ in parts)
        p = np.clip(p, 1e-6, 1 - 1e-6)
        columns.append(np.log(p / (1 - p)) if head.kind == "multi" else np.log(p))
    return np.concatenate(columns, axis=1).astype(np.float32)


def train(args: TrainingArguments) -> tuple[Path, EvaluationReport]:
    """Fine-tune, keep the best dev checkpoint, choose thresholds, save the model directory."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    set_seed(args.seed)
    train_records, dev_records = load_split(args)
    logger.info("train %d rows, dev %d rows", len(train_records), len(dev_records))
    config = ComplaintModelConfig(base_model=args.base_model, max_length=args.max_length, pooling=args.pooling)
    model, tokenizer = ComplaintModel.from_base(args.base_model, config, num_layers=args.num_layers)

    texts = [normalize_text(r["text"]) for r in train_records]
    targets = label_arrays(train_records)
    teacher_logits = None
    if args.unlabeled_file:
        exclude = set(texts) | {normalize_text(r["text"]) for r in dev_records}
        extra = read_unlabeled(args.unlabeled_file, exclude)
        logger.info("unlabelled: %d texts for distillation only", len(extra))
        texts += extra
        for head in labels.HEADS:
            filler = np.zeros if head.kind == "multi" else lambda shape, dtype: np.full(shape, -100, dtype)
            shape = (len(extra), *targets[head.name].shape[1:])
            targets[head.name] = np.concatenate([targets[head.name], filler(shape, dtype=targets[head.name].dtype)])
    if args.teacher:
        teacher_logits = ensemble_logits(config, args, texts, train_records)
    elif args.unlabeled_file:
        raise ValueError("unlabeled_file needs a teacher to label it")
    objective = MultiHeadLoss(config, targets, args, teacher_logits)

    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")
    encoder_params = list(model.encoder.named_parameters())
    groups = [
        {"params": [p for n, p in encoder_params if not n.endswith(no_decay)], "weight_decay": args.weight_decay,
         "lr": args.learning_rate},
        {"params": [p for n, p in encoder_params if n.endswith(no_decay)], "weight_decay": 0.0,
         "lr": args.learning_rate},
        {"params": list(model.heads.parameters()), "weight_decay": 0.0, "lr": args.head_learning_rate},
    ]
    optimizer = torch.optim.AdamW(groups)
    rng = random.Random(args.seed)
    lengths = [len(t) for t in texts]
    steps_per_epoch = math.ceil(len(texts) / args.batch_size)
    total_steps = steps_per_epoch * args.epochs
    scheduler = get_linear_schedule_with_warmup(optimizer, int(args.warmup_ratio * total_steps), total_steps)
    eval_every = args.eval_steps or steps_per_epoch

    best_score, best_state, stale, step = -1.0, None, 0, 0
    history = []
    started = time.time()
    for epoch in range(args.epochs):
        for batch in length_grouped_batches(lengths, args.batch_size, rng):
            model.train()
            input_ids, attention_mask, _ = encode(tokenizer, [texts[i] for i in batch], args.max_length,
                                                  config.head_share)
            loss = objective(model(torch.from_numpy(input_ids), torch.from_numpy(attention_mask)), batch)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            step += 1
            if step % 50 == 0:
                logger.info("epoch %d step %d/%d loss %.4f (%.1f texts/s)", epoch + 1, step, total_steps,
                            loss.item(), step * args.batch_size / (time.time() - started))
            if step % eval_every == 0 or step == total_steps:
                report, _ = evaluate_model(model, tokenizer, dev_records)
                score = report.score()
                history.append({"step": step, "epoch": epoch + 1, "score": score, "macro_f1": report.macro_f1(),
                                "urgent_recall": report.urgent_recall})
                logger.info("eval step %d: score %.4f %s urgent recall %.3f", step, score,
                            {k: round(v, 4) for k, v in report.macro_f1().items()}, report.urgent_recall)
                if score > best_score:
                    best_score, stale = score, 0
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                else:
                    stale += 1
                if stale >= args.patience:
                    break
        if stale >= args.patience:
            logger.info("early stop: no gain in %d evaluations", args.patience)
            break

    model.load_state_dict(best_state)
    model.to(getattr(torch, args.save_dtype)).float()  # threshold and figures for the weights as stored
    final_report = calibrate(model, tokenizer, dev_records, args.urgent_recall_target)
    record = {"args": args.to_dict(), "n_train": len(train_records), "n_dev": len(dev_records),
              "history": history, "dev": final_report.to_dict()}
    output = _save(model, tokenizer, args.output_dir, args, record, final_report)
    return output, final_report


def _save(model: Any, tokenizer: Any, output_dir: str | Path, args: TrainingArguments, record: dict[str, Any],
          report: EvaluationReport) -> Path:
    """The model directory with its card and training record."""
    import torch

    from .model_card import model_card

    card = model_card(args, model.config.base_model, model.config.urgency_threshold, report, record["history"],
                      n_train=record["n_train"], n_dev=record["n_dev"], calibration=record.get("calibration"))
    return model.save_pretrained(output_dir, tokenizer, dtype=getattr(torch, args.save_dtype), extra_files={
        "README.md": card, "training_args.json": json.dumps(record, ensure_ascii=False, indent=2)})


def calibrate_urgency(model_dir: str | Path, data_file: str | Path,
                      urgent_recall_target: float = 0.9) -> tuple[Path, EvaluationReport]:
    """Re-choose a saved model's urgent threshold on labelled data and rewrite its directory.

    For a new domain or another risk appetite: the threshold becomes the highest
    that keeps ``urgent_recall_target`` of the urgent rows in ``data_file``.
    The weights are unchanged; config, card and training record are rewritten atomically.
    """
    from .evaluation import read_labeled
    from .modeling import ModelDirectoryError

    if not 0.0 < urgent_recall_target <= 1.0:
        raise ValueError(f"urgent_recall_target must be in (0, 1], got {urgent_recall_target}")
    model_dir = Path(model_dir)
    model, tokenizer = ComplaintModel.from_pretrained(model_dir)
    record_path = model_dir / "training_args.json"
    if not record_path.is_file():
        raise ModelDirectoryError(f"{record_path}: missing (calibration rewrites the training record)")
    record = json.loads(record_path.read_text(encoding="utf-8"))
    records = read_labeled(data_file)
    report = calibrate(model, tokenizer, records, urgent_recall_target)
    record["dev"] = report.to_dict()
    record["calibration"] = {"data_file": str(data_file), "rows": len(records),
                             "urgent_recall_target": urgent_recall_target,
                             "urgency_threshold": model.config.urgency_threshold}
    return _save(model, tokenizer, model_dir, TrainingArguments(**record["args"]), record, report), report
