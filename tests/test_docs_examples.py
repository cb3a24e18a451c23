"""Every shell example of the README and of docs/webhooks.md, copied as a newcomer would, works: run in bash
and in zsh against the four services as real processes, with `make run`'s tokens, seed and key.

The only change made to the text is the ports (`make run` uses 8000-8003; the test binds free ones). `curl`
is wrapped with ``--fail-with-body``, so any 4xx or 5xx fails the example instead of printing an error
(retried for a few seconds, as a person reading a score a moment after sending the answer would).
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import Platform, PlatformFactory

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent


def _make_run_settings() -> ModuleType:
    """``scripts/dev.py`` (what `make run` runs), for its tokens: the examples carry them."""
    spec = importlib.util.spec_from_file_location("pulse_dev_script", ROOT / "scripts" / "dev.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


DEV = _make_run_settings()
BLOCK = re.compile(r"```(?:bash|sh|shell)\n(.*?)```", re.S)
DEV_PORTS = {"ingest": 8000, "scoring": 8001, "alerts": 8002, "crm_sync": 8003}
#: Blocks that are not requests to the running platform: the two commands, the production migration steps.
NOT_REQUESTS = ("make run", "python -m ingest migrate")
#: A newcomer reads a score a moment after sending the answer; the test retries for up to 5 s where a person
#: would have waited (a 4xx that persists still fails).
PRELUDE = ("set -e\ncurl() { command curl --fail-with-body --max-time 20 --retry 5 --retry-all-errors --retry-delay 1 "
           "\"$@\"; }\n")


def examples(document: Path) -> list[str]:
    """The document's shell blocks that talk to the platform."""
    return [b for b in BLOCK.findall(document.read_text()) if not any(b.lstrip().startswith(n) for n in NOT_REQUESTS)]


def script_for(document: Path, platform: Platform) -> str:
    text = PRELUDE + "\n".join(f"echo '--- example {i}'\n{block}" for i, block in enumerate(examples(document)))
    for module, port in DEV_PORTS.items():
        text = text.replace(f"127.0.0.1:{port}", platform.services[module].url.removeprefix("http://"))
    return text


@pytest.fixture
def dev_like(platform_factory: PlatformFactory) -> Platform:
    """The platform with `make run`'s tokens (the examples carry them) and alerts file."""
    return platform_factory.start(
        INGEST_ADMIN_TOKEN=DEV.DEV_INGEST_ADMIN_TOKEN, ALERTS_ADMIN_TOKEN=DEV.DEV_ALERTS_ADMIN_TOKEN,
        CRM_SYNC_ADMIN_TOKEN=DEV.DEV_CRM_ADMIN_TOKEN, SCORING_API_TOKENS=DEV.DEV_SCORING_TOKEN,
        ALERTS_CONFIG_FILE=str(ROOT / "deploy" / "dev" / "alerts.yaml"))


def test_the_documents_have_the_examples_this_test_runs() -> None:
    assert len(examples(ROOT / "README.md")) >= 4
    assert len(examples(ROOT / "docs" / "webhooks.md")) >= 3
    assert "1. " not in "".join(examples(ROOT / "README.md"))  # no numbered production steps slipped in


def test_every_example_works_in_bash_and_zsh(dev_like: Platform, tmp_path: Path) -> None:
    shells = [shell for shell in ("bash", "zsh") if shutil.which(shell)]
    assert shells == ["bash", "zsh"], "zsh is missing: `make test` installs it as root (apt-get install zsh)"
    for document in (ROOT / "README.md", ROOT / "docs" / "webhooks.md"):
        script = tmp_path / f"{document.stem}.sh"
        script.write_text(script_for(document, dev_like))
        for shell in shells:
            done = subprocess.run([shell, str(script)], capture_output=True, text=True, timeout=180, check=False)
            assert done.returncode == 0, f"{document.name} in {shell}:\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}"
            if document.name == "README.md":
                assert '{"response_id":"resp-0001","status":"accepted"}' in done.stdout
                assert '"window":"30d"' in done.stdout  # the scores came back
            else:
                assert '{"status":"accepted","response_id":"standard:doc-1","reason":null}' in done.stdout
