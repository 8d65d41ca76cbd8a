"""deploy/k8s: every document valid for Kubernetes (strict schemas), the RayService
valid for KubeRay's CRD, and the pieces consistent with each other and with the
application's own config (loaded through streaming.config.load_config).
"""

from __future__ import annotations

import copy
import importlib.util
import ipaddress
import json
import re
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
import referencing
import yaml

from gwm_avatars.cli import COMMANDS, build_parser
from streaming.auth import public_bind_refusal
from streaming.config import AppConfig, ConfigError, load_config
from tests.deploy import dockerfile
from tests.deploy.conftest import pinned
from tests.deploy.manifests import (
    CLUSTER_SCOPED,
    K8S_DIR,
    K8S_VERSION,
    K8S_VERSIONS,
    REPO,
    Doc,
    PodTemplate,
    config_refs,
    container,
    container_env,
    find,
    load_docs,
    object_data,
    pod_templates,
    resolve_port,
    selects,
    template_of,
)

NS = "gwm-avatars"
RAYSERVICE_SCHEMA = Path(__file__).parent / "schemas" / "rayservice.json"
# Stand-ins for the Secrets, which ship empty: what an operator would put there.
FILLED = {
    ("gwm-worker", "GWM_SERVER__API_KEYS"): "key-one,key-two",
    ("gwm-worker", "GWM_SERVER__TOKEN_SECRET"): "0123456789abcdef0123456789abcdef",
    ("gwm-worker", "GWM_SERVER__DATABASE_URL"): "postgresql://gwm:pw@db.internal:5432/gwm",
    ("gwm-turn", "static-auth-secret"): "a-turn-secret",
    ("gwm-llm", "api-key"): "an-llm-key",
}


def filled(secret: str, key: str, shipped: str) -> str:
    """The value an operator fills in for one Secret key."""
    return FILLED[(secret, key)]


# --- loading --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rayservice_validator() -> jsonschema.protocols.Validator:
    """Our RayService schema, with the strict Kubernetes definitions it refers to."""
    root = files("kubernetes_validate") / "kubernetes-json-schema" / f"v{K8S_VERSION}-local-strict"
    definitions = json.loads((root / "_definitions.json").read_text(encoding="utf-8"))
    schema = json.loads(RAYSERVICE_SCHEMA.read_text(encoding="utf-8"))
    registry: referencing.Registry[Any] = referencing.Registry().with_resources(
        [
            (definitions["$id"], referencing.Resource.from_contents(definitions)),
            (schema["$id"], referencing.Resource.from_contents(schema)),
        ]
    )
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, registry=registry)


def validate(doc: dict[str, Any], ray: jsonschema.protocols.Validator) -> None:
    """Validate one object: Kubernetes kinds strictly, the RayService with our schema."""
    if doc["kind"] == "RayService":
        ray.validate(doc)
    else:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def worker_config(
    docs: list[Doc],
    gpu_env: dict[str, str],
    secret_value: Callable[[str, str, str], str] = filled,
) -> AppConfig:
    """The worker's config as its container would load it (args, image ENV, ConfigMap,
    Secrets as ``secret_value`` gives them, the pod name)."""
    t = template_of(docs, "Deployment", "gwm-worker")
    ctr = container(t, "worker")
    env = container_env(docs, t, ctr, secret_value=secret_value, base=gpu_env)
    args = build_parser(ctr["args"]).parse_args(ctr["args"])
    assert args.command == "serve"
    return load_config(args.config, overrides=args.overrides, environ=env)


@pytest.fixture(scope="module")
def gpu_env(gpu_image: dockerfile.Dockerfile) -> dict[str, str]:
    """The GWM_* variables the worker image sets itself."""
    return {k: v for k, v in gpu_image.final.env().items() if k.startswith("GWM_")}


@pytest.fixture(scope="module")
def worker(docs: list[Doc], gpu_env: dict[str, str]) -> AppConfig:
    """The worker's effective config."""
    return worker_config(docs, gpu_env)


@pytest.fixture(scope="module")
def serve_config(docs: list[Doc]) -> dict[str, Any]:
    """The RayService's serveConfigV2, parsed."""
    text = find(docs, "RayService", "gwm-serving").body["spec"]["serveConfigV2"]
    parsed: dict[str, Any] = yaml.safe_load(text)
    return parsed


# --- schemas --------------------------------------------------------------------------


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    listed = kustomization["resources"]
    on_disk = sorted(p.name for p in K8S_DIR.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(listed) == on_disk and len(set(listed)) == len(listed)


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize(
    "doc", [d for d in load_docs() if d.kind != "RayService"], ids=lambda d: d.id
)
def test_document_is_valid_kubernetes(doc: Doc, version: str) -> None:
    kubernetes_validate.validate(doc.body, version, strict=True)


def test_rayservice_is_valid_for_its_crd(
    docs: list[Doc], rayservice_validator: jsonschema.protocols.Validator
) -> None:
    (rayservice,) = [d for d in docs if d.kind == "RayService"]
    rayservice_validator.validate(rayservice.body)


def _set(obj: dict[str, Any], path: list[Any], key: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    node: Any = out
    for p in path:
        node = node[p]
    node[key] = value
    return out


@pytest.mark.parametrize(
    ("kind", "name", "path", "key"),
    [
        # a misspelt container field
        (
            "Deployment",
            "gwm-worker",
            ["spec", "template", "spec", "containers", 0],
            "imagePullPolcy",
        ),
        # a misspelt worker-group field, and one inside the embedded pod template
        (
            "RayService",
            "gwm-serving",
            ["spec", "rayClusterConfig", "workerGroupSpecs", 0],
            "maxReplica",
        ),
        (
            "RayService",
            "gwm-serving",
            ["spec", "rayClusterConfig", "headGroupSpec", "template", "spec", "containers", 0],
            "resource",
        ),
    ],
)
def test_validation_is_strict(
    docs: list[Doc],
    rayservice_validator: jsonschema.protocols.Validator,
    kind: str,
    name: str,
    path: list[Any],
    key: str,
) -> None:
    broken = _set(find(docs, kind, name).body, path, key, "x")
    with pytest.raises(jsonschema.ValidationError):
        validate(broken, rayservice_validator)


def test_rayservice_schema_checks_types(
    docs: list[Doc], rayservice_validator: jsonschema.protocols.Validator
) -> None:
    body = find(docs, "RayService", "gwm-serving").body
    path = ["spec", "rayClusterConfig", "headGroupSpec"]
    with pytest.raises(jsonschema.ValidationError):  # rayStartParams values are strings
        rayservice_validator.validate(_set(body, path, "rayStartParams", {"num-cpus": 0}))
    bad = _set(body, ["spec"], "upgradeStrategy", {"type": "BlueGreen"})
    with pytest.raises(jsonschema.ValidationError):
        rayservice_validator.validate(bad)


# --- cross-references -----------------------------------------------------------------


def test_namespaces_exist(docs: list[Doc]) -> None:
    defined = {d.name for d in docs if d.kind == "Namespace"}
    for d in docs:
        if d.kind in CLUSTER_SCOPED:
            continue
        assert d.namespace in defined, f"{d.id}: namespace not defined in deploy/k8s"


def test_every_referenced_configmap_and_secret_exists(docs: list[Doc]) -> None:
    have = {
        (d.kind, d.namespace, d.name): object_data(d)
        for d in docs
        if d.kind in {"ConfigMap", "Secret"}
    }
    for t in pod_templates(docs):
        for kind, name, key, optional in config_refs(t.spec):
            data = have.get((kind, t.namespace, name))
            if data is None:
                assert optional, f"{t.owner.id} ({t.where}): {kind} {name} is missing"
                continue
            assert key is None or key in data, f"{t.owner.id}: {kind} {name} has no key {key}"
    for ing in (d for d in docs if d.kind == "Ingress"):
        for tls in ing.body["spec"].get("tls", []):
            # A TLS Secret comes from cert-manager, which the Ingress must ask for.
            if ("Secret", ing.namespace, tls["secretName"]) not in have:
                assert "cert-manager.io/cluster-issuer" in ing.body["metadata"]["annotations"]


def test_secrets_ship_empty(docs: list[Doc]) -> None:
    for d in docs:
        if d.kind == "Secret":
            assert "data" not in d.body, f"{d.id}: use stringData with empty values"
            values = object_data(d)
            assert values and all(v == "" for v in values.values()), f"{d.id} holds a value"


def test_services_reach_declared_container_ports(docs: list[Doc]) -> None:
    for svc in (d for d in docs if d.kind == "Service"):
        selector = svc.body["spec"]["selector"]
        pods = [
            t
            for t in pod_templates(docs)
            if t.namespace == svc.namespace and selects(selector, t.labels)
        ]
        assert pods, f"{svc.id} selects no pod"
        for t in pods:
            for port in svc.body["spec"]["ports"]:
                target = port.get("targetPort", port["port"])
                assert any(resolve_port(c, target) for c in t.containers(init=False)), (
                    f"{svc.id}: targetPort {target} is not a port of {t.owner.id}"
                )


def test_probes_use_declared_ports(docs: list[Doc]) -> None:
    for t in pod_templates(docs):
        for c in t.containers(init=False):
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                spec = c.get(probe)
                if spec is None:
                    continue
                action = spec.get("httpGet") or spec.get("tcpSocket")
                assert action, f"{t.owner.id}: {probe} is neither httpGet nor tcpSocket"
                assert resolve_port(c, action["port"]), f"{t.owner.id}: {probe} port"


def test_disruption_budgets_and_autoscaler_point_at_workloads(docs: list[Doc]) -> None:
    for pdb in (d for d in docs if d.kind == "PodDisruptionBudget"):
        sel = pdb.body["spec"]["selector"]["matchLabels"]
        assert any(
            t.namespace == pdb.namespace and selects(sel, t.labels) for t in pod_templates(docs)
        ), f"{pdb.id} selects nothing"
    for hpa in (d for d in docs if d.kind == "HorizontalPodAutoscaler"):
        ref = hpa.body["spec"]["scaleTargetRef"]
        target = find(docs, ref["kind"], ref["name"], hpa.namespace)
        # The autoscaler owns replicas; a value in the manifest would fight it.
        assert "replicas" not in target.body["spec"], f"{target.id} sets replicas"


def test_images_are_pinned(docs: list[Doc], pyproject: dict[str, Any]) -> None:
    version = pyproject["project"]["version"]
    ours = {}
    for t in pod_templates(docs):
        for c in t.containers():
            image = c["image"]
            repo, _, tag = image.rpartition(":")
            assert repo and "/" not in tag and tag != "latest", f"{t.owner.id}: {image}"
            if repo.endswith("/gwm-avatars"):
                ours[(t.owner.name, t.where)] = tag
    # The project's images carry the project's version: the CPU one for the router,
    # the GPU one (with Ray) for the workers and both Ray groups.
    assert ours[("gwm-router", "template")] == version
    for key in [("gwm-worker", "template"), ("gwm-serving", "head"), ("gwm-serving", "group gpu")]:
        assert ours[key] == f"{version}-gpu", key


def test_pods_are_locked_down(docs: list[Doc]) -> None:
    for t in pod_templates(docs):
        pod = t.spec.get("securityContext", {})
        assert pod.get("runAsNonRoot") is True, t.owner.id
        assert pod.get("seccompProfile", {}).get("type") == "RuntimeDefault", t.owner.id
        assert t.spec.get("automountServiceAccountToken") is False, t.owner.id
        for c in t.containers():
            sc = c.get("securityContext", {})
            assert sc.get("allowPrivilegeEscalation") is False, (t.owner.id, c["name"])
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], (t.owner.id, c["name"])
            assert "memory" in c.get("resources", {}).get("limits", {}), (t.owner.id, c["name"])
        if t.spec.get("hostNetwork"):
            ns = find(docs, "Namespace", str(t.namespace))
            assert (
                ns.body["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
            )
            assert t.namespace != NS, "host-network pods stay out of the service's namespace"


def test_our_read_only_containers_can_write_where_the_image_writes(
    docs: list[Doc], gpu_image: dockerfile.Dockerfile, cpu_image: dockerfile.Dockerfile
) -> None:
    for t in pod_templates(docs):
        for c in t.containers(init=False):
            if "/gwm-avatars:" not in c["image"]:
                continue
            image = gpu_image if c["image"].endswith("-gpu") else cpu_image
            if not c["securityContext"].get("readOnlyRootFilesystem"):
                continue
            mounts = [m["mountPath"] for m in c.get("volumeMounts", [])]
            env = image.final.env()
            for path in (env["HOME"], env["XDG_CACHE_HOME"], env["MPLCONFIGDIR"], "/tmp"):
                if t.owner.name == "gwm-router" and path.startswith(env["HOME"]):
                    continue  # the router loads no model and prepares no avatar
                assert any(path == m or path.startswith(m + "/") for m in mounts), (
                    f"{t.owner.id}: {path} is on the read-only root filesystem"
                )


def test_gpus_are_requested(docs: list[Doc]) -> None:
    def gpus(t: PodTemplate) -> int:
        total = 0
        for c in t.containers(init=False):
            res = c.get("resources", {})
            limit = int(res.get("limits", {}).get("nvidia.com/gpu", 0))
            request = res.get("requests", {}).get("nvidia.com/gpu")
            assert request is None or int(request) == limit, "GPU requests must equal limits"
            total += limit
        return total

    assert gpus(template_of(docs, "Deployment", "gwm-worker")) == 1
    assert gpus(template_of(docs, "Deployment", "vllm")) == 1
    ray = [t for t in pod_templates(docs) if t.owner.kind == "RayService"]
    assert [gpus(t) for t in ray] == [0, 1]  # head: none; the GPU worker group: one each
    assert gpus(template_of(docs, "Deployment", "gwm-router")) == 0


# --- the worker -----------------------------------------------------------------------


def test_worker_env_is_a_valid_config(worker: AppConfig, docs: list[Doc]) -> None:
    t = template_of(docs, "Deployment", "gwm-worker")
    ctr = container(t, "worker")
    port = {p["name"]: p["containerPort"] for p in ctr["ports"]}["http"]
    assert worker.server.host == "0.0.0.0" and worker.server.port == port
    # The pod name is the worker id, and a Deployment pod name fits its pattern.
    assert worker.server.worker_id == "gwm-worker-5d8f7c9b6d-x7k2q"
    assert public_bind_refusal(worker.server) is None
    assert worker.render.device == "cuda"  # the gpu profile


def test_worker_fails_closed_until_secrets_are_filled(
    docs: list[Doc], gpu_env: dict[str, str]
) -> None:
    try:
        config = worker_config(docs, gpu_env, secret_value=lambda s, k, shipped: shipped)
    except ConfigError:
        return
    assert public_bind_refusal(config.server), "an unconfigured worker would serve without keys"


def test_worker_outlives_its_longest_session(worker: AppConfig, docs: list[Doc]) -> None:
    spec = template_of(docs, "Deployment", "gwm-worker").spec
    grace = spec["terminationGracePeriodSeconds"]
    s = worker.server
    assert grace > s.max_session_s + s.drain_timeout_s
    assert grace > s.drain_grace_s + s.drain_timeout_s
    # Draining lets sessions end on their own for as long as a session may last.
    assert s.drain_grace_s >= s.max_session_s
    # TURN credentials outlive a session too (coturn will not refresh them after).
    assert worker.ice.turn_ttl_s > s.max_session_s


def test_worker_probes(docs: list[Doc]) -> None:
    ctr = container(template_of(docs, "Deployment", "gwm-worker"), "worker")
    assert ctr["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert ctr["livenessProbe"]["httpGet"]["path"] == "/healthz"
    startup = ctr["startupProbe"]
    assert startup["httpGet"]["path"] == "/healthz"
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300


def test_headless_service_keeps_full_workers_reachable(docs: list[Doc]) -> None:
    svc = find(docs, "Service", "gwm-workers", NS).body["spec"]
    assert svc["clusterIP"] == "None" and svc["publishNotReadyAddresses"] is True


def test_avatar_uploads_are_shared(worker: AppConfig, docs: list[Doc]) -> None:
    t = template_of(docs, "Deployment", "gwm-worker")
    mounts = {m["mountPath"]: m["name"] for m in container(t, "worker")["volumeMounts"]}
    volume = next(
        v for v in t.spec["volumes"] if v["name"] == mounts[str(worker.server.avatars_dir)]
    )
    claim = find(docs, "PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"], NS)
    assert "ReadWriteMany" in claim.body["spec"]["accessModes"]


def test_autoscaler_targets_fewer_sessions_than_a_worker_holds(
    worker: AppConfig, docs: list[Doc]
) -> None:
    hpa = find(docs, "HorizontalPodAutoscaler", "gwm-worker", NS).body["spec"]
    (metric,) = hpa["metrics"]
    assert metric["pods"]["metric"]["name"] == "gwm_active_sessions"
    target = float(metric["pods"]["target"]["averageValue"])
    assert 0 < target < worker.server.max_sessions
    assert 1 <= hpa["minReplicas"] < hpa["maxReplicas"]


def test_worker_finds_vllm(worker: AppConfig, docs: list[Doc]) -> None:
    assert worker.llm.backend == "openai"
    url = urlsplit(worker.llm.openai.base_url)
    svc = find(docs, "Service", "vllm", NS)
    assert url.hostname == f"vllm.{NS}.svc.cluster.local" and url.path == "/v1"
    assert url.port == svc.body["spec"]["ports"][0]["port"]
    args = container(template_of(docs, "Deployment", "vllm"), "vllm")["args"]
    assert worker.llm.openai.model == args[args.index("--served-model-name") + 1]


def test_worker_finds_ray_serve(
    worker: AppConfig, docs: list[Doc], serve_config: dict[str, Any]
) -> None:
    ray = worker.serving.ray
    assert worker.serving.backend == "ray" and ray.deploy is False
    url = urlsplit(str(ray.address))
    rayservice = find(docs, "RayService", "gwm-serving", NS)
    assert url.scheme == "ray" and url.port == 10001
    assert url.hostname == f"{rayservice.name}-head-svc.{NS}.svc.cluster.local"
    head = rayservice.body["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]
    assert 10001 in {p["containerPort"] for p in head["containers"][0]["ports"]}
    (app,) = serve_config["applications"]
    assert app["name"] == ray.app_name


def coturn_conf(text: str) -> list[str]:
    """The directives of a turnserver.conf (comments and blank lines dropped)."""
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]


def coturn_settings(docs: list[Doc]) -> dict[str, list[str]]:
    """The coturn ConfigMap's directives, by name."""
    out: dict[str, list[str]] = {}
    text = object_data(find(docs, "ConfigMap", "coturn", "gwm-turn"))["turnserver.conf"]
    for line in coturn_conf(text):
        key, _, value = line.partition("=")
        out.setdefault(key, []).append(value)
    return out


def test_coturn_config_follows_the_reference(docs: list[Doc]) -> None:
    reference = coturn_conf((REPO / "deploy" / "coturn" / "turnserver.conf").read_text())
    text = object_data(find(docs, "ConfigMap", "coturn", "gwm-turn"))["turnserver.conf"]
    ours = coturn_conf(text)
    # Left out in Kubernetes: the per-node public address, and TLS (needs a certificate).
    per_node = ("external-ip=", "tls-listening-port=", "cert=", "pkey=", "no-tlsv1")
    expected = [d for d in reference if not d.startswith(per_node)] + ["no-tls"]
    assert sorted(ours) == sorted(expected), "deploy/k8s/coturn.yaml drifted from deploy/coturn"
    assert not any(d.startswith("static-auth-secret") for d in ours)


def test_worker_finds_turn(worker: AppConfig, docs: list[Doc]) -> None:
    assert worker.ice.turn_urls and worker.ice.turn_secret is not None
    conf = coturn_settings(docs)
    (port,) = conf["listening-port"]
    for url in worker.ice.turn_urls:
        # turn: only: coturn here has no TLS listener for turns:
        assert re.fullmatch(rf"turn:[a-z0-9.-]+:{port}(\?transport=(udp|tcp))?", url), url
    assert "use-auth-secret" in conf
    # Worker and coturn read the same Secret name and key (one in each namespace).
    turn = [d for d in docs if d.kind == "Secret" and d.name == "gwm-turn"]
    assert {d.namespace for d in turn} == {NS, "gwm-turn"}
    assert len({tuple(sorted(object_data(d))) for d in turn}) == 1
    # Relays may reach the workers' pods, whose proxies (the pod network) workers trust.
    (allowed,) = conf["allowed-peer-ip"]
    low, high = (ipaddress.ip_address(a) for a in allowed.split("-"))
    pods = ipaddress.ip_network(worker.server.trusted_proxies[0])
    assert (low, high) == (pods[0], pods[-1])


# --- the router -----------------------------------------------------------------------


def test_router_env_is_a_valid_config(docs: list[Doc], cpu_image: dockerfile.Dockerfile) -> None:
    assert "route" in COMMANDS, "avatar route is not a command yet"
    t = template_of(docs, "Deployment", "gwm-router")
    ctr = container(t, "router")
    base = {k: v for k, v in cpu_image.final.env().items() if k.startswith("GWM_")}
    env = container_env(docs, t, ctr, base=base)
    args = build_parser(ctr["args"]).parse_args(ctr["args"])
    assert args.command == "route"
    config = load_config(args.config, overrides=args.overrides, environ=env)
    headless = find(docs, "Service", "gwm-workers", NS)
    assert config.router.dns_name == f"{headless.name}.{NS}.svc.cluster.local"
    assert config.router.worker_port == headless.body["spec"]["ports"][0]["port"]
    worker_ctr = container(template_of(docs, "Deployment", "gwm-worker"), "worker")
    assert resolve_port(worker_ctr, config.router.worker_port)
    assert config.server.port == ctr["ports"][0]["containerPort"]
    # Readiness on /healthz: the router's /readyz is 503 whenever every worker is full.
    assert ctr["readinessProbe"]["httpGet"]["path"] == "/healthz"


def test_ingress_routes_to_the_router(docs: list[Doc]) -> None:
    ing = find(docs, "Ingress", "gwm-avatars", NS).body["spec"]
    (rule,) = ing["rules"]
    backend = rule["http"]["paths"][0]["backend"]["service"]
    svc = find(docs, "Service", backend["name"], NS)
    assert backend["port"]["name"] in {p["name"] for p in svc.body["spec"]["ports"]}


# --- Ray Serve ------------------------------------------------------------------------


def test_serve_config_is_valid_for_ray(serve_config: dict[str, Any]) -> None:
    schema = pytest.importorskip("ray.serve.schema", reason="ray[serve] is not installed")
    schema.ServeDeploySchema.model_validate(serve_config)


def test_serve_app_builds_the_workers_stages(
    serve_config: dict[str, Any], worker: AppConfig, docs: list[Doc], pyproject: dict[str, Any]
) -> None:
    (app,) = serve_config["applications"]
    module, _, attr = app["import_path"].partition(":")
    if importlib.util.find_spec(module.rsplit(".", 1)[0]) is None:
        pytest.skip(f"{module} is not in this tree yet (the Ray Serve backend)")
    assert importlib.util.find_spec(module) is not None, f"{module} does not exist"
    ray_app = pytest.importorskip(module, reason="ray[serve] is not installed")
    assert callable(getattr(ray_app, attr))
    config = ray_app.config_from_args(app["args"])
    assert config.serving.ray.stages == worker.serving.ray.stages
    # Every replica fits on one Ray GPU worker.
    group = find(docs, "RayService", "gwm-serving").body["spec"]["rayClusterConfig"][
        "workerGroupSpecs"
    ][0]
    gpus = int(group["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"])
    for stage in config.serving.ray.stages:
        deployment = getattr(config.serving.ray, stage)
        assert 0 < deployment.num_gpus <= gpus, stage
    assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
    cpus = group["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"]
    assert group["rayStartParams"]["num-cpus"] == cpus
    used = sum(getattr(config.serving.ray, s).num_cpus for s in config.serving.ray.stages)
    assert used <= float(cpus), "one replica of each stage does not fit a Ray GPU pod"
    cluster = find(docs, "RayService", "gwm-serving").body["spec"]["rayClusterConfig"]
    assert cluster["rayVersion"] == pinned(
        pyproject["project"]["optional-dependencies"]["ray"], "ray"
    )


# --- vLLM and coturn ------------------------------------------------------------------


def test_vllm_serves_qwen_instruct_on_a_gpu(docs: list[Doc]) -> None:
    t = template_of(docs, "Deployment", "vllm")
    ctr = container(t, "vllm")
    args = ctr["args"]
    model = args[args.index("--model") + 1]
    assert re.fullmatch(r"Qwen/Qwen2\.5-\d+(\.\d+)?B-Instruct", model)
    assert int(args[args.index("--port") + 1]) == ctr["ports"][0]["containerPort"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert ctr[probe]["httpGet"]["path"] == "/health"
    mounts = {m["mountPath"]: m["name"] for m in ctr["volumeMounts"]}
    volumes = {v["name"]: v for v in t.spec["volumes"]}
    assert volumes[mounts["/dev/shm"]]["emptyDir"]["medium"] == "Memory"
    hf_home = next(e["value"] for e in ctr["env"] if e["name"] == "HF_HOME")
    cache = next(v for m, v in mounts.items() if hf_home.startswith(m))
    assert "persistentVolumeClaim" in volumes[cache]
    token = next(e for e in ctr["env"] if e["name"] == "HF_TOKEN")
    assert token["valueFrom"]["secretKeyRef"]["optional"] is True


def test_coturn_is_on_the_host_network(docs: list[Doc]) -> None:
    t = template_of(docs, "DaemonSet", "coturn")
    assert t.spec["hostNetwork"] is True and t.spec["dnsPolicy"] == "ClusterFirstWithHostNet"
    conf = coturn_settings(docs)
    low, high = int(conf["min-port"][0]), int(conf["max-port"][0])
    assert 1024 < low < high <= 65535
    ctr = container(t, "coturn")
    assert ctr["args"][:2] == ["-c", "/run/turn/turnserver.conf"]
    assert {p["containerPort"] for p in ctr["ports"]} == {int(conf["listening-port"][0])}
    # The secret never appears on a command line.
    for c in t.containers():
        for a in c.get("args", []) + c.get("command", []):
            assert "static-auth-secret=$(" not in a


def test_vllm_readme_matches_the_manifests(worker: AppConfig) -> None:
    readme = (REPO / "deploy" / "vllm" / "README.md").read_text(encoding="utf-8")
    assert worker.llm.openai.base_url in readme
    assert worker.llm.openai.model in readme
