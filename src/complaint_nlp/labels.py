"""The label schema of LABELS.md (v2): the one place label names exist.

Heads, model configs, API schemas, CLI columns and docs are all generated
from the constants here, so a name is never spelt twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Mapping

SCHEMA_VERSION = "2"

CATEGORIES: tuple[str, ...] = ("quality", "service", "price", "false_advertising")
URGENCIES: tuple[str, ...] = ("urgent", "normal")
SCOPES: tuple[str, ...] = ("group", "individual")
EMOTIONS: tuple[str, ...] = ("anger", "anxiety", "disappointment", "neutral")

# The same names as types, so API schemas list the allowed values (OpenAPI enums).
CategoryName = Literal[CATEGORIES]  # type: ignore[valid-type]
UrgencyName = Literal[URGENCIES]  # type: ignore[valid-type]
ScopeName = Literal[SCOPES]  # type: ignore[valid-type]
EmotionName = Literal[EMOTIONS]  # type: ignore[valid-type]

CHINESE_NAMES: dict[str, str] = {
    "is_complaint": "是否投诉",
    "category": "投诉类别",
    "categories": "投诉类别(多标签)",
    "urgency": "紧急程度",
    "scope": "影响范围",
    "tier": "投诉等级",
    "emotion": "情绪状态",
    "quality": "产品质量",
    "service": "服务",
    "price": "价格",
    "false_advertising": "虚假宣传",
    "urgent": "紧急",
    "normal": "非紧急",
    "group": "群体",
    "individual": "个体",
    "anger": "愤怒",
    "anxiety": "焦虑",
    "disappointment": "失望",
    "neutral": "平静",
}

# When two categories are equally central, LABELS.md breaks the tie in this order.
CATEGORY_TIE_ORDER: tuple[str, ...] = ("false_advertising", "price", "quality", "service")
# When two emotions are equally strong, LABELS.md prefers them in this order.
EMOTION_TIE_ORDER: tuple[str, ...] = ("anger", "anxiety", "disappointment")


@dataclass(frozen=True)
class Tier:
    """One cell of urgency x scope with the response target of the handling standard."""

    name: str
    urgency: str
    scope: str
    response_minutes: int
    response_target: str
    response_target_zh: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "urgency": self.urgency,
            "scope": self.scope,
            "response_minutes": self.response_minutes,
            "response_target": self.response_target,
            "response_target_zh": self.response_target_zh,
        }


TIERS: dict[str, Tier] = {  # in order P1..P4
    t.name: t
    for t in (
        Tier("P1", "urgent", "group", 30,
             "handling starts within 30 minutes; senior management direct channel",
             "30分钟内启动处理；高层直通"),
        Tier("P2", "urgent", "individual", 30,
             "handling starts within 30 minutes",
             "30分钟内启动处理"),
        Tier("P3", "normal", "group", 24 * 60,
             "special team; written reply within 24 hours",
             "专项小组处理；24小时内书面回复"),
        Tier("P4", "normal", "individual", 24 * 60,
             "progress feedback within 24 hours",
             "24小时内反馈进度"),
    )
}


def tier_for(urgency: str, scope: str) -> Tier:
    """The tier is derived from urgency and scope, never labelled on its own."""
    for tier in TIERS.values():
        if tier.urgency == urgency and tier.scope == scope:
            return tier
    raise ValueError(f"no tier for urgency={urgency!r}, scope={scope!r}; "
                     f"expected urgency in {URGENCIES} and scope in {SCOPES}")


@dataclass(frozen=True)
class Head:
    """One output of the model: its name, its classes and how they are scored.

    ``kind`` is ``"single"`` (softmax, one class) or ``"multi"`` (sigmoid per
    class). ``complaints_only`` heads are trained and reported on complaints only.
    """

    name: str
    classes: tuple[str, ...]
    kind: str = "single"
    complaints_only: bool = False


# Order matters: it is the order of the logits in the model's output vector.
HEADS: tuple[Head, ...] = (
    Head("is_complaint", ("false", "true")),
    Head("category", CATEGORIES, complaints_only=True),
    Head("categories", CATEGORIES, kind="multi", complaints_only=True),
    Head("urgency", URGENCIES),
    Head("scope", SCOPES),
    Head("emotion", EMOTIONS),
)
HEADS_BY_NAME: dict[str, Head] = {h.name: h for h in HEADS}

TierName = Literal[tuple(TIERS)]  # type: ignore[valid-type]

# The heads whose labels are reported; ``tier`` is derived from two of them.
REPORTED_HEADS: tuple[str, ...] = ("is_complaint", "category", "urgency", "scope", "tier", "emotion")
TIER_NAMES: tuple[str, ...] = tuple(TIERS)


def head_classes(name: str) -> tuple[str, ...]:
    """Class names of a reported head, ``tier`` included."""
    if name == "tier":
        return TIER_NAMES
    return HEADS_BY_NAME[name].classes


def validate_record(record: Mapping[str, Any], where: str = "record") -> dict[str, Any]:
    """Check one labelled row against the schema and return it with its tier.

    Raises ``ValueError`` that names the row and the field, so a bad line in a
    training file is found at once rather than as a shape error mid-training.
    """
    def fail(field: str, expected: Any) -> None:
        raise ValueError(f"{where}: field {field!r} is {record.get(field)!r}; expected {expected}")

    text = record.get("text")
    if not isinstance(text, str) or not text.strip():
        fail("text", "a non-empty string")
    is_complaint = record.get("is_complaint")
    if not isinstance(is_complaint, bool):
        fail("is_complaint", "true or false")
    category = record.get("category")
    categories = record.get("categories") or []
    if is_complaint:
        if category not in CATEGORIES:
            fail("category", f"one of {CATEGORIES} for a complaint")
        if not isinstance(categories, list) or any(c not in CATEGORIES for c in categories):
            fail("categories", f"a list drawn from {CATEGORIES}")
        if category not in categories:
            categories = [category, *categories]
    else:
        if category is not None or categories:
            fail("category", "null (and categories []) for a non-complaint")
    if record.get("urgency") not in URGENCIES:
        fail("urgency", f"one of {URGENCIES}")
    if record.get("scope") not in SCOPES:
        fail("scope", f"one of {SCOPES}")
    if record.get("emotion") not in EMOTIONS:
        fail("emotion", f"one of {EMOTIONS}")
    return {
        **record,
        "categories": list(categories),
        "tier": tier_for(record["urgency"], record["scope"]).name,
    }


def schema() -> dict[str, Any]:
    """The schema as plain data: served by the API and stored in model configs."""
    def described(names: tuple[str, ...]) -> list[dict[str, str]]:
        return [{"name": n, "zh": CHINESE_NAMES[n]} for n in names]

    return {
        "version": SCHEMA_VERSION,
        "is_complaint": {"zh": CHINESE_NAMES["is_complaint"], "values": [True, False]},
        "category": {"zh": CHINESE_NAMES["category"], "values": described(CATEGORIES),
                     "tie_order": list(CATEGORY_TIE_ORDER)},
        "urgency": {"zh": CHINESE_NAMES["urgency"], "values": described(URGENCIES)},
        "scope": {"zh": CHINESE_NAMES["scope"], "values": described(SCOPES)},
        "emotion": {"zh": CHINESE_NAMES["emotion"], "values": described(EMOTIONS),
                    "tie_order": list(EMOTION_TIE_ORDER)},
        "tier": {"zh": CHINESE_NAMES["tier"], "values": [t.to_dict() for t in TIERS.values()]},
    }
