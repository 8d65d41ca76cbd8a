"""Build the configured text-to-speech engine."""

from __future__ import annotations

from models.assets import AssetResolver
from models.config import TtsConfig
from models.errors import BackendUnavailableError
from models.tts.base import TextToSpeech


def create_tts(config: TtsConfig, resolver: AssetResolver) -> TextToSpeech:
    """The engine for ``config.backend`` (``piper`` or ``coqui``), loaded and ready."""
    if config.backend == "coqui":
        try:
            from models.tts.coqui import CoquiTTS
        except ImportError as exc:
            raise BackendUnavailableError(
                f"the coqui TTS backend is not available: {exc} "
                "(install it with: pip install 'gwm-avatars[coqui]')"
            ) from exc
        return CoquiTTS(config, resolver)
    from models.tts.piper import PiperTTS

    return PiperTTS(config, resolver)
