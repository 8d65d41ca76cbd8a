"""Speech to text: an utterance (16 kHz mono PCM) in, a ``Transcript`` out."""

from models.stt.whisper import STT_SAMPLE_RATE, SpeechRecognizer, create_stt

__all__ = ["STT_SAMPLE_RATE", "SpeechRecognizer", "create_stt"]
