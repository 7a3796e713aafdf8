"""The routing policy: which route serves a (source, target) pair, and which are tried after it.

The one place the route order is written. Both sides apply it to the same input, tier -> the pairs
its models serve directly: the worker's registry (`workers.registry`) to the models it loaded, the
edge's catalog (`appliance.core.protocol.Catalog`) to the workers' Ready frames. So the edge refuses
exactly the pairs a worker cannot route, and reports the pivot a worker takes.

`Routing.plans(source, target, preferred)` gives every route, best first:

    1. neural, direct: each tier in `tier_order`: the preferred tier, then the neural tiers above
       it (basic → medium → premium), then those below, nearest first
    2. neural, through a pivot: a leg source → X and a leg X → target, for every language X that
       joins two legs, English first, then alphabetical (`pivot_order`); each leg taken per tier
       in the same order, the first leg's tier varying slowest
    3. the rule-based fallback tier (Apertium), direct
    4. the fallback tier through a pivot (two rule-based legs), as in 2
    5. one neural leg and one rule-based leg through a pivot, as in 2

A preferred fallback tier (`modelType: "rule-based"`) puts 3 and 4 first, then 1 and 2. A tier
with no pair is not in the order. A plan names tiers, not models: the registry serves each leg
with the first model of the leg's tier that serves its pair. `pivot_routes` is what the edge
needs: the pairs whose first route for a neural modelType takes a pivot, and that pivot (which
neural tier is preferred changes the tiers of a route, never whether it is direct or its pivot).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import product

from ipc.tiers import FALLBACK, NEURAL_TIERS, TIERS

PIVOT = "en"  # the pivot language tried first

Pair = tuple[str, str]


def pivot_order(languages: Iterable[str]) -> list[str]:
    """Candidate pivot languages, English first, then alphabetical."""
    found = set(languages)
    return ([PIVOT] if PIVOT in found else []) + sorted(found - {PIVOT})


def tier_order(preferred: str, present: Iterable[str]) -> list[str]:
    """Tiers to try for `preferred`, among those `present`: it, the neural tiers above it, then
    those below it, then the fallback tier; for the fallback tier itself, it and then the neural
    tiers upwards."""
    present = set(present)
    if preferred == FALLBACK:
        return [t for t in (FALLBACK, *NEURAL_TIERS) if t in present]
    at = NEURAL_TIERS.index(preferred)
    return [t for t in (*NEURAL_TIERS[at:], *reversed(NEURAL_TIERS[:at]), FALLBACK) if t in present]


@dataclass(frozen=True, slots=True)
class Plan:
    """One route, by tiers: each leg is (tier, source, target); `pivot` is "" for a direct route."""

    legs: tuple[tuple[str, str, str], ...]
    pivot: str = ""

    @property
    def tier(self) -> str:
        """The tier of the first leg: what a result reports as its modelType."""
        return self.legs[0][0]


class Routing:
    """The policy applied to one set of served pairs (tier -> the pairs served directly)."""

    def __init__(self, served: Mapping[str, Iterable[Pair]]) -> None:
        tiers: dict[Pair, set[str]] = {}  # pair -> the tiers that serve it directly
        for tier, pairs in served.items():
            for source, target in pairs:
                tiers.setdefault((source, target), set()).add(tier)
        self._tiers = tiers
        self.present = [t for t in TIERS if any(t in ts for ts in tiers.values())]
        self.languages = sorted({lang for pair in tiers for lang in pair})
        self._pivots = pivot_order(self.languages)

    def _legs(self, source: str, target: str, order: list[str]) -> list[str]:
        here = self._tiers.get((source, target), ())
        return [t for t in order if t in here]

    def plans(self, source: str, target: str, preferred: str) -> Iterator[Plan]:
        """Every route for the pair, best first (the module's order), lazily: `next()` is the
        route that serves the message."""
        order = tier_order(preferred, self.present)
        pivots = [p for p in self._pivots if p not in (source, target)]
        first = preferred == FALLBACK  # the kind of route wanted first: rule-based or neural
        for rule_based in (first, not first):
            kind = [t for t in order if (t == FALLBACK) == rule_based]
            for tier in self._legs(source, target, kind):
                yield Plan(((tier, source, target),))
            for pivot in pivots:
                for t1, t2 in product(self._legs(source, pivot, kind), self._legs(pivot, target, kind)):
                    yield Plan(((t1, source, pivot), (t2, pivot, target)), pivot)
        for pivot in pivots:
            for t1, t2 in product(self._legs(source, pivot, order), self._legs(pivot, target, order)):
                if (t1 == FALLBACK) != (t2 == FALLBACK):
                    yield Plan(((t1, source, pivot), (t2, pivot, target)), pivot)

    def first(self, source: str, target: str, preferred: str) -> Plan | None:
        return next(self.plans(source, target, preferred), None)

    def pivot_routes(self) -> dict[Pair, str]:
        """Every (source, target) whose first route for a neural modelType is two legs, mapped to
        the pivot language of that route."""
        found: dict[Pair, str] = {}
        for source, target in product(self.languages, self.languages):
            if source != target and (plan := self.first(source, target, NEURAL_TIERS[0])) and plan.pivot:
                found[(source, target)] = plan.pivot
        return found


def pivot_routes(pairs: Mapping[str, Iterable[Pair]]) -> dict[Pair, str]:
    """`Routing(pairs).pivot_routes()`: `pairs` is tier -> the pairs served directly."""
    return Routing(pairs).pivot_routes()
