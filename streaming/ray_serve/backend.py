"""The connection a service process holds to the Ray Serve app, and the engines it gives.

:meth:`RayServing.connect` starts or joins Ray (``serving.ray.address``), deploys the
app when it is not running yet (``serving.ray.deploy``), and makes a client for each
stage in ``serving.ray.stages``. :meth:`RayServing.close` undoes only what connect
did: it stops Serve and Ray when it started them, disconnects when it joined.

Ray is imported only after :func:`~streaming.ray_serve.runtime.ensure_ray` has set
up its environment (a local instance must know at import time to stay on loopback).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from avatar.config import RenderConfig
from avatar.identity import AvatarRig
from avatar.render import Renderer, create_renderer
from models.errors import BackendUnavailableError
from streaming.config import AppConfig
from streaming.engines import Engines
from streaming.ray_serve.clients import RayRenderer, RaySpeechRecognizer, RayTextToSpeech
from streaming.ray_serve.names import RENDER, STT, TTS
from streaming.ray_serve.runtime import RayRuntime, ensure_ray

if TYPE_CHECKING:
    from ray.serve.handle import DeploymentHandle

log = logging.getLogger(__name__)

PRESENT = {"RUNNING", "DEPLOYING"}
"""App states in which a running app is used as it is (not deployed again)."""


def app_status(app_name: str) -> str | None:
    """The app's Serve status (``RUNNING``, ``DEPLOYING``...) or None when absent."""
    from ray import serve

    app = serve.status().applications.get(app_name)
    return None if app is None else str(getattr(app.status, "value", app.status))


@dataclass
class RayServing:
    """Clients of the stages the Ray Serve app serves, and the Ray connection under them."""

    config: AppConfig
    runtime: RayRuntime
    handles: dict[str, DeploymentHandle] = field(default_factory=dict)
    stt: RaySpeechRecognizer | None = None
    tts: RayTextToSpeech | None = None

    @classmethod
    def connect(cls, config: AppConfig, *, redeploy: bool = False) -> RayServing:
        """Start or join Ray, make sure the app runs, and build the stage clients.

        ``redeploy`` runs the app from this config even when it is already running
        (Serve updates it in place). Raises BackendUnavailableError when Ray or the
        app cannot be had.
        """
        r = config.serving.ray
        runtime = ensure_ray(r)
        try:
            from ray import serve

            from streaming.ray_serve.app import deploy

            if runtime.started_instance:
                serve.start(proxy_location="Disabled")
            status = app_status(r.app_name)
            if redeploy or status not in PRESENT:
                if not (redeploy or r.deploy):
                    raise BackendUnavailableError(
                        f"the Ray Serve app {r.app_name!r} is not running ({status or 'absent'}) "
                        "and serving.ray.deploy is false"
                    )
                deploy(config)
            handles: dict[str, DeploymentHandle] = {
                stage: serve.get_deployment_handle(stage, app_name=r.app_name) for stage in r.stages
            }
            serving = cls(config, runtime, handles)
            if STT in handles:
                serving.stt = RaySpeechRecognizer(handles[STT], config.stt, r.request_timeout_s)
            if TTS in handles:
                serving.tts = RayTextToSpeech(handles[TTS], config.tts, r.request_timeout_s)
        except BackendUnavailableError:
            runtime.shutdown()
            raise
        except Exception as exc:
            runtime.shutdown()
            raise BackendUnavailableError(
                f"cannot use the Ray Serve app {r.app_name!r}: {exc}"
            ) from exc
        log.info("serving %s on Ray Serve (app %r)", ", ".join(handles), r.app_name)
        return serving

    def renderer(
        self, bundle: Path | None, rig: AvatarRig, render: RenderConfig
    ) -> Renderer | None:
        """A renderer of ``rig`` (loaded from ``bundle``) on Ray; None: render locally."""
        handle = self.handles.get(RENDER)
        if handle is None:
            return None
        path = Path(bundle).expanduser().resolve() if bundle is not None else None
        return RayRenderer(
            handle,
            path,
            rig.size,
            lambda: create_renderer(rig, render),
            self.config.serving.ray.render_timeout_s,
        )

    def stats(self) -> dict[str, dict[str, Any]]:
        """Each stage's counters, as one of its replicas reports them (blocks)."""
        timeout = self.config.serving.ray.request_timeout_s
        return {
            name: h.stats.remote().result(timeout_s=timeout) for name, h in self.handles.items()
        }

    async def astats(self) -> dict[str, dict[str, Any]]:
        """:meth:`stats` without blocking the event loop."""
        names = list(self.handles)
        results = await asyncio.gather(*(self.handles[n].stats.remote() for n in names))
        return dict(zip(names, results, strict=True))

    async def acheck(self, timeout_s: float) -> None:
        """Raise BackendUnavailableError unless every stage answers within ``timeout_s``."""
        try:
            await asyncio.wait_for(self.astats(), timeout_s)
        except Exception as exc:  # whatever Ray raises: the app is not usable now
            raise BackendUnavailableError(
                f"the Ray Serve app {self.config.serving.ray.app_name!r} does not answer: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    def close(self) -> None:
        """Shut down Serve and Ray if connect started them; disconnect if it joined."""
        self.handles.clear()
        self.runtime.shutdown()

    async def aclose(self) -> None:
        """:meth:`close` off the event loop (shutting Ray down takes seconds)."""
        await asyncio.to_thread(self.close)


def remote_engines(local: Engines, serving: RayServing) -> Engines:
    """Engines sharing ``local``'s LLM and VAD, with the stages ``serving`` has on Ray.

    Close ``local`` and ``serving`` themselves (closing the result would close the
    shared LLM).
    """
    return Engines(
        config=local.config,
        resolver=local.resolver,
        stt=serving.stt or local.stt,
        llm=local.llm,
        tts=serving.tts or local.tts,
        vad_model=local.vad_model,
        avatar_dirs=list(local.avatar_dirs),
        serving=serving,
    )
