"""Chat messages for the language model: building, checking and fitting them to a context."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from models.config import LlmConfig
from models.errors import InvalidTextError
from models.types import ChatMessage

log = logging.getLogger(__name__)

ROLES = frozenset({"system", "user", "assistant"})

TokenCounter = Callable[[Sequence[ChatMessage]], int]
"""Counts the prompt tokens a list of messages takes once formatted by the chat template."""


def build_messages(
    system_prompt: str, history: Sequence[ChatMessage], user_text: str
) -> list[ChatMessage]:
    """The messages for one turn: the system prompt, the history, then the user's text.

    System messages inside ``history`` are left out (the persona comes from
    ``system_prompt``; an empty one adds no system message), and so are empty turns.
    Raises InvalidTextError when ``user_text`` is empty.
    """
    text = user_text.strip()
    if not text:
        raise InvalidTextError("the user's text is empty")
    return [*conversation_head(system_prompt, history), ChatMessage("user", text)]


def conversation_head(system_prompt: str, history: Sequence[ChatMessage]) -> list[ChatMessage]:
    """What every next turn starts with: the system prompt (none if empty), then the
    history without system messages and empty turns (see :func:`build_messages`)."""
    out: list[ChatMessage] = []
    if system_prompt.strip():
        out.append(ChatMessage("system", system_prompt.strip()))
    out.extend(m for m in history if m.role != "system" and m.content.strip())
    return out


def prepare_messages(
    messages: Sequence[ChatMessage], system_prompt: str, max_input_chars: int
) -> list[ChatMessage]:
    """Check the messages of a request and put the default system prompt first.

    The conversation must end with a non-empty user message of at most
    ``max_input_chars`` characters. A conversation that starts with its own system
    message keeps it (a per-call persona); otherwise ``system_prompt`` is put first.
    Raises InvalidTextError for anything else.
    """
    if not messages:
        raise InvalidTextError("no messages were given to the language model")
    for m in messages:
        if m.role not in ROLES:
            raise InvalidTextError(f"unknown chat role {m.role!r}; expected one of {sorted(ROLES)}")
        if not isinstance(m.content, str):
            raise InvalidTextError(f"message content must be text, got {type(m.content).__name__}")
    last = messages[-1]
    if last.role != "user":
        raise InvalidTextError(f"the last message must be the user's, got a {last.role!r} message")
    if not last.content.strip():
        raise InvalidTextError("the user's text is empty")
    if len(last.content) > max_input_chars:
        raise InvalidTextError(
            f"the user's text has {len(last.content)} characters, more than "
            f"llm.max_input_chars={max_input_chars}"
        )
    out = [m for m in messages if m.content.strip() or m is last]
    if out[0].role != "system" and system_prompt.strip():
        out.insert(0, ChatMessage("system", system_prompt.strip()))
    return out


def fit_to_context(
    messages: Sequence[ChatMessage], count_tokens: TokenCounter, budget: int
) -> list[ChatMessage]:
    """Drop the oldest turns until the prompt takes at most ``budget`` tokens.

    Leading system messages and the last message are always kept, and the kept history
    starts with a user turn. Raises InvalidTextError when even that does not fit.
    """
    head_len = 0
    while head_len < len(messages) - 1 and messages[head_len].role == "system":
        head_len += 1
    head = list(messages[:head_len])
    body = list(messages[head_len:])
    used = count_tokens(head + body)
    dropped = 0
    while used > budget and len(body) > 1:
        body.pop(0)
        dropped += 1
        while len(body) > 1 and body[0].role != "user":
            body.pop(0)
            dropped += 1
        used = count_tokens(head + body)
    if used > budget:
        raise InvalidTextError(
            f"the prompt needs {used} tokens but only {budget} fit in the context "
            "(llm.context_tokens minus the reply's token cap); shorten the text or the "
            "system prompt"
        )
    if dropped:
        log.info("dropped the %d oldest message(s) to fit the context (%d tokens)", dropped, used)
    return head + body


def prepare_request(
    messages: Sequence[ChatMessage], config: LlmConfig, max_tokens: int | None
) -> tuple[list[ChatMessage], int]:
    """Checked messages (system prompt first) and the token cap of one generation."""
    prepared = prepare_messages(messages, config.persona(), config.max_input_chars)
    cap = config.max_tokens if max_tokens is None else max_tokens
    if cap < 1:
        raise ValueError(f"max_tokens must be at least 1, got {cap}")
    return prepared, cap
