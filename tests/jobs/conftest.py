"""Real brokers for the job tests: Redis and RabbitMQ on this machine.

Skipped when a broker is unreachable, except with CI=true, where that fails the run.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"
BROKERS = {
    "redis": os.environ.get("FHIRHUB_TEST_REDIS_URL", "redis://127.0.0.1:6379/14"),
    "rabbitmq": os.environ.get("FHIRHUB_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//"),
}


def reachable(url: str) -> bool:
    u = urlparse(url)
    try:
        with socket.create_connection((u.hostname, u.port), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(params=sorted(BROKERS))
def broker_url(request: pytest.FixtureRequest) -> str:
    url = BROKERS[request.param]
    if not reachable(url):
        reason = f"{request.param} unreachable at {url}"
        if IN_CI:
            pytest.fail(reason + " (CI=true requires it)", pytrace=False)
        pytest.skip(reason)
    return url
