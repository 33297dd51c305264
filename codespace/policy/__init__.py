"""Group policy: what the members of each JupyterHub group may use.

A hub admin writes one YAML file::

    default:                 # users in none of the groups below
      profiles: [cpu]        # profile slugs they may pick ("*": any)
      maxCodespaces: 2       # running (or starting) codespaces at once
      gpus: 0                # GPUs in total over their running codespaces (whole or 0.5)
      cpu: 2                 # the most CPU cores one codespace may have (number or "500m")
      memory: 4Gi            # the most memory one codespace may have
      datasets: []           # dataset names they may mount ("*": any)
      jobBackends: [local]   # job backends they may submit to ("*": any)
      deployBackends: [local]
    groups:
      gpu-team:              # a JupyterHub group name (from the identity provider)
        profiles: "*"
        gpus: 2
      admins:
        maxCodespaces: "*"   # "*" on a limit: no limit (lifts the default's)

Semantics:

- A rule a group leaves out takes the ``default``'s value; a rule the default leaves out has
  no limit (any profile, any number of codespaces, ...). An empty file allows everything.
- ``maxCodespaces: 0`` or ``gpus: 0`` means none; ``[]`` allows no name.
- A user in several listed groups gets the union: lists are unioned (``"*"`` absorbs them),
  limits take the largest (no limit absorbs them). Groups the file does not list are ignored;
  a user in none of the listed groups gets the ``default``.
- A name list may be written as one string (``profiles: cpu``). ``null`` is an error (leave
  the key out to inherit); so are unknown keys, negative numbers and bad quantities, each
  reported at ``file:line:col``.

Every effective value remembers the group whose value won (``"default"`` for the default
section), so a refusal names the rule and the group::

    policy: group "students" allows at most 1 running codespace (maxCodespaces); you have 1 running
    policy: profile "gpu-a100" is not allowed for your groups (students); allowed: cpu (profiles)

The hub hands a user's :class:`Effective` policy to their codespace's server as JSON in the
``CODESPACE_POLICY`` environment variable (:data:`POLICY_ENV`, :meth:`Effective.from_environ`).

This package is pure (pydantic and PyYAML): no hub, server or Kubernetes imports.
"""

from .effective import DEFAULT, POLICY_ENV, Effective, Grant, Policy, PolicyRefused
from .gpu import gpu_amount
from .load import PolicyError, load_policy, parse_policy, read_policy
from .model import ANY, RULES, Memory, PolicyFile, Rules

__all__ = [
    "ANY",
    "DEFAULT",
    "POLICY_ENV",
    "RULES",
    "Effective",
    "Grant",
    "Memory",
    "Policy",
    "PolicyError",
    "PolicyFile",
    "PolicyRefused",
    "Rules",
    "gpu_amount",
    "load_policy",
    "parse_policy",
    "read_policy",
]
