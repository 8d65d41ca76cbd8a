"""The validated config tree: profiles, environment and CLI overrides, clear errors."""

from __future__ import annotations

import pytest

from gwm_avatars.cli import main as cli_main
from streaming.config import AppConfig, ConfigError, load_config


def test_profiles_load_and_differ() -> None:
    cpu = load_config("default", environ={})
    gpu = load_config("gpu", environ={})
    assert isinstance(cpu, AppConfig)
    assert cpu.stt.device == "cpu" and cpu.stt.compute_type == "int8"
    assert cpu.llm.backend == "llama-cpp"
    assert gpu.stt.device == "cuda" and gpu.stt.compute_type == "float16"
    assert gpu.llm.backend == "transformers" and gpu.render.backend == "torch"
    assert (gpu.render.width, gpu.render.size) == (1280, 720)


def test_environment_then_cli_override() -> None:
    env = {"GWM_STT__BEAM_SIZE": "5", "GWM_LLM__OPENAI__BASE_URL": "http://127.0.0.1:9/v1"}
    cfg = load_config("default", environ=env)
    assert cfg.stt.beam_size == 5
    assert cfg.llm.openai.base_url == "http://127.0.0.1:9/v1"
    cfg = load_config("default", environ=env, overrides=["stt.beam_size=3", "vad.backend=webrtc"])
    assert cfg.stt.beam_size == 3
    assert cfg.vad.backend == "webrtc"


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("stt.beam_size=0", "stt.beam_size"),
        ("vad.threshold=2", "vad.threshold"),
        ("llm.backend=gpt5", "llm.backend"),
        ("render.fps=abc", "render.fps"),
        ("stt.no_such_field=1", "stt.no_such_field"),
    ],
)
def test_invalid_value_names_the_field(override: str, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config("default", environ={}, overrides=[override])
    assert field in str(info.value)


def test_cross_field_validation() -> None:
    with pytest.raises(ConfigError, match="neg_threshold"):
        load_config("default", environ={}, overrides=["vad.threshold=0.3", "vad.neg_threshold=0.4"])


def test_missing_profile_and_bad_override_syntax() -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config("no-such-profile", environ={})
    with pytest.raises(ConfigError, match=r"section\.field=value"):
        load_config("default", environ={}, overrides=["nonsense"])


def test_cli_reports_invalid_config_with_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli_main(["--set", "stt.beam_size=0", "models"])
    err = capsys.readouterr().err
    assert code == 2
    assert "stt.beam_size" in err
    assert "Traceback" not in err


def test_the_persona_has_a_name_and_examples_in_every_profile() -> None:
    for profile in ("default", "gpu"):
        llm = load_config(profile, environ={}).llm
        assert llm.persona().startswith(f"You are {llm.persona_name},")
        assert "{name}" not in llm.persona()
        messages = llm.example_messages()
        assert len(messages) >= 4 and [m.role for m in messages[:2]] == ["user", "assistant"]
    llm = load_config("default", environ={}, overrides=["llm.persona_name=Sam"]).llm
    assert llm.persona().startswith("You are Sam,")
    # A session's own prompt may use {name}; other braces stay as they are.
    assert llm.persona("I am {name} {x}") == "I am Sam {x}"
