"""The runbook's commands exist: every `python -m <service> <command>` it names is a real command."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

RUNBOOK = Path(__file__).resolve().parent.parent / "docs" / "operations.md"


def test_every_python_command_in_the_runbook_exists() -> None:
    text = RUNBOOK.read_text()
    commands = set(re.findall(r"python -m (ingest|scoring|alerts|crm_sync) (\w+)", text))
    assert ("scoring", "rebuild") in commands
    assert ("ingest", "migrate") in commands
    for module, command in sorted(commands):
        done = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        assert command in done.stdout, f"python -m {module} has no {command!r} command"
    for flag in re.findall(r"python -m scoring rebuild (--[\w-]+)", text):
        done = subprocess.run([sys.executable, "-m", "scoring", "--help"], capture_output=True, text=True, check=False)
        assert flag in done.stdout


def test_every_make_target_in_the_runbook_exists() -> None:
    makefile = (RUNBOOK.parent.parent / "Makefile").read_text()
    for target in set(re.findall(r"`make (\w+)", RUNBOOK.read_text())):
        assert re.search(rf"^{target}:", makefile, re.M), f"make {target} does not exist"
