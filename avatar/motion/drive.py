"""What makes the mouth move: a speech drive, from a phoneme timeline or from audio.

A :class:`MouthDrive` is a target trajectory for the five mouth channels
(``jaw_open, mouth_wide, lip_press, teeth_show, tongue_show``), sampled on a fine fixed hop, plus a
loudness track and accent times for the head's prosody. Time 0 is the first sample of
the speech audio; the track starts ``lead`` seconds earlier (the mouth may prepare
its shape that long before the sound, never longer) and ends a little after the
audio (the mouth relaxes to closed).

The world model's mouth springs follow these targets, so a drive itself may change
quickly; coarticulation (a viseme blending with its neighbours) happens here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from avatar.motion.audio_features import speech_features
from avatar.motion.visemes import (
    STRESS_SYMBOLS,
    VISEME_TARGETS,
    VOWEL_VISEMES,
    WORD_BOUNDARY,
    Viseme,
    viseme_of,
)
from models.audio import as_float_mono
from models.errors import InvalidAudioError
from models.types import PhonemeSpan, Speech, Word

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
Floats = npt.NDArray[np.floating[Any]]

HOP = 0.005
"""Seconds between samples of a drive's tracks."""
TAIL = 0.15
"""Seconds a drive lasts after its audio (the mouth relaxes)."""
CHANNELS = 5
REST = np.zeros(CHANNELS, dtype=np.float32)
REST.flags.writeable = False
"""The closed, relaxed mouth."""
FILTER_LAG = 0.03
"""About the delay of the world model's mouth springs; audio drives lead by this much."""
PHONEME_LEAD = 0.06
"""How much earlier than its aligned span a phoneme's shape is targeted: the springs'
delay (~25 ms) plus the 20-35 ms by which Piper's alignments trail the sound
(en_US-joe-medium, 10 sentences at three speeds: the bilabials' spans are quietest
moved 35 ms earlier, the open vowels' loudest moved 20 ms earlier). At 50 ms the
mouth read from pixels still matched the speech a frame late better than a frame
early. Never more than the lookahead."""

MOTION_EPS = 0.01
"""A target this close to rest on every channel shows no motion (1 % of the range)."""

# Coarticulation: in-span weight of each viseme (how firmly it holds its own span)
_HOLD: dict[Viseme, float] = {
    Viseme.SILENCE: 6.0,
    Viseme.PP: 10.0,
    Viseme.FF: 3.0,
    Viseme.WW: 2.5,
    Viseme.SS: 1.8,
    Viseme.CH: 1.8,
    Viseme.HH: 0.25,
    Viseme.KK: 0.6,
}
LOUDNESS_MIX = 0.75
"""With audio, how much a viseme's jaw opening is scaled by the loudness."""
AUDIO_JAW_MIX = 0.5
"""With audio, the share of the jaw opening taken from the loudness alone (the rest:
the loudness-scaled visemes). Loud syllables open the jaw whatever the vowel."""
AUDIO_JAW_GAIN = 0.85
AUDIO_JAW_GAMMA = 0.75
"""Loudness (0..1 above the speech gate) to jaw opening: ``gain * level ** gamma``."""
LEVEL_ATTACK_S = 0.006
LEVEL_RELEASE_S = 0.02
"""Time constants of the loudness follower: syllable onsets open the jaw promptly."""
_HALF_WINDOW = 0.0125
"""Half the analysis window of the audio features (they see this far ahead)."""
_BLEND_HOPS = 5
"""Width (in hops) of the symmetric smoothing of the coarticulated targets."""
_CARRY = 0.04
"""Seconds a viseme's influence lasts after its span (carry-over coarticulation).

Anticipation is bounded by the lookahead (``lead - PHONEME_LEAD``, 0 ms by default),
so a long carry-over makes the smoothing lopsided: each shape's centre of mass then
trails its sound. At 100 ms it put the mouth, read from pixels, a frame behind the
speech envelope on the Piper path (r 0.74 at lag 0, almost as high a frame late);
at 40 ms the best lag is 0 on every sentence measured (r ~0.84), and a bilabial's
press no longer holds the jaw shut into the vowel that follows it."""
_RELEASE: dict[Viseme, float] = {Viseme.PP: 0.005}
"""Visemes whose influence ends faster than ``_CARRY`` after their span: the lips of
a bilabial part at its release (the burst), and the vowel's opening follows at once."""


@dataclass(frozen=True)
class _Segment:
    viseme: Viseme
    start: float
    end: float
    accent: float


@dataclass(frozen=True)
class MouthDrive:
    """A mouth target trajectory for one chunk of speech (see the module docstring)."""

    targets: F32
    """(n, 5) targets: jaw_open, mouth_wide, lip_press, teeth_show, tongue_show."""
    energy: F32
    """(n,) loudness 0..1 (drives the head's prosody)."""
    t0: float
    """Time of sample 0 relative to the start of the audio (``-lead``)."""
    duration: float
    """Length of the speech audio in seconds."""
    lead: float
    """How long before its sound the mouth may start to move (the lookahead)."""
    accents: tuple[tuple[float, float], ...] = ()
    """(time, strength 0..1) of stressed syllables, relative to the audio start."""
    hop: float = HOP
    source: str = "phonemes"
    """``phonemes`` or ``audio``: what the drive was made from."""

    def __post_init__(self) -> None:
        if self.targets.ndim != 2 or self.targets.shape[1] != CHANNELS:
            raise ValueError(f"targets must be (n, {CHANNELS}), got {self.targets.shape}")
        if len(self.energy) != len(self.targets) or len(self.targets) < 2:
            raise ValueError("targets and energy must have the same length (at least 2)")
        self.targets.flags.writeable = False
        self.energy.flags.writeable = False

    @property
    def end(self) -> float:
        """Time (relative to the audio start) after which the drive is at rest."""
        return self.t0 + len(self.targets) * self.hop

    @property
    def anticipation(self) -> float:
        """Seconds before its audio starts that the mouth first leaves rest (0 to
        :attr:`lead`): how much of the lookahead this chunk uses. A TTS chunk starts
        with a short silence, so its first shape often needs less than all of it."""
        moving = np.flatnonzero(np.abs(self.targets - REST).max(axis=1) > MOTION_EPS)
        if moving.size == 0:
            return 0.0
        first = self.t0 + (float(moving[0]) - 1.0) * self.hop  # sample() ramps from here
        return min(self.lead, max(0.0, -first))

    def sample(self, times: npt.ArrayLike) -> tuple[F32, F32]:
        """Targets (m, 5) and energy (m,) at ``times`` (seconds from the audio start).

        Linear interpolation; rest (closed, silent) outside the track.
        """
        t = np.atleast_1d(np.asarray(times, dtype=np.float64))
        pos = (t - self.t0) / self.hop
        n = len(self.targets)
        inside = (pos >= 0.0) & (pos <= n - 1)
        i0 = np.clip(np.floor(pos).astype(np.int64), 0, max(n - 2, 0))
        frac = np.clip(pos - i0, 0.0, 1.0)[:, None]
        i1 = np.minimum(i0 + 1, n - 1)
        tg = self.targets[i0] * (1.0 - frac) + self.targets[i1] * frac
        en = self.energy[i0] * (1.0 - frac[:, 0]) + self.energy[i1] * frac[:, 0]
        tg = np.where(inside[:, None], tg, REST[None, :]).astype(np.float32)
        en = np.where(inside, en, 0.0).astype(np.float32)
        return tg, en

    def truncated(self, at: float) -> MouthDrive:
        """The drive with everything after ``at`` (seconds from its start) at rest."""
        keep = max(0, math.floor((at - self.t0) / self.hop) + 1)
        if keep >= len(self.targets):
            return self
        targets = self.targets.copy()
        energy = self.energy.copy()
        targets[keep:] = REST
        energy[keep:] = 0.0
        accents = tuple(a for a in self.accents if a[0] <= at)
        return replace(self, targets=targets, energy=energy, accents=accents)

    # ------------------------------------------------------------------ builders

    @classmethod
    def from_speech(
        cls,
        speech: Speech,
        *,
        lookahead_ms: float = 60.0,
        words: Sequence[Word] | None = None,
    ) -> MouthDrive:
        """From a TTS chunk: its phoneme timeline (with its loudness) when it has one,
        its audio otherwise (``words``: STT timings that refine the audio path)."""
        if speech.phonemes:
            return cls.from_phonemes(
                speech.phonemes,
                speech.duration,
                lookahead_ms=lookahead_ms,
                pcm=speech.pcm,
                sample_rate=speech.sample_rate,
            )
        return cls.from_audio(
            speech.pcm, speech.sample_rate, lookahead_ms=lookahead_ms, words=words
        )

    @classmethod
    def from_phonemes(
        cls,
        phonemes: Sequence[PhonemeSpan],
        duration: float,
        *,
        lookahead_ms: float = 60.0,
        pcm: npt.ArrayLike | None = None,
        sample_rate: int | None = None,
    ) -> MouthDrive:
        """Coarticulated mouth targets from a phoneme timeline (Piper/espeak IPA).

        Each phoneme becomes a viseme segment; every segment spreads its shape into
        its neighbours with a dominance that is full inside its span and fades with a
        raised cosine over ``lookahead`` before it (never longer: causality) and
        ``_CARRY`` after it (``_RELEASE`` for bilabials). The target at each instant is
        the dominance-weighted mean of the shapes. Bilabials and pauses hold firmly (the
        lips close), /h/ and velars borrow their neighbours' shapes. With the speech
        audio (``pcm`` at ``sample_rate``), the jaw opening blends the visemes' with the
        loudness's (louder syllables open wider; bilabials press the lips shut, the jaw
        stays with the vowels around them), and the loudness drives the head's prosody.
        """
        lead = max(0.0, lookahead_ms / 1000.0)
        shift = min(PHONEME_LEAD, lead)
        pre = lead - shift
        segments = _segments(phonemes, duration)
        t0 = -lead
        n = math.ceil((duration + TAIL - t0) / HOP) + 1
        times = t0 + np.arange(n) * HOP
        # a faint rest prior keeps the mean defined where no segment reaches
        wsum = np.full(n, 1e-4)
        acc = np.zeros((n, CHANNELS))
        energy_acc = np.zeros(n)
        for seg in segments:
            target = VISEME_TARGETS[seg.viseme]
            start, end = seg.start - shift, seg.end - shift
            hold = _HOLD.get(seg.viseme, 1.0)
            spread = target.dominance
            lo = int(max(0, math.floor((start - pre - t0) / HOP)))
            carry = _RELEASE.get(seg.viseme, _CARRY)
            hi = int(min(n, math.ceil((end + carry - t0) / HOP) + 1))
            if hi <= lo:
                continue
            t = times[lo:hi]
            w = np.zeros(hi - lo)
            inside = (t >= start) & (t <= end)
            w[inside] = hold
            before = t < start
            if pre > 0.0:
                u = (start - t[before]) / pre
                w[before] = spread * 0.5 * (1.0 + np.cos(np.pi * np.clip(u, 0.0, 1.0)))
            after = t > end
            u = (t[after] - end) / carry
            w[after] = spread * 0.5 * (1.0 + np.cos(np.pi * np.clip(u, 0.0, 1.0)))
            wsum[lo:hi] += w
            acc[lo:hi] += w[:, None] * np.asarray(target.as_tuple())[None, :]
            energy_acc[lo:hi] += w * _SONORITY.get(seg.viseme, 0.3)
        # a short symmetric blend softens the steps where one span's hold meets the next
        kernel = np.hanning(_BLEND_HOPS + 2)[1:-1]
        kernel /= kernel.sum()
        mean = acc / wsum[:, None]
        edge = _BLEND_HOPS // 2
        padded = np.pad(mean, ((edge, edge), (0, 0)), mode="edge")
        blended = np.stack(
            [np.convolve(padded[:, c], kernel, mode="valid") for c in range(CHANNELS)], axis=1
        )
        targets = blended.astype(np.float32)
        energy = np.clip(energy_acc / wsum, 0.0, 1.0).astype(np.float32)
        if pcm is not None and sample_rate is not None:
            level = _loudness(pcm, sample_rate, times, lead)
            # the viseme's opening scaled by loudness, blended with the opening the
            # loudness alone implies. Bilabials close the lips (lip_press), not the jaw:
            # between two vowels the jaw stays near their opening while the lips meet,
            # so it is not shut there (that spread each closure into the vowels around
            # it, a frame of closed mouth on loud speech)
            viseme_jaw = targets[:, 0] * ((1.0 - LOUDNESS_MIX) + LOUDNESS_MIX * level)
            sound_jaw = AUDIO_JAW_GAIN * level**AUDIO_JAW_GAMMA
            targets[:, 0] = (1.0 - AUDIO_JAW_MIX) * viseme_jaw + AUDIO_JAW_MIX * sound_jaw
            energy = level.astype(np.float32)
        # nothing may move before the first sound minus the lead
        first = next((s.start for s in segments if s.viseme is not Viseme.SILENCE), None)
        if first is not None:
            early = times < first - lead
            targets[early] = REST
            energy[early] = 0.0
        accents = tuple((s.start, s.accent) for s in segments if s.accent > 0.0)
        return cls(
            targets=targets,
            energy=energy,
            t0=t0,
            duration=float(duration),
            lead=lead,
            accents=accents,
            source="phonemes",
        )

    @classmethod
    def from_audio(
        cls,
        pcm: npt.ArrayLike,
        sample_rate: int,
        *,
        lookahead_ms: float = 60.0,
        words: Sequence[Word] | None = None,
    ) -> MouthDrive:
        """Mouth targets from the sound itself, for audio with no phoneme timeline.

        Jaw opening follows the loudness above a VAD-like gate (closed in silence),
        compressed and with a fast attack so syllable onsets open promptly; unvoiced
        hiss (s, f, sh) keeps the jaw nearly closed and shows the teeth; the spectral
        centroid of voiced sound sets rounding (dark: 'oo') versus spreading (bright:
        'ee'). With ``words`` (STT timings), sound outside every word stays closed.
        The target at time t uses audio up to ``t + lookahead`` only.
        """
        if sample_rate <= 0:
            raise InvalidAudioError(f"sample rate must be positive, got {sample_rate}")
        audio = as_float_mono(pcm, name="drive audio")
        duration = len(audio) / float(sample_rate)
        lead = max(0.0, lookahead_ms / 1000.0)
        feats = speech_features(audio, sample_rate, hop=HOP)
        shift = max(0.0, min(FILTER_LAG, lead - _HALF_WINDOW))
        gate = feats.gate.copy()
        if words is not None:
            gate &= _word_mask(len(gate), HOP, words, pad=0.06)
        level = gated_level(feats.db, gate, feats.threshold_db, feats.reference_db)
        level = _attack_release(level, HOP, attack=LEVEL_ATTACK_S, release=LEVEL_RELEASE_S)
        voiced = voicing_weight(feats.voicing)
        mid, scale = centroid_scale(feats.centroid[gate & (voiced > 0.5)])
        feat_targets = sound_targets(level, voiced, feats.high_ratio, feats.centroid, mid, scale)
        # resample onto the drive's clock: sample k at time t0 + k*HOP uses the
        # features at t + shift (audio up to t + shift + half_window <= t + lead)
        t0 = -lead
        n = math.ceil((duration + TAIL - t0) / HOP) + 1
        src = np.round((t0 + np.arange(n) * HOP + shift) / HOP).astype(np.int64)
        valid = (src >= 0) & (src < len(feat_targets))
        targets = np.zeros((n, CHANNELS), dtype=np.float32)
        energy = np.zeros(n, dtype=np.float32)
        targets[valid] = feat_targets[src[valid]]
        energy[valid] = level[src[valid]].astype(np.float32)
        accents = _onset_accents(level, HOP, shift)
        return cls(
            targets=targets,
            energy=energy,
            t0=t0,
            duration=duration,
            lead=lead,
            accents=accents,
            source="audio",
        )


def gated_level(db: F32, gate: npt.NDArray[np.bool_], open_db: float, ref_db: float) -> F64:
    """Loudness 0..1 of each hop: from 3 dB under the gate to the reference level, 0
    where the gate is closed."""
    span = max(ref_db - open_db, 1e-3)
    level = np.clip((db - open_db + 3.0) / span, 0.0, 1.0)
    return np.where(gate, level, 0.0)


def voicing_weight(voicing: Floats) -> Floats:
    """How voiced each hop is, 0..1, from its autocorrelation peak."""
    return np.clip((voicing - 0.3) / 0.35, 0.0, 1.0)


def centroid_scale(voiced_centroids: Floats) -> tuple[float, float]:
    """The middle and half-spread of the spectral centroid of voiced speech (dark vs
    bright vowels), from at least 10 voiced hops; a typical voice's otherwise."""
    if len(voiced_centroids) >= 10:
        mid = float(np.median(voiced_centroids))
        q80, q20 = np.percentile(voiced_centroids, [80, 20])
        return mid, float(q80 - q20) / 2.0 + 1e-3
    return 1500.0, 500.0


def sound_targets(
    level: Floats, voiced: Floats, high_ratio: Floats, centroid: Floats, mid: float, scale: float
) -> F32:
    """Mouth targets (n, 5) of hops from their sound alone (see
    :meth:`MouthDrive.from_audio`): the jaw follows the loudness, hiss shows the teeth
    with the jaw nearly shut, a bright voiced sound spreads the lips and a dark one
    rounds them."""
    hiss = np.clip((high_ratio - 0.25) / 0.35, 0.0, 1.0) * (1.0 - voiced)
    jaw = AUDIO_JAW_GAIN * level**AUDIO_JAW_GAMMA * (1.0 - 0.7 * hiss)
    bright = np.clip((centroid - mid) / scale, -1.5, 1.5)
    wide = np.clip(0.45 * bright * voiced + 0.35 * hiss, -0.8, 0.7)
    teeth = np.clip(0.25 * level + 0.3 * np.maximum(bright, 0.0) * voiced + 0.6 * hiss, 0, 1)
    on = (level > 0.02).astype(np.float64)
    wide = wide * on
    teeth = teeth * on
    press = np.zeros_like(jaw)
    tongue = np.zeros_like(jaw)  # the sound alone does not tell where the tongue is
    return np.stack([jaw, wide, press, teeth, tongue], axis=1).astype(np.float32)


def _loudness(pcm: npt.ArrayLike, sample_rate: int, times: F64, lead: float) -> F32:
    """Gated loudness 0..1 at ``times`` (seconds from the audio start), never using
    audio later than ``t + lead``; 0 outside the audio."""
    audio = as_float_mono(pcm, name="speech audio")
    feats = speech_features(audio, sample_rate, hop=HOP)
    level = gated_level(feats.db, feats.gate, feats.threshold_db, feats.reference_db)
    level = _attack_release(level, HOP, attack=LEVEL_ATTACK_S, release=LEVEL_RELEASE_S)
    shift = max(0.0, min(FILTER_LAG, lead - _HALF_WINDOW))
    src = np.round((times + shift) / HOP).astype(np.int64)
    valid = (src >= 0) & (src < len(level))
    out = np.zeros(len(times), dtype=np.float32)
    out[valid] = level[src[valid]]
    return out


_SONORITY: dict[Viseme, float] = {
    Viseme.SILENCE: 0.0,
    Viseme.PP: 0.15,
    Viseme.KK: 0.2,
    Viseme.DD: 0.35,
    Viseme.LL: 0.5,
    Viseme.FF: 0.25,
    Viseme.TH: 0.25,
    Viseme.SS: 0.3,
    Viseme.CH: 0.3,
    Viseme.HH: 0.3,
    Viseme.RR: 0.7,
    Viseme.WW: 0.6,
    Viseme.YY: 0.6,
    Viseme.AA: 1.0,
    Viseme.EE: 0.9,
    Viseme.IH: 0.8,
    Viseme.OH: 0.95,
    Viseme.OU: 0.8,
    Viseme.SCHWA: 0.75,
}


def _segments(phonemes: Sequence[PhonemeSpan], duration: float) -> list[_Segment]:
    """Phoneme spans to viseme segments.

    Stress marks join the next phoneme and put an accent on its syllable's vowel;
    length marks and unknown diacritics lengthen the previous phoneme; a word
    boundary goes to a neighbouring pause, or is split between two sounding
    neighbours; adjacent pauses merge. Before the first and after the last phoneme
    the mouth rests.
    """
    items: list[list[Any]] = []  # [viseme or None (word boundary), start, end, accent]
    pending_start: float | None = None
    pending_accent = 0.0
    for p in phonemes:
        if p.duration <= 0.0 or not p.phoneme:
            continue
        vis, sym = viseme_of(p.phoneme), p.phoneme[0]
        if vis is None:
            if sym in STRESS_SYMBOLS:
                pending_start = p.start if pending_start is None else pending_start
                pending_accent = max(pending_accent, STRESS_SYMBOLS[sym])
            elif sym == WORD_BOUNDARY:
                items.append([None, p.start, p.end, 0.0])
            elif items:  # length mark or diacritic: lengthens the previous phoneme
                items[-1][2] = p.end
            continue
        start = p.start if pending_start is None else min(pending_start, p.start)
        accent = 0.0
        if pending_accent > 0.0 and vis in VOWEL_VISEMES:
            accent, pending_accent = pending_accent, 0.0
        pending_start = None
        items.append([vis, start, p.end, accent])
    # word boundaries: to a neighbouring pause, else split between the neighbours
    for i, item in enumerate(items):
        if item[0] is not None:
            continue
        prev = items[i - 1] if i > 0 and items[i - 1][0] is not None else None
        nxt = items[i + 1] if i + 1 < len(items) and items[i + 1][0] is not None else None
        if prev is not None and prev[0] is Viseme.SILENCE:
            prev[2] = max(prev[2], item[2])
        elif nxt is not None and nxt[0] is Viseme.SILENCE:
            nxt[1] = min(nxt[1], item[1])
        elif prev is not None and nxt is not None:
            mid = 0.5 * (item[1] + item[2])
            prev[2] = max(prev[2], mid)
            nxt[1] = min(nxt[1], mid)
        elif prev is not None:
            prev[2] = max(prev[2], item[2])
        elif nxt is not None:
            nxt[1] = min(nxt[1], item[1])
    segs: list[_Segment] = []
    for vis, start, end, accent in items:
        if vis is None:
            continue
        if vis is Viseme.SILENCE and segs and segs[-1].viseme is Viseme.SILENCE:
            segs[-1] = replace(segs[-1], end=float(end))
            continue
        segs.append(_Segment(vis, float(start), float(end), float(accent)))
    return _with_edge_pauses(segs, duration)


def _with_edge_pauses(segs: list[_Segment], duration: float) -> list[_Segment]:
    """Add a pause before the first and after the last segment (rest at the edges)."""
    first_start = segs[0].start if segs else duration
    last_end = segs[-1].end if segs else 0.0
    out: list[_Segment] = []
    out.append(_Segment(Viseme.SILENCE, min(first_start, 0.0) - 1.0, first_start, 0.0))
    out.extend(segs)
    out.append(_Segment(Viseme.SILENCE, last_end, max(duration, last_end) + 1.0, 0.0))
    return out


def _word_mask(n: int, hop: float, words: Sequence[Word], pad: float) -> npt.NDArray[np.bool_]:
    """True at hops inside any word span (padded)."""
    mask = np.zeros(n, dtype=bool)
    for w in words:
        lo = max(0, math.floor((w.start - pad) / hop))
        hi = min(n, math.ceil((w.end + pad) / hop) + 1)
        mask[lo:hi] = True
    return mask


def _attack_release(x: F64, hop: float, *, attack: float, release: float) -> F64:
    """One-pole smoothing, fast when rising and slower when falling (causal)."""
    a_up = 1.0 - math.exp(-hop / attack)
    a_down = 1.0 - math.exp(-hop / release)
    out = np.empty_like(x)
    y = 0.0
    for i, v in enumerate(x.tolist()):
        y += (a_up if v > y else a_down) * (v - y)
        out[i] = y
    return out


def _onset_accents(level: F64, hop: float, shift: float) -> tuple[tuple[float, float], ...]:
    """Times and strengths of loudness onsets (syllable accents) for head prosody."""
    if len(level) < 4:
        return ()
    k = max(1, round(0.03 / hop))
    rise = np.zeros_like(level)
    rise[k:] = level[k:] - level[:-k]
    threshold = 0.25
    min_gap = round(0.25 / hop)
    accents: list[tuple[float, float]] = []
    last = -min_gap
    i = 1
    n = len(rise)
    while i < n - 1:
        peak = rise[i] > threshold and rise[i] >= rise[i - 1] and rise[i] >= rise[i + 1]
        if peak and i - last >= min_gap:
            accents.append((i * hop - shift, float(min(1.0, rise[i] / 0.6))))
            last = i
        i += 1
    return tuple(accents)
