"""The README's bot example (examples/bot.py) names what this pipecat has.

Its services need extras and models this environment lacks (Whisper, Piper, an LLM),
so it is not run: it is compiled, and every name it imports from pipecat is found
defined in the installed pipecat's source (a renamed class fails here).
"""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "bot.py"


def test_the_bot_example_imports_only_what_pipecat_defines() -> None:
    tree = ast.parse(EXAMPLE.read_text(), str(EXAMPLE))
    compile(tree, str(EXAMPLE), "exec")
    imported = [
        (node.module, alias.name)
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pipecat")
        for alias in node.names
    ]
    assert len(imported) >= 10
    for module, name in imported:
        spec = importlib.util.find_spec(module)
        assert spec is not None and spec.origin, f"no module {module}"
        source = Path(spec.origin).read_text()
        defined = rf"^(class|def|async def) {name}\b|^{name}\s*[:=]"
        assert re.search(defined, source, re.M), f"{module} defines no {name}"


def test_the_top_level_readme_shows_this_example() -> None:
    """The README's "face of your pipecat agent" bot is examples/bot.py, as it is."""
    readme = (EXAMPLE.parents[3] / "README.md").read_text()
    section = readme[readme.index("## Use it as the face of your pipecat agent") :]
    block = re.search(r"^```python\n(.*?)^```", section, re.M | re.S)
    assert block is not None
    code = EXAMPLE.read_text()
    assert block.group(1) == code[code.index("import os") :]
