"""Prometheus metrics of one server (its own registry: no process-global state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

STAGE_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)


class ServerMetrics:
    """Counters, gauges and latency histograms exposed at ``/metrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.active_sessions = Gauge(
            "gwm_active_sessions", "Sessions currently open", registry=self.registry
        )
        self.sessions_total = Counter(
            "gwm_sessions_total", "Sessions accepted", registry=self.registry
        )
        self.sessions_by_mode = Counter(
            "gwm_sessions_by_mode_total",
            "Sessions accepted, by mode (conversation or echo)",
            ["mode"],
            registry=self.registry,
        )
        self.sessions_rejected = Counter(
            "gwm_sessions_rejected_total",
            "Session requests refused",
            ["reason"],
            registry=self.registry,
        )
        self.turns = Counter(
            "gwm_turns_total",
            "Completed conversation turns",
            ["interrupted"],
            registry=self.registry,
        )
        self.stage_latency = Histogram(
            "gwm_stage_latency_seconds",
            "Latency of each stage of a turn",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=self.registry,
        )
        self.dropped_frames = Counter(
            "gwm_dropped_video_frames_total",
            "Video frames skipped to keep up",
            registry=self.registry,
        )
        self.http_errors = Counter(
            "gwm_http_errors_total", "HTTP error responses", ["status"], registry=self.registry
        )

    def observe_turn(self, metrics: dict[str, float], interrupted: bool) -> None:
        """Record one turn's per-stage milliseconds."""
        self.turns.labels(interrupted=str(interrupted).lower()).inc()
        for stage, ms in metrics.items():
            if stage.endswith("_ms"):
                self.stage_latency.labels(stage=stage[:-3]).observe(ms / 1000.0)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
