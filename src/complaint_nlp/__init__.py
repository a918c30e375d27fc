"""complaint-nlp: tag Chinese customer complaints with category, tier and emotion."""

from .classifier import ComplaintClassifier, ComplaintResult
from .labels import CATEGORIES, EMOTIONS, SCOPES, TIERS, URGENCIES

__all__ = ["ComplaintClassifier", "ComplaintResult", "CATEGORIES", "EMOTIONS", "SCOPES", "TIERS", "URGENCIES"]
__version__ = "0.1.0"
