"""Model tiers: the names a request's `modelType`, the manifest, [workers.tiers] and the
supervisor/worker frames all use, and which language pairs the tiers serve through a pivot.

    NEURAL_TIERS  basic, medium, premium: seq2seq models; a request prefers one of them
    FALLBACK      the rule-based engine (Apertium): tried after every neural route, never chosen
                  by `auto`; `modelType: "rule-based"` asks for it first
    AUTO          not a tier: it asks routing to pick a neural tier by message size

`pivot_routes` is the pivot search both sides share (the workers' routing and the edge's
catalog): a pair no model serves directly is served through any language that joins two legs,
English preferred, and a pair no neural route serves falls to the fallback tier.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

NEURAL_TIERS = ("basic", "medium", "premium")
FALLBACK = "fallback"
TIERS = (*NEURAL_TIERS, FALLBACK)  # every tier a model serves in
AUTO = "auto"
RULE_BASED = "rule-based"  # the modelType that asks for the fallback tier
MODEL_TYPES = (*NEURAL_TIERS, RULE_BASED, AUTO)
PIVOT = "en"  # the pivot language tried first


def tier_of(model_type: str) -> str:
    """The tier a request's modelType prefers (`auto` stays `auto`)."""
    return FALLBACK if model_type == RULE_BASED else model_type


def pivot_order(languages: Iterable[str]) -> list[str]:
    """Candidate pivot languages, English first, then alphabetical."""
    found = set(languages)
    return ([PIVOT] if PIVOT in found else []) + sorted(found - {PIVOT})


def pivot_routes(pairs: Mapping[str, Iterable[tuple[str, str]]]) -> dict[tuple[str, str], str]:
    """Every (source, target) whose first route is two legs, mapped to the pivot language of that route.

    `pairs` is tier -> the pairs served directly. The order routing follows: a neural model
    direct, then two neural legs, then the fallback tier direct, then two fallback legs, then one
    leg of each; among pivots English first. A pair served directly by a tier earlier in that
    order is not listed."""
    neural = {p for tier, ps in pairs.items() if tier != FALLBACK for p in ps}
    rule_based = set(pairs.get(FALLBACK, ()))
    every = neural | rule_based
    languages = {lang for pair in every for lang in pair}
    order = pivot_order(languages)
    found: dict[tuple[str, str], str] = {}
    for source in sorted(languages):
        for target in sorted(languages):
            if source == target or (source, target) in neural:
                continue
            pivot = _join(neural, neural, source, target, order)
            if pivot is None and (source, target) in rule_based:
                continue
            pivot = pivot or _join(rule_based, rule_based, source, target, order) or _join_mixed(
                neural, rule_based, source, target, order
            )
            if pivot is not None:
                found[(source, target)] = pivot
    return found


def _join(first: set, second: set, source: str, target: str, order: list[str]) -> str | None:
    return next((p for p in order if p not in (source, target) and (source, p) in first and (p, target) in second), None)


def _join_mixed(neural: set, rule_based: set, source: str, target: str, order: list[str]) -> str | None:
    every = neural | rule_based
    return next(
        (p for p in order if p not in (source, target) and (source, p) in every and (p, target) in every), None
    )
