"""docker-compose.yml, the env file and the Dockerfile, checked against the code (no Docker needed)."""

from __future__ import annotations

import json
import re
import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

from tests.deploy.manifests import DEPLOY, ROOT, cli_verb, is_setting, load_yaml

COMPOSE = ROOT / "docker-compose.yml"
ENV_FILE = DEPLOY / "compose" / "callgate.env"
_ENV_LINE = re.compile(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$")


def _services() -> dict[str, Any]:
    services = load_yaml(COMPOSE)["services"]
    assert isinstance(services, dict)
    return services


def _callgate_services() -> dict[str, Any]:
    return {name: s for name, s in _services().items() if "build" in s}


def _env_file_entries(path: Path, *, commented: bool) -> dict[str, str]:
    entries = {}
    for line in path.read_text().splitlines():
        match = _ENV_LINE.match(line.strip())
        if match and (commented or not line.startswith("#")):
            entries[match[1]] = match[2]
    return entries


def _service_env(service: dict[str, Any]) -> dict[str, str]:
    env: dict[str, str] = {}
    for name in (
        [service.get("env_file", [])] if isinstance(service.get("env_file"), str) else service.get("env_file", [])
    ):
        env.update(_env_file_entries(ROOT / name, commented=False))
    raw = service.get("environment", {})
    env.update(dict(item.split("=", 1) for item in raw) if isinstance(raw, list) else raw)
    return env


def test_settings_scanner_knows_conditional_templated_and_file_names() -> None:
    assert is_setting("REDIS_URL") and is_setting("DATABASE_URL")
    assert is_setting("CALLGATE_WYRE_PATH_TOKEN_FILE")  # a secret, as a file
    assert is_setting("CALLGATE_COBO_TSS_CHECK_PATH")  # an f-string template in config.py
    assert is_setting("CALLGATE_UCW_WAIT_MS")  # read only when UCW is configured
    assert not is_setting("CALLGATE_NOT_A_SETTING")
    assert not is_setting("INFO")


def test_every_callgate_service_runs_a_real_cli_verb() -> None:
    verbs = Counter(cli_verb(s["command"]) for s in _callgate_services().values())
    assert verbs["gateway"] == verbs["worker"] == 2
    assert verbs["migrate"] == verbs["policy"] == 1


def test_the_policy_the_stack_publishes_is_valid() -> None:
    from shared.policy.store import validate

    service = _callgate_services()["policy"]
    mounted = service["command"][-1]
    sources = [v.split(":")[0] for v in service["volumes"] if v.split(":")[1] == mounted]
    assert sources == ["./deploy/policy.example.yaml"]
    validate((ROOT / sources[0]).read_text())


def test_every_variable_set_for_callgate_is_read_by_settings() -> None:
    names = set(_env_file_entries(ENV_FILE, commented=True))
    for service in _callgate_services().values():
        names |= set(_service_env(service))
    unknown = sorted(n for n in names if not is_setting(n))
    assert names and unknown == []


def test_compose_env_builds_settings() -> None:
    from shared.config import Settings

    env = _service_env(_callgate_services()["gateway-1"])
    settings = Settings.from_env(env)
    assert settings.host == "0.0.0.0"
    assert settings.redis_url.startswith("redis://redis:")
    assert "wyre" in settings.enabled_providers()


def test_gateways_and_workers_wait_for_the_migration() -> None:
    for name, service in _callgate_services().items():
        if cli_verb(service["command"]) in ("gateway", "worker"):
            assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully", name
    assert _services()["migrate"]["restart"] == "no"


def test_healthchecks_probe_routes_and_ports_callgate_serves() -> None:
    from gateway.routes import ROUTES

    always_on = {r.path for r in ROUTES if r.provider is None and r.method == "GET"}
    env = _service_env(_callgate_services()["gateway-1"])
    ports = {"gateway": env["CALLGATE_PORT"], "worker": env["CALLGATE_WORKER_METRICS_PORT"]}
    checked = 0
    for name, service in _callgate_services().items():
        verb = cli_verb(service["command"])
        if verb not in ports:
            continue
        url = re.findall(r"http://127\.0\.0\.1:(\d+)(/\w+)", " ".join(service["healthcheck"]["test"]))
        assert url and url[0][0] == ports[verb], name
        assert url[0][1] in (always_on if verb == "gateway" else {"/healthz"}), name
        checked += 1
    assert checked == 4


def test_redis_is_durable_and_never_evicts() -> None:
    command = " ".join(_services()["redis"]["command"])
    assert "--appendonly yes" in command
    assert "--appendfsync everysec" in command
    assert "--maxmemory-policy noeviction" in command


def test_prometheus_scrapes_every_gateway_and_worker() -> None:
    config = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    targets = {t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    settings = _service_env(_callgate_services()["gateway-1"])
    expected = set()
    for name, service in _callgate_services().items():
        verb = cli_verb(service["command"])
        if verb == "gateway":
            expected.add(f"{name}:{settings['CALLGATE_PORT']}")
        elif verb == "worker":
            expected.add(f"{name}:{settings['CALLGATE_WORKER_METRICS_PORT']}")
    assert expected <= targets
    assert "/etc/prometheus/alerts.yml" in config["rule_files"]


def test_grafana_mounts_its_provisioning_and_dashboards() -> None:
    volumes = _services()["grafana"]["volumes"]
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in volumes
    provider = load_yaml(DEPLOY / "grafana" / "provisioning" / "dashboards" / "callgate.yml")
    path = provider["providers"][0]["options"]["path"]
    assert f"./deploy/grafana/dashboards:{path}:ro" in volumes


def test_mounted_files_exist() -> None:
    for name, service in _services().items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name}: {source}"


def _final_stage(dockerfile: str) -> str:
    return re.split(r"^FROM ", dockerfile, flags=re.MULTILINE)[-1]


def test_dockerfile_final_stage_is_slim_non_root_and_runs_callgate() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", dockerfile, flags=re.MULTILINE)) >= 2
    final = _final_stage(dockerfile)
    assert not re.search(r"build-essential|gcc|apt-get install", final)
    user = re.findall(r"^USER (\S+)", final, flags=re.MULTILINE)
    assert user and user[-1].split(":")[0] not in ("root", "0")
    entrypoint = json.loads(re.findall(r"^ENTRYPOINT (.+)$", final, flags=re.MULTILINE)[-1])
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert entrypoint == ["callgate"] and "callgate" in scripts
    cli_verb(json.loads(re.findall(r"^CMD (.+)$", final, flags=re.MULTILINE)[-1]))


def test_dockerignore_lets_in_what_the_dockerfile_copies() -> None:
    allowed = {
        line[1:].rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines() if line.startswith("!")
    }
    copied = set()
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            copied |= set(line.split()[1:-1])
    assert copied and copied <= allowed
    for path in copied:
        assert (ROOT / path).exists(), path
