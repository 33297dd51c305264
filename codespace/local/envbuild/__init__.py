"""Local environment materialisation: uv virtualenvs keyed by the environment hash.

``UvEnvBuilder(cache_dir).build(root, codespace, env_hash)`` returns a :class:`BuiltEnv`
(cache hit or fresh build); :mod:`codespace.local.envbuild.kernel` writes the ``codespace``
kernelspec that makes the environment the default kernel. A repository's own project
is linked per codespace with :meth:`UvEnvBuilder.install_projects` /
:func:`~codespace.local.envbuild.project.install_project` (see that module for why).
"""

from codespace.local.envbuild.kernel import KERNEL_NAME, env_vars, write_kernelspec
from codespace.local.envbuild.project import ProjectInstall, install_project
from codespace.local.envbuild.uv import BuiltEnv, EnvBuildError, UvEnvBuilder, env_key, find_uv

__all__ = [
    "KERNEL_NAME",
    "BuiltEnv",
    "EnvBuildError",
    "ProjectInstall",
    "UvEnvBuilder",
    "env_key",
    "env_vars",
    "find_uv",
    "install_project",
    "write_kernelspec",
]
