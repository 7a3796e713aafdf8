"""Model tiers: the names a request's `modelType`, the manifest, [workers.tiers] and the
supervisor/worker frames all use.

    NEURAL_TIERS  basic, medium, premium: seq2seq models; a request prefers one of them
    FALLBACK      the rule-based engine (Apertium): tried after every neural route, never chosen
                  by `auto`; `modelType: "rule-based"` asks for it first
    AUTO          not a tier: it asks routing to pick a neural tier by message size

Which tier serves a pair, and through which pivot, is `ipc.routing` (the routing policy).
"""

from __future__ import annotations

NEURAL_TIERS = ("basic", "medium", "premium")
FALLBACK = "fallback"
TIERS = (*NEURAL_TIERS, FALLBACK)  # every tier a model serves in
AUTO = "auto"
RULE_BASED = "rule-based"  # the modelType that asks for the fallback tier
MODEL_TYPES = (*NEURAL_TIERS, RULE_BASED, AUTO)


def tier_of(model_type: str) -> str:
    """The tier a request's modelType prefers (`auto` stays `auto`)."""
    return FALLBACK if model_type == RULE_BASED else model_type

