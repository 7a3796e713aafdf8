"""docs/grafana-dashboard.json against a real appliance's /metrics: the dashboard is importable
JSON, and every PromQL expression in it names only series the appliance exports, with labels those
series carry (a renamed metric or label would otherwise leave a panel silently empty)."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.appliance.conftest import module_appliance

pytestmark = pytest.mark.timeout(60)

DASHBOARD = Path(__file__).resolve().parents[3] / "docs" / "grafana-dashboard.json"

# Series names each exposition type stands for (Prometheus text format).
SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count"), "summary": ("", "_sum", "_count"), "unknown": ("",)}
# Labels Prometheus adds to every scraped series, and a histogram's bucket bound.
TARGET_LABELS = {"instance", "job"}
FUNCTIONS = {
    "abs", "avg", "by", "clamp_min", "clamp_max", "count", "histogram_quantile", "increase", "irate", "max", "min",
    "on", "ignoring", "rate", "sum", "topk", "bottomk", "without", "and", "or", "unless", "offset", "delta", "deriv",
    "avg_over_time", "max_over_time", "min_over_time", "label_replace", "vector", "scalar", "group_left", "group_right",
}


def exported(app) -> dict[str, set[str]]:
    """Series name -> the label names it carries, from /metrics parsed by prometheus_client."""
    with urllib.request.urlopen(app.endpoints["http"] + "/metrics", timeout=20) as answer:
        text = answer.read().decode()
    series: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for suffix in SUFFIXES[family.type]:
            series.setdefault(family.name + suffix, set())
        for sample in family.samples:
            series.setdefault(sample.name, set()).update(sample.labels)
    return series


def expressions(dashboard: dict) -> list[tuple[str, str]]:
    out = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            out.append((panel["title"], target["expr"]))
    return out


def selectors(expr: str) -> list[tuple[str, set[str]]]:
    """Each metric name in `expr` with the label names its matcher and its aggregations use."""
    found = []
    clean = re.sub(r"\[[^\]]*\]", "", re.sub(r'"[^"]*"', '""', expr))  # no strings, no ranges
    for m in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{([^}]*)\})?", clean):
        name, matcher = m.group(1), m.group(3)
        if name in FUNCTIONS or name.startswith("__"):
            continue
        if re.search(r"\b(by|without|on|ignoring)\s*\([^)]*$", clean[: m.start()]):
            continue  # a label in a grouping clause, checked below
        labels = {part.split("=")[0].strip(" !~") for part in matcher.split(",")} if matcher else set()
        found.append((name, labels - {""}))
    return found


def groupings(expr: str) -> set[str]:
    labels = set()
    for m in re.finditer(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
        labels.update(part.strip() for part in m.group(1).split(",") if part.strip())
    return labels


def test_the_dashboard_is_importable_json():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["title"] and dashboard["uid"] and dashboard["schemaVersion"] >= 36
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "instance"} <= variables
    for panel in dashboard["panels"]:
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"]) and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        if panel["type"] != "row":
            assert panel["targets"] and panel["datasource"]["uid"] == "${datasource}", panel["title"]
    for title, expr in expressions(dashboard):
        assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}"), (title, expr)
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    for topic in ("throughput", "latency", "queue", "cache hit rate", "per worker", "errors by code"):
        assert topic in titles, topic


@pytest.fixture(scope="module")
def compat_appliance(tmp_path_factory):
    """With [compat] on, so the gateway door's families are exported too."""
    extra = {"compat": {"enabled": True, "meeshy_pull_port": 0, "meeshy_pub_port": 0}}
    with module_appliance(tmp_path_factory, "metrics_compat", extra) as app:
        yield app


def test_every_dashboard_expression_names_exported_series(compat_appliance):
    compat_appliance = compat_appliance
    # A translation, a failed one (the fake runtime fails "__error__") and a bad request make the
    # labelled families show their labels.
    def body(text: str) -> bytes:
        return json.dumps({"messageId": "dash", "text": text, "sourceLanguage": "en", "targetLanguage": "fr"}).encode()

    for payload in (body("dashboard"), body("__error__"), b"not json"):
        request = urllib.request.Request(compat_appliance.endpoints["http"] + "/translate", data=payload, method="POST")
        try:
            urllib.request.urlopen(request, timeout=20).read()
        except urllib.error.HTTPError as exc:
            exc.read()
    series = exported(compat_appliance)
    dashboard = json.loads(DASHBOARD.read_text())
    named = set()
    for title, expr in expressions(dashboard):
        found = selectors(expr)
        assert found, (title, expr)
        for name, labels in found:
            assert name.startswith("meeshy_"), (title, name)
            assert name in series, f"panel {title!r}: {name} is not exported"
            unknown = labels - series[name] - TARGET_LABELS
            assert not unknown, f"panel {title!r}: {name} has no label {unknown}"
            named.add(name)
        carried = set().union(*(series[name] for name, _ in found)) | TARGET_LABELS | {"le"}
        assert groupings(expr) <= carried, (title, expr)
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            metric = re.fullmatch(r"label_values\((\w+),\s*\w+\)", variable["definition"]).group(1)
            assert metric in series, f"variable {variable['name']}: {metric} is not exported"
    # The histograms are read through their buckets and counts.
    assert {"meeshy_latency_seconds_bucket", "meeshy_queue_seconds_bucket", "meeshy_processing_seconds_bucket"} <= named
    assert "meeshy_latency_seconds_count" in named
