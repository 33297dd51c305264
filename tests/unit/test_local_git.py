"""codespace.git: checkout of branches, tags and commits; refusals before git runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from codespace.git import GitError, checkout, switch_ref
from tests.helpers.repos import commit_files, git, make_repo


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    repo = make_repo(tmp_path / "origin", {"file.txt": "one\n"})
    git(repo, "tag", "v1")
    git(repo, "checkout", "--quiet", "-b", "feature")
    commit_files(repo, {"file.txt": "feature\n"})
    git(repo, "checkout", "--quiet", "main")
    commit_files(repo, {"file.txt": "two\n"})
    return repo


@pytest.mark.parametrize(
    ("ref", "content"), [(None, "two\n"), ("feature", "feature\n"), ("v1", "one\n")]
)
async def test_checks_out_default_branch_branch_or_tag(
    origin: Path, tmp_path: Path, ref: str | None, content: str
) -> None:
    done = await checkout(str(origin), ref, tmp_path / "ws")
    assert done.cloned
    assert (tmp_path / "ws" / "file.txt").read_text() == content
    assert git(tmp_path / "ws", "rev-parse", "HEAD") == done.commit


async def test_checks_out_a_commit_and_keeps_an_existing_workspace(
    origin: Path, tmp_path: Path
) -> None:
    first = git(origin, "rev-list", "--max-parents=0", "HEAD")
    done = await checkout(str(origin), first, tmp_path / "ws")
    assert (tmp_path / "ws" / "file.txt").read_text() == "one\n"
    (tmp_path / "ws" / "file.txt").write_text("my edit\n")
    again = await checkout(str(origin), None, tmp_path / "ws")
    assert not again.cloned and again.commit == done.commit
    assert (tmp_path / "ws" / "file.txt").read_text() == "my edit\n"
    status = git(tmp_path / "ws", "status", "--porcelain")
    assert status == "M file.txt"


async def test_unknown_ref_fails_with_the_ref_named(origin: Path, tmp_path: Path) -> None:
    with pytest.raises(GitError, match="'nope' is not a branch, tag or commit"):
        await checkout(str(origin), "nope", tmp_path / "ws")
    assert not (tmp_path / "ws").exists()


@pytest.mark.parametrize(
    ("repo", "ref"),
    [
        ("--upload-pack=touch /tmp/pwned-git", None),
        ("ext::sh -c touch% /tmp/pwned-git", None),
        ("/tmp/x;touch /tmp/pwned-git", None),
        ("/tmp/x", "--output=/tmp/pwned-git"),
        ("/tmp/x", "$(touch /tmp/pwned-git)"),
    ],
)
async def test_injection_is_refused_before_git_runs(
    tmp_path: Path, repo: str, ref: str | None
) -> None:
    with pytest.raises(ValueError, match="refused"):
        await checkout(repo, ref, tmp_path / "ws")
    assert not Path("/tmp/pwned-git").exists()
    assert not (tmp_path / "ws").exists()


async def test_a_new_ref_moves_a_clean_workspace_and_keeps_a_dirty_one(
    origin: Path, tmp_path: Path
) -> None:
    workspace = tmp_path / "ws"
    await checkout(str(origin), None, workspace)
    git(origin, "checkout", "--quiet", "feature")
    commit_files(origin, {"new.txt": "pushed after the clone\n"})  # fetched by the switch
    git(origin, "checkout", "--quiet", "main")

    said = await switch_ref(workspace, "feature", str(origin))
    assert said.startswith("moved to feature at ")
    assert (workspace / "new.txt").read_text() == "pushed after the clone\n"
    assert git(workspace, "rev-parse", "--abbrev-ref", "HEAD") == "feature"

    (workspace / "file.txt").write_text("my edit\n")
    said = await switch_ref(workspace, "v1", str(origin))
    assert "not moved to v1" in said and "uncommitted changes" in said
    assert (workspace / "file.txt").read_text() == "my edit\n"

    (workspace / "file.txt").write_text("feature\n")  # clean again
    assert (await switch_ref(workspace, None, str(origin))).startswith(
        "moved to the default branch"
    )
    assert (workspace / "file.txt").read_text() == "two\n"
