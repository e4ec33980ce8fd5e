"""The dev harness shared by the tests, benchmarks and eval: one home for free ports, spawning and stopping
services, waiting for health and writing results JSON, so the callers cannot drift apart.

Dev only: `make install` puts it editable into both service venvs; no image ships it (the Docker build contexts
are the service directories, and deploy/tests checks that no Dockerfile reaches for it).
"""

from devharness.processes import (
    Service,
    ServiceFailed,
    ThreadedServer,
    free_port,
    http_ok,
    log_tail,
    serve,
    spawn,
    wait_for,
    wait_healthy,
)
from devharness.results import host_info, write_results

__all__ = [
    "Service",
    "ServiceFailed",
    "ThreadedServer",
    "free_port",
    "host_info",
    "http_ok",
    "log_tail",
    "serve",
    "spawn",
    "wait_for",
    "wait_healthy",
    "write_results",
]
