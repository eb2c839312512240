"""The Spaces stand-in: a real S3 API (moto server) reached by boto3 over HTTP."""

from __future__ import annotations

from standins.s3 import S3Server


def test_put_and_get_with_versions(s3_server: S3Server) -> None:
    s3_server.create_bucket("handled-backups")
    client = s3_server.client()
    client.put_object(Bucket="handled-backups", Key="pre-split/handled.dump", Body=b"first")
    client.put_object(Bucket="handled-backups", Key="pre-split/handled.dump", Body=b"second")

    body = client.get_object(Bucket="handled-backups", Key="pre-split/handled.dump")["Body"]
    assert body.read() == b"second"
    assert client.get_bucket_versioning(Bucket="handled-backups")["Status"] == "Enabled"
    versions = client.list_object_versions(Bucket="handled-backups")["Versions"]
    assert len(versions) == 2
    [oldest] = [v for v in versions if not v["IsLatest"]]
    first = client.get_object(
        Bucket="handled-backups", Key="pre-split/handled.dump", VersionId=oldest["VersionId"]
    )
    assert first["Body"].read() == b"first"


def test_unversioned_bucket_and_region(s3_server: S3Server) -> None:
    s3_server.create_bucket("scratch", versioned=False)
    client = s3_server.client()
    assert "Status" not in client.get_bucket_versioning(Bucket="scratch")
    location = client.get_bucket_location(Bucket="scratch")["LocationConstraint"]
    assert location == s3_server.region
    env = s3_server.env()
    assert env["AWS_ENDPOINT_URL_S3"] == s3_server.endpoint_url
