"""A real S3-compatible server for the store's tests: moto's server mode on a free loopback
port, with a bucket of its own. The service reaches it over HTTP exactly as it would MinIO."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import boto3
from moto.server import ThreadedMotoServer

from tests.e2e.fleet import free_port

REGION = "us-east-1"


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    bucket: str
    access_key_id: str
    secret_access_key: str

    def client(self):
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
        )

    def list_keys(self, prefix: str = "") -> list[str]:
        listed = self.client().list_objects_v2(Bucket=self.bucket, Prefix=prefix)
        return sorted(item["Key"] for item in listed.get("Contents", []))

    def unfinished_uploads(self) -> list[str]:
        listed = self.client().list_multipart_uploads(Bucket=self.bucket)
        return [upload["Key"] for upload in listed.get("Uploads", [])]

    def settings(self, prefix: str = "store") -> dict[str, str]:
        """TRAINYARD_* settings (lower-case names) that point a service at this bucket."""
        return {
            "store_url": f"s3://{self.bucket}/{prefix}",
            "store_endpoint_url": self.endpoint_url,
            "store_region": REGION,
            "store_access_key_id": self.access_key_id,
            "store_secret_access_key": self.secret_access_key,
        }


@contextmanager
def s3_server(secret_access_key: str = "moto-secret") -> Iterator[S3Server]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        s3 = S3Server(
            f"http://127.0.0.1:{port}",
            f"trainyard-{uuid.uuid4().hex[:12]}",
            "AKIATRAINYARDTEST",
            secret_access_key,
        )
        s3.client().create_bucket(Bucket=s3.bucket)
        yield s3
    finally:
        server.stop()
