"""Local mode's reading of a conda ``environment.yml``: its packages, installed from PyPI by uv.

No conda channel is reachable locally, so the Python packages an environment file names are
installed from the package index instead:

- a conda name becomes its PyPI name through the conda-forge <-> PyPI name mapping that the
  ``conda-pypi`` package ships (``grayskull_pypi_mapping.json``: regro/cf-graph's generated
  table plus grayskull's hand-kept one; e.g. ``pytorch`` -> ``torch``, ``msgpack-python`` ->
  ``msgpack``, ``matplotlib-base`` -> ``matplotlib``). The table lists the packages whose
  recipes build from PyPI sources; a name it does not list is looked up on the index as is;
- conda packages that are not Python packages (``nodejs``, ``r-base``, ``gcc``, ``libgdal``,
  CUDA toolkits, ...) are not installed: the mapping has no "not on PyPI" list, and some of
  these names belong to unrelated PyPI projects (PyPI's ``nodejs``, ``make`` and ``tk`` are
  not Node, GNU make or Tcl/Tk), so :data:`NOT_ON_PYPI` and :data:`NOT_ON_PYPI_PREFIXES`
  name them. :data:`RENAMED` adds the few renames the mapping lacks, :data:`PREFERRED`
  settles the conda names the mapping gives several PyPI names for;
- version specs become PEP 440 (``numpy=1.26`` -> ``numpy==1.26.*``), build strings and
  channels are dropped;
- ``pip:`` entries are installed as they are, relative to the file's directory; local
  project directories (``-e .``) are not installed into the shared environment but linked
  per workspace (see :mod:`codespace.local.envbuild.project`), their dependencies are.

:func:`plan_conda_install` returns the units to install and what cannot be installed; what
was skipped or failed becomes :attr:`BuiltEnv.warnings <codespace.local.envbuild.uv.BuiltEnv>`.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from codespace.local.envbuild.install import Unit
from codespace.sources.conda import CondaEnvironment, CondaPackage

# Conda packages that are not Python packages: never looked up on PyPI.
NOT_ON_PYPI = frozenset(
    """
    python conda mamba micromamba conda-build conda-libmamba-solver nb_conda_kernels
    nb_conda nodejs yarn r r-base r-essentials rstudio julia perl ruby go rust openjdk
    gcc gxx gfortran clang clangxx llvm llvmdev compilers c-compiler cxx-compiler
    fortran-compiler make pkg-config autoconf automake libtool binutils sysroot_linux-64
    kernel-headers_linux-64 git git-lfs curl wget openssl ca-certificates zlib xz bzip2
    zstd lz4-c sqlite readline ncurses tk tktable icu expat gettext graphviz ffmpeg
    imagemagick pandoc texlive-core tectonic hdf5 netcdf-c proj geos cairo pango glib gtk2
    gtk3 qt qt-main qt6-main mesa blas openblas lapack cudatoolkit cuda-toolkit
    cuda-version cuda-nvcc cuda-runtime cuda-cudart cudnn nccl cuda bash coreutils sed
    grep gawk unzip zip vim nano htop tmux openssh jq tini gdal-bin poppler freetype
    fontconfig jpeg giflib harfbuzz
    """.split()
)
NOT_ON_PYPI_PREFIXES = ("lib", "r-", "perl-", "_", "xorg-", "font-", "gcc_", "gxx_", "ruby-")

# conda-forge names the mapping does not list whose PyPI name differs.
RENAMED = {
    "py-xgboost": "xgboost",
    "py-xgboost-cpu": "xgboost",
    "py-xgboost-gpu": "xgboost",
    "py-opencv": "opencv-python",
    "pytorch-cpu": "torch",
    "pytorch-gpu": "torch",
    "tensorflow-cpu": "tensorflow",
    "tensorflow-gpu": "tensorflow",
}
# conda-forge packages that bundle what PyPI puts behind an extra: ``dask`` on conda-forge
# is dask-core with distributed, pandas, pyarrow and bokeh (its PyPI twin is dask[complete]).
BUNDLES = {
    "dask": "dask[complete]",
    "ray-default": "ray[default]",
    "ray-all": "ray[all]",
}
# conda names the mapping gives several PyPI names for.
PREFERRED = {"pyqt": "pyqt5", "opencv": "opencv-python", "cyipopt": "cyipopt"}

MAPPING_PACKAGE = "conda_pypi"
MAPPING_FILE = "grayskull_pypi_mapping.json"


@dataclass(frozen=True)
class Mapping:
    """conda name -> PyPI name, from the installed table (empty when none is installed)."""

    to_pypi: dict[str, str]
    source: str | None


@functools.cache
def load_mapping() -> Mapping:
    """The conda-forge -> PyPI table shipped by ``conda-pypi``, reversed; cached."""
    try:
        from importlib import resources

        data = resources.files(MAPPING_PACKAGE).joinpath(MAPPING_FILE).read_bytes()
        table = json.loads(data)
    except (ImportError, FileNotFoundError, ValueError):
        return Mapping({}, None)
    candidates: dict[str, set[str]] = {}
    for key, entry in table.items():
        conda, pypi = entry.get("conda_name"), entry.get("pypi_name") or key
        if isinstance(conda, str) and isinstance(pypi, str):
            candidates.setdefault(conda.lower(), set()).add(canonical(pypi))
    to_pypi: dict[str, str] = {}
    for conda, names in candidates.items():
        if conda in PREFERRED:
            to_pypi[conda] = PREFERRED[conda]
        elif canonical(conda) in names:
            to_pypi[conda] = canonical(conda)
        else:
            to_pypi[conda] = sorted(names)[0]
    return Mapping(to_pypi, f"{MAPPING_PACKAGE}/{MAPPING_FILE}")


def canonical(name: str) -> str:
    """PEP 503 normalised name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def conda_to_pypi(name: str, mapping: Mapping | None = None) -> str | None:
    """The PyPI name of conda package ``name``, or None when it is not a Python package."""
    mapping = mapping or load_mapping()
    name = name.lower()
    if name in BUNDLES:
        return BUNDLES[name]
    if name in mapping.to_pypi:
        return mapping.to_pypi[name]
    if name in RENAMED:
        return RENAMED[name]
    if name in NOT_ON_PYPI or name.startswith(NOT_ON_PYPI_PREFIXES):
        return None
    return canonical(name)


@dataclass(frozen=True)
class Project:
    """A local project directory (repository path) to install editable per workspace."""

    path: str
    extras: tuple[str, ...] = ()


@dataclass
class CondaPlan:
    """How local mode installs one environment file with uv (run in ``cwd``)."""

    file: str
    cwd: Path
    python: str | None
    units: list[Unit] = field(default_factory=list)
    common: list[str] = field(default_factory=list)  # -c files, index options
    skipped: list[str] = field(default_factory=list)  # conda specs with no PyPI package
    renamed: list[tuple[str, str]] = field(default_factory=list)
    projects: list[Project] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # warnings about the translation


_INDEX_OPTIONS = {
    "-i": "--index-url",
    "--index-url": "--index-url",
    "--extra-index-url": "--extra-index-url",
    "-f": "--find-links",
    "--find-links": "--find-links",
}


def plan_conda_install(environment: CondaEnvironment, root: Path) -> CondaPlan:
    """Translate a parsed environment file into uv install units for the repository ``root``."""
    mapping = load_mapping()
    cwd = (root / environment.directory).resolve() if environment.directory else root.resolve()
    plan = CondaPlan(environment.file, cwd, environment.python)
    plan.notes += [f"{environment.file}: {w}" for w in environment.warnings]
    if environment.packages and mapping.source is None:
        plan.notes.append(
            f"{environment.file}: the conda -> PyPI name mapping is not installed "
            "(conda-pypi); conda names are used as PyPI names"
        )
    for package in environment.packages:
        _plan_package(plan, package, mapping)
    for entry in environment.pip:
        if entry.kind == "constraints":
            plan.common += ["-c", entry.value]
        elif entry.kind == "requirements":
            plan.units.append(Unit(entry.text, ("-r", entry.value)))
        elif entry.kind == "option":
            _plan_option(plan, entry.value)
        elif entry.path is not None and (root / entry.path).is_dir():
            plan.projects.append(Project(entry.path, entry.extras))
        elif entry.kind == "editable":
            plan.units.append(Unit(entry.text, ("-e", entry.value)))
        else:
            plan.units.append(Unit(entry.text, (entry.value,)))
    return plan


def _plan_package(plan: CondaPlan, package: CondaPackage, mapping: Mapping) -> None:
    pypi = conda_to_pypi(package.name, mapping)
    if pypi is None:
        plan.skipped.append(package.spec)
        return
    if canonical(pypi) != canonical(package.name):
        plan.renamed.append((package.name, pypi))
    try:
        specifier = package.pep440()
    except ValueError as error:
        plan.notes.append(f"{plan.file}: {package.spec}: {error}; installing {pypi} unpinned")
        specifier = ""
    plan.units.append(Unit(package.spec, (f"{pypi}{specifier}",)))


def _plan_option(plan: CondaPlan, text: str) -> None:
    option, _, value = text.replace("=", " ", 1).partition(" ")
    if option == "--pre":
        plan.common += ["--prerelease", "allow"]
    elif option in _INDEX_OPTIONS and value.strip():
        plan.common += [_INDEX_OPTIONS[option], value.strip()]
    else:
        plan.notes.append(f"{plan.file}: pip option {text!r} is not supported; ignored")
