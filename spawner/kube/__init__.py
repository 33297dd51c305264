"""The I/O side of the Kubernetes spawner: registry checks, build Jobs, dataset checks,
fail-fast reading of pod state. The pure builders live in :mod:`codespace.kube`."""
