"""Warming a conversation's next prompt ahead of its generation (llama.cpp, Qwen2.5
0.5B GGUF): the evaluated tokens are found by the next turn, a generation preempts a
warm job, and a warm job never evicts another conversation. And reusing a
conversation's evaluated turns after its history lost the oldest ones (KV shifting)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from models.assets import AssetResolver
from models.config import LlmConfig
from models.llm import LlamaCppLLM, build_messages, create_llm
from models.types import ChatMessage, GenerationStats

QUESTION = "What is the capital of France?"
FILLER = "Tell me about the weather in a town far away, in many words. "


@pytest.fixture(scope="module")
def llama() -> Iterator[LlamaCppLLM]:
    # As tests/models/test_llm.py: one thread, greedy. Two sequences, so that two
    # conversations fill the context.
    llm = create_llm(LlmConfig(threads=1, temperature=0.0, sequences=2), AssetResolver())
    assert isinstance(llm, LlamaCppLLM)
    llm.load()
    yield llm
    asyncio.run(llm.aclose())


def turn(llm: LlamaCppLLM, text: str) -> list[ChatMessage]:
    """The persona, the examples, one earlier exchange and the user's ``text``."""
    history = [
        *llm.config.example_messages(),
        ChatMessage("user", "Hi there!"),
        ChatMessage("assistant", "Hello! How can I help?"),
    ]
    return build_messages(llm.config.persona(), history, text)


def with_last(messages: list[ChatMessage], text: str) -> list[ChatMessage]:
    """``messages`` whose last (user) message says ``text`` (may be empty)."""
    return [*messages[:-1], ChatMessage("user", text)]


async def reply(
    llm: LlamaCppLLM, messages: list[ChatMessage], key: str, max_tokens: int = 12
) -> tuple[str, GenerationStats]:
    stats = GenerationStats()
    pieces = [p async for p in llm.stream(messages, stats=stats, key=key, max_tokens=max_tokens)]
    return "".join(pieces), stats


async def warmed(llm: LlamaCppLLM, key: str) -> int:
    """Wait for the warm job of ``key`` to end; the tokens its slot holds then."""
    for _ in range(3000):
        if not llm.warming(key):
            return llm.cached_tokens(key)
        await asyncio.sleep(0.01)
    raise AssertionError(f"the warm job of {key!r} did not end")


def new_tokens(stats: GenerationStats) -> float:
    return stats.extra["prompt_tokens"] - stats.extra["cached_tokens"]


async def test_warming_a_partial_question_leaves_only_its_end_to_evaluate(
    llama: LlamaCppLLM,
) -> None:
    full = turn(llama, QUESTION)
    alone, cold = await reply(llama, full, "warm-cold")
    llama.forget("warm-cold")
    assert new_tokens(cold) > 20  # the exchange and the question
    # A newer warm replaces an older one (the transcript changed).
    llama.warm(with_last(full, "Tell me a joke about"), key="warm-a")
    llama.warm(with_last(full, "What is the capital"), key="warm-a")
    held = await warmed(llama, "warm-a")
    text, stats = await reply(llama, full, "warm-a")
    # The slot held the prompt up to "capital" and nothing after it (no end of turn,
    # no assistant header): the generation kept all of it but a boundary token.
    assert stats.extra["cached_tokens"] >= held - 1
    assert new_tokens(stats) <= 10  # " of France?" and the assistant header
    assert text == alone and "paris" in text.lower()
    llama.forget("warm-a")


async def test_warming_an_empty_user_turn_evaluates_its_header(llama: LlamaCppLLM) -> None:
    full = turn(llama, QUESTION)
    before = llama.warm_tokens
    llama.warm(with_last(full, ""), key="warm-b")
    held = await warmed(llama, "warm-b")
    assert llama.warm_tokens - before > 20  # the exchange and the user header
    _, stats = await reply(llama, full, "warm-b", max_tokens=2)
    assert stats.extra["cached_tokens"] >= held - 1
    assert new_tokens(stats) <= 14  # the question's 7 tokens and the assistant header
    llama.forget("warm-b")


async def test_a_generation_preempts_the_warm_job_of_its_key(llama: LlamaCppLLM) -> None:
    _, cold = await reply(llama, turn(llama, "Hi"), "warm-c-cold", max_tokens=1)
    llama.forget("warm-c-cold")
    shared = cold.extra["cached_tokens"]  # what a new conversation starts from
    long_text = FILLER * 25  # ~350 tokens: ~90 warm steps
    messages = turn(llama, long_text + QUESTION)
    before = llama.warm_tokens
    llama.warm(with_last(messages, long_text), key="warm-c")
    for _ in range(3000):  # the warm job is running
        if llama.warm_tokens - before >= 8:
            break
        await asyncio.sleep(0.01)
    text, stats = await reply(llama, messages, "warm-c", max_tokens=4)
    assert text.strip() and stats.stop_reason == "length"
    assert not llama.warming("warm-c")
    done = llama.warm_tokens - before
    # The generation took the slot over long before the warm prompt was evaluated,
    # and kept what the warm job had evaluated.
    assert 8 <= done < stats.extra["prompt_tokens"] - shared - 100
    assert stats.extra["cached_tokens"] >= shared + done - 2
    llama.forget("warm-c")


async def test_a_warm_job_never_evicts_another_conversation(llama: LlamaCppLLM) -> None:
    full = turn(llama, QUESTION)
    await reply(llama, full, "warm-d-a", max_tokens=2)
    await reply(llama, full, "warm-d-b", max_tokens=2)  # both sequences are taken
    a, b = llama.cached_tokens("warm-d-a"), llama.cached_tokens("warm-d-b")
    assert a > 0 and b > 0
    before = llama.warm_tokens
    llama.warm(with_last(full, "What is the capital"), key="warm-d-c")
    assert await warmed(llama, "warm-d-c") == 0  # dropped
    assert llama.warm_tokens == before
    assert (llama.cached_tokens("warm-d-a"), llama.cached_tokens("warm-d-b")) == (a, b)
    # A conversation that has a sequence warms into its own.
    nxt = [*full, ChatMessage("assistant", "Paris."), ChatMessage("user", "And of Spain?")]
    llama.warm(nxt, key="warm-d-a")
    assert await warmed(llama, "warm-d-a") > a
    assert llama.cached_tokens("warm-d-b") == b
    llama.forget("warm-d-a")
    llama.forget("warm-d-b")


def test_warming_an_unloaded_model_does_nothing() -> None:
    llm = LlamaCppLLM(LlmConfig(), AssetResolver())
    llm.warm([ChatMessage("user", "What is the capital")], key="k")
    assert not llm.warming("k") and llm.warm_tokens == 0
    assert llm.load_s is None  # not loaded


TURNS = [
    ("Hi! What is your name?", "I'm Ava, your assistant. Nice to meet you!"),
    ("Where do you live?", "I live in the cloud, on a server far away from here."),
    ("Do you like music?", "I love music, especially jazz and old soul records."),
    ("What did you do today?", "I talked with many people and learned a few new words."),
    ("Can you recommend a book?", "Try The Hobbit: it is short, funny and full of adventure."),
    ("What is your favourite colour?", "Blue, like a clear summer sky over the sea."),
]


def history(turns: list[tuple[str, str]]) -> list[ChatMessage]:
    out: list[ChatMessage] = []
    for user, assistant in turns:
        out += [ChatMessage("user", user), ChatMessage("assistant", assistant)]
    return out


async def test_a_trimmed_history_reuses_the_later_turns_by_shifting(llama: LlamaCppLLM) -> None:
    persona, examples = llama.config.persona(), llama.config.example_messages()
    joke = "Tell me a joke."
    first = build_messages(persona, [*examples, *history(TURNS)], joke)
    said, _ = await reply(llama, first, "shift-a")
    # The history lost its two oldest turns; the later ones and the last exchange stay.
    later = [*history(TURNS[2:]), ChatMessage("user", joke), ChatMessage("assistant", said)]
    second = build_messages(persona, [*examples, *later], "And what is the capital of France?")
    text, stats = await reply(llama, second, "shift-a")
    fresh_text, fresh = await reply(llama, second, "shift-b")  # from the shared prefix
    prompt = stats.extra["prompt_tokens"]
    assert fresh.extra["prompt_tokens"] == prompt
    shared = fresh.extra["cached_tokens"]  # all that a common prefix would keep
    assert fresh.extra["shifted_tokens"] == 0 and shared <= prompt - 100
    # Most of what follows the shared prefix was moved down rather than evaluated.
    assert stats.extra["cached_tokens"] >= 0.8 * prompt
    assert stats.extra["cached_tokens"] - shared >= 0.8 * (prompt - shared)
    assert stats.extra["shifted_tokens"] >= stats.extra["cached_tokens"] - shared - 8
    assert llama.cached_tokens("shift-a") > stats.extra["cached_tokens"]  # and the reply
    # Not bit-identical to a fresh evaluation (the moved cells attended to the dropped
    # turns), but the same clear answer.
    assert "paris" in text.lower() and "paris" in fresh_text.lower()
    llama.forget("shift-a")
    llama.forget("shift-b")


async def test_a_reply_in_flight_is_never_slowed_by_another_conversations_warm(
    llama: LlamaCppLLM,
) -> None:
    messages = turn(llama, "Count from one to thirty, in words.")
    before = llama.warm_tokens
    progressed_while_replying = 0
    stats = GenerationStats()
    pieces = llama.stream(messages, stats=stats, key="busy-a", max_tokens=24)
    first = await pieces.__anext__()  # the reply is decoding
    llama.warm(with_last(turn(llama, QUESTION), FILLER * 3), key="busy-b")
    async for _ in pieces:
        progressed_while_replying = llama.warm_tokens - before
    assert first and stats.tokens >= 10
    # No warm piece went into the reply's steps; once it is done, the warm job runs.
    assert progressed_while_replying == 0
    assert await warmed(llama, "busy-b") > 0 and llama.warm_tokens > before
    llama.forget("busy-a")
    llama.forget("busy-b")


class RecordingLib:
    """The llama_cpp module, with its ``llama_set_n_threads`` calls recorded."""

    def __init__(self, lib: Any) -> None:
        self._lib = lib
        self.calls: list[tuple[int, int]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._lib, name)

    def llama_set_n_threads(self, ctx: Any, threads: int, threads_batch: int) -> None:
        self.calls.append((threads, threads_batch))
        self._lib.llama_set_n_threads(ctx, threads, threads_batch)


async def test_a_replys_new_prompt_gets_the_prompt_threads_only_while_the_cpu_has_spare(
    llama: LlamaCppLLM,
) -> None:
    """``threads_batch`` threads evaluate the words a turn waits for, only while every
    live conversation keeps a core and the machine has CPU to spare; warm-ups and
    decoding stay on ``threads``."""
    scheduler = llama._scheduler
    assert scheduler is not None
    saved = scheduler._lib, scheduler._threads, scheduler._spare_cpu, scheduler._cores
    lib = RecordingLib(scheduler._lib)
    spare = True
    scheduler._lib, scheduler._threads, scheduler._cores = lib, (1, 2), 64
    scheduler._spare_cpu = lambda: spare
    try:
        messages = turn(llama, "What is two plus two?")
        llama.warm(with_last(messages, "What is"), key="threads")
        await warmed(llama, "threads")
        assert lib.calls == []  # the warm-up: decode threads
        await reply(llama, messages, "threads", max_tokens=4)
        assert lib.calls == [(1, 2), (1, 1)]  # its last words on 2, its reply on 1
        lib.calls.clear()
        spare = False
        await reply(llama, with_last(messages, "And three plus three?"), "threads", max_tokens=4)
        assert lib.calls == []  # a busy machine: all on 1
        spare = True
        scheduler._cores = scheduler._conversations()  # every core has a conversation
        await reply(llama, with_last(messages, "And four plus four?"), "threads", max_tokens=4)
        assert lib.calls == []
        scheduler._cores += 1  # one core to spare
        await reply(llama, with_last(messages, "And five plus five?"), "threads", max_tokens=4)
        assert lib.calls == [(1, 2), (1, 1)]
    finally:
        scheduler._lib, scheduler._threads, scheduler._spare_cpu, scheduler._cores = saved
