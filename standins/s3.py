"""The DigitalOcean Spaces stand-in: moto's S3 API server on 127.0.0.1, run as a subprocess.

moto accepts any signed request, so the access and secret keys are made up per run; they are
still passed like real credentials (environment or boto3 arguments, never a command line).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

from standins import cleanup
from standins.cleanup import Leftover, StandIn, processes
from standins.system import end_process, free_port, launch_on_free_port, log_tail, wait_started

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

DEFAULT_REGION = "nyc3"
"""DigitalOcean Spaces region names are used as the signing region."""
START_TIMEOUT = 30.0


class S3StartError(RuntimeError):
    """The moto S3 server could not be started."""


class S3Server(StandIn):
    """A running moto server speaking the S3 API, with credentials and a region to sign with.

    Start with `S3Server.start()`; use as a context manager or call `stop()`.
    """

    host: str
    port: int
    region: str
    access_key: str
    secret_key: str
    base_dir: Path
    log_path: Path

    def __init__(self, *, port: int, region: str, base_dir: Path, host: str = "127.0.0.1") -> None:
        """Describe a server; `start()` is what runs one."""
        self.host = host
        self.port = port
        self.region = region
        self.access_key = "STANDIN" + secrets.token_hex(8).upper()
        self.secret_key = secrets.token_urlsafe(30)
        self.base_dir = base_dir
        self.log_path = base_dir / "moto.log"
        self._process: subprocess.Popen[bytes] | None = None

    @classmethod
    def start(
        cls, *, region: str = DEFAULT_REGION, port: int | None = None, host: str = "127.0.0.1"
    ) -> S3Server:
        """Run `python -m moto.server` on a free port of `host` (loopback by default, or the
        host end of the VPS's network, where the VPS reaches it); returns once it answers."""
        base_dir = Path(tempfile.mkdtemp(prefix="handled-standins-s3-"))
        base_dir.chmod(0o700)
        server = cls(
            port=port if port is not None else free_port(),
            region=region,
            base_dir=base_dir,
            host=host,
        )
        cleanup.track(server)
        try:
            launch_on_free_port(server, server._launch, S3StartError, port_fixed=port is not None)
        except BaseException:
            server.stop()
            raise
        return server

    def _launch(self) -> None:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("AWS_", "MOTO_", "TEST_SERVER_MODE"))
        }
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(self.port)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
            )
        problem = wait_started(self._process, self._answers, timeout=START_TIMEOUT, interval=0.1)
        if problem is not None:
            if self._process.poll() is not None:
                self._process = None
            raise S3StartError(self._failure(problem))

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.endpoint_url}/moto-api/", timeout=1) as response:  # noqa: S310
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def _failure(self, problem: str) -> str:
        return (
            f"moto S3 server on port {self.port} {problem}; log {self.log_path}:\n"
            f"{log_tail(self.log_path)}"
        )

    def leftovers(self) -> list[Leftover]:
        """The moto server (its buckets live in its memory) and its base dir."""
        pids = [self._process.pid] if self._process is not None else []
        return [
            Leftover(
                what=f"moto S3 on {self.host}:{self.port}",
                processes=processes(pids),
                paths=(str(self.base_dir),),
            )
        ]

    def _shutdown(self) -> None:
        """Stop the server (its buckets are in memory and go with it)."""
        if self._process is not None:
            end_process(self._process, timeout=10)
            self._process = None
        import shutil

        shutil.rmtree(self.base_dir, ignore_errors=True)

    def __repr__(self) -> str:
        return f"S3Server(endpoint_url={self.endpoint_url!r}, region={self.region!r})"

    @property
    def endpoint_url(self) -> str:
        """`http://127.0.0.1:<port>`: what boto3's `endpoint_url` or `aws --endpoint-url` takes."""
        return f"http://{self.host}:{self.port}"

    def env(self) -> dict[str, str]:
        """AWS_* environment variables for a client (boto3, aws-cli) talking to this server."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ENDPOINT_URL_S3": self.endpoint_url,
        }

    def client(self) -> S3Client:
        """A boto3 S3 client for this server (path-style addressing, as with an IP endpoint)."""
        import boto3
        from botocore.config import Config

        client: S3Client = boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
        )
        return client

    def create_bucket(self, name: str, *, versioned: bool = True) -> None:
        """Create bucket `name` (in this server's region), with versioning on by default."""
        client = self.client()
        if self.region == "us-east-1":
            client.create_bucket(Bucket=name)
        else:
            client.create_bucket(
                Bucket=name,
                CreateBucketConfiguration={"LocationConstraint": self.region},  # type: ignore[typeddict-item]
            )
        if versioned:
            client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
