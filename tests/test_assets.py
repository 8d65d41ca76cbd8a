"""The asset resolver: config path, cache, split model packages, hub fallback, errors."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sys
from pathlib import Path

import pytest

from gwm_avatars.cli import main as cli_main
from models.assets import (
    Asset,
    AssetFile,
    AssetResolver,
    PackagePart,
    PackageSource,
)
from models.config import AssetsConfig
from models.errors import AssetNotFoundError, ChecksumError, UnknownAssetError
from streaming.config import load_config


def _fake_package(root: Path, name: str, parts: list[bytes]) -> list[PackagePart]:
    pkg = root / name
    (pkg / "data").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    out = []
    for i, blob in enumerate(parts, 1):
        (pkg / "data" / f"part{i:02d}.bin").write_bytes(blob)
        out.append(PackagePart(name, f"data/part{i:02d}.bin"))
    return out


@pytest.fixture
def split_asset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Asset, bytes]:
    blobs = [b"alpha" * 1000, b"beta" * 777, b"gamma" * 3]
    whole = b"".join(blobs)
    site = tmp_path / "site"
    parts = _fake_package(site, "gwm_fake_model_pkg", blobs)
    monkeypatch.syspath_prepend(str(site))
    sys.modules.pop("gwm_fake_model_pkg", None)
    asset = Asset(
        name="fake-model",
        description="a split test model",
        kind="file",
        files=(AssetFile("fake.gguf", len(whole), hashlib.sha256(whole).hexdigest()),),
        package=PackageSource(requirement="gwm-fake-model-pkg", parts={"fake.gguf": tuple(parts)}),
    )
    return asset, whole


def _resolver(tmp_path: Path, asset: Asset, **kw: object) -> AssetResolver:
    cfg = AssetsConfig(cache_dir=tmp_path / "cache", allow_download=False, **kw)  # type: ignore[arg-type]
    return AssetResolver(cfg, registry={asset.name: asset})


def test_split_parts_are_assembled_once_and_verified(
    tmp_path: Path, split_asset: tuple[Asset, bytes], caplog: pytest.LogCaptureFixture
) -> None:
    asset, whole = split_asset
    resolver = _resolver(tmp_path, asset)
    with caplog.at_level(logging.INFO, logger="models.assets"):
        found = resolver.resolve("fake-model")
    assert found.source == "package"
    assert found.path.read_bytes() == whole
    assert found.path.is_relative_to(tmp_path / "cache")
    # one progress line for the whole asset, while it is assembled
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert len(said) == 1 and said[0].startswith("assembling the model fake-model"), said
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="models.assets"):
        again = resolver.resolve("fake-model")
    assert again.source == "cache" and again.path == found.path
    assert not [r for r in caplog.records if r.levelno >= logging.INFO]


def test_assembled_files_are_readable_by_other_users(
    tmp_path: Path, split_asset: tuple[Asset, bytes]
) -> None:
    # An image assembles its store as root and serves as another user: the files get
    # the umask's usual mode (0644 under 022), not a private temporary file's 0600.
    asset, _ = split_asset
    old = os.umask(0o022)
    try:
        path = _resolver(tmp_path, asset).resolve("fake-model").path
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644
    assert not list(path.parent.glob(".fake.gguf.*")), "a temporary file was left behind"


def test_damaged_cache_is_rebuilt_from_the_package(
    tmp_path: Path, split_asset: tuple[Asset, bytes]
) -> None:
    asset, whole = split_asset
    resolver = _resolver(tmp_path, asset)
    path = resolver.resolve("fake-model").path
    path.write_bytes(b"x" * len(whole))  # same size, wrong bytes
    found = resolver.resolve("fake-model")
    assert found.source == "package"
    assert found.path.read_bytes() == whole


def test_corrupt_package_part_is_a_checksum_error(
    tmp_path: Path, split_asset: tuple[Asset, bytes]
) -> None:
    asset, _ = split_asset
    site_part = next(tmp_path.joinpath("site").rglob("part02.bin"))
    site_part.write_bytes(b"BETA" * 777)  # same size, different bytes
    with pytest.raises(ChecksumError, match="sha256"):
        _resolver(tmp_path, asset).resolve("fake-model")


def test_explicit_config_path_wins(tmp_path: Path, split_asset: tuple[Asset, bytes]) -> None:
    asset, _ = split_asset
    mine = tmp_path / "my-model.gguf"
    mine.write_bytes(b"my own weights")
    found = _resolver(tmp_path, asset, paths={"fake-model": mine}).resolve("fake-model")
    assert (found.source, found.path) == ("config", mine)
    with pytest.raises(AssetNotFoundError, match=r"assets\.paths\.fake-model"):
        _resolver(tmp_path, asset, paths={"fake-model": tmp_path / "nope"}).resolve("fake-model")


def test_missing_asset_says_what_to_install(tmp_path: Path) -> None:
    asset = Asset(
        name="absent",
        description="not installed anywhere",
        kind="file",
        files=(AssetFile("absent.bin", 3, "0" * 64),),
        package=PackageSource(
            requirement="gwm-no-such-package==1.0",
            parts={"absent.bin": (PackagePart("gwm_no_such_package", "data/x.bin"),)},
        ),
    )
    with pytest.raises(AssetNotFoundError) as info:
        _resolver(tmp_path, asset).resolve("absent")
    msg = str(info.value)
    assert "pip install gwm-no-such-package==1.0" in msg
    assert "assets.paths.absent" in msg


def test_unknown_asset_name() -> None:
    with pytest.raises(UnknownAssetError, match="known assets"):
        AssetResolver().resolve("no-such-model")


def test_builtin_offline_assets_resolve_from_packages() -> None:
    resolver = AssetResolver(AssetsConfig(allow_download=False))
    whisper = resolver.resolve("whisper-base")
    assert whisper.file("model.bin").stat().st_size == 145_217_532
    assert whisper.file("tokenizer.json").is_file()
    voice = resolver.resolve("piper-joe-medium")
    assert voice.file("en_US-joe-medium.onnx.json").is_file()
    vad = resolver.resolve("silero-vad")
    assert vad.path.suffix == ".onnx"


def test_models_command_lists_every_asset(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["models"]) == 0
    out = capsys.readouterr().out
    for name in ("whisper-base", "piper-joe-medium", "qwen2.5-0.5b-instruct-gguf", "silero-vad"):
        assert name in out


def test_the_default_profile_runs_from_the_offline_models_extra() -> None:
    pyproject = (Path(__file__).parent.parent / "pyproject.toml").read_text(encoding="utf-8")
    block = re.search(r"^offline-models = \[(.*?)^\]", pyproject, re.M | re.S)
    assert block is not None
    extra = set(re.findall(r'"([^"]+)"', block.group(1)))
    cfg = load_config("default", environ={})
    resolver = AssetResolver()
    for name in (cfg.stt.model, cfg.llm.model, cfg.tts.voice):
        source = resolver.get(name).package
        assert source is not None and set(source.requirement.split()) <= extra, name
