"""The local renderer: what runs a codespace on the hub's own machine.

- :mod:`~codespace.local.prepare`: one start's steps (fetch, resolve, environment, datasets,
  lifecycle) rendering the :class:`~codespace.launch.LaunchPlan` on this machine
- :mod:`~codespace.local.envbuild`: uv environments cached by environment hash, the
  codespace's own layer, the kernel spec
- :mod:`~codespace.local.gpu_grants`: which GPUs the running codespaces hold
- :mod:`~codespace.local.vscode`: VS Code extensions from local VSIX files
- :mod:`~codespace.local.accounts`: one system account per hub user (when the hub is root),
  running a process as it, and the ownership and modes of the data directory
- :mod:`~codespace.local.limits`: cgroup limits per codespace (v2 where it has controllers,
  else v1), OOM reporting, cleanup
- :mod:`~codespace.local.sandbox`: the bubblewrap command line that hides the rest of the
  machine from a codespace
- :mod:`~codespace.local.confine`: the three above composed, in the one order that works
"""
