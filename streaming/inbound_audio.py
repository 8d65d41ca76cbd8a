"""The caller's audio as it arrives: no fixed hold, no lasting lag after a lost packet.

aiortc reassembles inbound audio in a generic jitter buffer made for video: a packet is
released only once four newer packets have arrived (80 ms held on every packet), and a
lost packet stalls it until the buffer overflows, after which it releases one packet
per packet received and so stays ~280 ms behind for the rest of the call. Nothing here
plays the caller's audio out at a fixed rate (the VAD and STT read it as it comes), so
a hold buys nothing: :class:`ArrivalAudioBuffer` hands every Opus packet (one frame
each) to the decoder the moment it arrives, drops a packet that comes after a newer one
(late, reordered or duplicated: 20 ms of audio lost rather than all later audio
delayed), and :class:`GapFiller` puts the silence of lost packets back from the frames'
timestamps, so the listener's clock (its silences, the end of the user's speech) stays
the caller's.

:func:`use_arrival_audio_buffer` installs the buffer on a peer connection's audio
receivers (aiortc has no public setting for it; where its internals differ, the
connection keeps aiortc's own buffer and a warning says so).
"""

from __future__ import annotations

import logging

import av
from aiortc import RTCPeerConnection
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtp import RtpPacket

log = logging.getLogger(__name__)

_RECEIVER_BUFFER = "_RTCRtpReceiver__jitter_buffer"
"""aiortc's (name-mangled) attribute holding an RTCRtpReceiver's jitter buffer."""
_SEQ_MOD = 1 << 16
MAX_GAP_S = 2.0
"""A timestamp jump longer than this is a new stream (or a clock reset), not lost
packets: no silence is made up for it."""


def _newer(seq: int, than: int) -> bool:
    """Whether RTP sequence number ``seq`` comes after ``than`` (modulo 2**16)."""
    delta = (seq - than) % _SEQ_MOD
    return 0 < delta < _SEQ_MOD // 2


class ArrivalAudioBuffer(JitterBuffer):
    """An audio "jitter buffer" that holds nothing: each packet is a frame, released on
    arrival if it is newer than every packet released before (else dropped)."""

    def __init__(self) -> None:
        super().__init__(capacity=16)
        self._last: int | None = None
        self.released = 0
        self.dropped = 0
        """Packets that came after a newer one (late, reordered or duplicated)."""

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        """Release ``packet`` as a frame unless an equal or newer one was released."""
        seq = packet.sequence_number
        if self._last is not None and not _newer(seq, self._last):
            self.dropped += 1
            return False, None
        self._last = seq
        self.released += 1
        data: bytes = packet._data  # type: ignore[attr-defined]  # set by the receiver
        return False, JitterFrame(data=data, timestamp=packet.timestamp)


def use_arrival_audio_buffer(pc: RTCPeerConnection) -> int:
    """Give every audio receiver of ``pc`` an :class:`ArrivalAudioBuffer` (call it once
    the remote description is set, before media flows); how many got one."""
    installed = 0
    for transceiver in pc.getTransceivers():
        if transceiver.kind != "audio":
            continue
        receiver = transceiver.receiver
        if not isinstance(getattr(receiver, _RECEIVER_BUFFER, None), JitterBuffer):
            log.warning(
                "this aiortc keeps its jitter buffer elsewhere: inbound audio keeps "
                "aiortc's 80 ms hold"
            )
            continue
        setattr(receiver, _RECEIVER_BUFFER, ArrivalAudioBuffer())
        installed += 1
    return installed


class GapFiller:
    """Seconds of audio missing before each decoded frame, from the frames' timestamps
    (lost or dropped packets; nothing for the first frame, a reordering or a jump
    longer than :data:`MAX_GAP_S`)."""

    def __init__(self) -> None:
        self._next: float | None = None

    def missing_s(self, frame: av.AudioFrame) -> float:
        """The silence to insert before ``frame`` to keep the stream's own timeline."""
        if frame.pts is None or frame.time_base is None or not frame.sample_rate:
            return 0.0
        start = float(frame.pts * frame.time_base)
        expected, self._next = self._next, start + frame.samples / frame.sample_rate
        if expected is None:
            return 0.0
        gap = start - expected
        # half a millisecond of slack: timestamps are whole samples
        return gap if 0.0005 < gap <= MAX_GAP_S else 0.0
