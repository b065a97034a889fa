"""Checks the monitoring-as-code and the container deployment: deploy/, Dockerfile, docker-compose.yml."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from streams.settings import Settings
from tests import deploy_check

try:
    import yaml
except ImportError:  # pragma: no cover - depends on the environment
    if os.environ.get("CI"):
        raise
    pytest.skip("PyYAML is a dev dependency: pip install -e '.[dev]'", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RULES = PROMETHEUS_DIR / "alerts.yml"
RULES_TEST = PROMETHEUS_DIR / "alerts_test.yml"
GRAFANA_DIR = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA_DIR / "dashboards" / "article-streams.json"
DATASOURCES = GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS = GRAFANA_DIR / "provisioning" / "dashboards" / "dashboards.yml"
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
POM = ROOT / "streams" / "kafka" / "pom.xml"

JOB = "article-streams"
STAGES = ("normalize", "dedup")  # stages with metrics today; enrich and takedown add theirs


def _tool(name: str, package: str) -> str:
    """Path of a checker binary; missing fails under CI (CI=true) and skips with a reason elsewhere."""
    path = shutil.which(name)
    if path:
        return path
    message = f"{name} not found: install Debian's {package} package (apt-get install -y {package})"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


def _load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc: dict[str, Any] = _load_yaml(COMPOSE)
    return doc


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return deploy_check.load_dashboard(DASHBOARD)


def _mount_target(service: dict[str, Any], source: str) -> str:
    """Where a compose service mounts the host path `source` (relative to the repository)."""
    for volume in service.get("volumes", []):
        host, _, rest = volume.partition(":")
        if os.path.normpath(host) == os.path.normpath(source):
            return rest.split(":")[0]
    raise AssertionError(f"{source} is not mounted in {service.get('image')}")


# ---- the real checkers ------------------------------------------------------------------------------


def test_prometheus_config_passes_promtool() -> None:
    promtool = _tool("promtool", "prometheus")
    result = _run(promtool, "check", "config", str(PROMETHEUS_CONFIG.relative_to(ROOT)))
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_pass_promtool() -> None:
    promtool = _tool("promtool", "prometheus")
    result = _run(promtool, "check", "rules", str(RULES.relative_to(ROOT)))
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_unit_tests_pass() -> None:
    promtool = _tool("promtool", "prometheus")
    result = _run(promtool, "test", "rules", str(RULES_TEST.relative_to(ROOT)))
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    # promtool parses every expression of a rule file: wrap each panel query in a recording rule.
    promtool = _tool("promtool", "prometheus")
    rules = [
        {"record": f"dashboard:query_{i}", "expr": expr}
        for i, (_, expr) in enumerate(deploy_check.panel_queries(DASHBOARD))
    ]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}), encoding="utf-8")
    result = _run(promtool, "check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_file_passes_docker_compose_config() -> None:
    docker_compose = _tool("docker-compose", "docker-compose")
    result = _run(docker_compose, "-f", str(COMPOSE), "config", "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr


# ---- metric names -----------------------------------------------------------------------------------


def _sources() -> list[tuple[str, str]]:
    panels = [(f"panel {title!r}", expr) for title, expr in deploy_check.panel_queries(DASHBOARD)]
    alerts = [(f"alert {name}", expr) for name, expr in deploy_check.alert_rules(RULES)]
    records = [(f"recording rule {name}", expr) for name, expr in deploy_check.recording_rules(RULES)]
    return panels + alerts + records


def test_every_metric_in_dashboard_and_rules_is_defined_in_metrics_module() -> None:
    exposed = deploy_check.exposed_metrics()
    recorded = {name for name, _ in deploy_check.recording_rules(RULES)}
    unknown = [
        f"{where}: {name}"
        for where, expr in _sources()
        for name in sorted(deploy_check.referenced_metrics(expr))
        if name not in exposed and name not in recorded
    ]
    assert not unknown, "not in streams/metrics.py nor recorded in alerts.yml:\n" + "\n".join(unknown)


def test_every_defined_metric_has_a_panel() -> None:
    used = {name for _, expr in deploy_check.panel_queries(DASHBOARD) for name in deploy_check.referenced_metrics(expr)}
    exposed = {n for n in deploy_check.exposed_metrics() if not n.endswith(("_created", "_sum", "_count"))}
    assert exposed - used == set(), "metrics of streams/metrics.py without a panel: operators cannot see them"


def test_referenced_metrics_ignores_label_values() -> None:
    expr = 'sum(rate(streams_events_in_total{stage="streams_fake"}[1m])) / streams:dedup_ratio:rate5m'
    assert deploy_check.referenced_metrics(expr) == {"streams_events_in_total", "streams:dedup_ratio:rate5m"}


def test_panel_queries_replace_grafana_variables() -> None:
    queries = deploy_check.panel_queries(DASHBOARD, variables={"__rate_interval": "2m"})
    assert queries and all("$" not in expr for _, expr in queries)
    assert any("[2m]" in expr for _, expr in queries)


# ---- alert and recording rules ----------------------------------------------------------------------


def test_every_alert_has_a_severity_a_summary_and_a_description() -> None:
    for rule in deploy_check.load_rules(RULES):
        if "alert" not in rule:
            continue
        assert rule.get("labels", {}).get("severity") in {"critical", "warning"}, rule["alert"]
        annotations = rule.get("annotations", {})
        assert annotations.get("summary") and annotations.get("description"), rule["alert"]


def test_rules_have_the_alerts_operators_rely_on() -> None:
    alerts = {name for name, _ in deploy_check.alert_rules(RULES)}
    assert {
        "WorkerDown",
        "NoWorkerUp",
        "NoReadyWorker",
        "HighRejectionRate",
        "RejectionBurst",
        "ConsumerLagGrowing",
        "EndToEndLatencyHigh",
        "StateRecoveryStuck",
    } <= alerts
    names = [rule.get("alert") or rule.get("record") for rule in deploy_check.load_rules(RULES)]
    assert len(names) == len(set(names)), "a rule name is defined twice"


def test_rejection_burst_fires_without_delay_so_a_test_can_trigger_it() -> None:
    (rule,) = [r for r in deploy_check.load_rules(RULES) if r.get("alert") == "RejectionBurst"]
    assert rule.get("for", "0m") in {"0m", "0s"}
    assert "streams_rejections_total" in rule["expr"]


def test_worker_down_watches_the_worker_job() -> None:
    (expr,) = [expr for name, expr in deploy_check.alert_rules(RULES) if name == "WorkerDown"]
    assert f'up{{job="{JOB}"}}' in expr


def test_rule_tests_cover_the_alerts_an_integration_test_triggers() -> None:
    tested = {
        check["alertname"] for test in _load_yaml(RULES_TEST)["tests"] for check in test.get("alert_rule_test", [])
    }
    assert {"RejectionBurst", "WorkerDown"} <= tested


# ---- dashboard --------------------------------------------------------------------------------------


def test_dashboard_identity(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "article-streams"
    assert 36 <= dashboard["schemaVersion"] <= 41
    assert dashboard["title"]


def test_every_panel_has_a_query_on_the_provisioned_datasource(dashboard: dict[str, Any]) -> None:
    datasource_uid = _load_yaml(DATASOURCES)["datasources"][0]["uid"]
    for panel in deploy_check.panels(dashboard):
        targets = panel.get("targets", [])
        assert targets, f"panel {panel['title']!r} has no query"
        for target in targets:
            assert target.get("expr", "").strip(), f"panel {panel['title']!r} has an empty query"
            assert target["datasource"]["uid"] == datasource_uid, panel["title"]
        assert panel["datasource"]["uid"] == datasource_uid, panel["title"]


def test_dashboard_has_an_overview_a_row_per_stage_kafka_and_state(dashboard: dict[str, Any]) -> None:
    rows = [p["title"] for p in dashboard["panels"] if p["type"] == "row"]
    assert rows[0] == "Overview"
    for stage in STAGES:
        assert any(title.startswith(f"{stage}:") for title in rows), f"no row for stage {stage}"
    assert any("Kafka" in title for title in rows)
    assert any("State" in title for title in rows)


def test_stage_row_panels_query_their_own_stage(dashboard: dict[str, Any]) -> None:
    current = None
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            current = next((s for s in STAGES if panel["title"].startswith(f"{s}:")), None)
            continue
        if current is None:
            continue
        assert panel["title"].startswith(f"{current}:"), panel["title"]
        for target in panel["targets"]:
            other = [s for s in STAGES if s != current and f'stage="{s}"' in target["expr"]]
            assert not other, f"{panel['title']!r} queries {other}"


def test_dashboard_panels_have_unique_ids_and_do_not_overlap(dashboard: dict[str, Any]) -> None:
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    taken: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24, panel["title"]
        cells = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & taken, f"{panel['title']!r} overlaps another panel"
        taken |= cells


def test_error_only_series_fall_back_to_zero_so_panels_are_never_empty() -> None:
    # These counters only get a series once something happened (a rejection, an eviction, an error).
    for title, expr in deploy_check.panel_queries(DASHBOARD):
        for metric in (
            "streams_rejections_total",
            "streams_duplicates_total",
            "streams_dedup_evictions_total",
            "streams_stage_errors_total",
        ):
            if metric in expr:
                assert "vector(0)" in expr, f"{title!r} is empty until {metric} has a series"


# ---- Grafana provisioning ---------------------------------------------------------------------------


def test_grafana_datasource_points_at_the_compose_prometheus(compose: dict[str, Any]) -> None:
    (source,) = _load_yaml(DATASOURCES)["datasources"]
    assert source["uid"] == "prometheus" and source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    assert "prometheus" in compose["services"]


def test_grafana_loads_the_dashboard_folder_that_compose_mounts(compose: dict[str, Any]) -> None:
    (provider,) = _load_yaml(DASHBOARD_PROVIDERS)["providers"]
    grafana = compose["services"]["grafana"]
    assert provider["options"]["path"] == _mount_target(grafana, "./deploy/grafana/dashboards")
    assert _mount_target(grafana, "./deploy/grafana/provisioning") == "/etc/grafana/provisioning"


# ---- Prometheus scrape config -----------------------------------------------------------------------


def test_prometheus_discovers_every_worker_replica(compose: dict[str, Any]) -> None:
    config = _load_yaml(PROMETHEUS_CONFIG)
    assert config["global"]["scrape_interval"] == "15s"
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == JOB]
    (sd,) = job["dns_sd_configs"]
    assert sd["type"] == "A"
    assert sd["port"] == Settings().web_port
    for name in sd["names"]:
        assert name in compose["services"], f"{name} is not a compose service"
    assert job.get("metrics_path", "/metrics") == "/metrics"


def test_prometheus_rule_files_are_mounted_beside_the_config(compose: dict[str, Any]) -> None:
    config = _load_yaml(PROMETHEUS_CONFIG)
    for rule_file in config["rule_files"]:
        assert (PROMETHEUS_CONFIG.parent / rule_file).is_file(), rule_file
    prometheus = compose["services"]["prometheus"]
    target = _mount_target(prometheus, "./deploy/prometheus")
    assert f"--config.file={target}/prometheus.yml" in prometheus["command"]


# ---- docker-compose.yml -----------------------------------------------------------------------------


def _pinned_kafka_versions() -> dict[str, str]:
    versions: dict[str, str] = {}
    try:
        from streams.kafka.local import KAFKA_VERSION
    except ImportError:
        pass
    else:
        versions["streams.kafka.local.KAFKA_VERSION"] = KAFKA_VERSION
    if POM.is_file():
        ns = {"m": "http://maven.apache.org/POM/4.0.0"}
        prop = ET.parse(POM).getroot().find("m:properties/m:kafka.version", ns)
        if prop is not None and prop.text:
            versions["streams/kafka/pom.xml kafka.version"] = prop.text.strip()
    return versions


def test_compose_kafka_image_is_the_pinned_kafka_version(compose: dict[str, Any]) -> None:
    versions = _pinned_kafka_versions()
    assert versions, "no pinned Kafka version: neither streams.kafka.local.KAFKA_VERSION nor pom.xml"
    image = compose["services"]["kafka"]["image"]
    assert image.startswith("apache/kafka:")
    tag = image.split(":", 1)[1]
    assert all(v == tag for v in versions.values()), f"compose runs {image}, the project pins {versions}"


def test_compose_kafka_is_a_single_node_kraft_broker_fit_for_exactly_once(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    env = {k: str(v) for k, v in kafka["environment"].items()}
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://kafka:9092"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "1"
    assert env["KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"] == "0"
    assert "healthcheck" in kafka


def test_compose_topics_job_runs_before_the_workers(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["topics"]["command"] == ["streams", "topics", "create"]
    assert services["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert services["worker"]["depends_on"]["topics"]["condition"] == "service_completed_successfully"


def test_compose_worker_can_be_scaled(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    assert "container_name" not in worker
    assert "ports" not in worker, "a published host port makes `--scale worker=N` fail"
    assert worker["command"] == ["streams", "worker"]
    env = worker["environment"]
    assert env["STREAMS_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert env["STREAMS_WEB_HOST"] == "0.0.0.0"
    assert not any(":" in str(v) for v in worker.get("volumes", [])), "replicas must not share state"


def test_compose_environment_names_are_real_settings(compose: dict[str, Any]) -> None:
    known = {name for name, _ in Settings().as_env_doc()}
    for name in ("topics", "worker", "desk"):
        unknown = {k for k in compose["services"][name]["environment"] if k.startswith("STREAMS_")} - known
        assert not unknown, f"{name}: {unknown} are not settings in streams/settings.py"


def test_compose_desk_runs_the_worker_image_on_the_host_loopback_with_the_token_from_the_environment(
    compose: dict[str, Any],
) -> None:
    desk, worker = compose["services"]["desk"], compose["services"]["worker"]
    assert desk["command"] == ["streams", "desk"]
    assert (desk["image"], desk["build"]) == (worker["image"], worker["build"])
    env = desk["environment"]
    assert env["STREAMS_KAFKA_BOOTSTRAP"] == "kafka:9092" and env["STREAMS_DESK_HOST"] == "0.0.0.0"
    port = str(env["STREAMS_DESK_PORT"])
    assert desk["ports"] == [f"127.0.0.1:{port}:{port}"], "the desk is published on the host's loopback only"
    assert port == str(Settings().desk_port)
    assert env["STREAMS_DESK_TOKEN"].startswith("${STREAMS_DESK_TOKEN"), "the token comes from the environment"
    assert desk["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    assert f":{port}/signin" in " ".join(desk["healthcheck"]["test"])


def test_compose_passes_the_desk_token_from_the_environment_and_config_never_needs_it() -> None:
    docker_compose = _tool("docker-compose", "docker-compose")
    secret = "compose-desk-token-7f3a"
    env = {k: v for k, v in os.environ.items() if k != "STREAMS_DESK_TOKEN"}
    with_token = subprocess.run(
        [docker_compose, "-f", str(COMPOSE), "config"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**env, "STREAMS_DESK_TOKEN": secret},
    )
    assert with_token.returncode == 0, with_token.stderr
    assert yaml.safe_load(with_token.stdout)["services"]["desk"]["environment"]["STREAMS_DESK_TOKEN"] == secret
    without = subprocess.run(
        [docker_compose, "-f", str(COMPOSE), "config", "--quiet"], cwd=ROOT, capture_output=True, text=True,
        timeout=120, env=env,
    )  # fmt: skip
    assert without.returncode == 0, without.stderr


# ---- Dockerfile -------------------------------------------------------------------------------------


def test_dockerfile_runs_the_worker_as_a_non_root_user() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.M)
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1] not in {"root", "0"}
    assert re.search(r'^CMD \["streams", "worker"\]$', text, re.M)
    assert re.search(rf"^EXPOSE {Settings().web_port}$", text, re.M)
    assert "STREAMS_WEB_HOST=0.0.0.0" in text
    assert "STREAMS_DATA_DIR=/var/lib/article-streams" in text


def test_dockerfile_copies_what_pip_install_needs() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    ignored = set(DOCKERIGNORE.read_text(encoding="utf-8").split())
    for line in re.findall(r"^COPY (?!--from)(.+)$", text, re.M):
        *sources, _ = line.split()
        for source in sources:
            assert (ROOT / source).exists(), f"Dockerfile copies {source}, which does not exist"
            assert source not in ignored, f".dockerignore hides {source} from the build"


def test_dockerignore_keeps_local_state_out_of_the_image() -> None:
    ignored = set(DOCKERIGNORE.read_text(encoding="utf-8").split())
    assert {".git", ".venv", "var", "tests"} <= ignored


def test_dashboard_json_is_formatted_for_review() -> None:
    # Diffs of the dashboard stay reviewable: 2-space JSON, as Grafana exports it.
    text = DASHBOARD.read_text(encoding="utf-8")
    assert text == json.dumps(json.loads(text), indent=2, ensure_ascii=False) + "\n"
