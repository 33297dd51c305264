"""Test support for datasets: an S3 bucket served by moto on 127.0.0.1, a catalog writer."""

from __future__ import annotations

import contextlib
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import missing


def reset_moto(endpoint: str) -> None:
    """Forget every bucket and object on a moto server.

    moto keeps its state in the process, shared by all of its servers: each use of
    :func:`moto_s3` starts from, and leaves behind, an empty S3.
    """
    request = urllib.request.Request(f"{endpoint}/moto-api/reset", data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()


@contextlib.contextmanager
def moto_s3(bucket: str, objects: dict[str, bytes]) -> Iterator[dict[str, Any]]:
    """Serve only ``objects``, from ``bucket``; yields s3fs storage options for that server.

    Bucket names can be reused: the state of earlier uses in this process is reset first.
    """
    try:
        import boto3
        from moto.server import ThreadedMotoServer
    except ImportError:
        missing("moto[server] and s3fs[boto3] are not installed (pip install -e '.[test]')")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    credentials = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    try:
        reset_moto(endpoint)
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **credentials)
        s3.create_bucket(Bucket=bucket)
        for key, body in objects.items():
            s3.put_object(Bucket=bucket, Key=key, Body=body)
        yield {
            "s3": {
                "endpoint_url": endpoint,
                "key": "testing",
                "secret": "testing",
                "client_kwargs": {"region_name": "us-east-1"},
                "skip_instance_cache": True,
            }
        }
    finally:
        try:
            reset_moto(endpoint)
        finally:
            server.stop()


def write_catalog(path: Path, datasets: list[dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump({"datasets": datasets}))
    return path
