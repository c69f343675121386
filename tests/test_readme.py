"""Every ```python block of the README (and of the docs pages listed here) runs as written from
the repo root, and the README's two commands are the ones CI runs."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
DOCS = ("docs/games.md",)
BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S) + [
    block for page in DOCS
    for block in re.findall(r"```python\n(.*?)```", (ROOT / page).read_text(), flags=re.S)]


def test_readme_has_python_examples():
    assert len(BLOCKS) >= 1


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_python_block_runs(index):
    result = subprocess.run([sys.executable, "-c", BLOCKS[index]], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, f"README block {index} failed:\n{result.stderr[-3000:]}"


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    command = ci.split("# --- the README's test command, verbatim ---\n")[1].splitlines()[0]
    assert command in README
