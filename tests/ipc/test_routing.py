"""The routing policy (ipc.routing): the worker's registry and the edge's catalog agree on every
pair, over the built-in models' manifest and synthetic ones, and the order matches a reference
model (the sort the registry made before the policy had one module)."""

from __future__ import annotations

from itertools import product

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.core.protocol import Catalog
from ipc.routing import PIVOT, Routing, pivot_order, pivot_routes, tier_order
from ipc.tiers import FALLBACK, NEURAL_TIERS, TIERS
from workers.manifest import load_specs
from workers.registry import Registry

LANGUAGES = ("en", "fr", "es", "de", "it")
PAIRS = [(s, t) for s, t in product(LANGUAGES, LANGUAGES) if s != t]

# tier -> {model name -> its pairs}, as a worker's registry takes them
served_maps = st.dictionaries(
    st.sampled_from(TIERS),
    st.lists(st.lists(st.sampled_from(PAIRS), min_size=1, max_size=4, unique=True), min_size=1, max_size=3),
    min_size=1,
).map(lambda tiers: {
    tier: {f"{tier}-{i}": tuple(pairs) for i, pairs in enumerate(models)} for tier, models in tiers.items()
})


def reference_routes(served, source, target, preferred):
    """The registry's routes before ipc.routing: every direct and two-leg route, then a stable
    sort by kind (the wanted kind, the other kind, mixed). (model names, pivot) per route."""
    order = tier_order(preferred, served)

    def legs(s, t):
        return [(tier, name) for tier in order
                if (name := next((n for n, ps in served[tier].items() if (s, t) in ps), None))]

    languages = {lang for models in served.values() for ps in models.values() for p in ps for lang in p}
    found = [(((tier, name),), "") for tier, name in legs(source, target)]
    for pivot in pivot_order(languages):
        if pivot not in (source, target):
            found += [((l1, l2), pivot) for l1, l2 in product(legs(source, pivot), legs(pivot, target))]
    first = preferred == FALLBACK

    def rank(route):
        kinds = {tier == FALLBACK for tier, _ in route[0]}
        return 0 if kinds == {first} else 1 if len(kinds) == 1 else 2

    return [(tuple(name for _, name in legs_), pivot) for legs_, pivot in sorted(found, key=rank)]


def described(registry, source, target, preferred):
    return [(tuple(leg.model for leg in r.legs), r.pivot) for r in registry.routes(source, target, preferred)]


def assert_agree(registry: Registry) -> None:
    """The edge's catalog, built from what the worker reports in Ready, against the worker's routes."""
    catalog = Catalog({tier: [list(p) for p in pairs] for tier, pairs in registry.pairs().items()})
    languages = set(registry.languages()) | {"xx"}  # and a language nothing serves
    for source, target in product(sorted(languages), sorted(languages)):
        if source == target:
            continue
        for preferred in (*NEURAL_TIERS, FALLBACK):
            routes = registry.routes(source, target, preferred)
            assert bool(routes) == ((source, target) in catalog.served), (source, target, preferred)
            if preferred != FALLBACK:
                via = routes[0].pivot if routes else ""
                assert catalog.via.get((source, target), "") == via, (source, target, preferred)
    assert sorted(catalog.pivot_pairs) == registry.pivot_pairs()


@pytest.mark.timeout(120)
@given(served_maps)
def test_the_registry_routes_in_the_reference_order(served):
    registry = Registry(served)
    for (source, target), preferred in product(PAIRS, (*NEURAL_TIERS, FALLBACK)):
        assert described(registry, source, target, preferred) == reference_routes(served, source, target, preferred)


@pytest.mark.timeout(120)
@given(served_maps)
def test_the_catalog_and_the_registry_agree_on_every_pair(served):
    assert_agree(Registry(served))


@pytest.mark.timeout(60)
def test_the_catalog_and_the_registry_agree_on_the_built_in_models(builtin_models_dir):
    specs = load_specs(builtin_models_dir)
    # the tiers a worker loads by default (workers.runtime.Runtime.load), plus the Apertium modes
    # the appliance registers where Apertium is installed, so the fallback tier takes part
    chosen = {tier: {n: s.pairs for n, s in sorted(specs.items()) if s.tier == tier and f"{n}-int8" not in specs}
              for tier in TIERS}
    chosen[FALLBACK] |= {"apertium-eng-spa": (("en", "es"),), "apertium-spa-eng": (("es", "en"),),
                         "apertium-fr-es": (("fr", "es"),), "apertium-es-fr": (("es", "fr"),)}
    assert_agree(Registry(chosen))
    assert_agree(Registry({tier: models for tier, models in chosen.items() if tier != FALLBACK}))


@pytest.mark.timeout(10)
def test_a_pivot_route_takes_english_first_and_names_its_tiers():
    routing = Routing({"basic": [("fr", "en"), ("en", "de"), ("fr", "es"), ("es", "de")], FALLBACK: [("fr", "de")]})
    plan = routing.first("fr", "de", "basic")
    assert (plan.pivot, plan.tier, plan.legs) == (PIVOT, "basic", (("basic", "fr", "en"), ("basic", "en", "de")))
    assert routing.first("fr", "de", FALLBACK).legs == ((FALLBACK, "fr", "de"),)
    assert pivot_routes({"basic": [("fr", "en")]}) == {}
    assert Routing({"basic": [("fr", "en")]}).first("en", "fr", "basic") is None
