"""config/helm: the Helm values, RBAC and example profiles are consistent and schema-valid."""

from __future__ import annotations

import importlib

import pytest
import yaml

from codespace.kube.config import load_config
from codespace.options import UserOptions
from codespace.spec.model import Codespace
from tests.conftest import REPO_ROOT
from tests.helpers.k8s_schema import assert_all_valid, assert_valid
from tests.helpers.plans import kube_plan

HELM = REPO_ROOT / "config" / "helm"
EXAMPLE = load_config(HELM / "codespace-kube.yaml")


def test_example_document_has_one_profile_per_gpu_mode():
    modes = {p.gpu.mode for p in EXAMPLE.profiles if p.gpu}
    assert modes == {"exclusive", "time-slicing", "mig", "hami", "vgpu"}


@pytest.mark.parametrize("profile", [p.name for p in EXAMPLE.profiles])
def test_every_example_profile_plans_valid_objects(profile):
    gpu = None if profile == "cpu" else {"fraction": 0.25}
    codespace = Codespace(apt=["curl"], resources={"gpu": gpu}, datasets=[{"name": "imagenet"}])
    options = UserOptions(repo="https://github.com/org/proj.git", profile=profile)
    plan = kube_plan(codespace, options, EXAMPLE, "e" * 64)
    objects = assert_all_valid(plan.objects())
    assert objects[0]["spec"]["template"]["spec"]["volumes"][1]["secret"]["secretName"] == (
        "codespace-registry-push"
    )
    assert objects[-1]["spec"]["imagePullSecrets"] == [{"name": "codespace-registry-pull"}]


def test_rbac_objects_are_valid_and_cover_jobs_and_fluid():
    documents = list(yaml.safe_load_all((HELM / "rbac.yaml").read_text()))
    for document in documents:
        assert_valid(document)
    role = documents[0]
    groups = {group for rule in role["rules"] for group in rule["apiGroups"]}
    assert {"batch", "data.fluid.io", ""} <= groups
    assert documents[1]["roleRef"]["name"] == role["metadata"]["name"]


def test_helm_values_install_our_spawner_with_the_mounted_document():
    values = yaml.safe_load((HELM / "values.yaml").read_text())
    spawner_path = values["hub"]["config"]["JupyterHub"]["spawner_class"]
    module, _, name = spawner_path.rpartition(".")
    assert getattr(importlib.import_module(module), name).__name__ == "KubeCodespaceSpawner"
    mounted = values["hub"]["extraFiles"]["codespace-kube"]["mountPath"]
    assert values["hub"]["config"]["KubeCodespaceSpawner"]["codespace_config_file"] == mounted
    assert values["singleuser"]["storage"]["type"] == "none"  # our spawner owns the PVC


def test_codespaces_get_a_service_account_that_can_record_pending_mounts():
    documents = list(yaml.safe_load_all((HELM / "rbac.yaml").read_text()))
    by_kind = {(d["kind"], d["metadata"]["name"]): d for d in documents}
    role = by_kind[("Role", "codespace-singleuser")]
    granted = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    # exactly what the Fluid backend calls (codespace/datasets/fluid*.py), nothing more
    needed = {
        ("data.fluid.io", "datasets", "get"),
        ("data.fluid.io", "datasets", "list"),
        ("data.fluid.io", "dataloads", "create"),
        ("data.fluid.io", "dataloads", "list"),
        ("", "configmaps", "get"),
        ("", "configmaps", "create"),
        ("", "configmaps", "patch"),
        ("", "configmaps", "delete"),
    }
    runtimes = {g for g in granted if g[1].endswith("runtimes")}
    assert runtimes and all(g[0] == "data.fluid.io" and g[2] == "get" for g in runtimes)
    assert granted - runtimes == needed
    binding = by_kind[("RoleBinding", "codespace-singleuser")]
    assert binding["subjects"][0]["name"] == "codespace-singleuser"
    assert ("ServiceAccount", "codespace-singleuser") in by_kind
    hub_rules = by_kind[("Role", "codespace-hub")]["rules"]
    hub_configmaps = {v for r in hub_rules if "configmaps" in r["resources"] for v in r["verbs"]}
    assert hub_configmaps == {"get", "delete"}  # reads the record, deletes it with the server
    values = yaml.safe_load((HELM / "values.yaml").read_text())
    assert values["singleuser"]["serviceAccountName"] == "codespace-singleuser"
