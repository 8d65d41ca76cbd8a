"""Silero VAD v6 on onnxruntime (no torch): a shared model and per-stream detectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from models.assets import AssetResolver
from models.config import VadConfig
from models.errors import AssetError
from models.vad.base import WindowedVad

SILERO_ASSET = "silero-vad"
WINDOW = 512
"""New samples per window at 16 kHz (32 ms)."""
CONTEXT = 64
"""Samples of the previous window prepended to each window."""
STATE_SHAPE = (1, 1, 128)
END_LAG_WINDOWS = 1
"""Windows by which Silero's probability trails the end of speech."""


class SileroModel:
    """The Silero ONNX session: load once per process and share it between streams.

    ``onnxruntime.InferenceSession.run`` is thread-safe, so many :class:`SileroVad`
    streams (one per session) may call :meth:`run` at once.
    """

    def __init__(self, session: ort.InferenceSession) -> None:
        self._session = session

    @classmethod
    def load(cls, path: str | Path, threads: int = 1) -> SileroModel:
        """Open the ONNX file at ``path`` on the CPU with ``threads`` intra-op threads."""
        opts = ort.SessionOptions()
        opts.inter_op_num_threads = 1
        opts.intra_op_num_threads = threads
        opts.log_severity_level = 3
        try:
            session = ort.InferenceSession(
                str(path), sess_options=opts, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise AssetError(f"cannot load the Silero VAD model {path}: {exc}") from exc
        return cls(session)

    @classmethod
    def from_resolver(cls, resolver: AssetResolver, threads: int = 1) -> SileroModel:
        """Load the ``silero-vad`` asset found by ``resolver``."""
        return cls.load(resolver.resolve(SILERO_ASSET).path, threads=threads)

    def run(
        self,
        frame: npt.NDArray[np.float32],
        h: npt.NDArray[np.float32],
        c: npt.NDArray[np.float32],
    ) -> tuple[float, npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """One step: ``frame`` is context + window (576 samples); returns (prob, h, c)."""
        prob, hn, cn = self._session.run(None, {"input": frame[np.newaxis, :], "h": h, "c": c})
        return float(np.asarray(prob).ravel()[0]), hn, cn


class SileroVad(WindowedVad):
    """One stream's Silero detector (32 ms windows, recurrent state, 64-sample context).

    Silero's recurrent state keeps the first silent window after speech above the
    threshold (measured on Piper speech: ~0.9, then ~0.3), so speech-end times are
    moved back by one window.
    """

    def __init__(self, model: SileroModel, config: VadConfig | None = None) -> None:
        super().__init__(config or VadConfig(), WINDOW)
        self._model = model
        self._end_lag = END_LAG_WINDOWS * WINDOW
        self._h = np.zeros(STATE_SHAPE, dtype=np.float32)
        self._c = np.zeros(STATE_SHAPE, dtype=np.float32)
        self._context = np.zeros(CONTEXT, dtype=np.float32)

    def _window_probability(self, window: npt.NDArray[np.float32]) -> float:
        frame = np.concatenate([self._context, window])
        prob, self._h, self._c = self._model.run(frame, self._h, self._c)
        self._context = np.array(window[-CONTEXT:], dtype=np.float32)
        return prob

    def _reset_backend(self) -> None:
        self._h = np.zeros(STATE_SHAPE, dtype=np.float32)
        self._c = np.zeros(STATE_SHAPE, dtype=np.float32)
        self._context = np.zeros(CONTEXT, dtype=np.float32)
