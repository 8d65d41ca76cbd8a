"""Piper TTS: sentence-by-sentence synthesis with exact phoneme timelines."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import AsyncGenerator, Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort
from piper import PiperVoice, SynthesisConfig

from models.assets import AssetResolver
from models.config import TtsConfig
from models.errors import AssetNotFoundError, TTSError
from models.tts.base import check_text, stream_in_thread
from models.tts.text import split_sentences
from models.types import PhonemeSpan, Speech

log = logging.getLogger(__name__)


def _looks_like_path(voice: str) -> bool:
    return voice.endswith(".onnx") or "/" in voice or os.sep in voice or voice[:1] in "~."


def voice_files(voice: str, resolver: AssetResolver) -> tuple[Path, Path]:
    """The (model.onnx, model.onnx.json) of ``voice``: an asset name, a file or a folder.

    Raises UnknownAssetError for a name that is neither an asset nor a path, and
    AssetNotFoundError for a path that does not hold a voice.
    """
    if voice not in resolver.registry and _looks_like_path(voice):
        path = Path(voice).expanduser()
        if path.is_dir():
            models = sorted(path.glob("*.onnx"))
            if len(models) != 1:
                raise AssetNotFoundError(f"expected one .onnx voice in {path}, found {len(models)}")
            path = models[0]
        if not path.is_file():
            raise AssetNotFoundError(f"Piper voice {path} does not exist")
        config = path.with_name(path.name + ".json")
        if not config.is_file():
            raise AssetNotFoundError(f"Piper voice config {config} does not exist")
        return path, config
    asset = resolver.get(voice)  # UnknownAssetError for unknown names
    resolved = resolver.resolve(voice)
    onnx = [f.name for f in asset.files if f.name.endswith(".onnx")]
    if len(onnx) != 1:
        raise AssetNotFoundError(f"asset {voice!r} is not a Piper voice (no single .onnx file)")
    model = resolved.file(onnx[0])
    return model, model.with_name(model.name + ".json")


def _use_cuda(device: str) -> bool:
    if device == "auto":
        return "CUDAExecutionProvider" in ort.get_available_providers()
    return device == "cuda"


def session_options(config: TtsConfig) -> ort.SessionOptions:
    """onnxruntime options for the voice: idle threads sleep instead of spinning.

    Piper's own loader uses the defaults, whose spinning intra-op threads burn a core
    while the voice waits for the next sentence, a core the renderer, the encoder and
    Whisper need (offline render 4.4x -> ~5x real time on 2 cores).
    """
    opts = ort.SessionOptions()
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if config.threads is not None:
        opts.intra_op_num_threads = config.threads
    return opts


def load_voice(model: Path, voice_config: Path, config: TtsConfig) -> PiperVoice:
    """The Piper voice with phoneme alignments, on ``config``'s device and threads.

    As ``PiperVoice.load(..., include_alignments=True)`` does, the model is patched in
    memory to output its alignments; the session gets :func:`session_options`.
    """
    import onnx  # only to patch the voice: keep it off the import path of this module
    from piper.config import PiperConfig
    from piper.patch_voice_with_alignment import add_alignment_output

    proto = onnx.load(str(model))
    try:
        add_alignment_output(proto)
    except ValueError:  # already patched on disk: use it as it is
        log.debug("voice %s already outputs alignments", model.name)
    providers: list[str | tuple[str, dict[str, str]]] = (
        [("CUDAExecutionProvider", {"cudnn_conv_algo_search": "HEURISTIC"})]
        if _use_cuda(config.device)
        else ["CPUExecutionProvider"]
    )
    session = ort.InferenceSession(
        proto.SerializeToString(), sess_options=session_options(config), providers=providers
    )
    return PiperVoice(
        session=session,
        config=PiperConfig.from_dict(json.loads(voice_config.read_text(encoding="utf-8"))),
    )


def phoneme_timeline(
    phonemes: list[str], samples: list[int], total: int, sample_rate: int
) -> tuple[PhonemeSpan, ...]:
    """Spans from per-phoneme sample counts, tiling exactly ``total`` samples.

    Starts and ends are cumulative sample counts divided by the rate, so the spans are
    contiguous and end at ``total / sample_rate``. Counts that do not sum to ``total``
    (they always do for Piper) are rescaled first.
    """
    bounds = np.concatenate([[0], np.cumsum(np.asarray(samples, dtype=np.int64))])
    if bounds[-1] != total and bounds[-1] > 0:
        log.debug("phoneme samples sum to %d, audio has %d: rescaling", bounds[-1], total)
        bounds = np.round(bounds * (total / bounds[-1])).astype(np.int64)
    spans = []
    for i, ph in enumerate(phonemes):
        start = int(bounds[i]) / sample_rate
        end = int(bounds[i + 1]) / sample_rate
        spans.append(PhonemeSpan(phoneme=ph, start=start, duration=end - start))
    return tuple(spans)


class PiperTTS:
    """Piper voice (loaded once, shared): one ``Speech`` per sentence with its phonemes.

    Phoneme spans include Piper's markers (``^`` start, ``$`` end, ``" "`` word gaps,
    stress marks); they tile the chunk exactly. Synthesis of one text is sequential;
    several texts may be synthesized at once from different threads.
    """

    def __init__(self, config: TtsConfig, resolver: AssetResolver, max_ahead: int = 2) -> None:
        self._config = config
        self._max_ahead = max_ahead
        model, voice_config = voice_files(config.voice, resolver)
        try:
            self._voice = load_voice(model, voice_config, config)
        except Exception as exc:  # onnxruntime / json errors
            raise TTSError(f"cannot load the Piper voice {model}: {exc}") from exc
        self._syn = SynthesisConfig(length_scale=config.length_scale, speaker_id=config.speaker_id)
        self._lock = threading.Lock()
        self._sentences = 0
        log.info("Piper voice %s loaded (%d Hz)", model.name, self.sample_rate)

    @property
    def sample_rate(self) -> int:
        """Rate of the PCM this voice produces (22,050 Hz for medium voices)."""
        return int(self._voice.config.sample_rate)

    @property
    def sentences_synthesized(self) -> int:
        """How many sentences this engine has synthesized so far (all callers)."""
        with self._lock:
            return self._sentences

    def synthesize(self, text: str) -> Iterator[Speech]:
        """Synthesize ``text`` sentence by sentence in the calling thread.

        Raises InvalidTextError at once for empty or too long text; TTSError while
        iterating when the engine fails.
        """
        clean = check_text(text, self._config.max_text_chars)
        return self._sentences_of(clean, None)

    def stream(self, text: str) -> AsyncGenerator[Speech, None]:
        """Yield each sentence as soon as it is synthesized in a worker thread.

        Closing or cancelling the iterator stops synthesis before the next sentence.
        Raises InvalidTextError at once for empty or too long text.
        """
        clean = check_text(text, self._config.max_text_chars)
        return stream_in_thread(
            lambda stop: self._sentences_of(clean, stop), max_ahead=self._max_ahead
        )

    def synthesize_sentence(self, sentence: str) -> Speech | None:
        """One sentence (no splitting) as one ``Speech``; None when it has nothing to say."""
        try:
            chunks = list(
                self._voice.synthesize(sentence, syn_config=self._syn, include_alignments=True)
            )
        except Exception as exc:  # onnxruntime and espeak raise untyped errors
            raise TTSError(f"Piper failed on {sentence[:60]!r}: {exc}") from exc
        with self._lock:
            self._sentences += 1
        if not chunks:
            return None
        pcm = np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32)
        timeline: tuple[PhonemeSpan, ...] | None = None
        if all(c.phoneme_alignments for c in chunks):
            names = [a.phoneme for c in chunks for a in c.phoneme_alignments or ()]
            counts = [int(a.num_samples) for c in chunks for a in c.phoneme_alignments or ()]
            timeline = phoneme_timeline(names, counts, len(pcm), self.sample_rate)
        else:
            log.debug("no phoneme alignment for %r", sentence[:60])
        return Speech(pcm=pcm, sample_rate=self.sample_rate, text=sentence, phonemes=timeline)

    def _sentences_of(self, text: str, stop: threading.Event | None) -> Iterator[Speech]:
        for sentence in split_sentences(text):
            if stop is not None and stop.is_set():
                return
            speech = self.synthesize_sentence(sentence)
            if speech is not None:
                yield speech
