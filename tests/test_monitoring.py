"""The alerting rules and the dashboard refer only to metrics the services really export."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import yaml
from prometheus_client import REGISTRY

ROOT = Path(__file__).resolve().parent.parent
MONITORING = ROOT / "deploy" / "monitoring"
PROMQL_FUNCTIONS = {"sum", "max", "min", "rate", "increase", "histogram_quantile", "by", "on", "up", "avg", "count"}


def exported_metric_names() -> set[str]:
    for module in ("pulse_shared.metrics", "alerts.dispatcher", "alerts.interactions", "alerts.escalation",
                   "crm_sync.dispatcher",
                   "scoring.publisher"):
        importlib.import_module(module)
    names: set[str] = {"up"}
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    for metric in REGISTRY.collect():
        names.update(metric.name + suffix for suffix in suffixes.get(metric.type, ("",)))
    return names


def metric_names(expr: str) -> set[str]:
    without_labels = re.sub(r"\{[^}]*\}", "", expr)
    without_ranges = re.sub(r"\[[^\]]*\]", "", without_labels)
    tokens = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", without_ranges))
    return {t for t in tokens if t.startswith("pulse_") or t == "up"}


def test_alerting_rules_are_complete_and_use_real_metrics() -> None:
    rules = yaml.safe_load((MONITORING / "prometheus-rules.yaml").read_text())
    known = exported_metric_names()
    alerts = [r for g in rules["groups"] for r in g["rules"]]
    assert {"PulseConsumerLagHigh", "PulseDeadLetters", "PulseHttpErrors", "PulseCrmDailyLimit"} <= {
        a["alert"] for a in alerts}
    for alert in alerts:
        assert alert["labels"]["severity"] in {"page", "ticket"}
        assert alert["annotations"]["summary"]
        used = metric_names(alert["expr"])
        assert used, alert["alert"]
        assert used <= known, f"{alert['alert']} uses unknown metrics {used - known}"


def test_dashboard_panels_use_real_metrics() -> None:
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    known = exported_metric_names()
    assert len(dashboard["panels"]) >= 8
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            used = metric_names(target["expr"])
            assert used, panel["title"]
            assert used <= known, f"{panel['title']} uses unknown metrics {used - known}"
