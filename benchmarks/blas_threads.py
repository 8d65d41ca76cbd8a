"""What numpy's BLAS threads cost a transcription: wall and CPU time, per BLAS setting.

Usage:
    python -m benchmarks.blas_threads [--config default] [--threads 0 1] [--repeats 12]
                                      [--gap-s 0.3] [--set key=value ...]

Transcribes one espeak-ng question with the profile's Whisper as the service does, each
call followed by ``--gap-s`` of sleep (a live caller's utterances come apart), once per
``--threads`` setting of numpy's BLAS (0: the library's default, all cores), and prints
per call: faster-whisper's feature extraction (wall and this process's CPU, the sleep
after it included: what a BLAS worker spinning after the call burns) and the whole
transcription's wall time. Run it on an idle machine (benchmarks/RESULTS.md, "A spinning
BLAS thread").
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
from faster_whisper.feature_extractor import FeatureExtractor

from benchmarks.common import arg_parser, config_arg, machine
from benchmarks.spoken import Voice, espeak
from models.assets import AssetResolver
from models.audio import resample
from models.blas import limit_blas_threads
from models.stt import STT_SAMPLE_RATE, SpeechRecognizer

QUESTION = "How many days are there in a leap year?"
PROMPT = "We talked about the capital of France and how many legs a spider has."
VOICE = Voice("en-us", speed=175)
"""espeak-ng's own default speed and pitch."""


def measure(stt: SpeechRecognizer, pcm: np.ndarray, repeats: int, gap_s: float) -> str:
    """Median feature extraction (wall, CPU incl. the gap) and transcription wall time."""
    features = FeatureExtractor()  # faster-whisper's, as the recognizer calls it
    stt.transcribe(pcm, prompt=PROMPT)  # warm
    fe_wall, fe_cpu, total = [], [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        features(pcm)
        fe_wall.append(time.perf_counter() - wall)
        time.sleep(gap_s)
        fe_cpu.append(time.process_time() - cpu)
        wall = time.perf_counter()
        stt.transcribe(pcm, prompt=PROMPT)
        total.append(time.perf_counter() - wall)
        time.sleep(gap_s)
    med = statistics.median
    return (
        f"features {med(fe_wall) * 1000:6.1f} ms wall, {med(fe_cpu) * 1000:6.1f} ms CPU; "
        f"transcription {med(total) * 1000:6.0f} ms p50, {min(total) * 1000:6.0f} ms min"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The arguments, checked: bad ones print one line and exit with code 2."""
    parser = arg_parser(__doc__, __file__)
    parser.add_argument("--config", default="default")
    parser.add_argument("--threads", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--repeats", type=int, default=12)
    parser.add_argument("--gap-s", type=float, default=0.3)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    if args.gap_s < 0:
        parser.error("--gap-s must be >= 0")
    if any(t < 0 for t in args.threads):
        parser.error("--threads must be >= 0 (0: the library's default)")
    args.app = config_arg(parser, args.config, args.overrides)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = args.app
    stt = SpeechRecognizer(config.stt, AssetResolver(config.assets), word_timestamps=False)
    pcm = resample(*espeak(QUESTION, VOICE), STT_SAMPLE_RATE)
    default = limit_blas_threads(None)
    print(f"machine: {machine()}")
    print(
        f"STT {config.stt.model} {config.stt.compute_type}, {config.stt.cpu_threads} threads, "
        f"window {config.stt.window_s:g} s; {len(pcm) / STT_SAMPLE_RATE:.2f} s clip, "
        f"{args.repeats} calls, {args.gap_s:g} s apart; BLAS default {default}"
    )
    for threads in args.threads:
        limit_blas_threads(threads or max(default.values(), default=1))
        label = "default" if threads == 0 else str(threads)
        print(f"BLAS threads {label:>7}: {measure(stt, pcm, args.repeats, args.gap_s)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
