"""Optional Ray Serve backend: STT, TTS and frame rendering as autoscaled deployments.

Selected with ``serving.backend: ray`` (env ``GWM_SERVING__BACKEND=ray``);
``serving.ray`` says where Ray runs, which stages go there and how each scales. The
session code is unchanged: ``Engines.load`` hands it stand-ins with the interfaces of
the local engines (:mod:`streaming.ray_serve.clients`). Modules:

* :mod:`~streaming.ray_serve.runtime` - start or join Ray, and let go of it;
* :mod:`~streaming.ray_serve.deployments` - the Serve deployments;
* :mod:`~streaming.ray_serve.app` - ``build_app`` (the import path for ``serve run`` and
  KubeRay) and ``deploy_local``;
* :mod:`~streaming.ray_serve.clients` - the stand-ins;
* :mod:`~streaming.ray_serve.backend` - :class:`RayServing`, the connection to the app.

Importing this package does not import Ray; its names are loaded on first use.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "RayServing": "streaming.ray_serve.backend",
    "remote_engines": "streaming.ray_serve.backend",
    "build_app": "streaming.ray_serve.app",
    "deploy_local": "streaming.ray_serve.app",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(name)
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = sorted(_EXPORTS)
