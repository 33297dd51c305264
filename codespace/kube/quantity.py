"""Kubernetes resource quantities, just enough to compare and convert them."""

from __future__ import annotations

import re

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50}
_DECIMAL = {"k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15}
# The model also accepts docker-style suffixes (10gb); read them as decimal units.
_LOOSE = {"kb": 10**3, "KB": 10**3, "mb": 10**6, "MB": 10**6, "gb": 10**9, "GB": 10**9}
_LOOSE |= {"tb": 10**12, "TB": 10**12}
_QUANTITY = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*$")


def to_bytes(quantity: str | int | float) -> int:
    """``"10Gi"`` -> 10737418240; raises ValueError for anything else."""
    if isinstance(quantity, int | float) and not isinstance(quantity, bool):
        return int(quantity)
    match = _QUANTITY.match(str(quantity))
    if not match:
        raise ValueError(f"{quantity!r} is not a quantity such as '10Gi'")
    number, suffix = float(match[1]), match[2]
    for table in (_BINARY, _DECIMAL, _LOOSE):
        if suffix in table:
            return int(number * table[suffix])
    if suffix:
        raise ValueError(f"{quantity!r} has an unknown unit {suffix!r}")
    return int(number)


def to_mib(quantity: str | int | float) -> int:
    """Whole MiB, rounded up (a 10G request needs 9537 MiB, not 9536)."""
    return -(-to_bytes(quantity) // 2**20)


def to_cores(quantity: str | int | float) -> float:
    """``"500m"`` -> 0.5, ``2`` -> 2.0."""
    if isinstance(quantity, int | float) and not isinstance(quantity, bool):
        return float(quantity)
    text = str(quantity).strip()
    if text.endswith("m"):
        return float(text[:-1]) / 1000
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{quantity!r} is not a CPU quantity such as 2 or '500m'") from None
