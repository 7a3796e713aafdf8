"""Which models serve a (source, target) pair, per tier, and in what order to try them.

Built from the models a worker loaded (their manifest tiers and pairs, or `[workers.tiers]`).
A request names a preferred tier (`modelType`); `routes` answers every way to serve the pair, best
first, in the order of the routing policy (`ipc.routing`, shared with the edge's catalog): neural
direct, neural through a pivot, then the rule-based fallback tier (Apertium) direct, through a
pivot, and one leg of each; `modelType: "rule-based"` puts the fallback tier first. The registry
adds the models: each leg is served by the first model of its tier that serves its pair.

The first route serves the message; the others are where a segment goes when a model fails on
it, so any neural failure ends with Apertium when it serves the pair. `auto` prefers a neural tier
by the message's size (`AutoTiers`): short chat lines go to the fast tier, long or many-sentence
messages to the better ones; it never prefers the fallback tier.
"""

from __future__ import annotations

from dataclasses import dataclass

from ipc.routing import Routing, tier_order
from ipc.tiers import FALLBACK, TIERS


@dataclass(frozen=True, slots=True)
class AutoTiers:
    """`modelType: auto`: the preferred tier by message size (config [routing])."""

    basic_max_chars: int = 200
    basic_max_segments: int = 3
    medium_max_chars: int = 2000
    medium_max_segments: int = 20

    def choose(self, chars: int, segments: int) -> str:
        if chars <= self.basic_max_chars and segments <= self.basic_max_segments:
            return "basic"
        if chars <= self.medium_max_chars and segments <= self.medium_max_segments:
            return "medium"
        return "premium"


@dataclass(frozen=True, slots=True)
class Leg:
    model: str
    source: str
    target: str
    tier: str = ""


@dataclass(frozen=True, slots=True)
class Route:
    tier: str  # the tier of the first leg: what the result reports as modelType
    legs: tuple[Leg, ...]
    pivot: str = ""

    @property
    def rule_based(self) -> bool:
        return any(leg.tier == FALLBACK for leg in self.legs)


class Registry:
    def __init__(self, served: dict[str, dict[str, tuple[tuple[str, str], ...]]]) -> None:
        """`served`: tier -> {model name -> its (source, target) pairs}, models in preference order."""
        self._served = {tier: dict(models) for tier, models in served.items() if models}
        self._routing = Routing(self.pairs())

    @property
    def tiers(self) -> list[str]:
        return [t for t in TIERS if t in self._served]

    def order(self, preferred: str) -> list[str]:
        """Tiers to try for `preferred` (`ipc.routing.tier_order`), among those with a model."""
        return tier_order(preferred, self._served)

    def models(self) -> dict[str, list[str]]:
        """tier -> model names, in preference order."""
        return {tier: list(self._served[tier]) for tier in self.tiers}

    def pairs(self) -> dict[str, list[tuple[str, str]]]:
        """tier -> every pair some model of that tier serves directly."""
        return {tier: sorted({p for pairs in models.values() for p in pairs}) for tier, models in self._served.items()}

    def languages(self) -> list[str]:
        return sorted({lang for pairs in self.pairs().values() for pair in pairs for lang in pair})

    def pivot_pairs(self) -> list[tuple[str, str]]:
        """Pairs whose first route (for a neural modelType) goes through a pivot language."""
        return sorted(self._routing.pivot_routes())

    def _direct(self, tier: str, source: str, target: str) -> str:
        return next(name for name, pairs in self._served[tier].items() if (source, target) in pairs)

    def routes(self, source: str, target: str, preferred: str) -> list[Route]:
        return [
            Route(plan.tier, tuple(Leg(self._direct(t, s, d), s, d, t) for t, s, d in plan.legs), plan.pivot)
            for plan in self._routing.plans(source, target, preferred)
        ]
