"""Several conversations in one llama.cpp context: a KV sequence each, decoded together.

One worker thread owns the llama.cpp context (it is not re-entrant). Every generation
in flight gets a *slot*: a KV sequence of the context that holds the tokens evaluated
for its conversation (its ``key``). A new turn evaluates only the tokens after the
longest prefix its slot (or the shared prefix, evaluated once at load) already holds,
so the persona, the few-shot examples and the history are not evaluated again — even
when several sessions take turns, and even when the history lost its oldest turns
(the later ones are moved down in the sequence: :mod:`models.llm.kv_shift`). Each
step of the worker puts the next piece of every generation into ONE batch (a chunk of
a new prompt, or the last sampled token) and decodes it once, so no generation waits
behind another one's reply; a generation whose consumer has gone is dropped before
the next step.

Slots belong to their key until :meth:`SequenceScheduler.forget` frees them (the
session ended) or, when every slot is taken, the least recently used idle one is
reused. Correctness never depends on the key: a slot's tokens are compared with the
prompt token by token, so a reused slot only saves work.

A *warm job* (:meth:`SequenceScheduler.warm`, :mod:`models.llm.warm_jobs`) evaluates a
conversation's next prompt into its slot ahead of the generation, a few tokens per
step while no generation decodes; a generation that needs the slot takes it over at
the next step.
"""

from __future__ import annotations

import codecs
import concurrent.futures
import ctypes
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from models.errors import EngineError, LLMError
from models.llm.base import CANCELLED, ERROR, LENGTH, STOP
from models.llm.kv_shift import shift_runs
from models.llm.warm_jobs import WarmJob, WarmJobs, warm_slot
from models.llm.worker import GenerationJob

log = logging.getLogger(__name__)

PROMPT_CHUNK = 64
"""Prompt tokens a generation adds to one step: a long prompt is evaluated over
several steps, so the other generations keep streaming and a cancellation is seen
within one chunk."""

Tokenize = Callable[[], list[int]]
"""Runs on the worker thread: the prompt's tokens (may raise InvalidTextError)."""


@dataclass
class SamplingParams:
    """How the next token is chosen (llama-cpp-python's chat completion chain)."""

    temperature: float
    top_p: float
    seed: int | None
    top_k: int = 40
    min_p: float = 0.05


@dataclass
class Slot:
    """One KV sequence of the context and the tokens it holds (positions 0..n-1)."""

    seq_id: int
    key: str | None = None
    tokens: list[int] = field(default_factory=list)
    used: float = 0.0
    busy: bool = False
    forgotten: bool = False
    """The key's owner has gone: free the slot once its generation ends."""


@dataclass
class _Gen:
    """One generation as the scheduler tracks it."""

    job: GenerationJob
    tokenize: Tokenize
    max_tokens: int
    key: str | None
    sampling: SamplingParams
    done: concurrent.futures.Future[None]
    slot: Slot | None = None
    pending: list[int] = field(default_factory=list)
    last: int | None = None
    produced: int = 0
    logits_at: int = -1
    sampler: Any = None
    decoder: Any = None
    started: float | None = None


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of two token lists."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class SequenceScheduler:
    """The worker thread that runs every generation of one llama.cpp context."""

    def __init__(
        self,
        name: str,
        model: Any,
        ctx: Any,
        *,
        slots: int,
        batch_tokens: int,
        cancel_wait_s: float = 2.0,
        threads: tuple[int, int] | None = None,
        spare_cpu: Callable[[], bool] | None = None,
        cores: int | None = None,
    ) -> None:
        """``threads``: (decode, prompt) — llama.cpp threads for every step, and for a
        step that evaluates a generation's new prompt tokens (what a turn waits for)
        when the extra threads fit (:meth:`_prompt_threads_fit`: every live conversation
        keeps a core of its own, and ``spare_cpu()`` says the machine has CPU to spare;
        on a busy machine a second thread loses to its barriers); warm-ups and the
        batched decoding of several replies always use the decode threads. None:
        llama.cpp's settings as the context has them. ``cores``: the machine's (None:
        ``os.cpu_count()``)."""
        import llama_cpp

        self.name = name
        self.cancel_wait_s = cancel_wait_s
        self._lib = llama_cpp
        self._model = model
        self._ctx = ctx
        self._vocab = model.vocab
        self._mem = llama_cpp.llama_get_memory(ctx.ctx)
        self._can_shift = bool(llama_cpp.llama_memory_can_shift(self._mem))
        self._batch_tokens = batch_tokens
        self._batch = llama_cpp.llama_batch_init(batch_tokens, 0, 1)
        self._shared = Slot(seq_id=0)  # the shared prefix, never generating
        self._slots = [Slot(seq_id=i + 1) for i in range(slots)]
        self._gens: list[_Gen] = []  # running (with a slot)
        self._waiting: list[_Gen] = []  # submitted, not started
        self._forget: list[str] = []
        self._warms = WarmJobs()
        self._prefill_request: tuple[list[int], concurrent.futures.Future[None]] | None = None
        self._cond = threading.Condition()
        self._closed = False
        self._piece = ctypes.create_string_buffer(256)
        self._threads = threads
        self._spare_cpu = spare_cpu or (lambda: True)
        self._cores = cores or os.cpu_count() or 1
        self._prompt_threads_on = False
        self._thread = threading.Thread(target=self._loop, name=f"llm-{name}", daemon=True)
        self._thread.start()

    # --- called from other threads --------------------------------------------------

    @property
    def busy(self) -> bool:
        """True while a generation runs or waits for a slot."""
        with self._cond:
            return bool(self._gens or self._waiting)

    def cached_tokens(self, key: str | None) -> int:
        """Tokens the slot of ``key`` holds (0: none), for tests and benchmarks."""
        with self._cond:
            slot = next((s for s in self._slots if s.key == key and s.tokens), None)
            return len(slot.tokens) if slot is not None else 0

    def warming(self, key: str) -> bool:
        """True while a warm job of ``key`` waits or runs (for tests and benchmarks)."""
        with self._cond:
            return self._warms.active(key)

    @property
    def warm_tokens(self) -> int:
        """Prompt tokens evaluated by warm jobs so far (for tests and benchmarks)."""
        return self._warms.evaluated

    def submit(
        self,
        job: GenerationJob,
        tokenize: Tokenize,
        max_tokens: int,
        key: str | None,
        sampling: SamplingParams,
    ) -> concurrent.futures.Future[None]:
        """Queue a generation; the future completes once the worker has let it go."""
        done: concurrent.futures.Future[None] = concurrent.futures.Future()
        gen = _Gen(job, tokenize, max_tokens, key, sampling, done)
        with self._cond:
            if self._closed:
                raise LLMError(f"language model {self.name} is closed")
            if key is not None:
                self._warms.cancel(key)  # this generation evaluates its own prompt
            self._waiting.append(gen)
            self._cond.notify()
        return done

    def warm(self, key: str, tokenize: Tokenize) -> None:
        """Evaluate the tokens of ``tokenize`` into the slot of ``key`` ahead of its
        next generation (best effort: see :mod:`models.llm.warm_jobs`)."""
        with self._cond:
            if self._closed:
                return
            self._warms.add(WarmJob(key, tokenize))
            self._cond.notify()

    def wake(self) -> None:
        """Make the worker look at its generations now (one was cancelled)."""
        with self._cond:
            self._cond.notify()

    def forget(self, key: str) -> None:
        """Free the slot of ``key`` (now, or when its generation ends)."""
        with self._cond:
            self._warms.cancel(key)
            self._forget.append(key)
            self._cond.notify()

    def prefill(self, tokens: list[int]) -> None:
        """Evaluate ``tokens`` as the shared prefix (call before any generation)."""
        with self._cond:
            if self._closed:
                raise LLMError(f"language model {self.name} is closed")
        done: concurrent.futures.Future[None] = concurrent.futures.Future()
        with self._cond:
            self._prefill_request = (tokens, done)
            self._cond.notify()
        done.result()

    def close(self) -> None:
        """Stop every generation and the worker thread (blocks until it has stopped)."""
        with self._cond:
            self._closed = True
            self._warms.waiting.clear()
            for gen in self._gens + self._waiting:
                gen.job.stop.set()
            self._cond.notify()
        self._thread.join()

    # --- the worker thread -----------------------------------------------------------

    def _loop(self) -> None:
        try:
            while self._step():
                pass
        finally:
            self._lib.llama_batch_free(self._batch)

    def _step(self) -> bool:
        """One round: take new work, drop what was cancelled, decode one batch."""
        for gen in [g for g in self._gens if g.job.cancelled]:  # frees their slots first
            self._finish(gen, CANCELLED)
        with self._cond:
            while not (
                self._closed
                or self._gens
                or self._warms.running
                or self._forget
                or self._prefill_request
                or self._startable(reserve=False)
                or self._warms.ready(self._generating_keys())
            ):
                self._cond.wait()
            closed = self._closed
            forget, self._forget = self._forget, []
            prefill, self._prefill_request = self._prefill_request, None
            starting = self._startable(reserve=True)
            for gen in starting:
                self._waiting.remove(gen)
            warming = [] if closed else self._claim_warm_slots(starting)
        if prefill is not None:
            self._run_prefill(*prefill)
        for key in forget:
            self._free_key(key)
        for gen in starting:
            self._start(gen)
        for warm in warming:
            self._start_warm(warm)
        for gen in [g for g in self._gens if g.job.cancelled]:
            self._finish(gen, CANCELLED)
        if closed:
            with self._cond:
                rest, self._waiting = self._waiting, []
            for gen in rest:
                gen.job.stats.extra["queue_s"] = time.perf_counter() - gen.job.created
                self._finish(gen, CANCELLED)
            for gen in list(self._gens):
                self._finish(gen, CANCELLED)
            for warm in list(self._warms.running):
                self._end_warm(warm)
            return False
        if self._gens or self._warms.running:
            self._decode_step()
        return True

    def _startable(self, *, reserve: bool) -> list[_Gen]:
        """Waiting generations that can get a slot now (under the lock); ``reserve``
        gives them their slots. A slot that a warm job holds counts as free: the
        generation takes it over (the warm job ends)."""
        free = [s for s in self._slots if not s.busy or self._warms.holding(s)]
        keys = {s.key for s in self._slots if s.busy and s.key is not None} - {
            w.key for w in self._warms.running
        }
        out: list[_Gen] = []
        for gen in self._waiting:
            if gen.job.cancelled:
                out.append(gen)  # started only to be finished as cancelled
                continue
            if gen.key is not None and gen.key in keys:
                continue  # one generation per conversation at a time
            if not free:
                continue
            slot = self._pick_slot(gen, free)
            free.remove(slot)
            if gen.key is not None:
                keys.add(gen.key)
            if reserve:
                warm = self._warms.holding(slot)
                if warm is not None:
                    self._end_warm(warm)  # preempted: the generation goes first
                slot.busy = True  # the worker is the only writer
                gen.slot = slot
            out.append(gen)
        return out

    def _pick_slot(self, gen: _Gen, free: list[Slot]) -> Slot:
        """The key's own slot, else an unused one, else the least recently used."""
        if gen.key is not None:
            own = next((s for s in free if s.key == gen.key), None)
            if own is not None:
                return own
        else:
            anonymous = [s for s in free if s.key is None and s.tokens]
            if anonymous:
                return max(anonymous, key=lambda s: s.used)
        unused = next((s for s in free if not s.tokens and s.key is None), None)
        return unused or min(free, key=lambda s: s.used)

    def _generating_keys(self, starting: Sequence[_Gen] = ()) -> set[str | None]:
        """Keys with a generation running, starting or waiting (under the lock)."""
        return {g.key for g in [*self._gens, *starting, *self._waiting] if not g.job.cancelled}

    def _claim_warm_slots(self, starting: Sequence[_Gen]) -> list[WarmJob]:
        """Give the warm jobs that may start a slot (under the lock; after the
        generations got theirs). A job that finds no idle slot of its key and no unused
        one is dropped: evaluating a guess is not worth evicting another conversation's
        prompt, which a real generation of that conversation would have to evaluate again."""
        out: list[WarmJob] = []
        for warm in self._warms.ready(self._generating_keys(starting)):
            del self._warms.waiting[warm.key]
            old = self._warms.running_for(warm.key)
            if old is not None:
                self._end_warm(old)  # replaced: the new one keeps what it evaluated
            slot = warm_slot(self._slots, warm.key)
            if slot is None:
                log.debug("%s: no free slot to warm %r; dropped", self.name, warm.key)
                continue
            slot.busy = True
            slot.key = warm.key  # its own slot, or an unused one (nothing to clear)
            slot.used = time.monotonic()
            warm.slot = slot
            self._warms.running.append(warm)
            out.append(warm)
        return out

    def _start_warm(self, warm: WarmJob) -> None:
        """Tokenize a warm job's prompt and keep what its slot already holds."""
        if warm not in self._warms.running:  # its key was forgotten in this step
            return
        assert warm.slot is not None
        try:
            prompt = warm.tokenize()
        except EngineError as exc:  # e.g. the prompt does not fit the context
            log.debug("%s: not warming %r: %s", self.name, warm.key, exc)
            self._end_warm(warm)
            return
        except Exception:
            log.exception("%s could not prepare a prompt to warm", self.name)
            self._end_warm(warm)
            return
        keep, _ = self._reuse_prefix(warm.slot, prompt, len(prompt))
        warm.pending = prompt[keep:]
        if not warm.pending:
            self._end_warm(warm)

    def _end_warm(self, warm: WarmJob) -> None:
        """Let a warm job go (done, replaced, preempted, dropped): its slot keeps the
        tokens evaluated so far."""
        with self._cond:
            if warm in self._warms.running:
                self._warms.running.remove(warm)
                assert warm.slot is not None
                self._release(warm.slot)

    def _start(self, gen: _Gen) -> None:
        job = gen.job
        slot = gen.slot
        gen.started = time.perf_counter()
        job.stats.extra["queue_s"] = gen.started - job.created
        if slot is None or job.cancelled:
            self._finish(gen, CANCELLED)
            return
        if slot.key != gen.key:  # taken from another conversation: start clean
            self._clear(slot)
            slot.key = gen.key
            slot.forgotten = False
        try:
            prompt = gen.tokenize()
        except EngineError as exc:
            self._finish(gen, ERROR, exc)
            return
        except Exception as exc:
            log.exception("%s could not prepare the prompt", self.name)
            self._finish(gen, ERROR, LLMError(f"{self.name} failed: {exc}"))
            return
        # The last prompt token is evaluated again, for the logits of the first token.
        keep, shifted = self._reuse_prefix(slot, prompt, len(prompt) - 1)
        gen.pending = prompt[keep:]
        job.stats.extra["cached_tokens"] = float(keep)  # the shifted ones included
        job.stats.extra["shifted_tokens"] = float(shifted)
        job.stats.extra["prompt_tokens"] = float(len(prompt))
        gen.sampler = self._sampler(gen.sampling)
        gen.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._gens.append(gen)

    def _reuse_prefix(self, slot: Slot, prompt: list[int], limit: int) -> tuple[int, int]:
        """Keep the longest prefix of ``prompt`` (at most ``limit`` tokens) that the
        slot or the shared prefix holds — moving runs of it found further on in the
        slot down (:mod:`models.llm.kv_shift`) — and drop the rest of the slot; the
        tokens kept and, of them, those moved."""
        keep = min(common_prefix(slot.tokens, prompt), limit)
        shared = min(common_prefix(self._shared.tokens, prompt), limit)
        if shared > keep:  # the shared prefix covers more: start from it
            self._clear(slot)
            self._lib.llama_memory_seq_cp(self._mem, 0, slot.seq_id, 0, shared)
            slot.tokens = prompt[:shared]
            return shared, 0
        shifted = 0
        if self._can_shift:  # the history lost its oldest turns: find the later ones
            shifted = shift_runs(
                self._lib, self._mem, slot, prompt[:limit], keep, protected=len(self._shared.tokens)
            )
        keep += shifted
        self._lib.llama_memory_seq_rm(self._mem, slot.seq_id, keep, -1)
        slot.tokens = prompt[:keep]  # what the cells hold now at positions 0..keep-1
        return keep, shifted

    def _sampler(self, p: SamplingParams) -> Any:
        lib = self._lib
        chain = lib.llama_sampler_chain_init(lib.llama_sampler_chain_default_params())
        if p.temperature <= 0.0:
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_greedy())
            return chain
        seed = lib.LLAMA_DEFAULT_SEED if p.seed is None else p.seed
        for s in (
            lib.llama_sampler_init_top_k(p.top_k),
            lib.llama_sampler_init_top_p(p.top_p, 1),
            lib.llama_sampler_init_min_p(p.min_p, 1),
            lib.llama_sampler_init_temp(p.temperature),
            lib.llama_sampler_init_dist(seed),
        ):
            lib.llama_sampler_chain_add(chain, s)
        return chain

    def _decode_step(self) -> None:
        """Put every running generation's next piece into one batch and decode it; the
        warm jobs' pieces go in only when no generation has one (work ahead uses idle
        time: four prompt tokens more would make a reply's step twice as slow)."""
        n = 0
        placed: list[tuple[_Gen, list[int]]] = []
        for gen in self._gens:
            piece, wants_logits = self._next_piece(gen, self._batch_tokens - n)
            if not piece:
                continue
            assert gen.slot is not None
            n = self._put(n, gen.slot, piece, wants_logits)
            gen.logits_at = n - 1 if wants_logits else -1
            placed.append((gen, piece))
        warmed = [] if placed else self._warms.pieces(self._batch_tokens)
        for warm, piece in warmed:
            assert warm.slot is not None
            n = self._put(n, warm.slot, piece, False)
        if n == 0:
            return
        self._batch.n_tokens = n
        prompt = any(gen.pending for gen, _ in placed)
        self._use_prompt_threads(prompt and self._prompt_threads_fit())
        rc = self._lib.llama_decode(self._ctx.ctx, self._batch)
        if rc != 0:
            self._drop_warms(rc, warmed)
            if placed:
                self._decode_failed(rc, placed)
            return
        for gen, piece in placed:
            assert gen.slot is not None
            gen.slot.tokens.extend(piece)
            if gen.pending:
                del gen.pending[: len(piece)]
            if gen.logits_at >= 0:
                self._sample(gen)
        for warm, piece in warmed:
            assert warm.slot is not None
            warm.slot.tokens.extend(piece)
            del warm.pending[: len(piece)]
            self._warms.evaluated += len(piece)
            if not warm.pending:
                self._end_warm(warm)

    def _conversations(self) -> int:
        """Conversations whose prompt the context keeps (their sessions are live)."""
        return len({s.key for s in self._slots if s.key is not None and not s.forgotten})

    def _prompt_threads_fit(self) -> bool:
        """Whether a reply's new prompt may take the prompt threads now: the live
        conversations' decode threads plus the extra ones fit the cores (on 2 cores with
        1 and 2 threads: one conversation; two callers' Whisper, TTS and video would be
        waited for at the second thread's barriers), and the machine has CPU to spare."""
        if self._threads is None:
            return False
        decode, prompt = self._threads
        wanted = max(1, self._conversations()) * decode + max(0, prompt - decode)
        return wanted <= self._cores and self._spare_cpu()

    def _use_prompt_threads(self, on: bool) -> None:
        """Set llama.cpp's batch threads for this step: the prompt threads (``on``) or
        the decode threads."""
        if self._threads is None or on == self._prompt_threads_on:
            return
        decode, prompt = self._threads
        self._lib.llama_set_n_threads(self._ctx.ctx, decode, prompt if on else decode)
        self._prompt_threads_on = on

    @staticmethod
    def _next_piece(gen: _Gen, room: int) -> tuple[list[int], bool]:
        """A generation's tokens for this step (a prompt chunk or its last sampled
        token, at most ``room``) and whether it needs the logits after them."""
        if room <= 0:
            return [], False
        if gen.pending:
            piece = gen.pending[: min(PROMPT_CHUNK, room)]
            return piece, len(piece) == len(gen.pending)
        if gen.last is not None:
            return [gen.last], True
        return [], False

    def _put(self, n: int, slot: Slot, piece: list[int], logits: bool) -> int:
        """Write ``piece`` for ``slot`` into the batch from index ``n``; the next index."""
        batch = self._batch
        pos = len(slot.tokens)
        for i, token in enumerate(piece):
            batch.token[n + i] = token
            batch.pos[n + i] = pos + i
            batch.n_seq_id[n + i] = 1
            batch.seq_id[n + i][0] = slot.seq_id
            batch.logits[n + i] = False
        batch.logits[n + len(piece) - 1] = logits
        return n + len(piece)

    def _drop_warms(self, rc: int, warmed: list[tuple[WarmJob, list[int]]]) -> None:
        """A decode failed: drop the warm jobs in it (best effort, they never fail a
        generation), without the part of their pieces that was stored."""
        for warm, _ in warmed:
            assert warm.slot is not None
            self._lib.llama_memory_seq_rm(self._mem, warm.slot.seq_id, len(warm.slot.tokens), -1)
            log.debug(
                "%s: llama_decode failed (%d); dropped the warm job of %r", self.name, rc, warm.key
            )
            self._end_warm(warm)

    def _decode_failed(self, rc: int, placed: list[tuple[_Gen, list[int]]]) -> None:
        """No room in the KV cache (rc 1): free an idle slot and retry; else fail."""
        for gen, _ in placed:  # drop whatever part of the batch was stored
            assert gen.slot is not None
            self._lib.llama_memory_seq_rm(self._mem, gen.slot.seq_id, len(gen.slot.tokens), -1)
        idle = [s for s in self._slots if not s.busy and s.tokens]
        if rc == 1 and idle:
            victim = min(idle, key=lambda s: s.used)
            log.info("%s: the KV cache is full; dropping an idle conversation's", self.name)
            self._clear(victim)
            victim.key = None
            return
        error = LLMError(
            f"{self.name}: llama_decode failed ({rc}); "
            + ("the context is full (llm.context_tokens)" if rc == 1 else "see the log")
        )
        for gen, _ in placed:
            self._finish(gen, ERROR, error)

    def _sample(self, gen: _Gen) -> None:
        lib = self._lib
        token = lib.llama_sampler_sample(gen.sampler, self._ctx.ctx, gen.logits_at)
        job = gen.job
        if lib.llama_vocab_is_eog(self._vocab, token):
            self._finish(gen, STOP)
            return
        job.token()
        gen.produced += 1
        n = lib.llama_token_to_piece(self._vocab, token, self._piece, len(self._piece), 0, False)
        text = gen.decoder.decode(self._piece.raw[: max(n, 0)])
        job.emit(text)
        gen.last = token
        if gen.produced >= gen.max_tokens:
            self._finish(gen, LENGTH)

    def _finish(self, gen: _Gen, reason: str, error: BaseException | None = None) -> None:
        """Record how the generation went, give its slot back and tell the consumer."""
        if gen in self._gens:
            self._gens.remove(gen)
        job, stats = gen.job, gen.job.stats
        end = time.perf_counter()
        if gen.started is not None:
            stats.extra["generate_s"] = end - gen.started
        if job.first_token_at is not None and stats.tokens > 1:
            stats.extra["tokens_per_s"] = (stats.tokens - 1) / max(end - job.first_token_at, 1e-9)
        if gen.sampler is not None:
            self._lib.llama_sampler_free(gen.sampler)
            gen.sampler = None
        if gen.decoder is not None and reason in (STOP, LENGTH):
            job.emit(gen.decoder.decode(b"", final=True))
        stats.stop_reason = reason
        stats.cancelled = reason == CANCELLED
        stats.finished = True
        if gen.slot is not None:
            self._release(gen.slot)
        job.finish(error)
        gen.done.set_result(None)

    def _release(self, slot: Slot) -> None:
        """A slot's generation or warm job has ended: free it (its tokens stay, unless
        its key was forgotten meanwhile)."""
        slot.used = time.monotonic()
        if slot.forgotten:
            self._clear(slot)
            slot.key, slot.forgotten = None, False
        with self._cond:
            slot.busy = False

    def _free_key(self, key: str) -> None:
        warm = self._warms.running_for(key)
        if warm is not None:
            self._end_warm(warm)
        for slot in self._slots:
            if slot.key != key:
                continue
            if slot.busy:
                slot.forgotten = True
            else:
                self._clear(slot)
                slot.key = None

    def _clear(self, slot: Slot) -> None:
        self._lib.llama_memory_seq_rm(self._mem, slot.seq_id, -1, -1)
        slot.tokens = []

    def _run_prefill(self, tokens: list[int], done: concurrent.futures.Future[None]) -> None:
        """Evaluate the shared prefix into sequence 0 (no logits needed)."""
        try:
            self._clear(self._shared)
            for start in range(0, len(tokens), self._batch_tokens):
                piece = tokens[start : start + self._batch_tokens]
                self._batch.n_tokens = self._put(0, self._shared, piece, True)
                rc = self._lib.llama_decode(self._ctx.ctx, self._batch)
                if rc != 0:
                    raise LLMError(f"{self.name}: evaluating the shared prompt failed ({rc})")
                self._shared.tokens.extend(piece)
        except Exception as exc:  # noqa: BLE001 - handed to the caller of prefill()
            self._clear(self._shared)
            done.set_exception(exc)
        else:
            done.set_result(None)
