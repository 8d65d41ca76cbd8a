"""The Ray Serve application: the configured stages bound into one app.

``build_app`` is the builder Ray Serve imports (``serve run
streaming.ray_serve.app:build_app profile=gpu``, or ``import_path`` in a KubeRay
RayService's ``serveConfigV2``); its ``args`` name the config profile and overrides.
``deploy_local`` starts (or joins) Ray from this process, runs the app and returns a
connection to it. Importing this module does not import Ray (so that ``deploy_local``
can set Ray's environment up first).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from streaming.config import AppConfig, ConfigError, load_config
from streaming.ray_serve.names import RENDER, STT, TTS

if TYPE_CHECKING:
    from ray.serve import Application

    from streaming.ray_serve.backend import RayServing

log = logging.getLogger(__name__)


def application(config: AppConfig) -> Application:
    """The app serving ``config.serving.ray.stages``, each deployment scaled as configured."""
    from streaming.ray_serve.deployments import (
        GATEWAY_DEPLOYMENT,
        RENDER_DEPLOYMENT,
        STT_DEPLOYMENT,
        TTS_DEPLOYMENT,
        deployment_options,
    )

    r = config.serving.ray
    stages = set(r.stages)
    assets = config.assets.model_dump(mode="json")
    stt = (
        STT_DEPLOYMENT.options(name=STT, **deployment_options(r.stt)).bind(
            config.stt.model_dump(mode="json"), assets, config.cpu.model_dump(mode="json")
        )
        if STT in stages
        else None
    )
    tts = (
        TTS_DEPLOYMENT.options(name=TTS, **deployment_options(r.tts)).bind(
            config.tts.model_dump(mode="json"), assets
        )
        if TTS in stages
        else None
    )
    render = (
        RENDER_DEPLOYMENT.options(name=RENDER, **deployment_options(r.render)).bind(
            config.render.model_dump(mode="json"),
            r.render.max_batch_size,
            r.render.batch_wait_timeout_s,
        )
        if RENDER in stages
        else None
    )
    return GATEWAY_DEPLOYMENT.bind(stt, tts, render)


def config_from_args(args: Mapping[str, Any]) -> AppConfig:
    """The config an app builder's ``args`` describe.

    ``config``: a whole config tree (a mapping), or else ``profile`` (default
    ``default``) plus ``overrides`` (a list of ``section.field=value``, or one string
    of them separated by ``;``); ``GWM_*`` environment variables apply as usual.
    """
    unknown = set(args) - {"config", "profile", "overrides"}
    if unknown:
        raise ConfigError(f"unknown app args: {', '.join(sorted(unknown))}")
    if "config" in args:
        return AppConfig.model_validate(args["config"])
    overrides = args.get("overrides") or []
    if isinstance(overrides, str):
        overrides = [o.strip() for o in overrides.split(";") if o.strip()]
    return load_config(str(args.get("profile") or "default"), overrides=list(overrides))


def build_app(args: dict[str, Any]) -> Application:
    """Ray Serve app builder: ``streaming.ray_serve.app:build_app`` with ``args``."""
    config = config_from_args(args)
    log.info("building the Ray Serve app for stages %s", ", ".join(config.serving.ray.stages))
    return application(config)


def deploy(config: AppConfig) -> None:
    """Run (or update in place) the app on the connected Ray cluster; blocks until ready.

    No HTTP route is added: sessions call the deployments through handles.
    """
    from ray import serve

    r = config.serving.ray
    serve.run(application(config), name=r.app_name, route_prefix=None)
    log.info("Ray Serve app %r is running (%s)", r.app_name, ", ".join(r.stages))


def deploy_local(config: AppConfig) -> RayServing:
    """Start Ray here (``serving.ray.address`` None) or join it, run the app, connect.

    Close the returned :class:`RayServing` to shut down what this call started.
    """
    from streaming.ray_serve.backend import RayServing

    return RayServing.connect(config, redeploy=True)
