"""Shared fixtures for the real-client suites: the broker address and fresh topic names."""

import os
import uuid

import pytest


@pytest.fixture(scope="session")
def bootstrap():
    """The broker under test, HOST:PORT from $SPATE_BOOTSTRAP (tests/clients/run.sh sets it)."""
    address = os.environ.get("SPATE_BOOTSTRAP")
    if not address:
        pytest.fail("SPATE_BOOTSTRAP is not set: run these through tests/clients/run.sh, or point it at a broker")
    return address


@pytest.fixture
def topic_name(request):
    """A topic name no earlier test used (Kafka's legal characters only)."""
    test = "".join(c if c.isalnum() else "-" for c in request.node.name)[:80]
    return f"{test}-{uuid.uuid4().hex[:8]}"

