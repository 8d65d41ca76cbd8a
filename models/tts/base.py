"""The text-to-speech interface, input checks, and the thread-to-async streaming bridge."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from typing import Protocol, runtime_checkable

from models.errors import InvalidTextError
from models.types import Speech

_POLL_S = 0.05


@runtime_checkable
class TextToSpeech(Protocol):
    """Text in, ``Speech`` chunks (one per sentence) out."""

    @property
    def sample_rate(self) -> int:
        """Rate of the PCM this engine produces."""
        ...

    def synthesize(self, text: str) -> Iterator[Speech]:
        """Synthesize ``text`` sentence by sentence in the calling thread."""
        ...

    def stream(self, text: str) -> AsyncIterator[Speech]:
        """Yield each sentence as soon as it is synthesized (off the event loop).

        Closing or cancelling the iterator stops synthesis before the next sentence.
        """
        ...


def check_text(text: str, max_chars: int) -> str:
    """Return ``text`` stripped; InvalidTextError when it is empty or too long."""
    if not isinstance(text, str):
        raise InvalidTextError(f"text must be a str, got {type(text).__name__}")
    stripped = text.strip()
    if not stripped:
        raise InvalidTextError("text is empty")
    if len(stripped) > max_chars:
        raise InvalidTextError(
            f"text has {len(stripped)} characters, more than the limit of {max_chars} "
            "(tts.max_text_chars)"
        )
    return stripped


class _Done:
    """Marks the end of the worker's output."""


_DONE = _Done()


async def stream_in_thread(
    produce: Callable[[threading.Event], Iterator[Speech]],
    max_ahead: int = 2,
    name: str = "tts-stream",
) -> AsyncGenerator[Speech, None]:
    """Run the blocking generator ``produce(stop)`` in a worker thread, yielding its items.

    The worker (a thread of its own, so a slow consumer never holds an executor
    thread) runs at most ``max_ahead`` items ahead of the consumer. Closing or
    cancelling this iterator sets ``stop`` (``produce`` must check it between items),
    waits for the item in progress to finish, and produces nothing more. Errors
    raised by ``produce`` are re-raised here.
    """
    if max_ahead < 1:
        raise ValueError("max_ahead must be >= 1")
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Speech | BaseException | _Done] = asyncio.Queue()
    stop = threading.Event()
    room = threading.Semaphore(max_ahead)

    def deliver(item: Speech | BaseException | _Done) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            stop.set()

    def wait_for_room() -> bool:
        while not room.acquire(timeout=_POLL_S):
            if stop.is_set() or loop.is_closed():  # closed: the consumer is gone for good
                return False
        return not stop.is_set()

    def work() -> None:
        items: Iterator[Speech] | None = None
        try:
            items = produce(stop)
            while wait_for_room():
                item = next(items, None)
                if item is None or stop.is_set():
                    break
                deliver(item)
        except Exception as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
            deliver(exc)
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()
            deliver(_DONE)

    worker = threading.Thread(target=work, name=name, daemon=True)
    worker.start()
    done = False
    try:
        while True:
            item = await queue.get()
            if isinstance(item, _Done):
                done = True
                break
            if isinstance(item, BaseException):
                raise item
            room.release()
            yield item
    finally:
        stop.set()
        # Wait for the item in progress (if any) so that nothing runs on after we return.
        while not done:
            done = isinstance(await queue.get(), _Done)
        worker.join(timeout=_POLL_S)  # it has delivered its last item: it is returning
