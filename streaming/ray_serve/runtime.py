"""Start or join Ray for the serving backend, and later undo exactly what was done.

``serving.ray.address`` None starts a small Ray instance inside this process (on
loopback, no dashboard, no HTTP proxy); ``auto`` joins the cluster this machine is a
node of; ``ray://<head>:10001`` connects with Ray Client (a pod outside the cluster).
If Ray is already initialized in this process (a test, a notebook), it is used as it
is and left running on close.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass

from models.errors import BackendUnavailableError
from streaming.config import RayServingConfig

log = logging.getLogger(__name__)

LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
"""Ray reads it at import: "0" makes a local instance use 127.0.0.1 as its node address."""
LOOPBACK_IP = "127.0.0.1"
NO_SIGNAL_HANDLER_ENV = "RAY_DISABLE_FAILURE_SIGNAL_HANDLER"
"""Ray's crash handler arms a 3 s abort on SIGTERM, which would cut the server's drain."""


@dataclass
class RayRuntime:
    """What this process did to get Ray, so that :meth:`shutdown` undoes only that."""

    started_instance: bool
    """A local Ray instance (and Serve on it) was started by this process."""
    connected: bool
    """This process called ``ray.init`` (a local start or a connection to a cluster)."""

    def shutdown(self) -> None:
        """Stop Serve and Ray if this process started them; disconnect if it joined."""
        if not self.connected:
            return
        import ray
        from ray import serve

        try:
            if self.started_instance:
                serve.shutdown()
        finally:
            ray.shutdown()
            self.connected = False
            self.started_instance = False


def ensure_ray(config: RayServingConfig) -> RayRuntime:
    """Make sure this process is connected to Ray as the config says.

    Raises BackendUnavailableError when Ray is not installed or cannot be reached.
    """
    if config.address is None:
        if "ray" in sys.modules and os.environ.get(LOOPBACK_ENV) != "0":
            log.warning(
                "ray was imported before %s=0 was set: a local instance may listen on "
                "every interface, not only on loopback",
                LOOPBACK_ENV,
            )
        # Read when ray is first imported; raylet and workers inherit it.
        os.environ.setdefault(LOOPBACK_ENV, "0")
    elif os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH"):
        # A client only sends its token in token mode; `ray start` infers it the same way.
        os.environ.setdefault("RAY_AUTH_MODE", "token")
    # SIGTERM must reach the server's own drain (goodbye lines, then Ray's shutdown).
    os.environ.setdefault(NO_SIGNAL_HANDLER_ENV, "1")
    try:
        import ray
    except ImportError as exc:
        raise BackendUnavailableError(
            "serving.backend is 'ray' but Ray is not installed (pip install 'gwm-avatars[ray]')"
        ) from exc
    if ray.is_initialized():
        log.info("using the Ray connection this process already has")
        return RayRuntime(started_instance=False, connected=False)
    try:
        if config.address is None:
            ray.init(
                num_cpus=config.num_cpus,
                object_store_memory=(
                    config.object_store_mb * 1024 * 1024 if config.object_store_mb else None
                ),
                include_dashboard=False,
                namespace=config.namespace,
                log_to_driver=False,
                _node_ip_address=LOOPBACK_IP,
                _temp_dir=str(config.temp_dir) if config.temp_dir is not None else None,
            )
            log.info("started a local Ray instance (%s CPUs)", config.num_cpus or "all")
            return RayRuntime(started_instance=True, connected=True)
        ray.init(address=config.address, namespace=config.namespace, log_to_driver=False)
        log.info("connected to the Ray cluster at %s", config.address)
        return RayRuntime(started_instance=False, connected=True)
    except Exception as exc:
        ray.shutdown()  # whatever part of it started
        where = config.address or "a local instance"
        raise BackendUnavailableError(f"cannot start or reach Ray ({where}): {exc}") from exc
