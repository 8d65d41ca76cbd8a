"""Renderers: an :class:`~avatar.state.AvatarState` in, an RGB frame of the avatar out.

Every frame is rendered from the rig's reference portrait (nothing accumulates from
frame to frame, so the identity cannot drift). :class:`CpuRenderer` uses numpy and
OpenCV; :class:`TorchRenderer` batches many states (even from different sessions that
share a rig) into one call, on CUDA when available. Both compute the same sampling
fields and agree within a small tolerance. See :mod:`avatar.render.params` for the
sign conventions of the state's angles and offsets.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from avatar.config import RenderConfig
from avatar.identity.rig import AvatarRig
from avatar.render.cpu import CpuRenderer
from avatar.render.model import RigModel, build_model
from avatar.state import AvatarState

log = logging.getLogger(__name__)


@runtime_checkable
class Renderer(Protocol):
    """Turns avatar states into frames of one rig."""

    size: tuple[int, int]
    """Output (width, height)."""

    def render(self, state: AvatarState) -> npt.NDArray[np.uint8]:
        """One H×W×3 uint8 RGB frame."""
        ...

    def render_batch(self, states: Sequence[AvatarState]) -> list[npt.NDArray[np.uint8]]:
        """Frames for several states, in order."""
        ...


def render_size(config: RenderConfig) -> tuple[int, int]:
    """The output (width, height) a render config asks for (``width`` defaults to ``size``)."""
    return (config.width or config.size, config.size)


def create_renderer(rig: AvatarRig, config: RenderConfig) -> Renderer:
    """The renderer the config names (``cpu`` or ``torch``) for a rig.

    Frames come out at the rig's size (prepare the rig with ``load_rig(...,
    size=render_size(config))`` to honour the config's size).
    """
    if rig.size != render_size(config):
        log.info(
            "rendering at the rig's %dx%d (the config asks for %dx%d)",
            *rig.size,
            *render_size(config),
        )
    if config.backend == "torch":
        from avatar.render.torch_renderer import TorchRenderer

        return TorchRenderer(rig, device=config.device, max_batch=config.max_batch)
    return CpuRenderer(rig)


def __getattr__(name: str) -> Any:
    if name == "TorchRenderer":  # imported lazily: torch is heavy
        from avatar.render.torch_renderer import TorchRenderer

        return TorchRenderer
    raise AttributeError(name)


__all__ = [
    "CpuRenderer",
    "Renderer",
    "RigModel",
    "TorchRenderer",
    "build_model",
    "create_renderer",
    "render_size",
]
