"""Speech and language engines (VAD, STT, LLM, TTS) and model assets.

This package imports nothing else of ours; ``avatar`` and ``streaming`` build on it.
"""
