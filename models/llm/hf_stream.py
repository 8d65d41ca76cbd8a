"""transformers glue that ties ``generate()`` to a :class:`GenerationJob` (imports transformers)."""

from __future__ import annotations

from typing import Any

import torch
from transformers import StoppingCriteria, TextStreamer

from models.llm.worker import GenerationJob


class JobStreamer(TextStreamer):
    """Sends each finished piece of decoded text to the job's consumer."""

    def __init__(self, tokenizer: Any, job: GenerationJob) -> None:
        super().__init__(tokenizer, skip_prompt=True, skip_special_tokens=True)
        self._job = job

    def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
        """Called by the streamer with text that will not change any more."""
        self._job.emit(text)


class JobStopper(StoppingCriteria):
    """Counts the tokens the model produces and stops ``generate()`` once the job is cancelled."""

    def __init__(self, job: GenerationJob, prompt_tokens: int) -> None:
        self._job = job
        self._seen = prompt_tokens

    def __call__(
        self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any
    ) -> torch.BoolTensor:
        """Called by ``generate()`` after every new token."""
        total = int(input_ids.shape[-1])
        self._job.token(total - self._seen)
        self._seen = total
        stop = torch.full(
            (input_ids.shape[0],), self._job.cancelled, dtype=torch.bool, device=input_ids.device
        )
        return stop  # type: ignore[return-value]
