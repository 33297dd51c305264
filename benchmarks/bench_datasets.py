"""Datasets: list 1,000 catalog datasets and page through a directory of 10,000 files.

Prints p50/p95 per operation and the ratio to a baseline measured in the same run (the
plain filesystem work: parsing the YAML / os.scandir + stat). Target: p95 under 200 ms.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

import yaml

from codespace.datasets.catalog import Catalog
from codespace.datasets.local import LocalBackend

RUNS = 30


def timed(function, runs: int = RUNS) -> list[float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[18]


def report(name: str, samples: list[float], baseline: list[float]) -> None:
    ratio = statistics.median(samples) / max(statistics.median(baseline), 1e-6)
    verdict = "ok" if p95(samples) < 200 else "OVER TARGET"
    print(
        f"{name:38} p50 {statistics.median(samples):7.2f} ms  p95 {p95(samples):7.2f} ms  "
        f"x{ratio:5.1f} baseline  [{verdict}: p95 < 200 ms]"
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        data = base / "big"
        data.mkdir()
        for index in range(10_000):
            (data / f"file{index:05}.bin").write_bytes(b"x")
        entries = [
            {"name": f"ds-{i:04}", "source": str(data), "description": f"set {i}", "tags": ["t"]}
            for i in range(1000)
        ]
        catalog_file = base / "catalog.yaml"
        catalog_file.write_text(yaml.safe_dump({"datasets": entries}))
        backend = LocalBackend(
            Catalog(catalog_file), cache_dir=base / "cache", workspace=base / "ws"
        )
        loop = asyncio.new_event_loop()

        def list_cold() -> None:
            backend.catalog._stamp = None  # re-parse the file each time (an edited catalog)
            assert len(loop.run_until_complete(backend.list())) == 1000

        def list_warm() -> None:
            assert len(loop.run_until_complete(backend.list())) == 1000

        def page() -> None:
            result = loop.run_until_complete(backend.files("ds-0000", "", limit=200))
            assert result.total == 10_000

        baseline_yaml = timed(lambda: yaml.load(catalog_file.read_text(), Loader=yaml.CSafeLoader))
        baseline_scan = timed(lambda: [entry.stat() for entry in os.scandir(data)])
        print(f"datasets benchmark ({RUNS} runs each)")
        report("list 1,000 datasets (catalog re-read)", timed(list_cold), baseline_yaml)
        report("list 1,000 datasets (catalog cached)", timed(list_warm), baseline_yaml)
        report("first page of 10,000 files", timed(page), baseline_scan)
        loop.close()


if __name__ == "__main__":
    main()
