"""Accounts, cgroups and the sandbox composed in the one order that works.

``cgroup join (root)`` -> ``bwrap (root)`` -> ``setpriv (the account)`` -> the command:

1. the cgroup is joined first, while still root (cgroup files are root's), so nothing the
   command starts can escape it;
2. bubblewrap runs as root, so it can bind what the account cannot traverse and needs no
   user namespace;
3. the account is taken last, inside the sandbox, dropping every capability and setting
   ``no_new_privs``.

Without root (a laptop) there is no account: the command runs as the hub's user, in the
sandbox when bubblewrap works through user namespaces, and cgroups are usually not
writable (:func:`codespace.local.limits.probe` says so).

The pid of the started process stays the same through the ``/bin/sh`` that joins the
cgroup (it ``exec``\\s bwrap); with the sandbox it is bwrap's, which does not forward
signals: stop with ``os.killpg`` or :meth:`~codespace.local.limits.Cgroup.signal` (see
:mod:`codespace.local.sandbox`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from codespace.local.accounts import Account
from codespace.local.limits import Cgroup


def confine_argv(
    argv: Sequence[str],
    *,
    account: Account | None = None,
    cgroup: Cgroup | None = None,
    sandbox: Sequence[str] | None = None,
) -> list[str]:
    """``argv`` in ``cgroup``, in the ``sandbox`` (a :func:`~codespace.local.sandbox.bwrap_argv`
    prefix ending with ``--``), as ``account``; each part optional."""
    if sandbox is not None and (not sandbox or sandbox[-1] != "--"):
        raise ValueError("the sandbox prefix must end with '--' (bwrap_argv(command=()))")
    command = account.demote_argv(argv) if account is not None else list(argv)
    if sandbox is not None:
        command = [*sandbox, *command]
    if cgroup is not None:
        command = cgroup.join_argv(command)
    return command


def chain(*functions: Callable[[], None] | None) -> Callable[[], None] | None:
    """One ``preexec_fn`` calling each of ``functions`` in order (``None``s skipped):
    ``chain(cgroup.preexec(), account.preexec())`` joins the group, then demotes."""
    steps = [f for f in functions if f is not None]
    if not steps:
        return None

    def run() -> None:
        for step in steps:
            step()

    return run
