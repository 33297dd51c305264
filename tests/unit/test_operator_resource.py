"""What the operator decides for a ``Codespace`` resource and the hub's view of its server."""

from __future__ import annotations

import pytest

from hub.operator.resource import CodespaceSpec, Observed, decide, same_options, status_of

REPO = "https://git.example.com/a/b.git"
SPEC = {"owner": "alice", "repository": REPO, "ref": "main"}


def observed(**server) -> Observed:
    return Observed.from_user({"servers": {"lab": server}}, "lab")


def test_the_spec_becomes_the_start_options_of_a_named_server() -> None:
    spec = CodespaceSpec.model_validate({**SPEC, "gpu": 0.5, "datasets": ["mnist"]})
    assert spec.server_name("lab") == "lab"
    assert spec.options() == {
        "repo": SPEC["repository"],
        "ref": "main",
        "datasets": ["mnist"],
        "gpu": {"fraction": 0.5},
    }
    with pytest.raises(ValueError, match="starts with '-'"):
        CodespaceSpec.model_validate({**SPEC, "repository": "-uhoh"}).options()


@pytest.mark.parametrize(
    ("running", "server", "action"),
    [
        (True, None, "start"),
        (True, {"ready": False, "stopped": True, "user_options": {}}, "start"),
        (True, {"ready": False, "pending": "spawn"}, "wait"),
        (
            True,
            {"ready": True, "user_options": {"repo": REPO, "ref": "main"}},
            "none",
        ),
        (
            True,
            {"ready": True, "user_options": {"repo": REPO, "ref": "v1"}},
            "restart",
        ),
        (False, {"ready": True, "user_options": {}}, "stop"),
        (False, {"ready": False, "stopped": True}, "none"),
        (False, None, "none"),
    ],
)
def test_decide(running: bool, server: dict | None, action: str) -> None:
    spec = CodespaceSpec.model_validate({**SPEC, "running": running})
    seen = Observed() if server is None else observed(**server)
    assert decide(spec, spec.options(), seen) == action


def test_options_compare_as_the_spawner_reads_them() -> None:
    assert same_options(
        {"repo": "/r", "ref": "main"}, {"repo": "/r/", "ref": "main", "datasets": []}
    )
    assert not same_options({"repo": "/r", "ref": "main"}, {"repo": "/r", "ref": "dev"})


def test_status_of_a_ready_server_has_its_public_url_and_ref() -> None:
    spec = CodespaceSpec.model_validate(SPEC)
    seen = observed(
        ready=True, url="/user/alice/lab/", user_options={"ref": "main"}, last_activity="t"
    )
    status = status_of(spec, seen, public_url="https://hub.example.com/", generation=3)
    assert status["phase"] == "Ready" and status["url"] == "https://hub.example.com/user/alice/lab/"
    assert status["ref"] == "main" and status["observedGeneration"] == 3
    assert status["conditions"][0]["status"] == "True" and status["lastActivity"] == "t"
    stopped = status_of(spec, observed(ready=False, stopped=True), public_url="x")
    assert stopped["phase"] == "Stopped" and stopped["url"] == ""
    failed = status_of(spec, Observed(), public_url="x", failed=True, message="no GPU")
    assert failed["phase"] == "Failed" and failed["message"] == "no GPU"
