"""A small Dockerfile reader for the deploy tests: stages, instructions, ENV and ARG.

It understands what deploy/Dockerfile and deploy/Dockerfile.gpu use: line
continuations, comment lines (also inside a continued instruction), ``ARG`` before the
first ``FROM`` (global build arguments, which ``FROM ${NAME}`` resolves to their
defaults), ``FROM image AS name``, ``KEY=value`` ENV/ARG pairs and exec-form (JSON)
ENTRYPOINT/CMD/HEALTHCHECK.
hadolint does the full parse; this is for the structural checks it has no rule for.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Instruction:
    """One instruction: its keyword (upper case), its text and its line number."""

    keyword: str
    text: str
    line: int


@dataclass
class Stage:
    """One ``FROM`` and the instructions under it."""

    image: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)
    #: the FROM argument as written (``${BASE_IMAGE}``); ``image`` is it resolved
    written: str = ""

    def all(self, keyword: str) -> list[Instruction]:
        """The stage's instructions with this keyword."""
        return [i for i in self.instructions if i.keyword == keyword]

    def env(self) -> dict[str, str]:
        """ENV pairs set in this stage (later ones win)."""
        out: dict[str, str] = {}
        for ins in self.all("ENV"):
            out.update(key_values(ins.text))
        return out

    def args(self) -> dict[str, str | None]:
        """ARG names and their defaults (None: no default)."""
        out: dict[str, str | None] = {}
        for ins in self.all("ARG"):
            out.update(_args(ins.text))
        return out

    def exec_form(self, keyword: str) -> list[str]:
        """The JSON array of the last ENTRYPOINT or CMD of this stage."""
        found = self.all(keyword)
        assert found, f"no {keyword} in stage {self.name or self.image}"
        value = json.loads(found[-1].text)
        assert isinstance(value, list), f"{keyword} is not in exec (JSON) form"
        return [str(v) for v in value]


@dataclass
class Dockerfile:
    """A parsed Dockerfile: its stages in order (the last one is the image)."""

    path: Path
    stages: list[Stage]
    #: ARGs before the first FROM and their defaults (what FROM lines may use)
    global_args: dict[str, str | None] = field(default_factory=dict)

    @property
    def final(self) -> Stage:
        """The stage the image is made of."""
        return self.stages[-1]

    def stage(self, name: str) -> Stage:
        """The stage called ``name``."""
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(name)

    def args(self) -> dict[str, str | None]:
        """Every ARG of every stage (later stages win)."""
        out: dict[str, str | None] = {}
        for s in self.stages:
            out.update(s.args())
        return out

    def runs(self) -> list[str]:
        """The text of every RUN, in order."""
        return [i.text for s in self.stages for i in s.all("RUN")]


def key_values(text: str) -> dict[str, str]:
    """``A=1 B="two words"`` → {"A": "1", "B": "two words"}."""
    out: dict[str, str] = {}
    for token in shlex.split(text):
        key, sep, value = token.partition("=")
        assert sep, f"ENV without '=' ({token!r}): use the KEY=value form"
        out[key] = value
    return out


def _args(text: str) -> dict[str, str | None]:
    """``ARG A=1 B`` → {"A": "1", "B": None}."""
    out: dict[str, str | None] = {}
    for token in shlex.split(text):
        name, sep, value = token.partition("=")
        out[name] = value if sep else None
    return out


def _resolve(image: str, args: dict[str, str | None]) -> str:
    """``${NAME}``/``$NAME`` in a FROM replaced by the global ARG defaults."""

    def value(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        default = args.get(name)
        assert default, f"FROM {image}: ${name} is no global ARG with a default"
        return default

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, image)


def _logical_lines(source: str) -> list[tuple[int, str]]:
    """Join continued lines, dropping comment lines (as the Docker parser does)."""
    out: list[tuple[int, str]] = []
    buf: list[str] = []
    start = 0
    for n, raw in enumerate(source.splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not buf):
            continue
        if not buf:
            start = n
        if stripped.endswith("\\"):
            buf.append(stripped[:-1].strip())
            continue
        buf.append(stripped)
        out.append((start, " ".join(p for p in buf if p)))
        buf = []
    assert not buf, "the Dockerfile ends inside a continued line"
    return out


def parse(path: Path) -> Dockerfile:
    """Read ``path`` into stages and instructions."""
    stages: list[Stage] = []
    global_args: dict[str, str | None] = {}
    for line, text in _logical_lines(path.read_text(encoding="utf-8")):
        keyword, _, rest = text.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            parts = rest.split()
            flags = [p for p in parts if p.startswith("--")]
            parts = [p for p in parts if not p.startswith("--")]
            assert not flags, f"{path.name}:{line}: FROM flags are not expected"
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            image = _resolve(parts[0], global_args)
            stages.append(Stage(image=image, name=name, written=parts[0]))
            continue
        if keyword == "ARG" and not stages:
            global_args.update(_args(rest))
            continue
        assert stages, f"{path.name}:{line}: {keyword} before the first FROM"
        stages[-1].instructions.append(Instruction(keyword, rest.strip(), line))
    return Dockerfile(path, stages, global_args)


def copy_sources(ins: Instruction) -> tuple[dict[str, str], list[str], str]:
    """A COPY's flags, sources and destination."""
    tokens = shlex.split(ins.text)
    flags = {}
    while tokens and tokens[0].startswith("--"):
        key, _, value = tokens.pop(0)[2:].partition("=")
        flags[key] = value
    return flags, tokens[:-1], tokens[-1]


def dockerignore_excludes(patterns: list[str], path: str) -> bool:
    """Whether a .dockerignore with ``patterns`` keeps ``path`` out of the context.

    Docker's rule: the last pattern matching the path, or one of its parent folders,
    decides; ``!`` re-includes.
    """
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw[1:] if negate else raw
        pattern = pattern.strip().strip("/")
        if pattern.startswith("**/"):
            hit = any(
                fnmatch.fnmatchcase(p.split("/")[-1], pattern[3:])
                or fnmatch.fnmatchcase(p, pattern[3:])
                for p in prefixes
            )
        else:
            hit = any(
                fnmatch.fnmatchcase(p, pattern) and p.count("/") == pattern.count("/")
                for p in prefixes
            )
        if hit:
            excluded = not negate
    return excluded


def read_dockerignore(path: Path) -> list[str]:
    """The patterns of a .dockerignore file (comments and blank lines dropped)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]
