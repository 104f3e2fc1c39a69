"""Fixtures of the integration suite: one stub model server and one pool of agent runs for the whole session."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

# The shared assertions get pytest's detailed messages too (they live outside the test modules).
pytest.register_assert_rewrite("tests.integrations.helpers")

from tests.integrations.stub_server import StubModelServer  # noqa: E402 - after the rewrite hook

#: Agent runs at once. Each is mostly one process importing its framework and instrumentors, so two
#: keep this 2-core machine busy and halve the suite's wall time; more would only queue.
WORKERS = 2


@pytest.fixture(scope="session")
def stub() -> Iterator[StubModelServer]:
    """The loopback stub model server, shared by every integration test (each run logs under its own key)."""
    server = StubModelServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pool() -> Iterator[ThreadPoolExecutor]:
    """Where a module starts its agent runs, so that they overlap."""
    with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="agent-run") as executor:
        yield executor


@pytest.fixture(autouse=True)
def no_strays(stub: StubModelServer) -> Iterator[None]:
    """Fail every test once anything has asked the stub for a host or path it does not serve."""
    yield
    assert stub.strays == [], "requests that would have left the machine"
