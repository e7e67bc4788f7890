"""Prometheus metrics over HTTP (`HOOKSHELF_METRICS_LISTEN=host:port`), off when empty.

The RPC counters and latency histograms are defined in shared.grpc_interceptor; each
service adds its own (e.g. runs, steps) next to the code that counts them.
"""

from __future__ import annotations

import prometheus_client
import structlog

log = structlog.get_logger("hookshelf.metrics")


def start_metrics_server(listen: str) -> None:
    """Serve /metrics on listen ("host:port"); a no-op when listen is empty."""
    if not listen:
        return
    host, _, port = listen.rpartition(":")
    prometheus_client.start_http_server(int(port), addr=host or "0.0.0.0")
    log.info("metrics.started", address=listen)
