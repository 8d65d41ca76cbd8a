"""Coqui TTS (the optional ``coqui-tts`` package, import ``TTS``): VITS, XTTS and friends.

``TTS`` is imported only when :class:`CoquiTTS` is built, so nothing else in the
project needs it. Install it with ``pip install -e .[coqui]`` and, beside a CPU torch,
``bash scripts/install_coqui.sh`` (PyPI's torchaudio is a CUDA build whose native
libraries do not load there; the script makes it import in pure-Python mode).
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import AsyncIterator, Generator, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.assets import AssetResolver
from models.config import TtsConfig
from models.errors import AssetNotFoundError, BackendUnavailableError, EngineError, TTSError
from models.tts.base import check_text, stream_in_thread
from models.tts.piper import phoneme_timeline
from models.tts.text import ClauseSplitter
from models.types import FloatAudio, PhonemeSpan, Speech

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install -e .[coqui] && bash scripts/install_coqui.sh"
PAD_SILENCE_SAMPLES = 10_000
"""Zeros that ``Synthesizer.tts`` appends to every sentence (read from TTS when it has it)."""
XTTS_DEFAULT_CHAR_LIMIT = 250
SPECIAL_SYMBOLS = {"blank": "_", "pad": "_", "bos": "^", "eos": "$"}
"""Timeline names of the tokenizer's special tokens (Piper's conventions)."""


def _import_tts_api() -> Any:
    """The ``TTS.api.TTS`` class; BackendUnavailableError when it cannot be imported."""
    try:
        from TTS.api import TTS
    except ImportError as exc:
        raise BackendUnavailableError(
            f"the Coqui TTS backend needs the coqui-tts package ({exc}); install it with: "
            f"{INSTALL_HINT}"
        ) from exc
    except OSError as exc:  # torchaudio's CUDA libraries beside a CPU torch
        raise BackendUnavailableError(
            f"coqui-tts is installed but torchaudio cannot load its native libraries ({exc}); "
            "run: bash scripts/install_coqui.sh"
        ) from exc
    return TTS


def pick_device(device: str) -> str:
    """``auto`` → ``cuda`` when torch sees a GPU, else ``cpu``; a missing ``cuda`` fails."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailableError("tts.device is 'cuda' but torch sees no CUDA device")
    return device


def _existing(path: Path, what: str) -> Path:
    path = path.expanduser()
    if not path.exists():
        raise AssetNotFoundError(f"{what} {path} does not exist")
    return path


def read_reference(path: Path, max_seconds: float) -> tuple[torch.Tensor, int]:
    """Mono reference audio ``[1, samples]`` (at most ``max_seconds``) and its rate.

    Read with soundfile: torchaudio.load does not work in torchaudio's pure-Python mode.
    """
    import soundfile

    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, OSError) as exc:  # soundfile.LibsndfileError is a RuntimeError
        raise TTSError(f"cannot read the reference voice {path}: {exc}") from exc
    mono = data.mean(axis=1)[: int(max_seconds * rate)]
    if mono.size == 0:
        raise TTSError(f"the reference voice {path} is empty")
    return torch.from_numpy(np.ascontiguousarray(mono)).unsqueeze(0), int(rate)


class CoquiTTS:
    """A Coqui model (by name through TTS's model manager, or from local files).

    One ``Speech`` per sentence; VITS sentences carry the token timeline from the
    model's durations (characters or phonemes, ``_`` for blanks, ``^``/``$`` for
    BOS/EOS). XTTS clones ``coqui.speaker_wav`` (or uses a built-in ``coqui.speaker``)
    and :meth:`stream` yields its audio in chunks as it is generated. One model call
    runs at a time (the model is shared by every caller).
    """

    def __init__(
        self,
        config: TtsConfig,
        resolver: AssetResolver,
        max_ahead: int = 2,
        stream_chunk_tokens: int = 20,
    ) -> None:
        """Load the configured model (``stream_chunk_tokens``: XTTS audio tokens per chunk)."""
        if stream_chunk_tokens < 1:
            raise ValueError("stream_chunk_tokens must be >= 1")
        self._config = config
        self._coqui = config.coqui
        self._resolver = resolver
        self._max_ahead = max_ahead
        self._chunk_tokens = stream_chunk_tokens
        self._lock = threading.Lock()  # one model call at a time
        self._count_lock = threading.Lock()
        self._sentences = 0
        self._speaker_wav = (
            _existing(self._coqui.speaker_wav, "coqui.speaker_wav")
            if self._coqui.speaker_wav is not None
            else None
        )
        api_class = _import_tts_api()
        from TTS.utils import synthesizer

        self._pad = int(getattr(synthesizer, "PAD_SILENCE_SAMPLES", PAD_SILENCE_SAMPLES))
        self.device = pick_device(config.device)
        self._api = self._load(api_class)
        self._synth: Any = self._api.synthesizer
        self._model: Any = self._synth.tts_model
        self._sample_rate = int(self._synth.output_sample_rate)
        xtts = sys.modules.get("TTS.tts.models.xtts")  # imported by TTS for XTTS models only
        self.is_xtts = xtts is not None and isinstance(self._model, xtts.Xtts)
        self._language: str | None = None
        self._xtts_voice: tuple[torch.Tensor, torch.Tensor] | None = None
        self._max_sentence_chars = config.max_text_chars
        if self.is_xtts:
            self._setup_xtts()
        else:
            self._setup_other()
        log.info(
            "Coqui model %s loaded on %s (%d Hz)",
            type(self._model).__name__,
            self.device,
            self._sample_rate,
        )

    @property
    def sample_rate(self) -> int:
        """Rate of the PCM this model produces."""
        return self._sample_rate

    @property
    def sentences_synthesized(self) -> int:
        """How many sentences this engine has started to synthesize (all callers)."""
        with self._count_lock:
            return self._sentences

    def synthesize(self, text: str) -> Iterator[Speech]:
        """Synthesize ``text`` sentence by sentence in the calling thread.

        Raises InvalidTextError at once for empty or too long text; TTSError while
        iterating when the model fails.
        """
        clean = check_text(text, self._config.max_text_chars)
        return self._produce(clean, None, chunked=False)

    def stream(self, text: str) -> AsyncIterator[Speech]:
        """Yield speech as soon as it is synthesized in a worker thread.

        One ``Speech`` per sentence, except for XTTS, which yields each sentence in
        chunks as it is generated: the first chunk carries the sentence's text, the
        others ``""``. Closing or cancelling the iterator stops synthesis before the
        next sentence (XTTS: the next chunk). Raises InvalidTextError at once for
        empty or too long text.
        """
        clean = check_text(text, self._config.max_text_chars)
        return stream_in_thread(
            lambda stop: self._produce(clean, stop, chunked=True),
            max_ahead=self._max_ahead,
            name="coqui-tts",
        )

    def sentences(self, text: str) -> list[str]:
        """How ``text`` is cut for synthesis: sentences, long ones cut at spaces."""
        splitter = ClauseSplitter(
            min_clause_chars=1, max_clause_chars=self._max_sentence_chars, clauses=False
        )
        return splitter.push(text) + splitter.flush()

    # -- loading ---------------------------------------------------------------------

    def _load(self, api_class: Any) -> Any:
        c = self._coqui
        if (c.model_name is None) == (c.model_path is None):
            raise TTSError("set exactly one of tts.coqui.model_name and tts.coqui.model_path")
        try:
            if c.model_path is not None:
                model_path = _existing(c.model_path, "coqui.model_path")
                folder = model_path if model_path.is_dir() else model_path.parent
                config_path = _existing(
                    c.config_path or folder / "config.json", "coqui.config_path"
                )
                api = api_class(
                    model_path=str(model_path), config_path=str(config_path), progress_bar=False
                )
            else:
                # A model name goes through TTS's model manager: a download on first use.
                try:
                    api = api_class(model_name=c.model_name, progress_bar=False)
                except (KeyError, ValueError) as exc:  # not in TTS's model list
                    raise TTSError(
                        f"unknown Coqui model {c.model_name!r} ({exc!r}); list the names "
                        "with: tts --list_models"
                    ) from exc
            if api.synthesizer is None:
                raise TTSError(f"{c.model_name or c.model_path} is not a text-to-speech model")
            return api.to(self.device)
        except EngineError:
            raise
        except EOFError as exc:  # TTS asked on stdin to accept a model licence
            raise BackendUnavailableError(
                f"{c.model_name} needs its licence accepted: set COQUI_TOS_AGREED=1"
            ) from exc
        except Exception as exc:  # TTS raises many untyped errors (files, keys, network)
            raise TTSError(f"cannot load the Coqui model: {exc}") from exc

    def _setup_other(self) -> None:
        c = self._coqui
        if hasattr(self._model, "length_scale"):
            self._model.length_scale = self._config.length_scale
        if self._api.is_multi_lingual:
            self._language = c.language
        elif c.language is not None:
            log.warning("coqui.language=%s ignored: the model has one language", c.language)
        if self._api.is_multi_speaker and c.speaker is None and self._speaker_wav is None:
            known = ", ".join((self._api.speakers or [])[:10])
            raise TTSError(
                "the Coqui model has several speakers: set tts.coqui.speaker "
                f"(e.g. {known}) or tts.coqui.speaker_wav"
            )

    def _setup_xtts(self) -> None:
        c, model = self._coqui, self._model
        language = c.language or "en"
        if language.split("-")[0] not in [lang.split("-")[0] for lang in model.config.languages]:
            raise TTSError(f"XTTS does not speak {language!r}; it knows {model.config.languages}")
        self._language = language
        limits = getattr(model.tokenizer, "char_limits", {})
        self._max_sentence_chars = int(limits.get(language.split("-")[0], XTTS_DEFAULT_CHAR_LIMIT))
        try:
            self._xtts_voice = self._xtts_conditioning()
        except EngineError:
            raise
        except Exception as exc:  # torch / TTS errors while conditioning
            raise TTSError(f"cannot prepare the XTTS voice: {exc}") from exc

    def _xtts_conditioning(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(GPT conditioning latents, speaker embedding) of the configured voice."""
        c, model = self._coqui, self._model
        if self._speaker_wav is not None:
            audio, rate = read_reference(self._speaker_wav, float(model.config.max_ref_len))
            if model.config.sound_norm_refs:
                audio = audio / audio.abs().max().clamp_min(1e-6) * 0.75
            audio = audio.to(model.device)
            latents = model.get_gpt_cond_latents(
                audio,
                rate,
                length=model.config.gpt_cond_len,
                chunk_length=model.config.gpt_cond_chunk_len,
            )
            embedding = model.get_speaker_embedding(audio, rate)
            return latents, embedding
        manager = getattr(model, "speaker_manager", None)
        if c.speaker is not None and manager is not None and c.speaker in manager.speakers:
            latents, embedding = manager.speakers[c.speaker].values()  # as XTTS reads it
            return latents, embedding
        if c.speaker is not None:  # a voice cloned earlier and cached by TTS
            voice = model.clone_voice(None, c.speaker, self._synth.voice_dir)
            return voice["gpt_conditioning_latents"], voice["speaker_embedding"]
        raise TTSError("XTTS needs a voice: set tts.coqui.speaker_wav or tts.coqui.speaker")

    # -- synthesis -------------------------------------------------------------------

    def _produce(
        self, text: str, stop: threading.Event | None, *, chunked: bool
    ) -> Iterator[Speech]:
        for sentence in self.sentences(text):
            if stop is not None and stop.is_set():
                return
            with self._count_lock:
                self._sentences += 1
            if self.is_xtts and chunked:
                first = True
                with closing(self._xtts_chunks(sentence)) as chunks:  # releases the lock
                    for pcm in chunks:
                        if pcm.size:
                            yield Speech(pcm, self._sample_rate, sentence if first else "")
                            first = False
                        if stop is not None and stop.is_set():
                            return
                continue
            if self.is_xtts:
                parts = list(self._xtts_chunks(sentence))
                pcm = np.concatenate(parts) if parts else np.zeros(0, np.float32)
                phonemes = None
            else:
                pcm, phonemes = self._synthesize_sentence(sentence)
            if pcm.size:
                yield Speech(pcm, self._sample_rate, sentence, phonemes)
            else:
                log.debug("no audio for %r", sentence[:60])

    def _synthesize_sentence(
        self, sentence: str
    ) -> tuple[FloatAudio, tuple[PhonemeSpan, ...] | None]:
        """One sentence through a non-XTTS model: PCM and (when known) its timeline."""
        c = self._coqui
        speaker_wav = str(self._speaker_wav) if self._speaker_wav is not None else None
        try:
            with self._lock, torch.inference_mode():
                if self._synth.vocoder_model is None:
                    # End to end (VITS and the like): call the model to keep its durations.
                    outputs = self._model.synthesize(
                        text=sentence,
                        speaker=c.speaker,
                        speaker_wav=speaker_wav,
                        voice_dir=self._synth.voice_dir,
                        language=self._language,
                        use_griffin_lim=True,
                    )
                    wav = _as_pcm(outputs["wav"])
                    counts = self._sample_counts(outputs, len(wav))
                    end = self._endpoint(wav)
                else:
                    wav = _as_pcm(
                        self._synth.tts(
                            text=sentence,
                            speaker_name=c.speaker,
                            language_name=self._language,
                            speaker_wav=speaker_wav,
                            split_sentences=False,
                        )
                    )
                    wav, counts, end = _strip_padding(wav, self._pad), None, None
        except EngineError:
            raise
        except Exception as exc:  # torch / TTS raise untyped errors
            raise TTSError(f"Coqui failed on {sentence[:60]!r}: {exc}") from exc
        if end is not None and end < len(wav):
            wav = wav[:end]
            if counts is not None:
                counts = _clip_counts(counts, end)
        if counts is None:
            return wav, None
        symbols, samples = counts
        return wav, phoneme_timeline(symbols, samples, len(wav), self._sample_rate)

    def _xtts_chunks(self, sentence: str) -> Generator[FloatAudio, None, None]:
        """XTTS audio of one sentence, chunk by chunk as the GPT generates it."""
        assert self._xtts_voice is not None and self._language is not None
        latents, embedding = self._xtts_voice
        cfg = self._model.config
        with self._lock:  # the GPT keeps per-generation state: one sentence at a time
            try:
                chunks = self._model.inference_stream(
                    sentence,
                    self._language,
                    latents,
                    embedding,
                    temperature=cfg.temperature,
                    length_penalty=cfg.length_penalty,
                    repetition_penalty=cfg.repetition_penalty,
                    top_k=cfg.top_k,
                    top_p=cfg.top_p,
                    speed=1.0 / self._config.length_scale,
                    enable_text_splitting=False,
                    stream_chunk_size=self._chunk_tokens,
                )
                for chunk in chunks:
                    yield _as_pcm(chunk)
            except EngineError:
                raise
            except Exception as exc:  # torch / transformers raise untyped errors
                raise TTSError(f"XTTS failed on {sentence[:60]!r}: {exc}") from exc

    def _sample_counts(
        self, outputs: dict[str, Any], n_samples: int
    ) -> tuple[list[str], list[int]] | None:
        """Token symbols and their audio samples from the model's durations, when exact.

        Durations are in decoder frames; each frame is ``hop_length`` samples (times the
        upsampling factor of models with a lower encoder rate). None when the model
        gives no durations or they do not tile the audio exactly.
        """
        inner = outputs.get("outputs")
        durations = inner.get("durations") if isinstance(inner, dict) else None
        tokens = outputs.get("text_inputs")
        if durations is None or tokens is None:
            return None
        frames = [round(float(f)) for f in durations.detach().reshape(-1).cpu().tolist()]
        ids = [int(i) for i in tokens.detach().reshape(-1).cpu().tolist()]
        hop = self._samples_per_frame()
        if len(frames) != len(ids) or hop is None or sum(frames) * hop != n_samples:
            log.debug("durations do not tile the audio: no timeline")
            return None
        return [self._symbol(i) for i in ids], [f * hop for f in frames]

    def _samples_per_frame(self) -> int | None:
        audio = self._model.config.audio
        hop = float(audio["hop_length"])
        args = getattr(self._model, "args", None)
        if getattr(args, "encoder_sample_rate", None):
            hop *= float(getattr(self._model, "interpolate_factor", 1.0))
        return int(hop) if hop.is_integer() and hop > 0 else None

    def _symbol(self, token_id: int) -> str:
        chars = self._model.tokenizer.characters
        symbol = str(chars.id_to_char(token_id))
        for name, mark in SPECIAL_SYMBOLS.items():
            if symbol and symbol == getattr(chars, name, None):
                return mark
        return symbol

    def _endpoint(self, wav: FloatAudio) -> int | None:
        """Where Coqui's own trimming (``audio.do_trim_silence``) would cut, if enabled."""
        if not self._model.config.audio.get("do_trim_silence"):
            return None
        ap = getattr(self._model, "ap", None)
        return int(ap.find_endpoint(wav)) if ap is not None else None


def _as_pcm(wav: Any) -> FloatAudio:
    """Model output (tensor, array or list) as mono float32 in [-1, 1]."""
    if isinstance(wav, torch.Tensor):
        wav = wav.detach().float().cpu().numpy()
    pcm = np.asarray(wav, dtype=np.float32).reshape(-1)
    return np.clip(np.nan_to_num(pcm), -1.0, 1.0)


def _strip_padding(wav: FloatAudio, pad: int) -> FloatAudio:
    """Drop the ``pad`` zeros ``Synthesizer.tts`` appends after each sentence."""
    if pad > 0 and len(wav) >= pad and not wav[-pad:].any():
        return wav[:-pad]
    return wav


def _clip_counts(counts: tuple[list[str], list[int]], end: int) -> tuple[list[str], list[int]]:
    """Cut a (symbols, samples) timeline at sample ``end``."""
    symbols, samples = [], []
    pos = 0
    for symbol, n in zip(*counts, strict=True):
        if pos >= end:
            break
        symbols.append(symbol)
        samples.append(min(n, end - pos))
        pos += n
    return symbols, samples
