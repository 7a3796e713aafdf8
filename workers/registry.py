"""Which models serve a (source, target) pair, per tier, and in what order to try them.

Built from the models a worker loaded (their manifest tiers and pairs, or `[workers.tiers]`).
A request names a preferred tier (`modelType`); `routes` answers every way to serve the pair, best
first:

    1. each tier in fallback order that serves the pair directly:
         the preferred tier, then the tiers above it (basic → medium → premium), then those below
    2. through the pivot language (English): a model for source → en and one for en → target,
       each leg taken from the first tier in the same order that serves it

The first route serves the message; the others are where a segment goes when a model fails on
it. `auto` prefers a tier by the message's size (`AutoTiers`): short chat lines go to the fast
tier, long or many-sentence messages to the better ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

from ipc.tiers import TIERS

PIVOT = "en"


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


@dataclass(frozen=True, slots=True)
class Route:
    tier: str  # the tier of the first leg: what the result reports as modelType
    legs: tuple[Leg, ...]
    pivot: str = ""


class Registry:
    def __init__(self, served: dict[str, dict[str, tuple[tuple[str, str], ...]]]) -> None:
        """`served`: tier -> {model name -> its (source, target) pairs}, models in preference order."""
        self._served = {tier: dict(models) for tier, models in served.items() if models}

    @property
    def tiers(self) -> list[str]:
        return [t for t in TIERS if t in self._served]

    def order(self, preferred: str) -> list[str]:
        """Tiers to try for `preferred`: it, the tiers above it, then the tiers below it."""
        at = TIERS.index(preferred)
        return [t for t in (*TIERS[at:], *reversed(TIERS[:at])) if t in self._served]

    def models(self) -> dict[str, list[str]]:
        """tier -> model names, in preference order."""
        return {tier: list(self._served[tier]) for tier in self.tiers}

    def pairs(self) -> dict[str, list[tuple[str, str]]]:
        """tier -> every pair some model of that tier serves directly."""
        return {tier: sorted({p for pairs in models.values() for p in pairs}) for tier, models in self._served.items()}

    def languages(self) -> list[str]:
        return sorted({lang for pairs in self.pairs().values() for pair in pairs for lang in pair})

    def pivot_pairs(self) -> list[tuple[str, str]]:
        """Pairs no model serves directly but two legs through the pivot language do."""
        direct = {p for pairs in self.pairs().values() for p in pairs}
        into = {s for s, t in direct if t == PIVOT}
        out_of = {t for s, t in direct if s == PIVOT}
        return sorted((s, t) for s in into for t in out_of if s != t and (s, t) not in direct)

    def _direct(self, tier: str, source: str, target: str) -> str | None:
        return next((name for name, pairs in self._served[tier].items() if (source, target) in pairs), None)

    def _legs(self, source: str, target: str, order: list[str]) -> list[tuple[str, Leg]]:
        return [(tier, Leg(name, source, target)) for tier in order if (name := self._direct(tier, source, target))]

    def routes(self, source: str, target: str, preferred: str) -> list[Route]:
        order = self.order(preferred)
        found = [Route(tier, (leg,)) for tier, leg in self._legs(source, target, order)]
        if PIVOT not in (source, target):
            firsts, seconds = self._legs(source, PIVOT, order), self._legs(PIVOT, target, order)
            found += [Route(t1, (l1, l2), PIVOT) for (t1, l1), (_, l2) in product(firsts, seconds)]
        return found
