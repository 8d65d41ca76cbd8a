"""The end of the user's turn without models: the policy, the listener's decision with a
fake VAD and a scripted recognizer, the conversation as the recognizer's prompt, and
finals before partials on the shared recognizer."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import numpy as np
import pytest

from models.stt.serial import FINAL, PARTIAL, SerialRunner
from models.types import FloatAudio
from streaming.config import EndOfTurnConfig
from streaming.listener import Listener, ListenEvent, SpeechStarted, UserPaused, Utterance
from streaming.turn_end import WordEndPolicy, ending
from tests.streaming.fakes import WINDOW, FakeStt, FakeVad, Rig, answered, silence, speech

pytestmark = pytest.mark.timeout(30)

CONFIG = EndOfTurnConfig()  # the service's defaults
WINDOW_S = WINDOW / 16_000


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("Which planet is closest to the sun?", "question"),
        ("Where are you from?", "statement"),  # a stranded preposition: not fast
        ("Can you tell me about?", "statement"),  # how Whisper wrote a pause after "about"
        ("which planet encloses to the sun.", "question"),  # Whisper's full stop
        ("What is the capital of", "unfinished"),
        ("I think so.", "statement"),
        ("Tell me a joke!", "statement"),
        ("I would like to go to", "unfinished"),
        ("I would like to go to.", "unfinished"),  # Whisper's period after a preposition
        ("Can you tell me about the", "unfinished"),
        ("I was thinking, um", "unfinished"),
        ("I want to go to the museum and", "unfinished"),
        ("So I went there...", "unfinished"),
        ("Well,", "unfinished"),
        ("", "unfinished"),
        ("tell me a joke", "statement"),
        # a yes/no question that stops on the verb introducing what is asked
        ("Could you tell me?", "statement"),
        ("Do you tell me?", "statement"),  # how Whisper wrote "Could you tell me |"
        ("Do you know?", "statement"),
        ("Can you explain.", "statement"),
        ("Would you show us?", "statement"),
        ("Could you tell me what the capital of Italy is?", "question"),
        ("Do you know where my keys are?", "question"),
        ("What do you tell me?", "statement"),  # Whisper's "Could you tell me |" again
        ("What can you tell me?", "statement"),  # the price: a statement's wait
        ("What do you think?", "question"),  # a wh-question has asked already
        ("How do you know?", "question"),
        ("Can you help me?", "question"),  # "help" takes no question after it
        ("Do you remember me?", "question"),  # "me" only counts after a verb of telling...
        ("Do you know me?", "question"),
        ("Will you tell them?", "question"),  # ...and only "me" or "us" do
    ],
)
def test_how_the_words_end(text: str, kind: str) -> None:
    assert ending(text) == kind


def test_the_silence_needed_follows_the_words_and_waits_while_they_are_unknown() -> None:
    policy = WordEndPolicy(CONFIG)
    assert policy.silence_needed("What time is it?") == CONFIG.question_ms / 1000
    assert policy.silence_needed("I like it.") == CONFIG.statement_ms / 1000
    assert policy.silence_needed("I want to go to") == CONFIG.unfinished_ms / 1000
    assert policy.silence_needed(None) == policy.longest_s == CONFIG.unfinished_ms / 1000
    # a pause of 0.6 s is not the end unless the words so far are a question
    assert CONFIG.statement_ms > 600 and policy.longest_s > 0.6


def test_thresholds_out_of_order_are_refused() -> None:
    with pytest.raises(ValueError, match="question_ms <= statement_ms"):
        EndOfTurnConfig(question_ms=600, statement_ms=500)


class Feeder:
    """A listener with the service's end-of-turn policy, fed 20 ms at a time; the event
    loop runs between frames so a transcription can finish while audio arrives."""

    def __init__(
        self,
        stt: FakeStt,
        *,
        partial_every_s: float = 0.0,
        spare_cpu: Callable[[], bool] = lambda: True,
    ) -> None:
        self.stt = stt
        self.listener = Listener(
            FakeVad(silence_windows=CONFIG.unfinished_ms // 20),
            stt,
            max_utterance_s=30.0,
            policy=WordEndPolicy(CONFIG),
            prompt_chars=40,
            partial_every_s=partial_every_s,
            spare_cpu=spare_cpu,
            now=lambda: 0.0,
        )
        self.events: list[ListenEvent] = []

    async def feed(self, *parts: FloatAudio) -> None:
        pcm = np.concatenate(parts)
        for i in range(0, len(pcm), WINDOW):
            self.events.extend(self.listener.feed(pcm[i : i + WINDOW]))
            for _ in range(3):
                await asyncio.sleep(0)

    def utterances(self) -> list[Utterance]:
        return [e for e in self.events if isinstance(e, Utterance)]


async def test_a_question_ends_the_turn_after_a_short_silence() -> None:
    f = Feeder(FakeStt("Which planet is closest to the sun?"))
    await f.feed(speech(1.0), silence(0.6))
    [utterance] = f.utterances()
    # the guess's words known at once: the turn ends at question_ms, not at 1 s
    assert utterance.waited_s == pytest.approx(CONFIG.question_ms / 1000, abs=2 * WINDOW_S)
    assert utterance.guess is not None and utterance.guess.done()
    assert [type(e) for e in f.events] == [SpeechStarted, UserPaused, Utterance]
    f.listener.close()


async def test_a_comma_pause_inside_a_question_is_not_its_end_however_fast_the_words() -> None:
    # Piper pauses ~0.3 s at this comma; an instant recognizer (a GPU's) writes the first
    # half as a whole question long before that pause is over
    stt = FakeStt("What is the capital of France?")
    f = Feeder(stt)
    await f.feed(speech(1.0), silence(0.35))
    assert stt.calls == 1 and f.utterances() == []
    stt.text = "What is the capital of France, and how big is it?"
    await f.feed(speech(1.2), silence(0.6))
    [utterance] = f.utterances()
    assert len(utterance.pcm) >= 2.5 * 16_000  # both halves: one turn
    f.listener.close()


async def test_a_pause_mid_phrase_is_not_the_end_of_the_turn() -> None:
    stt = FakeStt("I would like to go to")
    f = Feeder(stt)
    await f.feed(speech(1.0), silence(0.6))
    assert f.utterances() == []  # 0.6 s after "to": still the user's turn
    pause = next(e for e in f.events if isinstance(e, UserPaused))
    stt.text = "I would like to go to the museum tomorrow."
    await f.feed(speech(0.8))  # they go on: that guess is dropped
    await f.feed(silence(0.9))
    [utterance] = f.utterances()
    assert utterance.guess is not pause.guess and stt.calls == 2
    assert utterance.waited_s == pytest.approx(CONFIG.statement_ms / 1000, abs=2 * WINDOW_S)
    assert len(utterance.pcm) >= 2.4 * 16_000  # the whole sentence, both parts
    text = await utterance.guess if utterance.guess else None
    assert text is not None and text.text.endswith("museum tomorrow.")
    f.listener.close()


async def test_a_statement_waits_longer_than_a_thinking_pause() -> None:
    f = Feeder(FakeStt("I would like to know too."))  # how Whisper heard "...to go to"
    await f.feed(speech(1.0), silence(0.6))
    assert f.utterances() == []
    await f.feed(silence(0.3))
    [utterance] = f.utterances()
    assert utterance.waited_s == pytest.approx(CONFIG.statement_ms / 1000, abs=2 * WINDOW_S)
    f.listener.close()


async def test_a_slow_recognizer_never_makes_a_pause_the_end() -> None:
    stt = FakeStt("Which planet is closest to the sun?")
    stt.gate.clear()  # the recognizer is busy with another caller
    f = Feeder(stt)
    await f.feed(speech(1.0), silence(0.5))
    assert f.utterances() == []  # past complete_ms, but the words are not known
    stt.gate.set()
    await f.feed(silence(0.1))
    [utterance] = f.utterances()  # known now, and finished: ends at once
    assert 0.5 <= utterance.waited_s <= 0.6 + WINDOW_S
    f.listener.close()


async def test_without_words_the_vads_end_of_speech_ends_the_turn() -> None:
    stt = FakeStt("Which planet is closest to the sun?")
    stt.gate.clear()
    f = Feeder(stt)
    await f.feed(speech(1.0), silence(1.2))
    [utterance] = f.utterances()
    assert utterance.waited_s == pytest.approx(CONFIG.unfinished_ms / 1000, abs=3 * WINDOW_S)
    stt.gate.set()
    f.listener.close()


async def test_every_transcription_gets_the_tail_of_the_conversation_as_its_prompt() -> None:
    stt = FakeStt("Which planet is closest to the sun?")
    f = Feeder(stt)
    f.listener.set_context("Hello there. I am Ava, nice to meet you! What shall we talk about?")
    await f.feed(speech(1.0), silence(0.4))
    # the last 40 characters, from a word boundary
    assert stt.prompts == ["to meet you! What shall we talk about?"]
    f.listener.close()


async def test_the_conversation_gives_the_listener_the_last_exchange() -> None:
    rig = Rig()
    rig.say(speech(1.0), silence(0.5))
    await answered(rig, 1)
    rig.say(speech(1.0), silence(0.5))
    await answered(rig, 2)
    assert rig.stt.prompts[0] == ""
    assert rig.stt.prompts[-1] == "what is two plus two Two plus two is four."
    metrics = rig.of("turn_metrics")[-1]
    assert metrics["end_of_turn_wait_ms"] == pytest.approx(400, abs=25)  # FakeVad's end
    await rig.conversation.close()


def test_a_final_overtakes_a_queued_partial_on_the_shared_recognizer() -> None:
    runner = SerialRunner()
    busy, release = threading.Event(), threading.Event()
    order: list[str] = []

    def hold() -> None:
        busy.set()
        release.wait(10)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        holder = loop.run_in_executor(None, runner.call, hold)
        await asyncio.to_thread(busy.wait, 10)
        partial = loop.create_task(runner.acall(lambda: order.append("partial"), PARTIAL))
        await asyncio.sleep(0.05)  # the partial queues first
        final = loop.create_task(runner.acall(lambda: order.append("final"), FINAL))
        await asyncio.sleep(0.05)
        release.set()
        await asyncio.gather(holder, partial, final)

    asyncio.run(main())
    assert order == ["final", "partial"]
