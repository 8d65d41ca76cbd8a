"""Text to speech: text in, ``Speech`` chunks (PCM + phoneme timeline) out."""

from models.tts.base import TextToSpeech, check_text, stream_in_thread
from models.tts.factory import create_tts
from models.tts.piper import PiperTTS, phoneme_timeline
from models.tts.text import ClauseSplitter, split_sentences

__all__ = [
    "ClauseSplitter",
    "PiperTTS",
    "TextToSpeech",
    "check_text",
    "create_tts",
    "phoneme_timeline",
    "split_sentences",
    "stream_in_thread",
]
