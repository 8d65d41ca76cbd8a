"""Reading deploy/k8s for the tests: documents, pod templates, containers, environments."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
K8S_DIR = REPO / "deploy" / "k8s"
# The Kubernetes releases the manifests are validated against (kubernetes-validate's
# strict schemas): the oldest still common on managed clusters to the newest packaged.
K8S_VERSIONS = ("1.33.0", "1.35.0", "1.37.0")
# The one whose definitions the RayService's pod templates are checked with.
K8S_VERSION = "1.35.0"
# Kinds whose objects live in a namespace (everything here but Namespace).
CLUSTER_SCOPED = {"Namespace"}


@dataclass(frozen=True)
class Doc:
    """One YAML document of deploy/k8s."""

    file: str
    body: dict[str, Any]

    @property
    def kind(self) -> str:
        """The object's kind."""
        return str(self.body["kind"])

    @property
    def name(self) -> str:
        """metadata.name."""
        return str(self.body["metadata"]["name"])

    @property
    def namespace(self) -> str | None:
        """metadata.namespace (None for cluster-scoped kinds)."""
        return self.body["metadata"].get("namespace")

    @property
    def id(self) -> str:
        """``file:Kind/namespace/name``, for test ids and messages."""
        return f"{self.file}:{self.kind}/{self.namespace or '-'}/{self.name}"


@dataclass(frozen=True)
class PodTemplate:
    """A pod template inside a workload (or a RayService group)."""

    owner: Doc
    where: str
    labels: Mapping[str, str]
    spec: dict[str, Any]

    @property
    def namespace(self) -> str | None:
        """The namespace the pods run in."""
        return self.owner.namespace

    def containers(self, init: bool = True) -> list[dict[str, Any]]:
        """The containers (and init containers)."""
        found = list(self.spec.get("containers", []))
        if init:
            found += list(self.spec.get("initContainers", []))
        return found


def load_docs(directory: Path = K8S_DIR) -> list[Doc]:
    """Every non-empty document of every ``*.yaml`` file but the kustomization."""
    docs = []
    for path in sorted(directory.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for body in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if body:
                docs.append(Doc(path.name, body))
    return docs


def find(docs: list[Doc], kind: str, name: str, namespace: str | None = None) -> Doc:
    """The one document of this kind and name (and namespace, when given)."""
    hits = [
        d
        for d in docs
        if d.kind == kind and d.name == name and (namespace is None or d.namespace == namespace)
    ]
    assert len(hits) == 1, f"expected one {kind} {name!r}, found {len(hits)}"
    return hits[0]


def pod_templates(docs: list[Doc]) -> Iterator[PodTemplate]:
    """The pod templates of Deployments, DaemonSets, StatefulSets and RayServices."""
    for d in docs:
        if d.kind in {"Deployment", "DaemonSet", "StatefulSet"}:
            t = d.body["spec"]["template"]
            yield PodTemplate(d, "template", t["metadata"].get("labels", {}), t["spec"])
        elif d.kind == "RayService":
            cluster = d.body["spec"]["rayClusterConfig"]
            head = cluster["headGroupSpec"]["template"]
            yield PodTemplate(d, "head", head["metadata"].get("labels", {}), head["spec"])
            for group in cluster.get("workerGroupSpecs", []):
                t = group["template"]
                yield PodTemplate(
                    d, f"group {group['groupName']}", t["metadata"].get("labels", {}), t["spec"]
                )


def template_of(docs: list[Doc], kind: str, name: str) -> PodTemplate:
    """The pod template of one workload."""
    hits = [t for t in pod_templates(docs) if t.owner.kind == kind and t.owner.name == name]
    assert len(hits) == 1, f"expected one pod template in {kind} {name!r}"
    return hits[0]


def container(template: PodTemplate, name: str) -> dict[str, Any]:
    """One container of a pod template, by name."""
    for c in template.containers():
        if c["name"] == name:
            return c
    raise KeyError(f"{template.owner.id} has no container {name!r}")


def selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """Whether an equality selector matches these labels."""
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def object_data(doc: Doc) -> dict[str, str]:
    """The key/value data of a ConfigMap or Secret (stringData and data together)."""
    out: dict[str, str] = {}
    out.update(doc.body.get("data") or {})
    out.update(doc.body.get("stringData") or {})
    return out


def container_env(
    docs: list[Doc],
    template: PodTemplate,
    ctr: dict[str, Any],
    *,
    secret_value: Any = None,
    base: Mapping[str, str] | None = None,
    pod_name: str = "gwm-worker-5d8f7c9b6d-x7k2q",
) -> dict[str, str]:
    """The container's environment as Kubernetes builds it.

    ``base`` (the image's ENV) first, then ``envFrom`` in order, then ``env``.
    ``secret_value(secret, key, shipped)`` gives each Secret value (default: as
    shipped); ``metadata.name`` field refs read ``pod_name``.
    """
    env: dict[str, str] = dict(base or {})
    ns = template.namespace

    def secret(name: str, key: str, shipped: str) -> str:
        return shipped if secret_value is None else str(secret_value(name, key, shipped))

    for src in ctr.get("envFrom", []):
        if "configMapRef" in src:
            env.update(object_data(find(docs, "ConfigMap", src["configMapRef"]["name"], ns)))
        if "secretRef" in src:
            name = src["secretRef"]["name"]
            for key, value in object_data(find(docs, "Secret", name, ns)).items():
                env[key] = secret(name, key, value)
    for item in ctr.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
            continue
        ref = item.get("valueFrom", {})
        if "configMapKeyRef" in ref:
            r = ref["configMapKeyRef"]
            env[item["name"]] = object_data(find(docs, "ConfigMap", r["name"], ns))[r["key"]]
        elif "secretKeyRef" in ref:
            r = ref["secretKeyRef"]
            hits = [d for d in docs if d.kind == "Secret" and d.name == r["name"]]
            hits = [d for d in hits if d.namespace == ns]
            if not hits and r.get("optional"):
                continue
            shipped = object_data(find(docs, "Secret", r["name"], ns))[r["key"]]
            env[item["name"]] = secret(r["name"], r["key"], shipped)
        elif "fieldRef" in ref:
            path = ref["fieldRef"]["fieldPath"]
            env[item["name"]] = {"metadata.name": pod_name, "status.hostIP": "10.0.0.7"}[path]
    return env


def config_refs(spec: dict[str, Any]) -> Iterator[tuple[str, str, str | None, bool]]:
    """Every ConfigMap/Secret a pod spec names: (kind, name, key or None, optional)."""
    for ctr in list(spec.get("containers", [])) + list(spec.get("initContainers", [])):
        for src in ctr.get("envFrom", []):
            if "configMapRef" in src:
                r = src["configMapRef"]
                yield "ConfigMap", r["name"], None, bool(r.get("optional"))
            if "secretRef" in src:
                r = src["secretRef"]
                yield "Secret", r["name"], None, bool(r.get("optional"))
        for item in ctr.get("env", []):
            ref = item.get("valueFrom", {})
            if "configMapKeyRef" in ref:
                r = ref["configMapKeyRef"]
                yield "ConfigMap", r["name"], r["key"], bool(r.get("optional"))
            if "secretKeyRef" in ref:
                r = ref["secretKeyRef"]
                yield "Secret", r["name"], r["key"], bool(r.get("optional"))
    for vol in spec.get("volumes", []):
        if "configMap" in vol:
            yield (
                "ConfigMap",
                vol["configMap"]["name"],
                None,
                bool(vol["configMap"].get("optional")),
            )
        if "secret" in vol:
            s = vol["secret"]
            yield "Secret", s["secretName"], None, bool(s.get("optional"))
        for src in vol.get("projected", {}).get("sources", []):
            if "configMap" in src:
                yield (
                    "ConfigMap",
                    src["configMap"]["name"],
                    None,
                    bool(src["configMap"].get("optional")),
                )
            if "secret" in src:
                yield "Secret", src["secret"]["name"], None, bool(src["secret"].get("optional"))


def port_names(ctr: dict[str, Any]) -> dict[str, int]:
    """A container's named ports."""
    return {p["name"]: int(p["containerPort"]) for p in ctr.get("ports", []) if "name" in p}


def resolve_port(ctr: dict[str, Any], port: int | str) -> int | None:
    """A probe's or Service's port (name or number) as a declared container port number."""
    if isinstance(port, str):
        return port_names(ctr).get(port)
    declared = {int(p["containerPort"]) for p in ctr.get("ports", [])}
    return port if port in declared else None
