"""The GPU profile's parts on a CUDA device: torch renderer batches, CPU/GPU agreement, LLM.

Usage: python -m benchmarks.gpu [--sizes 512x512 1280x720] [--batches 1 8 32 64]
       [--llm-shapes 0.5b 1.5b] [--llm-batches 1 8 32] [--tokenizer DIR] [--seconds 3]

Meant for a lent CUDA machine (it runs on the CPU too, slowly). Prints, with the machine
and the settings:

- the torch renderer's frames per second per batch size and resolution, counting the
  copy of the uint8 frames back to the host (what the encoders need), and how many
  25 fps sessions that is;
- how far the CUDA frames are from the CPU renderer's on a talking sequence;
- the transformers LLM backend (the GPU profile's ``llm.backend: transformers``) on a
  model of the Qwen2.5 shape with **random weights** built on the spot, because no model
  weights can be copied to such a machine: time to first token and tokens per second
  through the project's own streaming backend, and batched ``generate`` throughput.
  Speed does not depend on the weights' values, so these are the figures of the real
  model of that shape; the text it writes is noise.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import arg_parser, machine, summary
from gwm_avatars.arguments import positive_float, positive_int, size_type

# The Qwen2.5 instruct shapes (from the models' published config.json files).
QWEN_SHAPES: dict[str, dict[str, Any]] = {
    "0.5b": dict(
        hidden_size=896,
        intermediate_size=4864,
        num_hidden_layers=24,
        num_attention_heads=14,
        num_key_value_heads=2,
        tie_word_embeddings=True,
    ),
    "1.5b": dict(
        hidden_size=1536,
        intermediate_size=8960,
        num_hidden_layers=28,
        num_attention_heads=12,
        num_key_value_heads=2,
        tie_word_embeddings=True,
    ),
    "7b": dict(
        hidden_size=3584,
        intermediate_size=18944,
        num_hidden_layers=28,
        num_attention_heads=28,
        num_key_value_heads=4,
        tie_word_embeddings=False,
    ),
}
FPS = 25


def out(line: str = "") -> None:
    """Print one result line."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def gpu_line() -> str:
    """The torch build and the device it sees."""
    import torch

    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        return (
            f"torch {torch.__version__}, CUDA {torch.version.cuda}, {p.name}, "
            f"{p.total_memory / 2**30:.0f} GiB, {p.multi_processor_count} SMs"
        )
    return f"torch {torch.__version__}, no CUDA device (CPU)"


def bench_renderer(size: tuple[int, int], batches: list[int], seconds: float) -> None:
    """Torch renderer throughput per batch size, and its distance from the CPU renderer."""
    import torch

    from avatar.identity import load_rig
    from avatar.render import CpuRenderer
    from avatar.render.params import frame_params
    from avatar.render.torch_renderer import TorchRenderer
    from benchmarks.render import talking

    rig = load_rig(None, size=size)
    cpu = CpuRenderer(rig)
    t = time.perf_counter()
    gpu = TorchRenderer(rig, device="auto", max_batch=max(batches), model=cpu.model)
    setup = time.perf_counter() - t
    out(f"torch renderer {size[0]}x{size[1]} on {gpu.device} (setup {setup:.2f} s)")
    states = talking(64, seed=7)
    ref = cpu.render_batch(states)
    got = gpu.render_batch(states)
    diff = np.abs(np.stack(ref).astype(np.int16) - np.stack(got).astype(np.int16))
    out(
        f"  vs CPU renderer on 64 talking frames: max |diff| {int(diff.max())} levels, "
        f"mean {float(diff.mean()):.3f}, pixels off by > 8 levels {float((diff > 8).mean()) * 100:.3f} %"
    )
    for b in batches:
        batch = talking(b, seed=b)
        gpu.render_batch(batch)  # warm-up (kernels, allocator)
        per_batch: list[float] = []
        end = time.perf_counter() + seconds
        while time.perf_counter() < end or len(per_batch) < 3:
            t = time.perf_counter()
            gpu.render_batch(batch)
            if gpu.device.type == "cuda":
                torch.cuda.synchronize()
            per_batch.append((time.perf_counter() - t) * 1000.0)
        params = frame_params(gpu.model, batch)
        on_device: list[float] = []
        for _ in range(max(3, len(per_batch) // 2)):
            t = time.perf_counter()
            gpu.render_tensor(params)
            if gpu.device.type == "cuda":
                torch.cuda.synchronize()
            on_device.append((time.perf_counter() - t) * 1000.0)
        out(f"    of which rendering on the device (no copy back): ms {summary(on_device)}")
        p50 = float(np.median(per_batch))
        fps = b * 1000.0 / p50
        out(
            f"  batch {b:3d}: {fps:8.1f} frames/s, ms per batch {summary(per_batch)} "
            f"(frames back on the host as uint8) = {fps / FPS:.0f} sessions at {FPS} fps"
        )


def random_qwen(shape: str, tokenizer_dir: Path, folder: Path) -> Path:
    """Save a random-weight Qwen2 causal LM of ``shape`` with the real tokenizer to ``folder``."""
    import torch
    import transformers

    tok = transformers.AutoTokenizer.from_pretrained(str(tokenizer_dir))
    config = transformers.Qwen2Config(
        vocab_size=151936,
        max_position_embeddings=32768,
        rope_theta=1000000.0,
        torch_dtype="bfloat16",
        **QWEN_SHAPES[shape],
    )
    torch.manual_seed(0)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.generation_config.eos_token_id = None  # random weights: never stop early
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    del model
    return folder


async def _stream_once(llm: Any, messages: Any) -> tuple[float, int, float]:
    from models.types import GenerationStats

    stats = GenerationStats()
    t0 = time.perf_counter()
    first: float | None = None
    async for _ in llm.stream(messages, stats=stats):
        if first is None:
            first = time.perf_counter() - t0
    return first if first is not None else float("nan"), stats.tokens, time.perf_counter() - t0


def bench_llm(shape: str, tokenizer_dir: Path, batches: list[int], max_tokens: int) -> None:
    """The transformers backend on a random-weight model of ``shape``."""
    import torch

    from models.assets import AssetResolver
    from models.config import LlmConfig
    from models.llm.transformers_llm import TransformersLLM
    from models.types import ChatMessage

    with tempfile.TemporaryDirectory() as tmp:
        folder = random_qwen(shape, tokenizer_dir, Path(tmp) / f"qwen-{shape}")
        cfg = LlmConfig(
            backend="transformers",
            model=str(folder),
            device="auto",
            dtype="bfloat16",
            max_tokens=max_tokens,
        )
        llm = TransformersLLM(cfg, AssetResolver())
        llm.load()
        out(
            f"LLM transformers, Qwen2.5-{shape.upper()} shape, random weights, bf16 on "
            f"{llm._device}: load {llm.load_s:.2f} s"
        )
        messages = [
            ChatMessage("system", cfg.system_prompt),
            ChatMessage("user", "What is the capital of France, and why is it famous?"),
        ]
        asyncio.run(_stream_once(llm, messages))  # warm-up
        ttft, tps = [], []
        for _ in range(5):
            first, tokens, total = asyncio.run(_stream_once(llm, messages))
            ttft.append(first * 1000.0)
            if tokens > 1 and total > first:
                tps.append((tokens - 1) / (total - first))
        out(
            f"  streaming backend ({max_tokens} tokens): first token ms {summary(ttft)}; "
            f"tokens/s {summary(tps)}"
        )
        model, tok = llm._model, llm._tokenizer
        prompt = tok.apply_chat_template(
            [{"role": m.role, "content": m.content} for m in messages],
            tokenize=False,
            add_generation_prompt=True,
        )
        tok.padding_side = "left"
        for b in batches:
            enc = tok([prompt] * b, return_tensors="pt", padding=True).to(model.device)
            kwargs = dict(
                max_new_tokens=max_tokens,
                min_new_tokens=max_tokens,
                do_sample=False,
                pad_token_id=tok.pad_token_id or 0,
            )
            with torch.inference_mode():
                model.generate(**enc, **kwargs)
                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                t = time.perf_counter()
                model.generate(**enc, **kwargs)
                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                dt = time.perf_counter() - t
            out(
                f"  generate batch {b:3d}: {b * max_tokens / dt:8.1f} tokens/s in all, "
                f"{max_tokens / dt:6.1f} per sequence"
            )
        asyncio.run(llm.aclose())
        del model
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def engines_line() -> None:
    """Which of the GPU profile's other engines this machine can run."""
    try:
        import onnxruntime

        out(
            f"onnxruntime {onnxruntime.__version__} providers: "
            f"{', '.join(onnxruntime.get_available_providers())}"
        )
    except ImportError:
        out("onnxruntime: not installed")
    try:
        import ctranslate2

        out(
            f"ctranslate2 {ctranslate2.__version__}: CUDA devices "
            f"{ctranslate2.get_cuda_device_count()}"
        )
    except ImportError:
        out("ctranslate2 (faster-whisper): not installed")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The arguments, checked: bad ones print one line and exit with code 2."""
    parser = arg_parser(__doc__, __file__)
    parser.add_argument(
        "--sizes", nargs="*", type=size_type, default=[(512, 512), (1280, 720)], metavar="WxH"
    )
    parser.add_argument("--batches", nargs="+", type=positive_int, default=[1, 8, 32, 64])
    parser.add_argument("--seconds", type=positive_float, default=3.0, help="timing per batch size")
    parser.add_argument(
        "--llm-shapes", nargs="*", choices=sorted(QWEN_SHAPES), default=["0.5b", "1.5b"]
    )
    parser.add_argument("--llm-batches", nargs="+", type=positive_int, default=[1, 8, 32])
    parser.add_argument("--llm-tokens", type=positive_int, default=64)
    parser.add_argument(
        "--tokenizer",
        type=Path,
        default=None,
        help="a folder with the Qwen2.5 tokenizer (the LLM part is skipped without it)",
    )
    args = parser.parse_args(argv)
    if args.tokenizer is not None and not args.tokenizer.is_dir():
        parser.error(f"--tokenizer {args.tokenizer}: not a folder")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the GPU benchmarks."""
    args = parse_args(argv)
    out(f"{machine()}; load average {os.getloadavg()[0]:.1f}")
    out(gpu_line())
    engines_line()
    for size in args.sizes:
        bench_renderer(size, args.batches, args.seconds)
    if args.tokenizer is None:
        out("LLM: skipped (no --tokenizer folder)")
        return 0
    for shape in args.llm_shapes:
        bench_llm(shape, args.tokenizer, args.llm_batches, args.llm_tokens)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
