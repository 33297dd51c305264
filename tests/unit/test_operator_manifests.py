"""GitOps manifests: the operator's objects and its hub role (the CRD: test_codespace_crd.py).

- ``config/helm/operator.yaml``: every object is schema-valid, the Role holds exactly what
  kopf needs (nothing on Secrets, nothing cluster-scoped) and the container's command parses
  with kopf's own CLI.
- ``config/helm/values.yaml``: the commented codespace-operator block is YAML once
  uncommented, and its role has exactly the minimum scopes.
"""

from __future__ import annotations

import urllib.parse

import yaml
from jupyterhub.scopes import expand_scopes, scope_definitions
from kopf.cli import run as kopf_run

from tests.conftest import REPO_ROOT
from tests.helpers.k8s_schema import assert_valid

HELM = REPO_ROOT / "config" / "helm"
CRD = yaml.safe_load((HELM / "codespace-crd.yaml").read_text(encoding="utf-8"))
OPERATOR = list(yaml.safe_load_all((HELM / "operator.yaml").read_text(encoding="utf-8")))
BY_KIND = {doc["kind"]: doc for doc in OPERATOR}
VALUES_TEXT = (HELM / "values.yaml").read_text(encoding="utf-8")
BEGIN, END = "# >>> codespace-operator", "# <<< codespace-operator"

MINIMUM_SCOPES = {"admin:users", "start:servers", "read:servers", "delete:servers"}


# -- the operator's objects ------------------------------------------------------------


def test_operator_objects_are_valid():
    assert [doc["kind"] for doc in OPERATOR] == [
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "Deployment",
    ]
    for doc in OPERATOR:
        assert_valid(doc)
        assert doc["metadata"]["name"] == "codespace-operator"
        assert "namespace" not in doc["metadata"]  # kubectl apply -n <namespace>


def _granted(role: dict) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_the_role_grants_what_kopf_needs_and_nothing_else():
    granted = _granted(BY_KIND["Role"])
    group, plural = CRD["spec"]["group"], CRD["spec"]["names"]["plural"]
    assert granted == {
        *((group, plural, verb) for verb in ("get", "list", "watch", "patch", "update")),
        *((group, f"{plural}/status", verb) for verb in ("get", "patch", "update")),
        ("", "events", "create"),
    }
    assert (group, f"{plural}/status", "patch") in granted
    assert ("", "events", "create") in granted
    assert not any(resource.startswith("secrets") for _, resource, _ in granted)
    assert not any("*" in part for grant in granted for part in grant)
    # scanning is off and peering is --standalone: no CRDs, namespaces or KopfPeerings
    assert not any(g in ("apiextensions.k8s.io", "kopf.dev", "zalando.org") for g, _, _ in granted)
    assert "ClusterRole" not in BY_KIND and "ClusterRoleBinding" not in BY_KIND
    binding = BY_KIND["RoleBinding"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": BY_KIND["Role"]["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": BY_KIND["ServiceAccount"]["metadata"]["name"]}
    ]


DEPLOYMENT = BY_KIND["Deployment"]
POD = DEPLOYMENT["spec"]["template"]["spec"]
CONTAINER = POD["containers"][0]


def test_the_command_parses_with_kopfs_cli():
    command = CONTAINER["command"]
    assert command[:2] == ["kopf", "run"]
    params = kopf_run.make_context("run", command[2:]).params
    assert params["standalone"] is True
    assert params["namespaces"] == ("$(POD_NAMESPACE)",)
    assert params["clusterwide"] is False
    assert params["modules"] == ("hub.operator.app",)
    assert params["paths"] == ()
    liveness = urllib.parse.urlsplit(params["liveness_endpoint"])
    assert (liveness.scheme, liveness.hostname) == ("http", "0.0.0.0")
    probe = CONTAINER["livenessProbe"]["httpGet"]
    ports = {p["name"]: p["containerPort"] for p in CONTAINER["ports"]}
    assert probe["path"] == liveness.path == "/healthz"
    assert ports[probe["port"]] == liveness.port == 8080
    # $(POD_NAMESPACE) is expanded by the kubelet from the container's env
    env = {e["name"]: e for e in CONTAINER["env"]}
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}


def test_the_deployment_runs_one_hardened_operator_with_the_hub_image():
    spec = DEPLOYMENT["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    # the chart's hub network policy admits pods with this label
    assert labels["hub.jupyter.org/network-access-hub"] == "true"
    assert POD["serviceAccountName"] == BY_KIND["ServiceAccount"]["metadata"]["name"]
    values = yaml.safe_load(VALUES_TEXT)
    hub_image = values["hub"]["image"]
    assert CONTAINER["image"] == f"{hub_image['name']}:{hub_image['tag']}"
    env = {e["name"]: e for e in CONTAINER["env"]}
    assert env["CODESPACE_HUB_API_URL"]["value"] == "http://hub:8081/hub/api"
    assert env["CODESPACE_OPERATOR_TOKEN"]["valueFrom"] == {
        "secretKeyRef": {"name": "codespace-operator", "key": "token"}
    }
    security = CONTAINER["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert POD["securityContext"]["runAsNonRoot"] is True
    assert POD["securityContext"]["runAsUser"] != 0
    requests = CONTAINER["resources"]["requests"]
    assert requests == {"cpu": "50m", "memory": "128Mi"}


# -- the values.yaml block -------------------------------------------------------------


def _block() -> tuple[int, int, str]:
    lines = VALUES_TEXT.splitlines()
    begin = [i for i, line in enumerate(lines) if line.strip() == BEGIN]
    end = [i for i, line in enumerate(lines) if line.strip() == END]
    assert len(begin) == 1 and len(end) == 1 and begin[0] < end[0], "markers not found once"
    indent = lines[begin[0]][: len(lines[begin[0]]) - len(lines[begin[0]].lstrip())]
    return begin[0], end[0], indent


def _uncommented() -> list[str]:
    """values.yaml with the block between the markers uncommented."""
    lines = VALUES_TEXT.splitlines()
    begin, end, indent = _block()
    for index in range(begin + 1, end):
        line = lines[index]
        assert line.startswith(f"{indent}# "), f"line {index + 1} is not commented: {line!r}"
        lines[index] = indent + line[len(indent) + 2 :]
    return lines


def test_the_operator_block_is_off_by_default():
    values = yaml.safe_load(VALUES_TEXT)
    assert "services" not in values["hub"]
    assert "loadRoles" not in values["hub"]


def test_the_operator_block_parses_when_uncommented():
    begin, end, indent = _block()
    assert indent == "  "  # under hub:
    block = yaml.safe_load(
        "\n".join(line[len(indent) :] for line in _uncommented()[begin + 1 : end])
    )
    assert block["services"] == {"codespace-operator": {"apiToken": "<the token>"}}
    role = block["loadRoles"]["codespace-operator"]
    assert role["services"] == ["codespace-operator"]
    # and in place, under hub:
    values = yaml.safe_load("\n".join(_uncommented()))
    assert values["hub"]["services"] == block["services"]
    assert values["hub"]["loadRoles"] == block["loadRoles"]
    assert values["hub"]["image"]["name"] == "ghcr.io/codespace-hub/hub"  # still the hub


def test_the_operator_role_has_exactly_the_minimum_scopes():
    begin, end, _ = _block()
    values = yaml.safe_load("\n".join(_uncommented()))
    scopes = values["hub"]["loadRoles"]["codespace-operator"]["scopes"]
    assert len(scopes) == len(set(scopes))
    assert set(scopes) == MINIMUM_SCOPES
    assert MINIMUM_SCOPES <= scope_definitions.keys()
    expanded = expand_scopes(scopes)
    # never the servers' state, tokens, groups, the proxy or shutdown
    for forbidden in ("admin:server_state", "admin:servers", "tokens", "read:tokens"):
        assert forbidden not in expanded
    assert not any(s.startswith(("groups", "admin:groups", "proxy", "shutdown")) for s in expanded)
    # each scope line says why it is there
    block = _uncommented()[begin + 1 : end]
    for scope in scopes:
        (line,) = [line for line in block if line.strip().startswith(f"- {scope} ")]
        assert "#" in line, line
