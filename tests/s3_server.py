"""A real S3 API on 127.0.0.1 for the tests: moto's server, started once per session, spoken to
over HTTP by s3fs. Import the fixtures into a test module: ``from .s3_server import s3, bucket``.
"""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass
from typing import Iterator

import pytest

# Fake credentials so botocore never goes looking for real ones (or for an instance's).
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing-key-id", "AWS_SECRET_ACCESS_KEY": "testing-secret",
               "AWS_DEFAULT_REGION": "us-east-1"}


@dataclass(frozen=True)
class S3:
    endpoint: str

    @property
    def options(self) -> dict[str, object]:
        return {"endpoint_url": self.endpoint}

    def fs(self):
        import s3fs

        return s3fs.S3FileSystem(endpoint_url=self.endpoint, use_listings_cache=False,
                                 skip_instance_cache=True)


@pytest.fixture(scope="session")
def s3() -> Iterator[S3]:
    from moto.server import ThreadedMotoServer

    saved = {name: os.environ.get(name) for name in CREDENTIALS}
    os.environ.update(CREDENTIALS)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield S3(f"http://{host}:{port}")
    finally:
        server.stop()  # only the server this fixture started
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture
def bucket(s3: S3) -> str:
    """A fresh, empty bucket for one test."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    s3.fs().mkdir(name)
    return name
