"""Codespace Hub's domain package and the thin SDK a notebook can import.

Kept free of jupyterhub, jupyter_server and Kubernetes clients (see setup.cfg's
import-linter contracts) so it can be installed into a repository's environment.
"""

__version__ = "0.1.0"
