"""Kubernetes manifests: parsed and cross-checked against the CLI, the settings and the metrics."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.deploy.manifests import DEPLOY, check_promql, cli_verb, is_setting, load_all_yaml, load_yaml

K8S = DEPLOY / "k8s"


def _resources() -> list[dict[str, Any]]:
    kustomization = load_yaml(K8S / "kustomization.yaml")
    return [doc for name in kustomization["resources"] for doc in load_all_yaml(K8S / name)]


def _of_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {r["metadata"]["name"]: r for r in _resources() if r["kind"] == kind}


def _pod_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    for resource in _resources():
        if resource["kind"] in ("Deployment", "Job"):
            yield resource["metadata"]["name"], resource["spec"]["template"]["spec"]


def _config() -> dict[str, str]:
    data = _of_kind("ConfigMap")["callgate-config"]["data"]
    assert isinstance(data, dict)
    return data


def _verb(name: str) -> str:
    for pod_name, spec in _pod_specs():
        if pod_name == name:
            return cli_verb(spec["containers"][0]["args"])
    raise AssertionError(name)


def test_every_manifest_in_the_folder_is_in_the_kustomization() -> None:
    listed = set(load_yaml(K8S / "kustomization.yaml")["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk


def test_every_container_runs_a_real_cli_verb() -> None:
    verbs = sorted(cli_verb(c["args"]) for _, spec in _pod_specs() for c in spec["containers"])
    assert verbs == ["gateway", "migrate", "worker"]


def test_every_variable_given_to_callgate_is_a_setting() -> None:
    names = set(_config())
    for _, spec in _pod_specs():
        for container in spec["containers"]:
            names |= {e["name"] for e in container.get("env", [])}
            assert {"configMapRef": {"name": "callgate-config"}} in container["envFrom"]
    commented = (K8S / "configmap.yaml").read_text().split("# Enable more providers", 1)[1]
    names |= {line.split(":")[0].strip("# ") for line in commented.splitlines() if "_FILE:" in line}
    unknown = sorted(n for n in names if not is_setting(n))
    assert len(names) > 10 and unknown == []


def test_secret_files_named_in_the_config_are_mounted_from_the_secret() -> None:
    secret_keys = set(_of_kind("Secret")["callgate-secrets"]["stringData"])
    for name, value in _config().items():
        if name.endswith("_FILE"):
            directory, _, key = value.rpartition("/")
            assert directory == "/run/secrets/callgate" and key in secret_keys, name
    for pod_name, spec in _pod_specs():
        mounts = {m["mountPath"]: m["name"] for c in spec["containers"] for m in c["volumeMounts"]}
        volumes = {v["name"]: v for v in spec["volumes"]}
        secret = volumes[mounts["/run/secrets/callgate"]]["secret"]
        assert secret["secretName"] == "callgate-secrets", pod_name
        # Files are root-owned: the non-root user reads them through its group (fsGroup).
        context = spec["securityContext"]
        assert secret["defaultMode"] & 0o040 and context["fsGroup"] == context["runAsGroup"], pod_name


def test_probes_use_the_routes_and_ports_callgate_serves() -> None:
    from gateway.routes import ROUTES

    always_on = {r.path for r in ROUTES if r.provider is None and r.method == "GET"}
    config = _config()
    gateway = _of_kind("Deployment")["callgate-gateway"]["spec"]["template"]["spec"]["containers"][0]
    assert gateway["ports"][0]["containerPort"] == int(config["CALLGATE_PORT"])
    assert gateway["livenessProbe"]["httpGet"]["path"] == "/healthz" in always_on
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/readyz" in always_on
    worker = _of_kind("Deployment")["callgate-worker"]["spec"]["template"]["spec"]["containers"][0]
    assert worker["ports"][0]["containerPort"] == int(config["CALLGATE_WORKER_METRICS_PORT"])
    assert worker["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for deployment in _of_kind("Deployment").values():
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert int(annotations["prometheus.io/port"]) == container["ports"][0]["containerPort"]


def test_every_pod_is_non_root_with_requests() -> None:
    for name, spec in _pod_specs():
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        for container in spec["containers"]:
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), name
            assert container["securityContext"]["allowPrivilegeEscalation"] is False, name


def test_selectors_match_the_pods() -> None:
    deployments = _of_kind("Deployment")
    labels = {name: d["spec"]["template"]["metadata"]["labels"] for name, d in deployments.items()}

    def selects(selector: dict[str, str]) -> set[str]:
        return {name for name, pod in labels.items() if selector.items() <= pod.items()}

    for name, deployment in deployments.items():
        assert selects(deployment["spec"]["selector"]["matchLabels"]) == {name}
    for service in _of_kind("Service").values():
        assert len(selects(service["spec"]["selector"])) == 1
    pdbs = _of_kind("PodDisruptionBudget")
    assert {n for pdb in pdbs.values() for n in selects(pdb["spec"]["selector"]["matchLabels"])} == set(deployments)


def test_gateway_has_an_hpa_and_workers_a_keda_scaler_on_queue_metrics() -> None:
    hpa = _of_kind("HorizontalPodAutoscaler")["callgate-gateway"]["spec"]
    assert hpa["scaleTargetRef"]["name"] == "callgate-gateway" and _verb("callgate-gateway") == "gateway"
    assert hpa["minReplicas"] >= 2
    scaled = _of_kind("ScaledObject")["callgate-worker"]["spec"]
    assert scaled["scaleTargetRef"]["name"] == "callgate-worker" and _verb("callgate-worker") == "worker"
    queries = [t["metadata"]["query"] for t in scaled["triggers"] if t["type"] == "prometheus"]
    assert {q: check_promql(q) for q in queries} == {q: [] for q in queries}
    joined = " ".join(queries)
    assert "callgate_queue_depth" in joined and "callgate_queue_oldest_age_seconds" in joined


def test_graceful_shutdown_fits_the_grace_periods() -> None:
    config = _config()
    gateway = _of_kind("Deployment")["callgate-gateway"]["spec"]["template"]["spec"]
    assert gateway["terminationGracePeriodSeconds"] > 30 + 5  # 30 s drain (callgate.cli) + preStop
    worker = _of_kind("Deployment")["callgate-worker"]["spec"]["template"]["spec"]
    assert worker["terminationGracePeriodSeconds"] > int(config["CALLGATE_JOB_TIMEOUT_SECONDS"])


def test_k8s_scrape_config_sets_the_labels_alerts_rely_on() -> None:
    config = load_yaml(K8S / "prometheus-scrape.yml")
    targets = {r.get("target_label") for job in config["scrape_configs"] for r in job["relabel_configs"]}
    assert {"component", "job", "namespace", "__address__", "__metrics_path__"} <= targets


def test_manifests_match_the_kubernetes_schemas() -> None:
    validate = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is in the test extras")
    checked = 0
    for resource in _resources():
        if resource["apiVersion"].startswith("keda.sh/"):
            continue  # a CRD: no bundled schema; its fields are checked above
        validate.validate(resource, "1.30", strict=True)
        checked += 1
    assert checked >= 10
