"""Deploy artefacts, validated offline: every Kustomize overlay renders, passes kubernetes-validate --strict
and checkov with zero failures; the compose file validates against the compose-spec schema; Dockerfiles
pass checkov (non-root user, health check)."""

from __future__ import annotations

import base64
import importlib.resources
import json
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from pulse_shared.apache_kafka import KAFKA_VERSION

ROOT = Path(__file__).resolve().parent.parent
OVERLAYS = ("dev", "prod")
SERVICES = ("ingest", "scoring", "alerts", "crm-sync")
CHECKOV = ["uv", "tool", "run", "--from", "checkov==3.2.*", "checkov"]
KUBERNETES_VALIDATE = ["uv", "tool", "run", "--from", "kubernetes-validate", "kubernetes-validate"]


def render(overlay: str) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl (with Kustomize) is needed to render the manifests"
    out = subprocess.run([kubectl, "kustomize", str(ROOT / "deploy" / "overlays" / overlay)], capture_output=True,
                         text=True, check=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_the_whole_platform(overlay: str) -> None:
    docs = render(overlay)
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    for service in SERVICES:
        assert ("Deployment", service) in kinds
        assert ("Service", service) in kinds
        assert ("PodDisruptionBudget", service) in kinds
    assert ("HorizontalPodAutoscaler", "ingest") in kinds
    assert {("ScaledObject", s) for s in ("scoring", "alerts", "crm-sync")} <= kinds
    assert ("Job", "pulse-migrate") in kinds
    assert ("Ingress", "pulse-public") in kinds
    assert not [d for d in docs if d["kind"] == "Secret"], "no secret values in git"
    for d in docs:
        if d["kind"] != "Deployment":
            continue
        pod = d["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["resources"]["requests"]
        assert container["resources"]["limits"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_scaled_objects_follow_consumer_lag_and_stop_at_the_partition_count(overlay: str) -> None:
    docs = render(overlay)
    deployments = {d["metadata"]["name"] for d in docs if d["kind"] == "Deployment"}
    for so in (d for d in docs if d["kind"] == "ScaledObject"):
        assert so["apiVersion"] == "keda.sh/v1alpha1"
        assert so["spec"]["scaleTargetRef"]["name"] in deployments
        [trigger] = so["spec"]["triggers"]
        assert trigger["type"] == "kafka"
        assert trigger["metadata"]["consumerGroup"] == f"pulse-{so['metadata']['name']}"
        assert int(trigger["metadata"]["lagThreshold"]) > 0
        assert so["spec"]["maxReplicaCount"] <= 6  # partitions per topic


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_manifests_pass_kubernetes_validate_strict(overlay: str, tmp_path: Path) -> None:
    # ScaledObject is a KEDA custom resource: its schema is not Kubernetes'; checked structurally above.
    core = [d for d in render(overlay) if d["kind"] != "ScaledObject"]
    rendered = tmp_path / f"{overlay}.yaml"
    rendered.write_text(yaml.safe_dump_all(core))
    done = subprocess.run([*KUBERNETES_VALIDATE, "--strict", str(rendered)], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_manifests_pass_checkov(overlay: str, tmp_path: Path) -> None:
    rendered = tmp_path / f"{overlay}.yaml"
    rendered.write_text(yaml.safe_dump_all(render(overlay)))
    done = subprocess.run([*CHECKOV, "-f", str(rendered), "--framework", "kubernetes", "--quiet", "--compact",
                           "--config-file", str(ROOT / "deploy" / ".checkov.yaml"), "--output", "json"],
                          capture_output=True, text=True, check=False)
    report = json.loads(done.stdout)
    summary = report["summary"] if isinstance(report, dict) else report[0]["summary"]
    assert summary["failed"] == 0, done.stdout[-4000:]
    assert summary["passed"] > 100


def test_dockerfiles_pass_checkov() -> None:
    files = [str(ROOT / "services" / s / "Dockerfile") for s in SERVICES]
    files.append(str(ROOT / "deploy" / "docker" / "migrate.Dockerfile"))
    args = [a for f in files for a in ("-f", f)]
    done = subprocess.run([*CHECKOV, *args, "--framework", "dockerfile", "--quiet", "--compact", "--output", "json"],
                          capture_output=True, text=True, check=False)
    report = json.loads(done.stdout)
    summary = report["summary"] if isinstance(report, dict) else report[0]["summary"]
    assert summary["failed"] == 0, done.stdout[-4000:]


def test_the_images_get_the_shared_library_without_its_test_fakes(tmp_path: Path) -> None:
    """The images install every package --no-editable, so from the wheels built here: the shared library's
    wheel holds the product modules and none of pulse_shared.testing (fake Slack, HubSpot, fixtures)."""
    for dockerfile in [ROOT / "services" / s / "Dockerfile" for s in SERVICES] + [
            ROOT / "deploy" / "docker" / "migrate.Dockerfile"]:
        installs = [line for line in dockerfile.read_text().splitlines() if "uv sync" in line]
        assert installs, dockerfile
        assert all("--no-editable" in line for line in installs), dockerfile
    subprocess.run(["uv", "build", "--package", "pulse-shared", "--wheel", "--out-dir", str(tmp_path)], cwd=ROOT,
                   capture_output=True, text=True, check=True)
    [wheel] = tmp_path.glob("pulse_shared-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "pulse_shared/consumer.py" in names
    assert "pulse_shared/dead_letters.py" in names
    assert not [n for n in names if n.startswith("pulse_shared/testing")], names


def test_compose_file_validates_against_the_compose_spec() -> None:
    schema_file = importlib.resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(schema_file.read_text())
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    jsonschema.validate(compose, schema)
    services = compose["services"]
    # The broker the test suite runs on (pulse_shared/kafka-pom.xml), with a cluster id Kafka 4 accepts.
    assert services["kafka"]["image"] == f"apache/kafka:{KAFKA_VERSION}"
    assert len(base64.urlsafe_b64decode(services["kafka"]["environment"]["CLUSTER_ID"] + "==")) == 16
    env = services["kafka"]["environment"]
    for name in ("KAFKA_NODE_ID", "KAFKA_PROCESS_ROLES", "KAFKA_LISTENERS", "KAFKA_ADVERTISED_LISTENERS",
                 "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP", "KAFKA_CONTROLLER_LISTENER_NAMES",
                 "KAFKA_CONTROLLER_QUORUM_VOTERS", "KAFKA_INTER_BROKER_LISTENER_NAME", "CLUSTER_ID",
                 "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
                 "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS", "KAFKA_LOG_DIRS"):
        assert name in env
    for name in ("ingest", "scoring", "alerts", "crm-sync"):
        service = services[name]
        assert "healthcheck" in service
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert service["depends_on"]["topics"]["condition"] == "service_completed_successfully"
        assert service["depends_on"]["kafka"]["condition"] == "service_healthy"
    bad = {**compose, "services": {"x": {"image": 5}}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_settings_read_secrets_from_mounted_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from alerts.settings import AlertsSettings
    from pulse_shared.settings import load_settings

    (tmp_path / "DATABASE_URL").write_text("postgresql://pulse:s3cret@db:5432/pulse")
    (tmp_path / "SLACK_BOT_TOKEN").write_text("xoxb-from-a-file")
    monkeypatch.setenv("PULSE_SECRETS_DIR", str(tmp_path))
    settings = load_settings(AlertsSettings)
    assert settings.database_url == "postgresql://pulse:s3cret@db:5432/pulse"
    assert settings.slack_bot_token is not None
    assert settings.slack_bot_token.get_secret_value() == "xoxb-from-a-file"
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-from-env")
    assert load_settings(AlertsSettings).slack_bot_token.get_secret_value() == "xoxb-from-env"  # type: ignore[union-attr]
