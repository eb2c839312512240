"""`BackupBucket`: the private, versioned Spaces bucket for the pre-split ``pg_dump`` files.

Old dumps expire after the retention period (their noncurrent versions too, or versioning would
keep them forever) and abandoned multipart uploads are aborted, so the bucket cannot grow without
bound.

Example::

    bucket = BackupBucket("pg-dumps", BackupBucketArgs(name="handled-prod-pg-backups",
                                                       region="nyc3", retention_days=90))
    pulumi.export("backupBucketName", bucket.bucket_name)
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_digitalocean as digitalocean


@dataclass(frozen=True)
class BackupBucketArgs:
    """The bucket's name, region and retention; private and versioned unless said otherwise."""

    name: str
    region: str
    retention_days: int
    abort_incomplete_upload_days: int = 1
    protect: bool = True


class BackupBucket(pulumi.ComponentResource):
    """A private, versioned Spaces bucket whose objects expire after `retention_days`."""

    bucket_name: pulumi.Output[str]
    endpoint: pulumi.Output[str]

    def __init__(
        self, name: str, args: BackupBucketArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("handled:infra:BackupBucket", name, {}, opts)
        bucket = digitalocean.SpacesBucket(
            f"{name}-bucket",
            name=args.name,
            region=args.region,
            acl="private",
            force_destroy=False,
            versioning=digitalocean.SpacesBucketVersioningArgs(enabled=True),
            lifecycle_rules=[
                digitalocean.SpacesBucketLifecycleRuleArgs(
                    id="expire-old-dumps",
                    enabled=True,
                    expiration=digitalocean.SpacesBucketLifecycleRuleExpirationArgs(
                        days=args.retention_days
                    ),
                    noncurrent_version_expiration=(
                        digitalocean.SpacesBucketLifecycleRuleNoncurrentVersionExpirationArgs(
                            days=args.retention_days
                        )
                    ),
                ),
                digitalocean.SpacesBucketLifecycleRuleArgs(
                    id="abort-incomplete-uploads",
                    enabled=True,
                    abort_incomplete_multipart_upload_days=args.abort_incomplete_upload_days,
                ),
            ],
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        self.bucket_name = bucket.name
        self.endpoint = bucket.endpoint
        self.register_outputs({"bucket_name": self.bucket_name, "endpoint": self.endpoint})
