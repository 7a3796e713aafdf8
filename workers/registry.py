"""Which models serve a (source, target) pair, per tier, and in what order to try them.

Built from the models a worker loaded (their manifest tiers and pairs, or `[workers.tiers]`).
A request names a preferred tier (`modelType`); `routes` answers every way to serve the pair, best
first:

    1. neural, direct: each tier in fallback order that serves the pair, the preferred tier first,
       then the tiers above it (basic → medium → premium), then those below
    2. neural, through a pivot: a model for source → X and one for X → target, for every language
       X that joins two legs, English first, then alphabetical; each leg taken per tier in the
       same order, the first leg's tier varying slowest
    3. the rule-based fallback tier (Apertium), direct
    4. the fallback tier through a pivot (two rule-based legs), as in 2
    5. a neural leg and a rule-based leg through a pivot

`modelType: "rule-based"` puts 3 and 4 first, then 1 and 2. The first route serves the message;
the others are where a segment goes when a model fails on it, so any neural failure ends with
Apertium when it serves the pair. `auto` prefers a neural tier by the message's size
(`AutoTiers`): short chat lines go to the fast tier, long or many-sentence messages to the better
ones; it never prefers the fallback tier.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

from ipc.tiers import FALLBACK, NEURAL_TIERS, TIERS, pivot_order, pivot_routes


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

    @property
    def tiers(self) -> list[str]:
        return [t for t in TIERS if t in self._served]

    def order(self, preferred: str) -> list[str]:
        """Tiers to try for `preferred`: it, the neural tiers above it, then those below it, then
        the fallback tier; for the fallback tier itself, it and then the neural tiers upwards."""
        if preferred == FALLBACK:
            return [t for t in (FALLBACK, *NEURAL_TIERS) if t in self._served]
        at = NEURAL_TIERS.index(preferred)
        return [t for t in (*NEURAL_TIERS[at:], *reversed(NEURAL_TIERS[:at]), FALLBACK) if t in self._served]

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
        return sorted(pivot_routes(self.pairs()))

    def _direct(self, tier: str, source: str, target: str) -> str | None:
        return next((name for name, pairs in self._served[tier].items() if (source, target) in pairs), None)

    def _legs(self, source: str, target: str, order: list[str]) -> list[tuple[str, Leg]]:
        return [
            (tier, Leg(name, source, target, tier)) for tier in order if (name := self._direct(tier, source, target))
        ]

    def routes(self, source: str, target: str, preferred: str) -> list[Route]:
        order = self.order(preferred)
        found = [Route(tier, (leg,)) for tier, leg in self._legs(source, target, order)]
        for pivot in pivot_order(self.languages()):
            if pivot in (source, target):
                continue
            firsts, seconds = self._legs(source, pivot, order), self._legs(pivot, target, order)
            found += [Route(t1, (l1, l2), pivot) for (t1, l1), (_, l2) in product(firsts, seconds)]
        first = preferred == FALLBACK  # the kind of route wanted first: rule-based or neural

        def rank(route: Route) -> int:
            kinds = {leg.tier == FALLBACK for leg in route.legs}
            return 0 if kinds == {first} else 1 if len(kinds) == 1 else 2

        return sorted(found, key=rank)  # stable: direct before pivots, English first, tier order kept
