"""The heavy parts, loaded once per process and shared by every session.

Speech recognition, the language model and the voice are shared (each engine
serializes its own calls); the VAD's ONNX model is shared while each session gets its
own VAD state; avatar rigs are cached per (avatar, size) and their renderers are pure
functions of a state, safe to call from several sessions' frames.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from avatar.config import AppConfig
from avatar.identity import AvatarRig, load_rig
from avatar.render import Renderer, create_renderer
from models.assets import AssetResolver
from models.llm import LanguageModel, create_llm
from models.stt import SpeechRecognizer
from models.tts import TextToSpeech, create_tts
from models.vad import SileroModel, VoiceActivityDetector, create_vad
from streaming.avatars_api import avatars_dir

log = logging.getLogger(__name__)

AVATAR_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")


class UnknownAvatarError(LookupError):
    """A session asked for an avatar that does not exist."""


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
    stt: SpeechRecognizer
    llm: LanguageModel
    tts: TextToSpeech
    vad_model: SileroModel | None
    load_seconds: dict[str, float] = field(default_factory=dict)
    avatar_dirs: list[Path] = field(default_factory=list)
    _avatars: dict[str, AvatarAssets] = field(default_factory=dict)
    _avatar_lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def load(cls, config: AppConfig) -> Engines:
        """Load every engine (slow: seconds); call once per process."""
        resolver = AssetResolver(config.assets)
        times: dict[str, float] = {}
        t = time.perf_counter()
        vad_model = (
            SileroModel.from_resolver(resolver, threads=config.vad.threads)
            if config.vad.backend == "silero"
            else None
        )
        times["vad"] = time.perf_counter() - t
        t = time.perf_counter()
        # The conversation needs the words, not their timings (saves ~10% per utterance).
        stt = SpeechRecognizer(config.stt, resolver, word_timestamps=False)
        times["stt"] = time.perf_counter() - t
        t = time.perf_counter()
        llm = create_llm(config.llm, resolver)
        llm.load()
        times["llm"] = time.perf_counter() - t
        t = time.perf_counter()
        tts = create_tts(config.tts, resolver)
        times["tts"] = time.perf_counter() - t
        engines = cls(config, resolver, stt, llm, tts, vad_model, load_seconds=times)
        engines.avatar_dirs.append(avatars_dir(config.server))
        t = time.perf_counter()
        engines.avatar("default")
        times["avatar"] = time.perf_counter() - t
        log.info("engines loaded: %s", ", ".join(f"{k} {v:.2f}s" for k, v in times.items()))
        return engines

    def new_vad(self) -> VoiceActivityDetector:
        """A fresh VAD state for one session, sharing the loaded model."""
        return create_vad(self.config.vad, self.resolver, model=self.vad_model)

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
            assets = AvatarAssets(name, rig, create_renderer(rig, self.config.render))
            self._avatars[name] = assets
            return assets

    async def aclose(self) -> None:
        """Release what the engines hold."""
        await self.llm.aclose()
