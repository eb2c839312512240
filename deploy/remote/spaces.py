"""The VPS side's Spaces (S3) client: upload a file and prove it arrived, download and check.

Runs under the dbsplit virtualenv's Python (boto3 is installed there with dbsplit). An upload
is checked by streaming the object back through SHA-256, the one check that works on every
S3-compatible store; the checksum also travels as the object's ``sha256`` metadata.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy.remote.progress import Meter
from deploy.remote.runtime import Context, Failure, say, sha256_file


@dataclass(frozen=True)
class Bucket:
    """Where files go: the stack's bucket, its endpoint and region."""

    endpoint: str
    region: str
    bucket: str
    addressing_style: str = "virtual"
    multipart_chunk: int = 64 << 20


def client(where: Bucket, ctx: Context) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(  # type: ignore[call-overload]
        "s3",
        endpoint_url=where.endpoint,
        region_name=where.region,
        aws_access_key_id=str(ctx.secret("s3_access_key")),
        aws_secret_access_key=str(ctx.secret("s3_secret_key")),
        config=Config(
            s3={"addressing_style": where.addressing_style},  # type: ignore[arg-type]
            retries={"max_attempts": 5, "mode": "standard"},
            connect_timeout=10,
            read_timeout=60,
            # S3-compatible stores (Spaces) do not all speak the newer flexible checksums.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


def remote_sha256(s3: Any, bucket: str, key: str, meter: Meter | None = None) -> tuple[str, int]:
    """Stream the object back and hash it."""
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    digest, size = hashlib.sha256(), 0
    for chunk in iter(lambda: body.read(1 << 20), b""):
        digest.update(chunk)
        size += len(chunk)
        if meter is not None:
            meter.update(size)
    if meter is not None:
        meter.finish()
    return digest.hexdigest(), size


def put_checked(where: Bucket, ctx: Context, path: Path, key: str) -> dict[str, Any]:
    """Upload ``path`` as ``key`` unless the bucket holds it with the same checksum, then read
    it back through SHA-256; returns what was proved."""
    from boto3.s3.transfer import TransferConfig

    s3 = client(where, ctx)
    digest, size = sha256_file(path), path.stat().st_size
    try:
        head = s3.head_object(Bucket=where.bucket, Key=key)
        present = head.get("Metadata", {}).get("sha256") == digest
    except s3.exceptions.ClientError:
        present = False
    if not present:
        chunk = where.multipart_chunk
        config = TransferConfig(
            multipart_threshold=chunk, multipart_chunksize=chunk, max_concurrency=4
        )
        say(f"uploading {path.name} ({size} bytes) to s3://{where.bucket}/{key}")
        sent = Meter(ctx, "upload", size)
        s3.upload_file(
            str(path),
            where.bucket,
            key,
            ExtraArgs={"Metadata": {"sha256": digest}, "ContentType": "application/octet-stream"},
            Config=config,
            Callback=sent.add,
        )
        sent.finish(note=path.name)
    remote, remote_size = remote_sha256(s3, where.bucket, key, Meter(ctx, "read-back", size))
    if remote != digest or remote_size != size:
        raise Failure(f"s3://{where.bucket}/{key} does not match {path.name} (sha256 {remote})")
    say(f"s3://{where.bucket}/{key}: {size} bytes, sha256 {remote} matches")
    return {"bucket": where.bucket, "key": key, "sha256": remote, "size": size}


def get_checked(where: Bucket, ctx: Context, key: str, dest: Path, sha256: str | None) -> str:
    """Download ``key`` to ``dest`` (atomically) and check it against ``sha256`` or the
    object's recorded checksum; returns the checksum."""
    s3 = client(where, ctx)
    head = s3.head_object(Bucket=where.bucket, Key=key)
    expected = sha256 or head.get("Metadata", {}).get("sha256")
    if not expected:
        raise Failure(f"s3://{where.bucket}/{key} carries no sha256: give it with --data")
    tmp = dest.with_name(f".{dest.name}.download")
    got = Meter(ctx, "download", head.get("ContentLength"))
    s3.download_file(where.bucket, key, str(tmp), Callback=got.add)
    got.finish(note=key)
    digest = sha256_file(tmp)
    if digest != expected:
        tmp.unlink()
        raise Failure(
            f"downloaded s3://{where.bucket}/{key} has sha256 {digest}, expected {expected}"
        )
    tmp.chmod(0o600)
    tmp.replace(dest)
    say(f"downloaded s3://{where.bucket}/{key}: sha256 {digest} matches")
    return digest
