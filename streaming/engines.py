"""The heavy parts, loaded once per process and shared by every session.

Speech recognition, the language model and the voice are shared (each engine
serializes its own calls); the VAD's ONNX model is shared while each session gets its
own VAD state; avatar rigs are cached per (avatar, size) and their renderers are pure
functions of a state, safe to call from several sessions' frames.

With ``serving.backend: ray`` the stages in ``serving.ray.stages`` (STT, TTS, frame
rendering) run on Ray Serve behind stand-ins with the same interfaces; the VAD and
the LLM stay in this process.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from avatar.identity import AvatarRig, load_rig
from avatar.identity.quiet import quiet_native_stderr
from avatar.render import Renderer, create_renderer
from models.assets import AssetResolver
from models.blas import limit_blas_threads
from models.errors import EngineError
from models.llm import LanguageModel, create_llm
from models.stt import SpeechRecognizer
from models.tts import TextToSpeech, create_tts
from models.types import FloatAudio, Transcript
from models.vad import SileroModel, VoiceActivityDetector, create_vad
from streaming.avatars_api import avatars_dir
from streaming.config import AppConfig
from streaming.headroom import CpuHeadroom

if TYPE_CHECKING:
    from streaming.ray_serve.backend import RayServing

log = logging.getLogger(__name__)

AVATAR_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")


class UnknownAvatarError(LookupError):
    """A session asked for an avatar that does not exist."""


class UnknownVoiceError(LookupError):
    """A session (or its avatar) named a voice this server cannot load."""


class Transcriber(Protocol):
    """What the sessions use of speech recognition (``SpeechRecognizer`` or a remote one)."""

    @property
    def sample_rate(self) -> int:
        """Rate of the PCM it expects (16000)."""
        ...

    def transcribe(
        self, pcm: FloatAudio, sample_rate: int = ..., *, prompt: str = ...
    ) -> Transcript:
        """Transcribe one utterance, blocking the calling thread."""
        ...

    async def atranscribe(
        self,
        pcm: FloatAudio,
        sample_rate: int = ...,
        *,
        prompt: str = ...,
        partial: bool = ...,
    ) -> Transcript:
        """Transcribe one utterance without blocking the event loop (``prompt``: the
        conversation so far; ``partial``: speech still going on, it yields to finals)."""
        ...


@dataclass
class AvatarAssets:
    """A prepared avatar and its renderer."""

    name: str
    rig: AvatarRig
    renderer: Renderer


@dataclass
class Engines:
    """Every model the service needs, loaded once."""

    config: AppConfig
    resolver: AssetResolver
    stt: Transcriber
    llm: LanguageModel
    tts: TextToSpeech
    vad_model: SileroModel | None
    load_seconds: dict[str, float] = field(default_factory=dict)
    avatar_dirs: list[Path] = field(default_factory=list)
    _avatars: dict[str, AvatarAssets] = field(default_factory=dict)
    _avatar_lock: threading.Lock = field(default_factory=threading.Lock)
    _voices: dict[str, TextToSpeech] = field(default_factory=dict)
    _voice_lock: threading.Lock = field(default_factory=threading.Lock)
    serving: RayServing | None = None
    """The Ray Serve connection when ``serving.backend`` is ``ray``."""
    headroom: CpuHeadroom = field(default_factory=CpuHeadroom)
    """The machine's idle CPU, which the sessions' optional work asks about."""

    @classmethod
    def load(cls, config: AppConfig) -> Engines:
        """Load every engine (slow: seconds); call once per process."""
        times: dict[str, float] = {}
        serving: RayServing | None = None
        if config.serving.backend == "ray":
            from streaming.ray_serve.backend import RayServing

            t = time.perf_counter()
            serving = RayServing.connect(config)
            times["ray"] = time.perf_counter() - t
        try:
            engines = cls._load(config, serving, times)
        except BaseException:
            if serving is not None:
                serving.close()
            raise
        log.info("engines loaded: %s", ", ".join(f"{k} {v:.2f}s" for k, v in times.items()))
        return engines

    @classmethod
    def _load(
        cls, config: AppConfig, serving: RayServing | None, times: dict[str, float]
    ) -> Engines:
        resolver = AssetResolver(config.assets)
        t = time.perf_counter()
        vad_model = (
            SileroModel.from_resolver(resolver, threads=config.vad.threads)
            if config.vad.backend == "silero"
            else None
        )
        times["vad"] = time.perf_counter() - t
        t = time.perf_counter()
        stt: Transcriber
        if serving is not None and serving.stt is not None:
            stt = serving.stt
        else:
            # The conversation needs the words, not their timings (saves ~10% per utterance).
            stt = SpeechRecognizer(config.stt, resolver, word_timestamps=False)
            times["stt"] = time.perf_counter() - t
        t = time.perf_counter()
        if config.llm.backend == "llama-cpp" and config.llm.sequences < config.server.max_sessions:
            log.warning(
                "llm.sequences=%d < server.max_sessions=%d: some sessions will lose their "
                "evaluated prompt between turns",
                config.llm.sequences,
                config.server.max_sessions,
            )
        headroom = CpuHeadroom()
        llm = create_llm(
            config.llm, resolver, spare_cpu=headroom.spare(config.llm.threads_batch_min_idle)
        )
        llm.load()
        times["llm"] = time.perf_counter() - t
        t = time.perf_counter()
        tts: TextToSpeech
        if serving is not None and serving.tts is not None:
            tts = serving.tts
        else:
            tts = create_tts(config.tts, resolver)
            times["tts"] = time.perf_counter() - t
        engines = cls(
            config, resolver, stt, llm, tts, vad_model, load_seconds=times, headroom=headroom
        )
        engines.serving = serving
        engines.avatar_dirs.append(avatars_dir(config.server))
        t = time.perf_counter()
        # The first start prepares the default avatar: MediaPipe's chatter stays off.
        with quiet_native_stderr(verbose=log.isEnabledFor(logging.DEBUG)):
            engines.avatar("default")
        times["avatar"] = time.perf_counter() - t
        limit_blas_threads(config.cpu.blas_threads)  # every library is loaded by now
        return engines

    def new_vad(self) -> VoiceActivityDetector:
        """A fresh VAD state for one session, sharing the loaded model.

        Its end of speech is the longest end-of-turn wait (``end_of_turn.unfinished_ms``):
        the session's listener ends a turn sooner when the words are finished.
        """
        vad = self.config.vad.model_copy(
            update={"min_silence_ms": self.config.end_of_turn.unfinished_ms}
        )
        return create_vad(vad, self.resolver, model=self.vad_model)

    @property
    def frame_size(self) -> tuple[int, int]:
        """Output video size (width, height)."""
        r = self.config.render
        return (r.width or r.size, r.size)

    def avatar_names(self) -> list[str]:
        """Avatars a session may ask for."""
        names = {"default"}
        for d in self.avatar_dirs:
            if d.is_dir():
                names.update(p.name for p in d.iterdir() if (p / "rig.json").is_file())
        return sorted(names)

    def avatar(self, name: str) -> AvatarAssets:
        """The prepared avatar called ``name`` (``default``: the configured one)."""
        with self._avatar_lock:
            cached = self._avatars.get(name)
            if cached is not None:
                return cached
            if name == "default":
                bundle = self.config.avatar.bundle
            elif not AVATAR_NAME_RE.fullmatch(name):  # never a path
                raise UnknownAvatarError(name)
            else:
                bundle = next(
                    (d / name for d in self.avatar_dirs if (d / name / "rig.json").is_file()), None
                )
                if bundle is None:
                    raise UnknownAvatarError(name)
            rig = load_rig(bundle, size=self.frame_size)
            renderer = (
                self.serving.renderer(bundle, rig, self.config.render)
                if self.serving is not None
                else None
            )
            assets = AvatarAssets(name, rig, renderer or create_renderer(rig, self.config.render))
            self._avatars[name] = assets
            return assets

    def voice(self, name: str) -> TextToSpeech:
        """The TTS engine speaking with voice ``name`` (loaded once, then shared).

        ``tts.voice`` is the engine loaded at start; another voice must be an asset
        installed on this machine (never a path, never a download) for the configured
        TTS backend, and is loaded on first use (slow: call it in a thread). With
        Ray Serve's TTS only ``tts.voice`` is available. UnknownVoiceError otherwise.
        """
        if name == self.config.tts.voice:
            return self.tts
        if self.serving is not None and self.serving.tts is not None:
            raise UnknownVoiceError(name)
        with self._voice_lock:
            cached = self._voices.get(name)
            if cached is not None:
                return cached
            if name not in self.resolver.registry:
                raise UnknownVoiceError(name)
            try:
                if self.resolver.locate(name) is None:  # not installed: no download here
                    raise UnknownVoiceError(name)
                tts = create_tts(self.config.tts.model_copy(update={"voice": name}), self.resolver)
            except EngineError as exc:
                log.warning("voice %s cannot be loaded: %s", name, exc)
                raise UnknownVoiceError(name) from exc
            self._voices[name] = tts
            return tts

    async def aclose(self) -> None:
        """Release what the engines hold (and Ray, if loading started it)."""
        try:
            await self.llm.aclose()
        finally:
            if self.serving is not None:
                await self.serving.aclose()
