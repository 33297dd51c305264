"""Human sizes in Fluid's style ('1.20GiB') and percentages ('42.0%')."""

from __future__ import annotations

UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def human_bytes(size: int | float) -> str:
    value = float(size)
    for unit in UNITS:
        if value < 1024 or unit == UNITS[-1]:
            return f"{int(value)}{unit}" if unit == "B" else f"{value:.2f}{unit}"
        value /= 1024
    raise AssertionError("unreachable")


def percentage(part: int | float, whole: int | float) -> str:
    if whole <= 0:
        return "100.0%"
    return f"{min(100.0, 100.0 * part / whole):.1f}%"
