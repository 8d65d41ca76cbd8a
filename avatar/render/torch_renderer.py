"""The torch renderer: the same fields and compositing as the CPU path, batched.

Many states (from one session or several sharing a rig) are rendered in one call: the
common field is one matrix product for the whole batch, the portrait is sampled with
``grid_sample`` for every frame at once, and the mouth and eye boxes are gathered,
composited and scattered back as batched tensors. On a CUDA device the whole batch
stays on the GPU until the final uint8 frames.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from avatar.identity.rig import AvatarRig
from avatar.render.cpu import LASH_DARKEN
from avatar.render.host_memory import keep_frame_memory
from avatar.render.model import (
    CAVITY_DEEP,
    DAMPING,
    ITERS,
    LO_LIGHT,
    LO_LIP,
    LO_LIP_REACH,
    LO_MASK,
    LO_REACH,
    LO_T,
    LO_TEETH,
    LO_TEETH_REACH,
    LO_TONGUE,
    UP_CAVITY,
    UP_LIGHT,
    UP_LIP,
    UP_LIP_REACH,
    UP_MASK,
    UP_PHOTO,
    UP_REACH,
    UP_T,
    UP_TEETH,
    RigModel,
    Roi,
    build_model,
    node_coords,
)
from avatar.render.params import FrameParams, frame_params
from avatar.state import AvatarState
from models.errors import BackendUnavailableError

log = logging.getLogger(__name__)


def resolve_device(device: str = "auto") -> str:
    """``auto`` → ``cuda`` when available, else ``cpu``; otherwise as given."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BackendUnavailableError("render.device is 'cuda' but torch sees no CUDA device")
    return device


class TorchRenderer:
    """Renders batches of :class:`AvatarState` frames of one rig with torch."""

    def __init__(
        self,
        rig: AvatarRig,
        device: str = "auto",
        *,
        model: RigModel | None = None,
        max_batch: int = 32,
    ) -> None:
        import torch

        self.rig = rig
        self.model = model if model is not None else build_model(rig)
        self.size: tuple[int, int] = self.model.size
        self.device = torch.device(resolve_device(device))
        self.max_batch = max(1, int(max_batch))
        m = self.model

        def t(a: np.ndarray) -> Any:
            return torch.as_tensor(np.ascontiguousarray(a), device=self.device)

        def chw(a: np.ndarray) -> Any:
            return t(np.ascontiguousarray(np.moveaxis(a, -1, 0))[None])

        self._t = t
        self._basis = t(m.basis.reshape(m.basis.shape[0], -1))
        self._nodes = t(node_coords(m.size, m.low_shape).astype(np.float32))
        w, h = self.size
        self._size = t(np.array([w, h], np.float32))
        self._identity = t(m.identity)
        self._portrait = chw(m.portrait_f)
        mo = m.mouth
        self._node_idx = {id(r): t(_node_idx(r)) for r in (m.mouth.roi, *(e.roi for e in m.eyes))}
        self._mouth = {
            "up": t(mo.up_fields.reshape(mo.up_fields.shape[0], -1)),
            "low": t(mo.low_fields.reshape(mo.low_fields.shape[0], -1)),
            "atlas_up": chw(mo.atlas_up[..., 3:]),
            "atlas_low": chw(mo.atlas_low[..., 3:]),
        }
        self._eyes = [
            {
                "lid": t(e.lid_field[None]),
                "atlas_lid": chw(e.atlas_lid[..., 3:]),
                "atlas_face": chw(e.atlas_face[..., 3:]),
                "atlas_iris": chw(e.atlas_iris),
                "gaze": t(np.array(e.gaze_px, np.float32) * np.array([1.0, -1.0], np.float32)),
            }
            for e in m.eyes
        ]
        self._host: Any = None  # pinned staging buffer for frames coming back from a GPU
        self._host_lock = threading.Lock()
        if self.device.type == "cuda":
            keep_frame_memory()
        log.info("torch renderer on %s, %dx%d", self.device, w, h)

    # ------------------------------------------------------------ public API

    def render(self, state: AvatarState) -> npt.NDArray[np.uint8]:
        """One frame (H×W×3 uint8 RGB)."""
        return self.render_batch([state])[0]

    def render_batch(self, states: Sequence[AvatarState]) -> list[npt.NDArray[np.uint8]]:
        """Frames for many states, rendered ``max_batch`` at a time."""
        out: list[npt.NDArray[np.uint8]] = []
        for s in range(0, len(states), self.max_batch):
            chunk = list(states[s : s + self.max_batch])
            frames = self.render_tensor(frame_params(self.model, chunk))
            out.extend(self._to_host(frames))
        return out

    def _to_host(self, frames: Any) -> list[npt.NDArray[np.uint8]]:
        """Frames (B, H, W, 3) as separate host arrays.

        From a GPU, the batch is copied once into a reused pinned buffer and then frame by
        frame into ordinary arrays, which :func:`keep_frame_memory` keeps from being
        page-faulted anew on every call (that cost 7x the rendering itself on an H200).
        """
        import torch

        if frames.device.type == "cpu":
            return list(frames.numpy())
        with self._host_lock:
            if (
                self._host is None
                or self._host.shape[1:] != frames.shape[1:]
                or len(self._host) < len(frames)
            ):
                self._host = torch.empty(
                    (max(len(frames), self.max_batch), *frames.shape[1:]),
                    dtype=torch.uint8,
                    pin_memory=True,
                )
            staged = self._host[: len(frames)]
            staged.copy_(frames)
            host = staged.numpy()
            return [host[i].copy() for i in range(len(frames))]

    # ------------------------------------------------------------ internals

    def render_tensor(self, p: FrameParams) -> Any:
        """Frames (B, H, W, 3) uint8 on the renderer's device, for precomputed params."""
        import torch

        with torch.inference_mode():
            warp = self._warp(self._t(p.common))
            frames = self._sample_shared(self._portrait, warp)  # (B, H, W, 3)
            self._mouth_boxes(frames, warp, p)
            for e in range(2):
                self._eye_boxes(frames, warp, p, e)
            return frames.round_().clamp_(0, 255).to(torch.uint8).contiguous()

    def _warp(self, coef: Any) -> Any:
        """Full-resolution backward map (B, H, W, 2) in portrait pixels."""
        import torch
        import torch.nn.functional as F

        hl, wl = self.model.low_shape
        w, h = self.size
        b = coef.shape[0]
        fwd = (coef @ self._basis).view(b, hl, wl, 2)
        fwd_c = fwd.permute(0, 3, 1, 2)
        g = -fwd
        for _ in range(ITERS - 1):
            grid = (self._nodes + g + 0.5) * (2.0 / self._size) - 1.0
            s = F.grid_sample(
                fwd_c, grid, mode="bilinear", padding_mode="border", align_corners=False
            )
            g = g + DAMPING * (-s.permute(0, 2, 3, 1) - g)
        up = F.interpolate(g.permute(0, 3, 1, 2), size=(h, w), mode="bilinear", align_corners=False)
        return torch.add(up.permute(0, 2, 3, 1), self._identity)

    @staticmethod
    def _norm(coords: Any, w: int, h: int) -> Any:
        import torch

        scale = torch.tensor([2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)], device=coords.device)
        return coords * scale - 1.0

    def _sample_shared(self, img: Any, coords: Any, padding: str = "border") -> Any:
        """Sample one (1, C, h, w) image at (B, oh, ow, 2) pixel coords → (B, oh, ow, C)."""
        import torch.nn.functional as F

        b, oh, ow, _ = coords.shape
        h, w = img.shape[-2:]
        grid = self._norm(coords, w, h).reshape(1, b * oh, ow, 2)
        out = F.grid_sample(img, grid, mode="bilinear", padding_mode=padding, align_corners=True)
        return out.view(img.shape[1], b, oh, ow).permute(1, 2, 3, 0)

    def _sample_each(self, img: Any, coords: Any) -> Any:
        """Sample (B, C, h, w) images at (B, oh, ow, 2) pixel coords (zeros outside)."""
        import torch.nn.functional as F

        h, w = img.shape[-2:]
        out = F.grid_sample(
            img, self._norm(coords, w, h), mode="bilinear", padding_mode="zeros", align_corners=True
        )
        return out.permute(0, 2, 3, 1)

    def _pull_back(self, fwd: Any, roi: Roi, local: Any) -> Any:
        """Invert a coarse-grid forward field (B, rows, cols, 2) and apply it at ``local``."""
        step = float(roi.step)
        idx = self._node_idx[id(roi)]
        d = fwd * (1.0 / step)
        d_c = d.permute(0, 3, 1, 2)
        q = idx - d
        for _ in range(ITERS - 1):
            q = q + DAMPING * (idx - self._sample_each(d_c, q) - q)
        back = ((q - idx) * step).permute(0, 3, 1, 2)
        return local + self._sample_each(back, local * (1.0 / step))

    def _gather(self, warp: Any, origin: np.ndarray, roi: Roi) -> tuple[Any, Any]:
        import torch

        dev = self.device
        org = torch.as_tensor(origin, device=dev)
        ys = org[:, 1:2] + torch.arange(roi.out_h, device=dev)[None]
        xs = org[:, 0:1] + torch.arange(roi.out_w, device=dev)[None]
        bi = torch.arange(len(origin), device=dev)[:, None, None]
        idx = (bi, ys[:, :, None], xs[:, None, :])
        return warp[idx], idx

    def _mouth_boxes(self, frames: Any, warp: Any, p: FrameParams) -> None:
        m = self.model.mouth
        roi = m.roi
        src, idx = self._gather(warp, p.mouth_box, roi)
        origin = self._t(np.array([roi.x0, roi.y0], np.float32))
        local = src - origin
        coef = self._t(p.mouth)
        b = coef.shape[0]
        nh, nw = roi.node_shape
        d_up = (coef @ self._mouth["up"]).view(b, nh, nw, 2)
        d_low = (coef @ self._mouth["low"]).view(b, nh, nw, 2)
        q_up = self._pull_back(d_up, roi, local)
        q_low = self._pull_back(d_low, roi, local)
        # masks and textures from the ROI's atlases; the portrait from the whole portrait,
        # so a pixel of the box that samples far from the mouth still gets it right
        a_up = self._sample_shared(self._mouth["atlas_up"], q_up)
        a_low = self._sample_shared(self._mouth["atlas_low"], q_low)
        i_up = self._sample_shared(self._portrait, q_up + origin)
        i_low = self._sample_shared(self._portrait, q_low + origin)
        frames[idx] = _composite_mouth(a_up, a_low, i_up, i_low, self._t(p.interior))

    def _eye_boxes(self, frames: Any, warp: Any, p: FrameParams, e: int) -> None:
        eye = self.model.eyes[e]
        tens = self._eyes[e]
        roi = eye.roi
        src, idx = self._gather(warp, p.eye_boxes[:, e], roi)
        origin = self._t(np.array([roi.x0, roi.y0], np.float32))
        local = src - origin
        blink = self._t(p.blink[:, e])[:, None, None, None]
        q_lid = self._pull_back(tens["lid"] * blink, roi, local)
        shift = (self._t(p.gaze) * tens["gaze"])[:, None, None, :]
        a_lid = self._sample_shared(tens["atlas_lid"], q_lid)
        a_face = self._sample_shared(tens["atlas_face"], local)
        a_iris = self._sample_shared(tens["atlas_iris"], local - shift, "zeros")
        i_lid = self._sample_shared(self._portrait, q_lid + origin)
        i_face = self._sample_shared(self._portrait, src)
        mu, ml = a_lid[..., 0:1], a_face[..., 0:1]
        w_low = ml.minimum(1.0 - mu)
        w_eye = 1.0 - mu - w_low
        ball = a_face[..., 1:4]
        ball = ball + (a_iris[..., 0:3] - ball) * a_iris[..., 3:4]
        lid = i_lid * (mu * (1.0 - LASH_DARKEN * blink * a_lid[..., 1:2]))
        eye_px = ball * w_eye + i_face * w_low + lid
        frames[idx] = eye_px + (i_face - eye_px) * a_face[..., 4:5]


def _composite_mouth(a_up: Any, a_low: Any, i_up: Any, i_low: Any, reach: Any) -> Any:
    """:func:`avatar.render.cpu.composite_mouth` on (B, h, w, C) tensors.

    The atlases here lack their first three (portrait) channels; ``i_up`` / ``i_low``
    are the portrait sampled through each part's field; ``reach`` is (B, 6).
    """

    def ch(a: Any, c: int | slice, first: int = 3) -> Any:
        if isinstance(c, slice):
            return a[..., c.start - first : c.stop - first]
        return a[..., c - first : c - first + 1]

    r = reach[:, None, None, :]

    def alpha(a: Any, profile: int, t: int, k: int) -> Any:
        reach = ch(a, profile) * r[..., k : k + 1]
        return (reach - ch(a, t) + 0.5).clamp(0.0, 1.0) * reach.clamp(0.0, 1.0)

    ml = ch(a_low, LO_MASK)
    w_int = (1.0 - ml - ch(a_up, UP_MASK)).clamp(min=0.0)
    w_up = 1.0 - ml - w_int
    light = 1.0 - (1.0 - ch(a_up, UP_LIGHT)) * (1.0 - ch(a_low, LO_LIGHT))
    inner = ch(a_up, UP_CAVITY) * (light * (1.0 - CAVITY_DEEP) + CAVITY_DEEP)
    a_tongue = alpha(a_low, LO_REACH, LO_T, 1)
    layers = (
        (ch(a_low, LO_TONGUE), a_tongue),
        (ch(a_low, LO_TEETH), alpha(a_low, LO_TEETH_REACH, LO_T, 2)),
        (ch(a_up, UP_TEETH), alpha(a_up, UP_REACH, UP_T, 0).maximum(ch(a_up, UP_PHOTO))),
        (ch(a_low, LO_TONGUE), a_tongue * r[..., 5:6]),
        (ch(a_low, LO_LIP), alpha(a_low, LO_LIP_REACH, LO_T, 4)),
        (ch(a_up, UP_LIP), alpha(a_up, UP_LIP_REACH, UP_T, 3)),
    )
    for rgb, a in layers:
        inner = inner + (rgb - inner) * a
    return inner * w_int + i_low * ml + i_up * w_up


def _node_idx(roi: Roi) -> np.ndarray:
    nh, nw = roi.node_shape
    iy, ix = np.mgrid[0:nh, 0:nw].astype(np.float32)
    return np.stack([ix, iy], -1)
