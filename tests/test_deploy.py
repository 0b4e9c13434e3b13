"""Deployment files agree with the code: settings names, ports, paths, versions, metrics.

Docker and Kubernetes cannot run here, so these checks catch the drift that would
otherwise only show up on a user's machine or cluster.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.kafkasecurity import MECHANISMS, PROTOCOLS
from streams.local.kafka import KAFKA_VERSION
from streams.local.settings import LocalSettings
from streams.metrics import Metrics
from streams.settings import ENV_VARS, Settings

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(REPO / "docker-compose.yml")
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = compose["services"]
    return result


def container_port(mapping: str) -> int:
    """``"127.0.0.1:6066:6066"`` / ``"6066:6066"`` / ``"6066"`` -> 6066 (the container side)."""
    return int(str(mapping).split(":")[-1].split("/")[0])


# --------------------------------------------------------------------------- compose


def test_depends_on_names_existing_services(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown service {dependency}"


@pytest.mark.parametrize("service", ["worker", "demo"])
def test_app_env_names_are_settings(services: dict[str, dict[str, Any]], service: str) -> None:
    names = set(services[service]["environment"])
    unknown = names - set(ENV_VARS.values())
    assert not unknown, f"{service} sets variables streams.settings does not read: {unknown}"


def test_worker_and_demo_reach_kafka_the_same_way(services: dict[str, dict[str, Any]]) -> None:
    kafka = {name for name in ENV_VARS.values() if name.startswith("KAFKA_")}

    def client(service: str) -> dict[str, str]:
        env: dict[str, str] = services[service]["environment"]
        return {k: v for k, v in env.items() if k in kafka}

    assert client("worker") == client("demo")
    assert client("worker")["KAFKA_SECURITY_PROTOCOL"] in PROTOCOLS


def test_the_commented_secured_example_uses_real_settings_and_secret_files() -> None:
    text = (REPO / "docker-compose.yml").read_text()
    example = dict(re.findall(r"^#\s+((?:KAFKA|LEADSTREAM)_[A-Z_]+): (\S+)$", text, re.M))
    assert example.keys() <= set(ENV_VARS.values()), example.keys() - set(ENV_VARS.values())
    assert example["KAFKA_SECURITY_PROTOCOL"] in PROTOCOLS
    assert example["KAFKA_SASL_MECHANISM"] in MECHANISMS
    files = {name: path for name, path in example.items() if name.endswith("_FILE")}
    assert {"KAFKA_SASL_PASSWORD_FILE", "KAFKA_SSL_CA_FILE"} <= files.keys()
    assert "KAFKA_SASL_PASSWORD" not in example  # the password as a file, never a variable
    secrets = set(re.findall(r"^#\s+([\w.-]+): \{file: ", text, re.M))
    for path in files.values():
        directory, _, name = path.rpartition("/")
        assert directory == "/run/secrets" and name in secrets, path


def test_app_containers_reach_kafka_on_its_internal_listener(
    services: dict[str, dict[str, Any]],
) -> None:
    advertised = services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    internal = dict(
        (address.split("://")[1], address.split("://")[0]) for address in advertised.split(",")
    )
    for name in ("worker", "demo"):
        bootstrap = services[name]["environment"]["KAFKA_BOOTSTRAP_SERVERS"]
        assert internal.get(bootstrap) == "INTERNAL", f"{name} uses {bootstrap}"
    assert "HOST://localhost:9092" in advertised.split(",")
    assert container_port(services["kafka"]["ports"][0]) == LocalSettings().kafka_port


def test_worker_port_matches_settings_and_prometheus(services: dict[str, dict[str, Any]]) -> None:
    worker = services["worker"]
    web_port = int(worker["environment"]["LEADSTREAM_WEB_PORT"])
    assert [container_port(p) for p in worker["ports"]] == [web_port]
    assert f":{web_port}/ready" in " ".join(worker["healthcheck"]["test"])
    prometheus = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    targets = [
        target
        for job in prometheus["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    ]
    assert targets == [f"worker:{web_port}"]
    assert prometheus["scrape_configs"][0]["metrics_path"] == "/metrics"


def test_kafka_image_is_the_pinned_version(services: dict[str, dict[str, Any]]) -> None:
    assert services["kafka"]["image"] == f"apache/kafka:{KAFKA_VERSION}"
    assert "/opt/kafka/bin/kafka-broker-api-versions.sh" in services["kafka"]["healthcheck"]["test"]


def test_worker_data_dir_is_a_volume(services: dict[str, dict[str, Any]]) -> None:
    worker = services["worker"]
    data_dir = worker["environment"]["LEADSTREAM_DATA_DIR"]
    targets = [volume.split(":")[1] for volume in worker["volumes"]]
    assert data_dir in targets
    assert worker["depends_on"]["kafka"]["condition"] == "service_healthy"
    # The worker runs the runtime image; demo traffic comes from the devtools target.
    assert worker["build"]["target"] == "worker"
    assert services["demo"]["build"]["target"] == "devtools"


def bind_mounts(services: dict[str, dict[str, Any]]) -> Iterator[tuple[str, Path, str]]:
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith("./"):
                yield name, REPO / source, target


def test_mounted_files_exist(services: dict[str, dict[str, Any]]) -> None:
    mounts = list(bind_mounts(services))
    assert mounts, "expected Prometheus and Grafana config mounts"
    for name, source, _ in mounts:
        assert source.exists(), f"{name} mounts missing {source.relative_to(REPO)}"
    build = services["worker"]["build"]
    assert (REPO / build["context"] / build["dockerfile"]).is_file()


def test_prometheus_loads_the_mounted_rules(services: dict[str, dict[str, Any]]) -> None:
    prometheus = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    targets = {target for name, _, target in bind_mounts(services) if name == "prometheus"}
    assert set(prometheus["rule_files"]) <= targets


def test_grafana_home_dashboard_is_mounted(services: dict[str, dict[str, Any]]) -> None:
    home = services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    mounts = {target: source for name, source, target in bind_mounts(services) if name == "grafana"}
    directory, _, file = home.rpartition("/")
    assert (mounts[directory] / file).is_file()
    provider = load_yaml(DEPLOY / "grafana" / "provisioning" / "dashboards" / "leadstream.yml")
    assert provider["providers"][0]["options"]["path"] == directory


def test_dockerfile_installs_the_wheel_with_its_schemas() -> None:
    dockerfile = (DEPLOY / "docker" / "Dockerfile").read_text()
    # The schemas are package data of the wheel (streams.schemas): no editable install.
    assert "COPY schemas ./schemas" in dockerfile
    assert "pip wheel" in dockerfile and "pip install /tmp/dist/leadstream-*.whl" in dockerfile
    assert "pip install -e" not in dockerfile
    stages = re.findall(r"^FROM \S+ AS (\S+)$", dockerfile, re.M)
    assert stages[-1] == "worker"  # a plain `docker build` gives the worker
    worker = dockerfile.split("AS worker")[1]
    assert "streams/local" not in worker and f"EXPOSE {Settings().web_port}" in worker


def test_dockerfile_compiles_scoring_from_its_sources() -> None:
    dockerfile = (DEPLOY / "docker" / "Dockerfile").read_text()
    assert "python deploy/compile_scoring.py" in dockerfile
    assert "COPY --from=scoring-build /app/scoring ./scoring" in dockerfile
    # A developer's own build (`make compiled`) must not reach the image's build stage.
    assert "scoring/*.so" in (REPO / ".dockerignore").read_text().split()


# --------------------------------------------------------------------------- Kubernetes


@pytest.fixture(scope="module")
def k8s() -> dict[str, dict[str, Any]]:
    """Kubernetes objects by kind (one of each in deploy/k8s)."""
    kustomization = load_yaml(DEPLOY / "k8s" / "kustomization.yaml")
    objects: dict[str, dict[str, Any]] = {}
    for resource in kustomization["resources"]:
        for doc in yaml.safe_load_all((DEPLOY / "k8s" / resource).read_text()):
            assert doc["kind"] not in objects
            objects[doc["kind"]] = doc
    return objects


def test_k8s_uses_current_api_versions(k8s: dict[str, dict[str, Any]]) -> None:
    assert {kind: obj["apiVersion"] for kind, obj in k8s.items()} == {
        "ConfigMap": "v1",
        "Service": "v1",
        "StatefulSet": "apps/v1",
        "NetworkPolicy": "networking.k8s.io/v1",
    }


def test_only_workers_and_prometheus_reach_the_web_port(k8s: dict[str, dict[str, Any]]) -> None:
    policy = k8s["NetworkPolicy"]["spec"]
    pods = k8s["StatefulSet"]["spec"]["template"]["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"] == pods
    [rule] = policy["ingress"]
    assert [p["port"] for p in rule["ports"]] == [Settings().web_port]
    sources = [peer["podSelector"]["matchLabels"] for peer in rule["from"]]
    assert pods in sources and {"app.kubernetes.io/name": "prometheus"} in sources


def worker_container(k8s: dict[str, dict[str, Any]]) -> dict[str, Any]:
    containers = k8s["StatefulSet"]["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


def test_k8s_kafka_secrets_are_files_from_a_secret_volume(k8s: dict[str, dict[str, Any]]) -> None:
    config = k8s["ConfigMap"]["data"]
    assert config["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert config["KAFKA_SASL_MECHANISM"] in MECHANISMS
    # Secrets never in the ConfigMap: only paths to files.
    assert "KAFKA_SASL_PASSWORD" not in config and "LEADSTREAM_API_TOKEN" not in config
    spec = k8s["StatefulSet"]["spec"]["template"]["spec"]
    secret_volumes = {v["name"] for v in spec.get("volumes", []) if "secret" in v}
    mounts = [m for m in worker_container(k8s)["volumeMounts"] if m["name"] in secret_volumes]
    assert mounts and all(m.get("readOnly") for m in mounts)
    files = {k: v for k, v in config.items() if k.endswith("_FILE")}
    assert {"KAFKA_SASL_PASSWORD_FILE", "KAFKA_SSL_CA_FILE"} <= files.keys()
    for name, path in files.items():
        assert any(path.startswith(m["mountPath"].rstrip("/") + "/") for m in mounts), name
    for volume in spec["volumes"]:
        if "secret" in volume:
            assert volume["secret"]["defaultMode"] & 0o007 == 0  # not world-readable


def test_k8s_env_names_are_settings(k8s: dict[str, dict[str, Any]]) -> None:
    container = worker_container(k8s)
    names = set(k8s["ConfigMap"]["data"]) | {e["name"] for e in container.get("env", [])}
    assert names - set(ENV_VARS.values()) == set()
    refs = [source["configMapRef"]["name"] for source in container["envFrom"]]
    assert refs == [k8s["ConfigMap"]["metadata"]["name"]]


def test_k8s_probes_ports_and_volume_agree(k8s: dict[str, dict[str, Any]]) -> None:
    config = k8s["ConfigMap"]["data"]
    container = worker_container(k8s)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    web_port = int(config["LEADSTREAM_WEB_PORT"])
    assert list(ports.values()) == [web_port]

    def resolve(port: int | str) -> int:
        return ports[port] if isinstance(port, str) else port

    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert resolve(container[probe]["httpGet"]["port"]) == web_port, probe
    service_ports = k8s["Service"]["spec"]["ports"]
    assert [resolve(p["targetPort"]) for p in service_ports] == [web_port]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    claims = [c["metadata"]["name"] for c in k8s["StatefulSet"]["spec"]["volumeClaimTemplates"]]
    assert {name: mounts[name] for name in claims} == {"data": config["LEADSTREAM_DATA_DIR"]}


def test_k8s_service_selects_the_worker_pods(k8s: dict[str, dict[str, Any]]) -> None:
    spec = k8s["StatefulSet"]["spec"]
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    assert k8s["Service"]["spec"]["selector"].items() <= labels.items()
    assert k8s["Service"]["spec"]["clusterIP"] == "None"  # headless
    assert spec["serviceName"] == k8s["Service"]["metadata"]["name"]


def test_probe_paths_are_routes_of_the_worker() -> None:
    web = (REPO / "streams" / "http" / "views.py").read_text()
    for path in ("/health", "/ready", "/metrics"):
        assert f'@app.page("{path}")' in web


# --------------------------------------------------------------------------- metrics


#: PromQL words that look like metric names but are operators or modifiers.
PROMQL_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring"}


def promql_metric_names(expr: str) -> set[str]:
    """Metric names an expression selects (rough but enough for our rules and panels)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings, e.g. in label matchers
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range and subquery durations
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = set(re.findall(r"(?<![\w.:])([a-zA-Z_:][\w:]*)(?![\w:]|\s*\()", expr))
    return names - PROMQL_KEYWORDS


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (le) (rate(x_bucket{a="b"}[5m])) > 1e-9 and up', {"x_bucket", "up"}),
        ('sum(up{job="leadstream"})', {"up"}),
        ("deriv(a:b:sum[10m]) > 0 unless on (topic) c_total offset 5m", {"a:b:sum", "c_total"}),
        ("histogram_quantile(0.99, sum without (pod) (rate(h_bucket[1m])))", {"h_bucket"}),
    ],
)
def test_promql_metric_names(expr: str, names: set[str]) -> None:
    assert promql_metric_names(expr) == names


def exported_series() -> set[str]:
    """Series names the worker's registry exposes (counters get _total, histograms _bucket...)."""
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""]}
    return {
        family.name + suffix
        for family in Metrics.create().registry.collect()
        for suffix in suffixes[family.type]
    }


@pytest.fixture(scope="module")
def rules() -> list[dict[str, Any]]:
    groups = load_yaml(DEPLOY / "prometheus" / "rules.yml")["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_rules_reference_only_leadstream_metrics_and_up(rules: list[dict[str, Any]]) -> None:
    recorded = {rule["record"] for rule in rules if "record" in rule}
    known = exported_series() | {"up"} | recorded
    for rule in rules:
        names = promql_metric_names(rule["expr"])
        assert names, rule
        for name in names - recorded:
            assert name.startswith("leadstream_") or name == "up", (rule, name)
        assert names <= known, f"{rule.get('record') or rule.get('alert')}: {names - known}"


def test_rules_cover_the_alerts_we_promised(rules: list[dict[str, Any]]) -> None:
    alerts = {rule["alert"] for rule in rules if "alert" in rule}
    assert {
        "LeadstreamWorkerDown",
        "LeadstreamDLQRateHigh",
        "LeadstreamConsumerLagGrowing",
        "LeadstreamDecayTimersLate",
        "LeadstreamSLABreaches",
    } <= alerts
    for rule in rules:
        if "alert" in rule:
            assert rule["labels"]["severity"] in {"critical", "warning", "info"}
            assert rule["annotations"]["summary"]


def test_dashboard_queries_known_series(rules: list[dict[str, Any]]) -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "leadstream.json").read_text())
    datasource = load_yaml(DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml")
    uid = datasource["datasources"][0]["uid"]
    known = exported_series() | {"up"} | {rule["record"] for rule in rules if "record" in rule}
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert len(exprs) >= 10
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == uid, panel["title"]
    for expr in exprs:
        assert promql_metric_names(expr) <= known, expr
    queried = {name for expr in exprs for name in promql_metric_names(expr)}
    for topic in ("events", "dlq", "transitions", "consumer_lag", "event_lag"):
        assert any(topic in name for name in queried), f"no panel shows {topic}"


def test_the_funnel_panels_read_the_kpis_through_their_recording_rules(
    rules: list[dict[str, Any]],
) -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "leadstream.json").read_text())
    exprs = {t["expr"] for panel in dashboard["panels"] for t in panel["targets"]}
    queried = {name for expr in exprs for name in promql_metric_names(expr)}
    by_record = {rule["record"]: rule["expr"] for rule in rules if "record" in rule}
    seen = queried | {n for name in queried for n in promql_metric_names(by_record.get(name, ""))}
    for series in (
        "leadstream_stage_entries_total",
        "leadstream_time_to_stage_seconds_bucket",
        "leadstream_sla_breaches_total",
    ):
        assert series in seen, f"no panel shows {series}"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    breach = next(rule for rule in rules if rule.get("alert") == "LeadstreamSLABreaches")
    assert "leadstream_sla_breaches_total" in promql_metric_names(breach["expr"])
