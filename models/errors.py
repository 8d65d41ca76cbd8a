"""Typed errors raised at the engines' boundaries."""

from __future__ import annotations


class EngineError(Exception):
    """Base class for every error an engine raises on purpose."""


class InvalidAudioError(EngineError, ValueError):
    """Audio given to an engine is empty, malformed, at the wrong rate, or too long."""


class InvalidTextError(EngineError, ValueError):
    """Text given to an engine is empty or too long."""


class AssetError(EngineError):
    """A model asset could not be found, assembled, downloaded or verified."""


class UnknownAssetError(AssetError, KeyError):
    """An asset name that the registry does not know."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "unknown asset"


class AssetNotFoundError(AssetError, FileNotFoundError):
    """A known asset that no source could provide."""


class ChecksumError(AssetError):
    """An asset's bytes do not match its recorded sha256."""


class BackendUnavailableError(EngineError):
    """A backend's package is not installed or its server cannot be reached."""


class LLMError(EngineError):
    """The language model failed while generating."""


class TTSError(EngineError):
    """Speech synthesis failed."""


class STTError(EngineError):
    """Transcription failed."""
