"""The media clock and the playout: positions come from sample counts, cuts are exact."""

from __future__ import annotations

import numpy as np
import pytest

from streaming.clock import MediaClock
from streaming.events import ClientMessageError, TextMessage, parse_client_message
from streaming.playout import AudioPlayout, heard_text


def test_clock_maps_video_frames_to_audio_samples() -> None:
    t = [100.0]
    clock = MediaClock(sample_rate=48_000, fps=25, now=lambda: t[0])
    clock.start()
    t[0] += 1.0
    assert clock.sample_now() == 48_000
    assert clock.video_frame_at(clock.elapsed()) == 25
    assert clock.samples_per_frame == 960
    # video frame n shows the audio sample n * rate / fps
    assert clock.video_frame_time(50) * 48_000 == 96_000
    assert clock.video_pts(25) == 90_000


def test_playout_queues_back_to_back_and_pulls_silence_elsewhere() -> None:
    p = AudioPlayout(48_000)
    a = np.full(1000, 1000, np.int16)
    b = np.full(500, 2000, np.int16)
    s1 = p.schedule(a, "one", not_before=100, turn_id=1)
    s2 = p.schedule(b, "two", not_before=0, turn_id=1)
    assert (s1, s2) == (100, 1100)
    out = p.pull(0, 2000)
    assert np.all(out[:100] == 0)
    assert np.all(out[100:1100] == 1000)
    assert np.all(out[1100:1600] == 2000)
    assert np.all(out[1600:] == 0)
    assert p.end_sample() == 1600


def test_interrupt_cuts_with_a_fade_and_reports_what_was_heard() -> None:
    p = AudioPlayout(48_000, fade_ms=1.0)
    p.schedule(np.full(4800, 10000, np.int16), "hello there friend", not_before=0, turn_id=1)
    p.schedule(np.full(4800, 10000, np.int16), "never heard", not_before=0, turn_id=1)
    heard = p.interrupt(2400)
    assert heard[0].fraction == pytest.approx(0.5)
    assert heard[1].fraction == 0.0
    out = p.pull(0, 9600)
    assert np.all(out[:2400] == 10000)
    assert np.all(out[2400 + 48 :] == 0)  # silent after the 1 ms fade
    assert 0 < out[2400 + 10] < 10000
    assert heard_text("hello there friend", 0.5) == "hello"
    assert heard_text("hello there friend", 1.0) == "hello there friend"


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        '{"type": "dance"}',
        '{"type": "text"}',
        '{"type": "text", "text": "   "}',
        '{"type": "text", "text": "' + "x" * 3000 + '"}',
        "[1, 2]",
    ],
)
def test_bad_client_messages_are_refused(raw: str) -> None:
    with pytest.raises(ClientMessageError):
        parse_client_message(raw)


def test_client_text_message() -> None:
    msg = parse_client_message('{"type": "text", "text": "hi there"}')
    assert isinstance(msg, TextMessage)
    assert msg.text == "hi there"
