"""The hub's deploy service: local model endpoints behind the hub's proxy (``hub.deploy.app``)."""
