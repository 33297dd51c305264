"""The group policy in both spawners: running codespaces and their GPUs add up per user,
the forms offer only what the user's groups allow, refusals name the rule and the group."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from tornado import web

from codespace.policy import PolicyRefused
from codespace.spec.model import Codespace
from spawner.kubernetes import KubeCodespaceSpawner, check_user_options
from spawner.local import LocalCodespaceSpawner
from spawner.progress import ProgressLog

POLICY = """\
default:
  profiles: [small]
  maxCodespaces: 1
  gpus: 0
groups:
  lab:
    profiles: [small, gpu]
    maxCodespaces: 3
    gpus: 1
    cpu: 4
    memory: 8Gi
"""


class User(SimpleNamespace):
    """Enough of JupyterHub's User: name, groups, and the loaded spawners by name."""


def local(tmp_path: Path, user: User, name: str, policy: Path) -> LocalCodespaceSpawner:
    spawner = LocalCodespaceSpawner(
        data_dir=str(tmp_path),
        user=user,
        orm_spawner=SimpleNamespace(name=name, server=None),
        policy_file=str(policy),
        profiles=[{"slug": "small"}, {"slug": "gpu"}],
    )
    user.spawners[name] = spawner
    return spawner


def running(spawner: LocalCodespaceSpawner, gpus: float = 0.0) -> None:
    """Pretend the codespace runs (JupyterHub's ``active``) holding ``gpus``."""
    row = SimpleNamespace()  # the server's database row: ready, hence active
    spawner.orm_spawner.server = row
    spawner._server = SimpleNamespace(orm_server=row)
    assert spawner.active
    spawner.policy_gpus = gpus


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    return path


def test_gpus_of_the_users_running_codespaces_add_up(tmp_path: Path, policy: Path) -> None:
    user = User(name="ada", groups=[SimpleNamespace(name="lab")], spawners={})
    first, second = local(tmp_path, user, "a", policy), local(tmp_path, user, "b", policy)
    first.check_policy_spec(Codespace(resources={"gpu": 0.5}))
    assert first.policy_gpus == 0.5
    running(first, 0.5)
    second.check_policy_spec(Codespace(resources={"gpu": 0.5}))  # 0.5 + 0.5 = the group's 1
    with pytest.raises(PolicyRefused, match=r'group "lab" allows at most 1 GPUs') as refused:
        second.check_policy_spec(Codespace(resources={"gpu": 1}))
    assert refused.value.rule == "gpus"
    log = ProgressLog()
    spec = second.enforce_policy_spec(
        Codespace(resources={"gpu": {"count": 1, "optional": True}}), log.line
    )
    assert spec.resources.gpu is None  # an optional GPU beyond the quota: started without
    assert "starting without a GPU" in str(log.events[-1]["message"])
    with pytest.raises(PolicyRefused, match=r"at most 4 CPU cores"):
        second.check_policy_spec(Codespace(resources={"cpu": 6}))


def test_the_local_form_and_options_follow_the_users_groups(tmp_path: Path, policy: Path) -> None:
    user = User(name="bo", groups=[], spawners={})
    spawner = local(tmp_path, user, "x", policy)
    form = spawner._render_options_form()
    assert 'value="small"' in form and 'value="gpu"' not in form
    with pytest.raises(web.HTTPError) as refused:
        spawner.apply_user_options(spawner, {"repo": "https://h/r.git", "profile": "gpu"})
    assert (
        "default policy" in refused.value.log_message and "(profiles)" in refused.value.log_message
    )
    other = local(tmp_path, user, "y", policy)
    running(other)
    with pytest.raises(web.HTTPError, match="maxCodespaces"):
        spawner.apply_user_options(spawner, {"repo": "https://h/r.git"})


def test_the_kubernetes_spawner_applies_the_same_policy(policy: Path, monkeypatch) -> None:
    monkeypatch.setattr("kubespawner.spawner.load_config", lambda **kw: None)
    monkeypatch.setattr("kubespawner.spawner.shared_client", lambda name: None)
    user = User(name="cy", id=7, groups=[SimpleNamespace(name="lab")], spawners={})
    spawner = KubeCodespaceSpawner(
        user=user,
        orm_spawner=SimpleNamespace(name="k", server=None),
        policy_file=str(policy),
        codespace_config={"profiles": [{"name": "small"}, {"name": "huge", "displayName": "Huge"}]},
        _mock=True,
    )
    with pytest.raises(web.HTTPError) as refused:
        check_user_options(spawner, {"repo": "https://h/r.git", "profile": "huge"})
    assert 'profile "huge"' in refused.value.log_message and "lab" in refused.value.log_message
    check_user_options(spawner, {"repo": "https://h/r.git", "profile": "small"})
    assert '"profiles"' in spawner.policy_env()["CODESPACE_POLICY"]
