"""The moto helper: each use sees only its own objects, even under a reused bucket name."""

from __future__ import annotations

from tests.datasets_support import moto_s3


def keys(storage: dict, bucket: str) -> list[str]:
    import boto3  # moto_s3 has checked it is installed

    options = storage["s3"]
    s3 = boto3.client(
        "s3",
        endpoint_url=options["endpoint_url"],
        aws_access_key_id=options["key"],
        aws_secret_access_key=options["secret"],
        region_name="us-east-1",
    )
    listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    return sorted(item["Key"] for item in listed)


def test_a_reused_bucket_name_starts_empty() -> None:
    with moto_s3("reused", {"old/a.csv": b"1"}) as first:
        assert keys(first, "reused") == ["old/a.csv"]
    with moto_s3("reused", {"new/b.csv": b"2"}) as second:
        assert keys(second, "reused") == ["new/b.csv"]
