"""Local environment materialisation: uv virtualenvs keyed by the environment hash.

``UvEnvBuilder(cache_dir).build(root, codespace, env_hash)`` returns a :class:`BuiltEnv`
(cache hit or fresh build); :mod:`codespace.envbuild.kernel` writes the ``codespace``
kernelspec that makes the environment the default kernel.
"""

from codespace.envbuild.kernel import KERNEL_NAME, env_vars, write_kernelspec
from codespace.envbuild.uv import BuiltEnv, EnvBuildError, UvEnvBuilder, env_key, find_uv

__all__ = [
    "KERNEL_NAME",
    "BuiltEnv",
    "EnvBuildError",
    "UvEnvBuilder",
    "env_key",
    "env_vars",
    "find_uv",
    "write_kernelspec",
]
