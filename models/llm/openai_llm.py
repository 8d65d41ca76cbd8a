"""The ``openai`` backend: any OpenAI-compatible chat completions server, streamed over SSE.

Works with vLLM, the llama.cpp server, Ollama and hosted APIs. Each request is a
``POST {base_url}/chat/completions`` with ``stream: true``; the reply arrives as
server-sent events (``data: {...}`` lines, ending with ``data: [DONE]``). Closing
the stream closes the HTTP response, which tells the server to stop generating.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncGenerator, Sequence
from typing import Any

import aiohttp

from models.config import LlmConfig
from models.errors import BackendUnavailableError, EngineError, LLMError
from models.llm.base import CANCELLED, ERROR
from models.llm.messages import prepare_request
from models.types import ChatMessage, GenerationStats

log = logging.getLogger(__name__)

_UNAVAILABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
"""HTTP statuses that mean "the server cannot serve now" rather than "bad request"."""


def parse_sse_line(raw: bytes) -> str | None:
    """The payload of one SSE ``data:`` line (None for comments, blanks and other fields)."""
    line = raw.decode("utf-8", "replace").strip()
    if not line.startswith("data:"):
        return None
    return line[5:].strip()


class OpenAIChatLLM:
    """Streams replies from an OpenAI-compatible server (see module docstring)."""

    def __init__(self, config: LlmConfig) -> None:
        self.config = config
        self.url = config.openai.base_url.rstrip("/") + "/chat/completions"
        self.name = f"openai:{config.openai.model}@{config.openai.base_url}"
        self._session: aiohttp.ClientSession | None = None
        self._session_loop: asyncio.AbstractEventLoop | None = None

    def load(self) -> None:
        """Check the configuration (the server itself is reached on the first request)."""
        if not self.url.startswith(("http://", "https://")):
            raise BackendUnavailableError(
                f"llm.openai.base_url must be an http(s) URL, got {self.config.openai.base_url!r}"
            )

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "text/event-stream"}
        if self.config.openai.api_key is not None:
            headers["Authorization"] = f"Bearer {self.config.openai.api_key.get_secret_value()}"
        return headers

    def _timeout(self) -> aiohttp.ClientTimeout:
        opts = self.config.openai
        return aiohttp.ClientTimeout(
            total=None,
            connect=opts.connect_timeout_s,
            sock_connect=opts.connect_timeout_s,
            sock_read=opts.timeout_s,
        )

    def _session_for_loop(self) -> aiohttp.ClientSession:
        """One HTTP session (connection pool) per event loop."""
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._session_loop is not loop:
            if self._session is not None and not self._session.closed:
                log.warning("%s: used from a new event loop; opening a new HTTP session", self.name)
            self._session = aiohttp.ClientSession(timeout=self._timeout())
            self._session_loop = loop
        return self._session

    def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int | None = None,
        stats: GenerationStats | None = None,
        key: str | None = None,
    ) -> AsyncGenerator[str, None]:
        """Check ``messages`` now and stream the server's reply (see LanguageModel; the
        server does its own prompt caching, so ``key`` is not sent)."""
        prepared, cap = prepare_request(messages, self.config, max_tokens)
        payload: dict[str, Any] = {
            "model": self.config.openai.model,
            "messages": [{"role": m.role, "content": m.content} for m in prepared],
            "stream": True,
            "max_tokens": cap,
            "temperature": self.config.temperature,
            "top_p": self.config.top_p,
        }
        if self.config.seed is not None:
            payload["seed"] = self.config.seed
        return self._stream(payload, stats if stats is not None else GenerationStats())

    async def _connect(self, payload: dict[str, Any]) -> aiohttp.ClientResponse:
        """Send the request; turn every way of failing into a clear engine error."""
        session = self._session_for_loop()
        opts = self.config.openai
        try:
            resp = await session.post(self.url, json=payload, headers=self._headers())
        except asyncio.TimeoutError as exc:
            raise BackendUnavailableError(
                f"the OpenAI-compatible server at {self.url} did not answer within "
                f"{opts.connect_timeout_s:g} s (connect) / {opts.timeout_s:g} s (read)"
            ) from exc
        except aiohttp.ClientConnectorError as exc:
            raise BackendUnavailableError(
                f"cannot connect to the OpenAI-compatible server at {self.url}: {exc.os_error}"
            ) from exc
        except aiohttp.ClientError as exc:
            raise BackendUnavailableError(
                f"request to the OpenAI-compatible server at {self.url} failed: {exc!r}"
            ) from exc
        if resp.status >= 400:
            try:
                body = (await resp.text())[:500]
            except (aiohttp.ClientError, asyncio.TimeoutError):
                body = ""
            finally:
                resp.close()
            error = BackendUnavailableError if resp.status in _UNAVAILABLE_STATUS else LLMError
            raise error(f"{self.url} answered HTTP {resp.status} {resp.reason}: {body}")
        return resp

    async def _stream(
        self, payload: dict[str, Any], stats: GenerationStats
    ) -> AsyncGenerator[str, None]:
        start = time.perf_counter()
        first_at: float | None = None
        resp: aiohttp.ClientResponse | None = None
        done = failed = False
        try:
            resp = await self._connect(payload)
            async for raw in resp.content:
                data = parse_sse_line(raw)
                if data is None:
                    continue
                if data == "[DONE]":
                    done = True
                    break
                try:
                    event = json.loads(data)
                except ValueError as exc:
                    raise LLMError(f"{self.url} sent a malformed event: {data[:200]!r}") from exc
                if "error" in event:
                    raise LLMError(f"{self.url} reported an error: {event['error']}")
                for choice in event.get("choices") or []:
                    text = (choice.get("delta") or {}).get("content")
                    if text:
                        if first_at is None:
                            first_at = time.perf_counter()
                            stats.first_token_s = first_at - start
                        stats.tokens += 1
                        yield text
                    if choice.get("finish_reason"):
                        stats.stop_reason = choice["finish_reason"]
            else:
                done = True  # the server closed the stream without [DONE]
        except asyncio.TimeoutError as exc:
            failed = True
            raise BackendUnavailableError(
                f"the OpenAI-compatible server at {self.url} stopped sending for "
                f"{self.config.openai.timeout_s:g} s"
            ) from exc
        except aiohttp.ClientError as exc:
            failed = True
            raise LLMError(f"the connection to {self.url} broke mid-reply: {exc!r}") from exc
        except EngineError:
            failed = True
            raise
        finally:
            if resp is not None:
                if done:
                    resp.release()
                else:
                    resp.close()  # drop the connection: the server stops generating
            if failed:
                stats.stop_reason = ERROR
            elif not done:
                stats.cancelled = True
                stats.stop_reason = CANCELLED
            end = time.perf_counter()
            stats.extra["generate_s"] = end - start
            if first_at is not None and stats.tokens > 1:
                stats.extra["tokens_per_s"] = (stats.tokens - 1) / max(end - first_at, 1e-9)
            stats.finished = True

    def forget(self, key: str) -> None:
        """Nothing is kept per conversation here."""

    def warm(self, messages: Sequence[ChatMessage], *, key: str) -> None:
        """Nothing to do: the server evaluates each request's prompt itself."""

    async def aclose(self) -> None:
        """Close the HTTP session (if it belongs to the running event loop)."""
        session, self._session = self._session, None
        if session is None or session.closed:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if self._session_loop is running:
            await session.close()
        else:
            log.warning("%s: the HTTP session belongs to another event loop; left open", self.name)
