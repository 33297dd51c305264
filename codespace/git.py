"""Check out a user's repository into a workspace with ``git``.

Every value that comes from a user went through :mod:`codespace.options` first (only
https/ssh/file URLs or absolute paths; refs that cannot look like options). Here it is passed
to git as a separate argument after ``--`` or ``--end-of-options``, never through a shell, and
git itself is limited to the allowed transports (``GIT_ALLOW_PROTOCOL``), never prompts, and
ignores the user's and the system's git configuration hooks for the fetch. With an
:class:`~codespace.local.isolation.Isolation` every git command runs as the codespace's
account (the workspace is the user's: root never runs git in it, where a ``core.fsmonitor``
setting would run a command), so a source the account cannot read cannot be cloned.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from codespace.local.isolation import Isolation, host_env
from codespace.options import local_repo_path, validate_ref, validate_repo

OnLine = Callable[[str], None]

# Files the platform writes into a workspace; kept out of ``git status``.
PLATFORM_FILES = ("/CODESPACE_ERRORS.md", "/.codespace-logs/")


class GitError(RuntimeError):
    """A git command failed; the message carries git's own last lines."""


@dataclass(frozen=True)
class Checkout:
    """The result of :func:`checkout`: which commit the workspace is on and how it got there."""

    path: Path
    commit: str
    ref: str | None
    cloned: bool  # False when an existing workspace was kept as it was


def git_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for git: allowed transports only, no prompts, no ext:: helpers; of
    the hub's own environment only what reaches package and git hosts (never its secrets)."""
    env = dict(_hub_env() if base is None else base)
    env.update(
        {
            "GIT_ALLOW_PROTOCOL": "file:https:ssh",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ASKPASS": "/bin/false",
            "GIT_SSH_COMMAND": "ssh -o BatchMode=yes",
            "GIT_CONFIG_NOSYSTEM": "1",
            "LC_ALL": "C",
        }
    )
    return env


def _hub_env() -> dict[str, str]:
    """Of the hub's environment: what reaches hosts, and (a hub run by one person) the home
    and SSH agent ssh:// clones use; an account cannot reach the hub's agent anyway."""
    kept = host_env(os.environ)
    for key in ("HOME", "SSH_AUTH_SOCK"):
        if key in os.environ:
            kept[key] = os.environ[key]
    return kept


async def run_git(
    args: Sequence[str],
    *,
    cwd: Path | None = None,
    on_line: OnLine | None = None,
    isolation: Isolation | None = None,
    extra_env: dict[str, str] | None = None,
) -> str:
    """Run ``git args...`` (an argument list), stream its lines, return stdout; raise GitError."""
    iso = isolation or Isolation()
    argv = ["git", "-c", "protocol.ext.allow=never", "-c", "core.hooksPath=/dev/null", *args]
    process = await asyncio.create_subprocess_exec(
        *iso.as_account(argv),
        cwd=cwd,
        env={**git_env(), **iso.env(), **(extra_env or {})},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )

    async def pump(stream: asyncio.StreamReader, keep: list[str], show: bool) -> None:
        async for raw in stream:
            line = raw.decode(errors="replace").rstrip()
            keep.append(line)
            if show and on_line and line:
                on_line(line)

    out: list[str] = []
    err: list[str] = []
    assert process.stdout and process.stderr
    await asyncio.gather(pump(process.stdout, out, False), pump(process.stderr, err, True))
    code = await process.wait()
    if code != 0:
        tail = "\n".join(line for line in err[-8:] if line) or f"exit status {code}"
        raise GitError(f"git {args[0]} failed: {tail}")
    return "\n".join(out)


def is_checkout(path: Path) -> bool:
    return (path / ".git").is_dir()


async def checkout(
    repo: str,
    ref: str | None,
    workspace: Path,
    *,
    on_line: OnLine | None = None,
    isolation: Isolation | None = None,
    clone_env: Mapping[str, str] | None = None,
) -> Checkout:
    """Clone ``repo`` at ``ref`` into ``workspace``; keep a workspace that is already there.

    A kept workspace is left exactly as the user left it (uncommitted work included). The
    workspace's parent must exist (and belong to the account, with an isolation).
    ``clone_env`` is added to the clone's environment only (the user's Git host token as
    ``GIT_CONFIG_*`` variables, :func:`codespace.gitauth.header_env`): it is not written into
    the checkout's configuration.
    """
    repo = validate_repo(repo)
    ref = validate_ref(ref) if ref else None
    iso = isolation or Isolation()
    if is_checkout(workspace):
        commit = await run_git(["rev-parse", "HEAD"], cwd=workspace, isolation=iso)
        return Checkout(workspace, commit.strip(), ref, cloned=False)
    if workspace.exists() and any(workspace.iterdir()):
        raise GitError(f"workspace {workspace} exists, is not empty and is not a git checkout")
    if not iso.active:
        workspace.parent.mkdir(parents=True, exist_ok=True)
    partial = workspace.with_name(workspace.name + ".cloning")
    if partial.exists():
        await asyncio.to_thread(shutil.rmtree, partial)
    with _trusted_source(repo, iso) as config:
        await run_git(
            ["clone", "--progress", "--no-checkout", "--", repo, str(partial)],
            on_line=on_line,
            isolation=iso,
            extra_env={**(clone_env or {}), **config},
        )
    target = await _resolve_ref(partial, ref, iso)
    await _check_out(partial, target, iso)
    _exclude_platform_files(partial, iso)
    if iso.active:
        iso.run(["chmod", "0700", "--", str(partial)])  # the user's alone
    if workspace.exists():
        workspace.rmdir()
    partial.rename(workspace)
    return Checkout(workspace, target.commit, ref, cloned=True)


async def switch_ref(
    workspace: Path,
    ref: str | None,
    repo: str,
    *,
    on_line: OnLine | None = None,
    isolation: Isolation | None = None,
    clone_env: Mapping[str, str] | None = None,
) -> str:
    """Move a kept checkout of ``repo`` to ``ref`` (None: the remote's default branch) when
    the options asked for another ref than at the last start: fetch, then check out, only if
    the workspace has no uncommitted changes. Returns what happened, for the progress."""
    iso = isolation or Isolation()
    ref = validate_ref(ref) if ref else None
    dirty = await run_git(["status", "--porcelain"], cwd=workspace, isolation=iso)
    wanted = ref or "the default branch"
    if dirty.strip():
        return f"kept as it is, not moved to {wanted}: it has uncommitted changes"
    with _trusted_source(validate_repo(repo), iso) as config:
        await run_git(
            ["fetch", "--quiet", "--tags", "origin"],
            cwd=workspace,
            on_line=on_line,
            isolation=iso,
            extra_env={**(clone_env or {}), **config},
        )
    if ref is None:
        await run_git(["remote", "set-head", "origin", "--auto"], cwd=workspace, isolation=iso)
        head = await run_git(
            ["rev-parse", "--abbrev-ref", "origin/HEAD"], cwd=workspace, isolation=iso
        )
        ref = head.strip().removeprefix("origin/")
    target = await _resolve_ref(workspace, ref, iso)
    await _check_out(workspace, target, iso)
    return f"moved to {wanted} at {target.commit[:12]}"


@contextlib.contextmanager
def _trusted_source(repo: str, iso: Isolation) -> Iterator[dict[str, str]]:
    """A local source belongs to someone else than the account that clones it (a directory
    the admin allowed): let git read it (``safe.directory``, honoured only in a global config
    by git 2.39). Its configuration can then only ever act as the account, never as root."""
    source = local_repo_path(repo)
    if source is None or not iso.active:
        yield {}
        return
    fd, name = tempfile.mkstemp(prefix="codespace-clone-", suffix=".gitconfig")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(f"[safe]\n\tdirectory = {source}\n\tdirectory = {source}/.git\n")
        os.chmod(name, 0o644)
        yield {"GIT_CONFIG_GLOBAL": name}
    finally:
        os.unlink(name)


@dataclass(frozen=True)
class _Target:
    commit: str
    branch: str | None


async def _check_out(path: Path, target: _Target, iso: Isolation) -> None:
    """Check out ``target``: its branch reset to the commit, else the commit detached."""
    if target.branch:
        switch = ["-B", target.branch, target.commit]
    else:
        switch = ["--detach", target.commit]
    await run_git(["checkout", "--quiet", *switch, "--"], cwd=path, isolation=iso)


async def _resolve_ref(path: Path, ref: str | None, iso: Isolation) -> _Target:
    """The commit for ``ref``: a remote branch, a tag, a commit; the default branch if None."""
    if ref is None:
        commit = await run_git(["rev-parse", "--verify", "HEAD"], cwd=path, isolation=iso)
        branch = await run_git(
            ["symbolic-ref", "--quiet", "--short", "HEAD"], cwd=path, isolation=iso
        )
        return _Target(commit.strip(), branch.strip() or None)
    candidates = [
        (f"refs/remotes/origin/{ref}", ref),
        (f"refs/tags/{ref}", None),
        (ref, None),
    ]
    for name, branch in candidates:
        try:
            commit = await run_git(
                ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{name}^{{commit}}"],
                cwd=path,
                isolation=iso,
            )
        except GitError:
            continue
        return _Target(commit.strip(), branch)
    raise GitError(f"ref {ref!r} is not a branch, tag or commit of the repository")


async def origin_url(workspace: Path, isolation: Isolation | None = None) -> str | None:
    try:
        argv = ["remote", "get-url", "origin"]
        return (await run_git(argv, cwd=workspace, isolation=isolation)).strip() or None
    except GitError:
        return None


def _exclude_platform_files(path: Path, iso: Isolation) -> None:
    exclude = path / ".git" / "info" / "exclude"
    existing = exclude.read_text() if exclude.is_file() and not exclude.is_symlink() else ""
    missing = [line for line in PLATFORM_FILES if line not in existing.splitlines()]
    if missing:
        text = existing + "\n# written by Codespace Hub\n" + "\n".join(missing) + "\n"
        iso.write_file(exclude, text)


# Files a codespace writes into the checkout that are not the user's changes.
CODESPACE_FILES = ("/CODESPACE_ERRORS.md", "/.codespace-logs/")


def with_excludes(text: str, patterns: Sequence[str]) -> str | None:
    """``.git/info/exclude``'s text with ``patterns`` added, or ``None`` when it has them.

    The checkout's own exclude file (never the user's ``.gitignore``) keeps what a codespace
    writes (dataset links, ``CODESPACE_ERRORS.md``, logs) out of ``git status``.
    """
    lines = text.splitlines()
    missing = [pattern for pattern in patterns if pattern not in lines]
    if not missing:
        return None
    note = "# codespace: files the codespace writes, not part of the repository"
    added = [note, *missing] if note not in lines else missing
    return "\n".join([*lines, *added]).lstrip("\n") + "\n"
