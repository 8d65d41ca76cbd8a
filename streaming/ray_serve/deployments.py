"""Ray Serve deployments of the heavy stages: speech recognition, speech synthesis and
frame rendering.

Each replica loads its model once from plain config dicts (the same sections the
local engines use) and runs the blocking work in a worker thread, so that the
replica keeps taking requests (and health checks) while it computes. The renderer
batches frames of many sessions with ``@serve.batch``; Whisper and Piper calls are
accepted concurrently and run one at a time per replica (the autoscaler adds
replicas when requests queue up). Every deployment answers ``stats()`` with its
replica's counters.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from ray import serve
from ray.serve import Deployment
from ray.serve.handle import DeploymentHandle

from avatar.config import RenderConfig
from avatar.identity import load_rig
from avatar.render import Renderer, create_renderer
from avatar.state import AvatarState
from models.assets import AssetResolver
from models.blas import limit_blas_threads
from models.config import AssetsConfig, CpuConfig, SttConfig, TtsConfig
from models.stt import SpeechRecognizer
from models.tts import create_tts
from models.types import FloatAudio, Speech, Transcript
from streaming.config import RayDeploymentConfig
from streaming.ray_serve.names import GATEWAY, RENDER, STT, TTS

log = logging.getLogger(__name__)

MAX_RIGS = 8
"""Renderers (one per avatar and size) a render replica keeps loaded."""

Frame = npt.NDArray[np.uint8]


def deployment_options(config: RayDeploymentConfig) -> dict[str, Any]:
    """``Deployment.options(...)`` for one stage: autoscaling, concurrency, resources."""
    return {
        "max_ongoing_requests": config.max_ongoing_requests,
        "autoscaling_config": {
            "min_replicas": config.min_replicas,
            "max_replicas": config.max_replicas,
            "target_ongoing_requests": config.target_ongoing_requests,
        },
        "ray_actor_options": {"num_cpus": config.num_cpus, "num_gpus": config.num_gpus},
    }


def _replica_name() -> str:
    try:
        return str(serve.get_replica_context().replica_id.unique_id)
    except Exception:  # noqa: BLE001 - outside a replica (a unit test): no name
        return ""


class SttReplica:
    """Whisper in a replica: one utterance (16 kHz mono float32) in, a Transcript out."""

    def __init__(
        self, stt: dict[str, Any], assets: dict[str, Any], cpu: dict[str, Any] | None = None
    ) -> None:
        resolver = AssetResolver(AssetsConfig.model_validate(assets))
        # The conversation needs the words, not their timings (as the local engines).
        self._stt = SpeechRecognizer(SttConfig.model_validate(stt), resolver, word_timestamps=False)
        limit_blas_threads(CpuConfig.model_validate(cpu or {}).blas_threads)
        self._counts: Counter[str] = Counter()
        self._audio_s = 0.0
        self._busy_s = 0.0

    async def transcribe(
        self, pcm: FloatAudio, sample_rate: int, prompt: str = "", partial: bool = False
    ) -> Transcript:
        """Transcribe one utterance (typed errors from the engine pass through)."""
        t = time.perf_counter()
        self._counts["requests"] += 1
        try:
            transcript = await self._stt.atranscribe(
                pcm, sample_rate, prompt=prompt, partial=partial
            )
        except Exception:
            self._counts["failures"] += 1
            raise
        finally:
            self._busy_s += time.perf_counter() - t
        self._audio_s += transcript.duration
        return transcript

    def stats(self) -> dict[str, Any]:
        """This replica's counters: requests, failures, audio and busy seconds."""
        return {
            "replica": _replica_name(),
            "requests": self._counts["requests"],
            "failures": self._counts["failures"],
            "audio_s": self._audio_s,
            "busy_s": self._busy_s,
        }


class TtsReplica:
    """The configured voice in a replica: text in, its ``Speech`` chunks out."""

    def __init__(self, tts: dict[str, Any], assets: dict[str, Any]) -> None:
        resolver = AssetResolver(AssetsConfig.model_validate(assets))
        self._tts = create_tts(TtsConfig.model_validate(tts), resolver)
        self._counts: Counter[str] = Counter()
        self._audio_s = 0.0
        self._busy_s = 0.0

    def sample_rate(self) -> int:
        """Rate of the PCM this voice produces."""
        return int(self._tts.sample_rate)

    async def synthesize(self, text: str) -> list[Speech]:
        """Every chunk (one per sentence) of ``text``, each with its phoneme timeline."""
        t = time.perf_counter()
        self._counts["requests"] += 1
        try:
            chunks = await asyncio.to_thread(lambda: list(self._tts.synthesize(text)))
        except Exception:
            self._counts["failures"] += 1
            raise
        finally:
            self._busy_s += time.perf_counter() - t
        self._counts["chunks"] += len(chunks)
        self._audio_s += sum(c.duration for c in chunks)
        return chunks

    def stats(self) -> dict[str, Any]:
        """This replica's counters: requests, failures, chunks, audio and busy seconds."""
        return {
            "replica": _replica_name(),
            "requests": self._counts["requests"],
            "failures": self._counts["failures"],
            "chunks": self._counts["chunks"],
            "audio_s": self._audio_s,
            "busy_s": self._busy_s,
        }


RigKey = tuple[str | None, tuple[int, int]]
"""An avatar on a render replica: its bundle path (None: the default) and frame size."""
RenderRequest = tuple[str | None, tuple[int, int], AvatarState]


class RenderReplica:
    """Renders avatar states into frames, batching the frames of many sessions.

    A request names its avatar by bundle path (None: the default portrait) and frame
    size, loaded here the way the local engines load it (``load_rig`` then
    ``create_renderer`` with the render config), so the bundle path must be readable
    on the replica's node. One batch may mix avatars: it is rendered one group of
    states per avatar (``render_batch``, one GPU call per group with the torch
    renderer).
    """

    def __init__(
        self, render: dict[str, Any], max_batch_size: int, batch_wait_timeout_s: float
    ) -> None:
        self._config = RenderConfig.model_validate(render)
        self._renderers: OrderedDict[RigKey, Renderer] = OrderedDict()
        self._load_lock = threading.Lock()
        self._render_batch.set_max_batch_size(max_batch_size)  # type: ignore[attr-defined]
        self._render_batch.set_batch_wait_timeout_s(batch_wait_timeout_s)  # type: ignore[attr-defined]
        self._batch_sizes: Counter[int] = Counter()
        self._frames = 0
        self._failures = 0
        self._busy_s = 0.0

    async def render(self, bundle: str | None, size: tuple[int, int], state: AvatarState) -> Frame:
        """One H×W×3 uint8 RGB frame; batched with the requests arriving meanwhile."""
        result = await self._render_batch((bundle, (int(size[0]), int(size[1])), state))
        if isinstance(result, Exception):
            self._failures += 1
            raise result
        return result

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.005)
    async def _render_batch(self, requests: list[RenderRequest]) -> list[Frame | Exception]:
        t = time.perf_counter()
        out = await asyncio.to_thread(self._render_groups, requests)
        self._busy_s += time.perf_counter() - t
        self._batch_sizes[len(requests)] += 1
        self._frames += len(requests)
        return out

    def _render_groups(self, requests: Sequence[RenderRequest]) -> list[Frame | Exception]:
        groups: dict[RigKey, list[int]] = {}
        for i, (bundle, size, _) in enumerate(requests):
            groups.setdefault((bundle, size), []).append(i)
        out: list[Frame | Exception] = [RuntimeError("not rendered")] * len(requests)
        for key, idx in groups.items():
            try:
                frames = self._renderer(key).render_batch([requests[i][2] for i in idx])
            except Exception as exc:  # noqa: BLE001 - handed to each caller of this group
                log.warning("rendering %d frames of %s failed: %s", len(idx), key, exc)
                frames = [exc] * len(idx)  # type: ignore[list-item]
            for i, frame in zip(idx, frames, strict=True):
                out[i] = frame
        return out

    def _renderer(self, key: RigKey) -> Renderer:
        with self._load_lock:
            renderer = self._renderers.get(key)
            if renderer is not None:
                self._renderers.move_to_end(key)
                return renderer
            bundle, size = key
            rig = load_rig(Path(bundle) if bundle is not None else None, size=size)
            renderer = create_renderer(rig, self._config)
            self._renderers[key] = renderer
            while len(self._renderers) > MAX_RIGS:
                self._renderers.popitem(last=False)
            return renderer

    def stats(self) -> dict[str, Any]:
        """This replica's counters: frames, batches by size, failures, busy seconds."""
        return {
            "replica": _replica_name(),
            "frames": self._frames,
            "batches": sum(self._batch_sizes.values()),
            "batch_sizes": dict(self._batch_sizes),
            "max_batch": max(self._batch_sizes, default=0),
            "failures": self._failures,
            "busy_s": self._busy_s,
            "avatars": len(self._renderers),
        }


class GatewayReplica:
    """The app's ingress: which stages it serves, and their counters (also over HTTP).

    Clients call the stage deployments directly; this one only ties them into one app
    and answers status queries (``GET /`` when Serve's HTTP proxy is on).
    """

    def __init__(
        self,
        stt: DeploymentHandle | None,
        tts: DeploymentHandle | None,
        render: DeploymentHandle | None,
    ) -> None:
        self._handles = {
            name: h for name, h in ((STT, stt), (TTS, tts), (RENDER, render)) if h is not None
        }

    def stages(self) -> list[str]:
        """The stages this app serves."""
        return sorted(self._handles)

    async def stats(self) -> dict[str, Any]:
        """Each stage's counters (of whichever replica answers)."""
        names = sorted(self._handles)
        results = await asyncio.gather(*(self._handles[n].stats.remote() for n in names))
        return dict(zip(names, results, strict=True))

    async def __call__(self, request: Any = None) -> dict[str, Any]:
        """HTTP status: the stages and their counters as JSON."""
        return {"stages": self.stages(), "stats": await self.stats()}


STT_DEPLOYMENT: Deployment = serve.deployment(name=STT)(SttReplica)
TTS_DEPLOYMENT: Deployment = serve.deployment(name=TTS)(TtsReplica)
RENDER_DEPLOYMENT: Deployment = serve.deployment(name=RENDER)(RenderReplica)
GATEWAY_DEPLOYMENT: Deployment = serve.deployment(name=GATEWAY, ray_actor_options={"num_cpus": 0})(
    GatewayReplica
)
