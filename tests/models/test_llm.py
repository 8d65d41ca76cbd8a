"""The language model engine, on real models: llama.cpp (Qwen2.5 0.5B GGUF), an
OpenAI-compatible server (llama_cpp.server on loopback) and transformers (a tiny
random-weight model built by the test)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import web

from models.assets import AssetResolver
from models.config import LlmConfig, OpenAIConfig
from models.errors import BackendUnavailableError, InvalidTextError, LLMError
from models.llm import (
    LanguageModel,
    LlamaCppLLM,
    OpenAIChatLLM,
    TransformersLLM,
    build_messages,
    create_llm,
)
from models.types import ChatMessage, GenerationStats
from tests.models.llm_support import build_tiny_chat_model, free_port, llama_cpp_server

QUESTION = "What is the capital of France?"
STORY = "Tell me a very long story about a dragon, a knight and a village."


async def collect(
    llm: LanguageModel,
    messages: list[ChatMessage],
    stats: GenerationStats,
    key: str | None = None,
    **kw: int,
) -> str:
    """The whole reply as one string."""
    return "".join([piece async for piece in llm.stream(messages, stats=stats, key=key, **kw)])


async def cancel_after(stream: AsyncIterator[str], pieces: int) -> tuple[int, asyncio.Task[None]]:
    """Consume ``stream`` in a task; once ``pieces`` arrived, cancel that task and await it."""
    got = 0
    started = asyncio.Event()

    async def consume() -> None:
        nonlocal got
        async for _ in stream:
            got += 1
            if got >= pieces:
                started.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(started.wait(), 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return got, task


async def assert_stopped(stats: GenerationStats, cap: int) -> None:
    """The generation stopped early and for good: the token count no longer moves."""
    before = stats.tokens
    await asyncio.sleep(0.5)
    assert stats.tokens == before, "the model kept generating after the cancellation"
    assert 0 < before < cap
    assert stats.cancelled
    assert stats.finished
    assert stats.stop_reason == "cancelled"


# --- fixtures (each model loads once for this module) ---------------------------------


@pytest.fixture(scope="module")
def resolver() -> AssetResolver:
    return AssetResolver()


@pytest.fixture(scope="module")
def gguf(resolver: AssetResolver) -> Path:
    return resolver.resolve("qwen2.5-0.5b-instruct-gguf").path


@pytest.fixture(scope="module")
def llama(resolver: AssetResolver) -> Iterator[LlamaCppLLM]:
    # One thread: with two, llama.cpp's spinning thread barriers slow down by 10-100x
    # whenever another process holds one of the two cores (as on a shared CI machine).
    # Greedy: batched decoding changes logits in the last bits, which can flip a seeded
    # sample between near-equal tokens ("8" / "eight"), but not a clear argmax.
    llm = create_llm(LlmConfig(threads=1, temperature=0.0), resolver)
    assert isinstance(llm, LlamaCppLLM)
    llm.load()
    yield llm
    asyncio.run(llm.aclose())


@pytest.fixture(scope="module")
def server_url(gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log_file = tmp_path_factory.mktemp("llama-server") / "server.log"
    with llama_cpp_server(gguf, log_file) as url:
        yield url


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_chat_model(tmp_path_factory.mktemp("tiny-chat-model"))


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path, resolver: AssetResolver) -> Iterator[TransformersLLM]:
    config = LlmConfig(
        backend="transformers",
        model=str(tiny_model_dir),
        device="cpu",
        dtype="float32",
        temperature=0.0,
        context_tokens=4096,
        max_tokens=12,
    )
    llm = create_llm(config, resolver)
    assert isinstance(llm, TransformersLLM)
    llm.load()
    yield llm
    asyncio.run(llm.aclose())


def openai_llm(
    base_url: str, timeout_s: float = 30.0, connect_timeout_s: float = 3.0
) -> OpenAIChatLLM:
    openai = OpenAIConfig(
        base_url=base_url, model="qwen", timeout_s=timeout_s, connect_timeout_s=connect_timeout_s
    )
    config = LlmConfig(backend="openai", openai=openai)
    llm = create_llm(config, AssetResolver())
    assert isinstance(llm, OpenAIChatLLM)
    return llm


# --- llama.cpp --------------------------------------------------------------------------


async def test_llama_answers_a_spoken_question(llama: LlamaCppLLM) -> None:
    stats = GenerationStats()
    messages = build_messages(llama.config.system_prompt, [], QUESTION)
    reply = await collect(llama, messages, stats)
    assert "paris" in reply.lower(), reply
    assert 0 < stats.tokens <= llama.config.max_tokens
    assert stats.finished and not stats.cancelled
    assert stats.stop_reason in {"stop", "length"}
    assert stats.first_token_s is not None and stats.first_token_s < 20.0


async def test_llama_cancelling_the_consumer_stops_generation(llama: LlamaCppLLM) -> None:
    stats = GenerationStats()
    cap = 400
    stream = llama.stream(build_messages("", [], STORY), max_tokens=cap, stats=stats)
    await cancel_after(stream, 3)
    await assert_stopped(stats, cap)
    assert not llama.busy  # the model is free again ...
    again = GenerationStats()
    reply = await collect(llama, build_messages("", [], QUESTION), again, max_tokens=16)
    assert reply.strip()  # ... and answers right away
    assert again.extra["queue_s"] < 0.5


async def test_llama_closing_the_stream_stops_generation(llama: LlamaCppLLM) -> None:
    stats = GenerationStats()
    cap = 400
    stream = llama.stream(build_messages("", [], STORY), max_tokens=cap, stats=stats)
    async with contextlib.aclosing(stream):
        async for _ in stream:
            if stats.tokens >= 3:
                break
    await assert_stopped(stats, cap)
    assert not llama.busy


async def test_llama_concurrent_generations_interleave(llama: LlamaCppLLM) -> None:
    """A second conversation's reply starts while the first one is still being written
    (one batch per step), instead of waiting behind the whole of it."""
    order: list[str] = []

    async def run(key: str, text: str, cap: int, stats: GenerationStats) -> None:
        messages = build_messages(llama.config.persona(), [], text)
        async for _ in llama.stream(messages, max_tokens=cap, stats=stats, key=key):
            order.append(key)

    long, short = GenerationStats(), GenerationStats()
    first = asyncio.create_task(run("long", STORY, 60, long))
    await until_tokens(long, 2)
    await run("short", QUESTION, 12, short)
    assert not long.finished  # the short reply was written while the long one went on
    assert short.extra["queue_s"] < 0.5
    await first
    assert "short" in order and order.index("short") < len(order) - order[::-1].index("long")
    assert long.tokens == 60 and long.stop_reason == "length"
    llama.forget("long")
    llama.forget("short")


async def until_tokens(stats: GenerationStats, n: int) -> None:
    """Wait (bounded) until a generation has produced ``n`` tokens."""
    for _ in range(3000):
        if stats.tokens >= n:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"fewer than {n} tokens in 30 s")


CONVERSATIONS = {
    "alice": ["What is the capital of France?", "And of Italy?"],
    "bob": ["How many legs does a spider have?", "And an ant?"],
}


async def converse(llm: LlamaCppLLM, key: str, turns: list[str]) -> list[str]:
    """A conversation of ``turns`` under ``key``; the replies, each short."""
    history: list[ChatMessage] = []
    replies = []
    for text in turns:
        messages = build_messages(
            llm.config.persona(), [*llm.config.example_messages(), *history], text
        )
        reply = (await collect(llm, messages, GenerationStats(), key, max_tokens=12)).strip()
        replies.append(reply)
        history += [ChatMessage("user", text), ChatMessage("assistant", reply)]
    return replies


async def test_llama_sessions_taking_turns_get_the_replies_of_separate_contexts(
    llama: LlamaCppLLM,
) -> None:
    """Two conversations at once, each in its own KV sequence, answer exactly as each one
    alone (greedy): no state leaks from one sequence into the other, and a session's
    next turn reuses its evaluated prompt."""
    alone = {}
    for key, turns in CONVERSATIONS.items():
        alone[key] = await converse(llama, f"{key}-alone", turns)
        llama.forget(f"{key}-alone")
    together = await asyncio.gather(
        *(converse(llama, key, turns) for key, turns in CONVERSATIONS.items())
    )
    assert dict(zip(CONVERSATIONS, together, strict=True)) == alone
    assert "paris" in alone["alice"][0].lower(), alone
    # Each session kept its prompt and reply evaluated: the next turn adds only new words.
    kept = llama.cached_tokens("alice")
    assert kept > 300  # the persona, the examples and the two exchanges
    stats = GenerationStats()
    history = [
        ChatMessage("user", CONVERSATIONS["alice"][0]),
        ChatMessage("assistant", together[0][0]),
    ]
    history += [
        ChatMessage("user", CONVERSATIONS["alice"][1]),
        ChatMessage("assistant", together[0][1]),
    ]
    messages = build_messages(
        llama.config.persona(), [*llama.config.example_messages(), *history], "Thanks!"
    )
    await collect(llama, messages, stats, "alice", max_tokens=4)
    assert stats.extra["cached_tokens"] >= kept - 2
    assert stats.extra["prompt_tokens"] - stats.extra["cached_tokens"] < 30
    # A session's cache is freed when it ends.
    for key in CONVERSATIONS:
        llama.forget(key)
    await asyncio.sleep(0.2)
    assert llama.cached_tokens("alice") == 0 and llama.cached_tokens("bob") == 0


async def test_llama_more_conversations_than_sequences_evict_the_least_recent(
    llama: LlamaCppLLM,
) -> None:
    """Every conversation is answered; past ``llm.sequences`` the least recently used
    one loses its cached prompt (and is evaluated again on its next turn)."""
    keys = [f"crowd-{i}" for i in range(llama.config.sequences + 1)]
    messages = build_messages(llama.config.persona(), llama.config.example_messages(), QUESTION)
    for key in keys:
        assert (await collect(llama, messages, GenerationStats(), key, max_tokens=2)).strip()
    assert llama.cached_tokens(keys[0]) == 0  # evicted for the last one
    assert all(llama.cached_tokens(k) > 0 for k in keys[1:])
    stats = GenerationStats()
    assert (await collect(llama, messages, stats, keys[0], max_tokens=2)).strip()
    assert stats.extra["cached_tokens"] > 250  # from the shared persona prompt again
    for key in keys:
        llama.forget(key)


async def test_llama_cancelling_one_conversation_leaves_the_other_running(
    llama: LlamaCppLLM,
) -> None:
    kept, dropped = GenerationStats(), GenerationStats()
    story = build_messages("", [], STORY)
    other = asyncio.create_task(collect(llama, story, kept, max_tokens=40))
    stream = llama.stream(story, max_tokens=400, stats=dropped, key="dropped")
    await cancel_after(stream, 3)
    await assert_stopped(dropped, 400)
    assert (await other).strip()
    assert kept.tokens == 40 and not kept.cancelled
    llama.forget("dropped")


async def test_llama_drops_the_oldest_turns_to_fit_the_context(resolver: AssetResolver) -> None:
    llm = LlamaCppLLM(LlmConfig(context_tokens=256, max_tokens=24, threads=1), resolver)
    try:
        filler = "Tell me about the weather in a town far away, in many words. " * 3
        history: list[ChatMessage] = []
        for i in range(12):  # far more than 256 tokens
            history += [ChatMessage("user", f"{i}. {filler}"), ChatMessage("assistant", filler)]
        stats = GenerationStats()
        messages = build_messages(llm.config.system_prompt, history, QUESTION)
        reply = await collect(llm, messages, stats)
        assert "paris" in reply.lower(), reply
        # A single message that cannot fit the context is refused, not truncated.
        with pytest.raises(InvalidTextError, match="context"):
            await collect(llm, build_messages("", [], filler * 20), GenerationStats())
    finally:
        await llm.aclose()


# --- OpenAI-compatible server ---------------------------------------------------------


async def test_openai_streams_from_a_local_server(server_url: str) -> None:
    llm = openai_llm(server_url)
    try:
        llm.load()
        stats = GenerationStats()
        pieces = [
            p
            async for p in llm.stream(
                build_messages(llm.config.system_prompt, [], QUESTION), stats=stats
            )
        ]
        assert len(pieces) > 1  # it streamed, not one block
        assert "paris" in "".join(pieces).lower()
        assert 0 < stats.tokens <= llm.config.max_tokens
        assert stats.finished and not stats.cancelled
        assert stats.stop_reason in {"stop", "length"}
    finally:
        await llm.aclose()


async def test_openai_cancel_closes_the_request(server_url: str) -> None:
    llm = openai_llm(server_url)
    try:
        stats = GenerationStats()
        cap = 400
        await cancel_after(
            llm.stream(build_messages("", [], STORY), max_tokens=cap, stats=stats), 3
        )
        await assert_stopped(stats, cap)
        again = GenerationStats()  # the server serves the next request
        assert (await collect(llm, build_messages("", [], QUESTION), again, max_tokens=16)).strip()
    finally:
        await llm.aclose()


async def test_openai_cancel_hangs_up_at_once() -> None:
    """Cancelling the consumer closes the HTTP response right away (what stops a server).

    The peer is a plain SSE endpoint that streams words forever and records when the
    client hangs up.
    """
    hung_up = asyncio.Event()

    async def chat(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        try:
            for i in range(100_000):
                event = {"choices": [{"delta": {"content": f"w{i} "}, "finish_reason": None}]}
                await resp.write(f"data: {json.dumps(event)}\n\n".encode())
                await asyncio.sleep(0.01)
        except (ConnectionResetError, asyncio.CancelledError):
            hung_up.set()
            raise
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    llm = openai_llm(f"http://127.0.0.1:{port}/v1")
    try:
        stats = GenerationStats()
        await cancel_after(llm.stream(build_messages("", [], STORY), stats=stats), 3)
        await asyncio.wait_for(hung_up.wait(), 1.0)
        assert stats.cancelled and stats.stop_reason == "cancelled"
    finally:
        await llm.aclose()
        await runner.cleanup()


async def test_openai_http_error_is_clear(server_url: str) -> None:
    llm = openai_llm(server_url.removesuffix("/v1") + "/no-such-api")
    try:
        with pytest.raises(LLMError, match="HTTP 404"):
            await collect(llm, build_messages("", [], QUESTION), GenerationStats())
    finally:
        await llm.aclose()


async def test_openai_server_down_fails_fast() -> None:
    port = free_port()  # nothing listens there
    llm = openai_llm(f"http://127.0.0.1:{port}/v1", connect_timeout_s=1.0)
    start = time.monotonic()
    try:
        with pytest.raises(BackendUnavailableError, match=f"127.0.0.1:{port}"):
            await collect(llm, build_messages("", [], QUESTION), GenerationStats())
    finally:
        await llm.aclose()
    assert time.monotonic() - start < 2.0


async def test_openai_silent_server_times_out() -> None:
    """A server that accepts the connection but never answers: a timeout, not a hang."""

    async def accept_and_say_nothing(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await reader.read()  # until the client hangs up
        writer.close()

    server = await asyncio.start_server(accept_and_say_nothing, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    llm = openai_llm(f"http://127.0.0.1:{port}/v1", timeout_s=0.5)
    start = time.monotonic()
    try:
        with pytest.raises(BackendUnavailableError, match=r"0\.5 s"):
            await collect(llm, build_messages("", [], QUESTION), GenerationStats())
    finally:
        await llm.aclose()
        server.close()
        await server.wait_closed()
    assert time.monotonic() - start < 2.0


# --- transformers ---------------------------------------------------------------------


async def test_transformers_streams_within_the_cap(tiny: TransformersLLM) -> None:
    stats = GenerationStats()
    pieces = [p async for p in tiny.stream(build_messages("", [], "tell me a story"), stats=stats)]
    assert "".join(pieces).strip()
    assert len(pieces) > 1
    assert stats.tokens == tiny.config.max_tokens  # this model never ends a reply by itself
    assert stats.stop_reason == "length"
    assert stats.finished and not stats.cancelled


async def test_transformers_cancel_stops_generation(tiny: TransformersLLM) -> None:
    stats = GenerationStats()
    cap = 3000
    await cancel_after(
        tiny.stream(build_messages("", [], "tell me a story"), max_tokens=cap, stats=stats), 3
    )
    await assert_stopped(stats, cap)
    assert not tiny.busy
    again = GenerationStats()
    assert (await collect(tiny, build_messages("", [], "hello"), again, max_tokens=4)).strip()


# --- bad input ------------------------------------------------------------------------


def test_build_messages_puts_the_persona_first() -> None:
    history = [ChatMessage("user", "hi"), ChatMessage("assistant", "hello!")]
    messages = build_messages("Be brief.", history, "  What time is it? ")
    assert messages == [
        ChatMessage("system", "Be brief."),
        *history,
        ChatMessage("user", "What time is it?"),
    ]
    with pytest.raises(InvalidTextError):
        build_messages("Be brief.", history, "   ")


@pytest.mark.parametrize(
    "messages",
    [
        pytest.param([], id="no-messages"),
        pytest.param([ChatMessage("user", "  \n")], id="empty-user-text"),
        pytest.param(
            [ChatMessage("user", "hi"), ChatMessage("assistant", "hello")], id="ends-with-reply"
        ),
        pytest.param([ChatMessage("user", "x" * 101)], id="too-long"),
    ],
)
def test_bad_input_is_refused_by_every_backend(
    messages: list[ChatMessage], resolver: AssetResolver
) -> None:
    config = LlmConfig(max_input_chars=100)
    backends: list[LanguageModel] = [
        LlamaCppLLM(config, resolver),
        TransformersLLM(config.model_copy(update={"backend": "transformers"}), resolver),
        OpenAIChatLLM(config.model_copy(update={"backend": "openai"})),
    ]
    for llm in backends:  # refused at the call, before any model is loaded
        with pytest.raises(InvalidTextError):
            llm.stream(messages)
