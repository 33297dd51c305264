"""The workspace's clone init container script (``codespace.kube.workspace.CLONE_SCRIPT``),
run with ``sh`` here as the pod runs it: clone once, keep the checkout at restarts, move a
clean checkout when the start asks for another ref."""

from __future__ import annotations

import subprocess
from pathlib import Path

from codespace.kube.workspace import CLONE_SCRIPT
from tests.helpers.repos import commit_files, git, make_repo


def clone(dest: Path, repo: Path, ref: str) -> str:
    done = subprocess.run(
        ["sh", "-c", CLONE_SCRIPT, "clone", str(dest), str(repo), ref],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def test_a_new_ref_moves_a_clean_checkout_and_a_dirty_one_stays(tmp_path: Path) -> None:
    origin = make_repo(tmp_path / "origin", {"file.txt": "main\n"})
    git(origin, "checkout", "--quiet", "-b", "dev")
    commit_files(origin, {"file.txt": "dev\n"})
    git(origin, "checkout", "--quiet", "main")
    dest = tmp_path / "ws" / "origin"

    assert "cloned" in clone(dest, origin, "main")
    assert "keeping the existing checkout" in clone(dest, origin, "main")  # a restart
    commit_files(
        origin,
        {"later.txt": "x\n"},
    )  # pushed to main after the clone
    assert "moved the checkout to dev" in clone(dest, origin, "dev")
    assert (dest / "file.txt").read_text() == "dev\n"
    assert git(dest, "rev-parse", "--abbrev-ref", "HEAD") == "dev"

    (dest / "file.txt").write_text("my work\n")
    said = clone(dest, origin, "main")
    assert "uncommitted changes: kept, not moved to main" in said
    assert (dest / "file.txt").read_text() == "my work\n"

    (dest / "file.txt").write_text("dev\n")
    assert "moved the checkout to the default branch" in clone(dest, origin, "")
    assert (dest / "later.txt").exists() and git(
        dest, "rev-parse", "--abbrev-ref", "HEAD"
    ) == "main"
