"""Two simple systems the model must beat, reported beside it by ``evaluate``.

- ``KeywordBaseline``: cue words drawn from the handling standard and LABELS.md.
- ``TfidfBaseline``: jieba-segmented word TF-IDF + logistic regression per head,
  trained on the same data as the model.

Both normalise text with ``text.normalize`` and follow the schema's rules (a
non-complaint has no category and is normal, individual), so the comparison
is about the classifier alone.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from . import labels
from .text import normalize

# Cue words per label, from LABELS.md and the handling standard's wording.
COMPLAINT_CUES = ("投诉", "差", "坏", "退", "骗", "问题", "不给", "没有", "不能", "无法", "故障", "慢", "贵",
                  "乱", "态度", "垃圾", "失望", "要求", "拒绝", "不满", "难吃", "脏", "虚假", "扣", "收费")
CATEGORY_CUES: dict[str, tuple[str, ...]] = {
    "false_advertising": ("骗", "上当", "误导", "忽悠", "虚假", "说好的", "承诺", "宣传", "与描述不符", "不符", "套路",
                          "货不对板", "假的"),
    "price": ("价格", "收费", "扣费", "扣款", "费用", "利息", "贵", "多收", "退款", "押金", "涨价", "乱收", "手续费",
              "杀熟", "元", "钱"),
    "quality": ("质量", "坏", "故障", "破", "异物", "难吃", "变质", "发霉", "脏", "异响", "漏", "不好用", "假货",
                "没信号", "有问题", "头发", "味道"),
    "service": ("态度", "客服", "服务", "等", "慢", "送", "物流", "快递", "不理", "推诿", "催收", "骚扰", "电话",
                "没人", "不处理", "投诉"),
}
URGENT_CUES = ("受伤", "住院", "中毒", "食物中毒", "腹泻", "拉肚子", "呕吐", "过敏", "发霉", "变质", "过期", "玻璃",
               "铁钉", "钉子", "刀片", "刹车失灵", "刹车", "制动", "方向盘", "安全气囊", "起火", "着火", "冒烟", "自燃",
               "爆炸", "燃气", "煤气", "漏气", "触电", "漏电", "电梯", "扶梯", "危房", "坍塌", "塌", "窨井", "溺水",
               "急救", "抢救", "生命", "自杀", "轻生", "跳楼", "不想活", "威胁", "砍", "打人", "盗刷", "被盗刷",
               "淹", "无家可归", "救命")
GROUP_CUES = ("集体", "业主们", "全体", "大家", "很多人", "多名", "多位", "几十", "上百", "数百", "居民", "村民",
              "家长们", "所有用户", "每台", "批量", "普遍", "整个小区", "整栋", "全小区", "片区", "周边", "我们小区",
              "广大", "众多", "受害者", "一批")
EMOTION_CUES: dict[str, tuple[str, ...]] = {
    "anger": ("骗子", "黑心", "垃圾", "坑", "居然", "无耻", "恶心", "强烈要求", "严惩", "欺人太甚", "什么玩意",
              "乱扣", "恶意", "!!", "?!", "滚"),
    "anxiety": ("急", "怎么办", "求助", "担心", "害怕", "再不处理", "求求", "救救", "尽快", "怕"),
    "disappointment": ("失望", "寒心", "原以为", "本来期待", "再也不", "不会再", "老客户", "可惜", "遗憾", "伤心"),
}


def _has(text: str, cues: Iterable[str]) -> bool:
    return any(c in text for c in cues)


def _result(is_complaint: bool, category: str, urgency: str, scope: str, emotion: str,
            category_probs: dict[str, float] | None = None) -> dict[str, Any]:
    """A result dict shaped like ``ComplaintResult.to_dict()``; the category guess stays in ``probabilities``."""
    probabilities = {"category": category_probs or {c: float(c == category) for c in labels.CATEGORIES}}
    if not is_complaint:
        category, urgency, scope = None, "normal", "individual"
    tier = labels.tier_for(urgency, scope)
    return {"is_complaint": is_complaint, "category": category, "categories": [category] if category else [],
            "urgency": urgency, "scope": scope, "tier": tier.name, "response_target": tier.response_target,
            "emotion": emotion, "probabilities": probabilities}


class KeywordBaseline:
    """Rules of thumb a complaint desk would write by hand; no training."""

    name = "keywords"

    def fit(self, records: Sequence[Mapping[str, Any]]) -> "KeywordBaseline":
        return self

    def predict(self, texts: Sequence[Any]) -> list[dict[str, Any]]:
        out = []
        for value in texts:
            text = normalize(value).text or ""
            hits = {c: sum(text.count(w) for w in cues) for c, cues in CATEGORY_CUES.items()}
            # Most cue hits wins; ties go by LABELS.md's tie order.
            category = max(labels.CATEGORY_TIE_ORDER, key=lambda c: hits[c]) if any(hits.values()) else "service"
            emotion = next((e for e in labels.EMOTION_TIE_ORDER if _has(text, EMOTION_CUES[e])), "neutral")
            if emotion == "anger" or len(re.findall("[!！]", text)) >= 2:
                emotion = "anger"
            out.append(_result(_has(text, COMPLAINT_CUES), category,
                               "urgent" if _has(text, URGENT_CUES) else "normal",
                               "group" if _has(text, GROUP_CUES) else "individual", emotion))
        return out


class TfidfBaseline:
    """jieba words (uni- and bigrams) -> TF-IDF -> one balanced logistic regression per head."""

    name = "tfidf-lr"
    heads = ("is_complaint", "category", "urgency", "scope", "emotion")

    def __init__(self, max_features: int = 200_000, C: float = 4.0):
        self.max_features = max_features
        self.C = C

    @staticmethod
    def _tokens(text: str) -> list[str]:
        import jieba

        jieba.setLogLevel(logging.WARNING)
        return [w for w in jieba.lcut(text) if w.strip()]

    def _texts(self, texts: Sequence[Any]) -> list[str]:
        return [normalize(v).text or "" for v in texts]

    def fit(self, records: Sequence[Mapping[str, Any]]) -> "TfidfBaseline":
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        from .evaluation import gold_labels

        self.vectorizer = TfidfVectorizer(tokenizer=self._tokens, token_pattern=None, lowercase=False,
                                          ngram_range=(1, 2), min_df=2, sublinear_tf=True,
                                          max_features=self.max_features)
        x = self.vectorizer.fit_transform(self._texts([r["text"] for r in records]))
        gold = [gold_labels(r) for r in records]
        self.models = {}
        for head in self.heads:
            rows = [i for i, g in enumerate(gold) if g[head] is not None]
            model = LogisticRegression(C=self.C, class_weight="balanced", max_iter=2000)
            self.models[head] = model.fit(x[rows], [gold[i][head] for i in rows])
        return self

    def predict_proba(self, texts: Sequence[Any]) -> dict[str, np.ndarray]:
        """Probabilities per head, columns in the order of the model's classes (``labels.HEADS``)."""
        x = self.vectorizer.transform(self._texts(texts))
        out = {}
        for head, model in self.models.items():
            columns = [list(model.classes_).index(c) for c in labels.HEADS_BY_NAME[head].classes]
            out[head] = model.predict_proba(x)[:, columns]
        return out

    def predict(self, texts: Sequence[Any]) -> list[dict[str, Any]]:
        probs = self.predict_proba(texts)
        best = {head: [labels.HEADS_BY_NAME[head].classes[j] for j in p.argmax(axis=1)] for head, p in probs.items()}
        return [_result(best["is_complaint"][i] == "true", best["category"][i], best["urgency"][i], best["scope"][i],
                        best["emotion"][i], dict(zip(labels.CATEGORIES, map(float, probs["category"][i]))))
                for i in range(len(texts))]
