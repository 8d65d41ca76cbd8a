"""Phonemes (espeak-ng IPA, as Piper emits them) to visemes and mouth-shape targets.

A viseme is a mouth shape shared by phonemes that look alike. Each has a target for
the five mouth channels of :class:`avatar.state.AvatarState` (``jaw_open``,
``mouth_wide``, ``lip_press``, ``teeth_show``, ``tongue_show``) and a *dominance*: how strongly it
imposes its shape on its neighbours during coarticulation (bilabial closures and
pauses win; /h/ and velars mostly borrow the shape of the next vowel).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from avatar.state import AvatarState


class Viseme(str, Enum):
    """Mouth-shape classes for English (a superset of the common 15-viseme sets)."""

    SILENCE = "sil"
    PP = "PP"  # p b m: lips pressed together
    FF = "FF"  # f v: lower lip to upper teeth
    TH = "TH"  # θ ð: tongue between the teeth
    DD = "DD"  # t d n ɾ: tongue tip up, mouth slightly open
    LL = "LL"  # l: tongue tip up behind the upper teeth, in view
    SS = "SS"  # s z: teeth together, lips spread
    CH = "CH"  # ʃ ʒ tʃ dʒ: lips protruded and slightly rounded
    KK = "KK"  # k g ŋ x: back of the tongue up
    RR = "RR"  # ɹ ɚ: lips slightly rounded
    WW = "WW"  # w: lips tightly rounded
    YY = "YY"  # j: lips spread
    HH = "HH"  # h ʔ: takes the shape of the neighbouring vowel
    AA = "aa"  # a ɑ ɐ ʌ æ: open jaw
    EE = "E"  # ɛ e: half open, spread
    IH = "I"  # ɪ i: nearly closed, spread
    OH = "O"  # ɔ o ɒ: open, rounded
    OU = "U"  # ʊ u: nearly closed, rounded
    SCHWA = "@"  # ə ɜ ᵻ: relaxed, half open


@dataclass(frozen=True)
class MouthTarget:
    """A mouth shape: the mouth channels of the avatar state, and a dominance."""

    jaw_open: float
    mouth_wide: float
    lip_press: float
    teeth_show: float
    dominance: float
    """0..1: how strongly this shape spreads into and resists its neighbours."""
    tongue_show: float = 0.0

    def as_tuple(self) -> tuple[float, float, float, float, float]:
        """The channel values in drive order (jaw, wide, press, teeth, tongue)."""
        return (self.jaw_open, self.mouth_wide, self.lip_press, self.teeth_show, self.tongue_show)


VISEME_TARGETS: dict[Viseme, MouthTarget] = {
    Viseme.SILENCE: MouthTarget(0.0, 0.0, 0.0, 0.0, 0.9),
    Viseme.PP: MouthTarget(0.0, 0.0, 1.0, 0.0, 1.0),
    Viseme.FF: MouthTarget(0.08, 0.15, 0.35, 0.8, 0.85),
    Viseme.TH: MouthTarget(0.2, 0.1, 0.0, 0.6, 0.7, tongue_show=1.0),
    Viseme.DD: MouthTarget(0.22, 0.15, 0.0, 0.45, 0.45, tongue_show=0.2),
    Viseme.LL: MouthTarget(0.3, 0.1, 0.0, 0.45, 0.5, tongue_show=0.8),
    Viseme.SS: MouthTarget(0.08, 0.35, 0.0, 0.85, 0.7),
    Viseme.CH: MouthTarget(0.15, -0.45, 0.0, 0.6, 0.7),
    Viseme.KK: MouthTarget(0.28, 0.05, 0.0, 0.25, 0.3),
    Viseme.RR: MouthTarget(0.2, -0.35, 0.0, 0.2, 0.55),
    Viseme.WW: MouthTarget(0.12, -0.85, 0.0, 0.0, 0.85),
    Viseme.YY: MouthTarget(0.18, 0.55, 0.0, 0.45, 0.5),
    Viseme.HH: MouthTarget(0.35, 0.0, 0.0, 0.1, 0.15),
    Viseme.AA: MouthTarget(0.85, 0.15, 0.0, 0.2, 0.6, tongue_show=0.15),
    Viseme.EE: MouthTarget(0.6, 0.45, 0.0, 0.45, 0.55),
    Viseme.IH: MouthTarget(0.38, 0.7, 0.0, 0.6, 0.55),
    Viseme.OH: MouthTarget(0.6, -0.6, 0.0, 0.1, 0.6),
    Viseme.OU: MouthTarget(0.35, -0.8, 0.0, 0.0, 0.65),
    Viseme.SCHWA: MouthTarget(0.42, 0.0, 0.0, 0.15, 0.4),
}

_PHONEME_VISEMES: dict[str, Viseme] = {}


def _add(viseme: Viseme, symbols: str) -> None:
    for s in symbols:
        _PHONEME_VISEMES[s] = viseme


_add(Viseme.PP, "pbmɱ")
_add(Viseme.FF, "fv")
_add(Viseme.TH, "θð")
_add(Viseme.DD, "tdnɾɗʈɖɳ")
_add(Viseme.LL, "lɫɬɭ")
_add(Viseme.SS, "szʦʣ")
_add(Viseme.CH, "ʃʒʧʤɕʑ")
_add(Viseme.KK, "kgɡŋxɣqɢχçɲ")
_add(Viseme.RR, "ɹɚɝrʁʀɻ")
_add(Viseme.WW, "wʍɥ")
_add(Viseme.YY, "jʝ")
_add(Viseme.HH, "hɦʔ")
_add(Viseme.AA, "aɑɐʌæɶ")
_add(Viseme.EE, "ɛeœø")
_add(Viseme.IH, "ɪiɨyʏ")
_add(Viseme.OH, "ɔoɒ")
_add(Viseme.OU, "ʊuɯɵ")
_add(Viseme.SCHWA, "əɜᵻɘɤ")

PAUSE_SYMBOLS = frozenset("^$_.,;:!?…—–-()\"'«»\n")
"""Sentence start/end markers and punctuation: the mouth rests (closed) there."""
WORD_BOUNDARY = " "
"""A word boundary: no shape of its own; its neighbours' shapes carry across it."""
STRESS_SYMBOLS = {"ˈ": 1.0, "ˌ": 0.5}
"""Stress marks (primary, secondary): they belong to the next phoneme and mark an accent."""
LENGTH_SYMBOLS = frozenset("ːˑ")
"""Length marks: they lengthen the previous phoneme."""

VOWEL_VISEMES = frozenset(
    {Viseme.AA, Viseme.EE, Viseme.IH, Viseme.OH, Viseme.OU, Viseme.SCHWA, Viseme.RR}
)
"""Visemes that carry a syllable nucleus (where an accent lands)."""


def viseme_of(phoneme: str) -> Viseme | None:
    """The viseme of one phoneme symbol; None for a symbol with no shape of its own.

    Pauses and punctuation map to SILENCE; word boundaries, stress and length marks
    and unknown diacritics return None (they take their neighbours' shape). An
    unknown letter maps to a neutral consonant (DD).
    """
    if not phoneme:
        return None
    if phoneme in PAUSE_SYMBOLS:
        return Viseme.SILENCE
    base = phoneme[0]
    found = _PHONEME_VISEMES.get(base)
    if found is not None:
        return found
    if base == WORD_BOUNDARY or base in STRESS_SYMBOLS or base in LENGTH_SYMBOLS:
        return None
    if base.isalpha():
        return Viseme.DD
    return None


def viseme_state(v: Viseme | None) -> AvatarState:
    """The mouth of viseme ``v`` held still, the rest of the face neutral (rest for None)."""
    if v is None:
        return AvatarState()
    t = VISEME_TARGETS[v]
    return AvatarState(
        jaw_open=t.jaw_open,
        mouth_wide=t.mouth_wide,
        lip_press=t.lip_press,
        teeth_show=t.teeth_show,
        tongue_show=t.tongue_show,
    )
