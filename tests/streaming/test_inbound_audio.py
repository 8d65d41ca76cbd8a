"""The caller's audio as it arrives: the arrival buffer, the gap filler, a real call."""

from __future__ import annotations

import asyncio
import fractions
from collections.abc import AsyncIterator, Awaitable, Callable

import av
import numpy as np
import pytest
from aiortc import RTCPeerConnection
from aiortc.jitterbuffer import JitterBuffer
from aiortc.mediastreams import AudioStreamTrack, MediaStreamTrack
from aiortc.rtp import RtpPacket

from streaming.inbound_audio import (
    MAX_GAP_S,
    ArrivalAudioBuffer,
    GapFiller,
    use_arrival_audio_buffer,
)

SPF = 960  # 20 ms at 48 kHz


def packet(seq: int) -> RtpPacket:
    """An Opus RTP packet as the receiver hands it to the buffer (payload depacketized)."""
    p = RtpPacket(payload_type=111, sequence_number=seq % 65536, timestamp=(seq * SPF) % 2**32)
    p._data = bytes([seq % 256])  # type: ignore[attr-defined]
    return p


def released(buffer: JitterBuffer, seqs: list[int]) -> list[tuple[int, int | None]]:
    """(packet added, packet released by that add or None) for each of ``seqs``."""
    out = []
    for seq in seqs:
        _, frame = buffer.add(packet(seq))
        out.append((seq, None if frame is None else frame.data[0]))
    return out


def test_every_packet_is_released_the_moment_it_arrives() -> None:
    got = released(ArrivalAudioBuffer(), list(range(10)))
    assert got == [(s, s) for s in range(10)]


def test_a_lost_packet_delays_nothing_after_it() -> None:
    buffer = ArrivalAudioBuffer()
    seqs = [s for s in range(100) if s != 40]
    got = released(buffer, seqs)
    assert all(out == seq % 256 for seq, out in got), "a packet after the loss waited"
    assert buffer.dropped == 0


def test_aiortc_buffer_would_lag_after_a_loss() -> None:
    """Why the arrival buffer exists: aiortc's own audio buffer stays ~14 packets behind
    for good after one lost packet (if aiortc fixes this, this test says so)."""
    got = released(JitterBuffer(capacity=16, prefetch=4), [s for s in range(100) if s != 40])
    lags = [seq - out for seq, out in got[-10:] if out is not None]
    assert lags and min(lags) >= 10


def test_late_reordered_and_duplicate_packets_are_dropped() -> None:
    buffer = ArrivalAudioBuffer()
    got = released(buffer, [0, 1, 3, 2, 4, 4, 5])
    assert got == [(0, 0), (1, 1), (3, 3), (2, None), (4, 4), (4, None), (5, 5)]
    assert buffer.dropped == 2 and buffer.released == 5


def test_sequence_numbers_wrap_around() -> None:
    got = released(ArrivalAudioBuffer(), [65534, 65535, 65536, 65537])
    assert [out for _, out in got] == [65534 % 256, 65535 % 256, 0, 1]


def frame(pts: int, samples: int = SPF, rate: int = 48000) -> av.AudioFrame:
    f = av.AudioFrame(format="s16", layout="mono", samples=samples)
    f.sample_rate = rate
    f.pts = pts
    f.time_base = fractions.Fraction(1, rate)
    return f


def test_gap_filler_puts_back_the_time_of_lost_packets() -> None:
    gaps = GapFiller()
    assert gaps.missing_s(frame(0)) == 0.0
    assert gaps.missing_s(frame(SPF)) == 0.0
    assert gaps.missing_s(frame(4 * SPF)) == pytest.approx(0.04)  # two packets lost
    assert gaps.missing_s(frame(5 * SPF)) == 0.0


def test_gap_filler_ignores_jumps_and_reorders() -> None:
    gaps = GapFiller()
    gaps.missing_s(frame(0))
    jump = int((MAX_GAP_S + 1) * 48000)
    assert gaps.missing_s(frame(jump)) == 0.0  # a new stream, not lost packets
    assert gaps.missing_s(frame(jump + SPF)) == 0.0
    assert gaps.missing_s(frame(jump)) == 0.0  # backwards: nothing to fill


class Tone(AudioStreamTrack):
    """A 440 Hz tone (aiortc's silence track, paced the same way); counts its frames."""

    frames = 0

    async def recv(self) -> av.AudioFrame:
        f = await super().recv()
        self.frames += 1
        assert isinstance(f, av.AudioFrame) and f.pts is not None
        t = (f.pts + np.arange(f.samples)) / f.sample_rate
        pcm = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)
        out = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        out.sample_rate, out.pts, out.time_base = f.sample_rate, f.pts, f.time_base
        return out


Call = Callable[..., Awaitable[tuple[Tone, MediaStreamTrack, RTCPeerConnection]]]


@pytest.fixture
async def call() -> AsyncIterator[Call]:
    """Makes aiortc calls on loopback whose answerer hears through the arrival buffer
    (``lose``: the caller's RTP packet of that number is never sent); hangs them up."""
    peers: list[RTCPeerConnection] = []

    async def make(lose: int | None = None) -> tuple[Tone, MediaStreamTrack, RTCPeerConnection]:
        caller, callee = RTCPeerConnection(), RTCPeerConnection()
        peers.extend((caller, callee))
        heard: asyncio.Queue[MediaStreamTrack] = asyncio.Queue()
        callee.on("track", heard.put_nowait)
        tone = Tone()
        caller.addTrack(tone)
        await caller.setLocalDescription(await caller.createOffer())
        await callee.setRemoteDescription(caller.localDescription)
        assert use_arrival_audio_buffer(callee) == 1
        await callee.setLocalDescription(await callee.createAnswer())
        await caller.setRemoteDescription(callee.localDescription)
        transport = caller.getSenders()[0].transport
        send = transport._send_rtp
        sent = 0

        async def lossy(data: bytes) -> None:
            nonlocal sent
            sent += 1
            if sent != lose:
                await send(data)

        transport._send_rtp = lossy  # type: ignore[method-assign]
        return tone, await asyncio.wait_for(heard.get(), 10), callee

    yield make
    for pc in peers:
        await pc.close()


async def test_a_real_call_hears_the_caller_through_the_arrival_buffer(call: Call) -> None:
    """Two aiortc peers on loopback: the answerer's audio receiver gets the buffer and
    the caller's tone comes out of it, decoded, with no gap."""
    _, track, callee = await call()
    gaps = GapFiller()
    loud = 0
    for _ in range(25):
        f = await asyncio.wait_for(track.recv(), 10)
        assert isinstance(f, av.AudioFrame)
        assert gaps.missing_s(f) == 0.0
        loud += float(np.abs(f.to_ndarray()).max()) > 4000
    assert loud >= 20, "the caller's tone did not come through"
    buffer = callee.getTransceivers()[0].receiver._RTCRtpReceiver__jitter_buffer  # type: ignore[attr-defined]
    assert isinstance(buffer, ArrivalAudioBuffer) and buffer.released >= 25


async def test_a_lost_packet_leaves_a_20_ms_gap_and_no_lag(call: Call) -> None:
    """The caller's 20th packet is lost: the answerer hears a 20 ms gap (filled by the
    gap filler) and stays at the caller's pace; aiortc's own buffer would have fallen
    ~14 packets (280 ms) behind for the rest of the call."""
    tone, track, _ = await call(lose=20)
    gaps = GapFiller()
    missing = []
    received = 0
    while received < 75:
        f = await asyncio.wait_for(track.recv(), 10)
        assert isinstance(f, av.AudioFrame)
        received += 1
        if (gap := gaps.missing_s(f)) > 0:
            missing.append(gap)
    assert missing == [pytest.approx(0.02)]
    behind = tone.frames - received - 1  # frames the caller made that are not heard yet
    assert behind <= 6, f"the answerer is {behind} frames behind the caller"
