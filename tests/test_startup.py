"""Start-up: a run that needs no litellm feature never imports litellm (6-7 s and ~200 MB)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Runs `lmrl run` in-process, then reports whether litellm got imported and what the run recorded.
_PROBE = """
import json, sys
from pathlib import Path
from lmrl.cli import main
code = main(sys.argv[1:])
imported = "litellm" in sys.modules
from lmrl.rundir import load_episodes
episodes = load_episodes(Path(sys.argv[sys.argv.index("--out") + 1]))
print(json.dumps({"code": code, "litellm": imported,
    "errors": sum(e.error is not None for e in episodes), "episodes": len(episodes),
    "cost": sum(e.cost_usd for e in episodes)}))
"""


def _run(tmp_path: Path, *args: str) -> dict:
    out = tmp_path / uuid.uuid4().hex[:8]
    argv = ["run", "--task", "maze-fo", "--episodes", "2", "--max-turns", "3", "--no-progress"]
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, *argv, *args, "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_direct_transport_run_does_not_import_litellm(tmp_path, fake_server):
    model = f"openai/say@id={uuid.uuid4().hex[:6]}"
    seen = _run(tmp_path, "--model", model, "--api-base", fake_server.api_base)
    assert seen == {"code": 0, "litellm": False, "errors": 0, "episodes": 2, "cost": 0.0}


def test_retries_on_the_direct_transport_do_not_import_litellm(tmp_path, fake_server):
    # The retry policy tells a 500 and a 429 apart without litellm's exception classes.
    model = f"openai/say@fail=500x1@id={uuid.uuid4().hex[:6]}"
    args = ("--model", model, "--api-base", fake_server.api_base, "--model-option", "retry_base_delay=0.01")
    seen = _run(tmp_path, *args)
    assert seen["litellm"] is False and seen["errors"] == 0 and seen["episodes"] == 2


def test_a_scripted_run_does_not_import_litellm(tmp_path):
    seen = _run(tmp_path, "--model", "scripted/random")
    assert seen["litellm"] is False and seen["errors"] == 0 and seen["episodes"] == 2


def test_a_model_litellm_prices_is_still_priced_on_the_direct_transport(tmp_path, fake_server):
    # gpt-4o-mini is in litellm's price map: pricing imports litellm, and the served tokens cost money.
    seen = _run(tmp_path, "--model", "openai/gpt-4o-mini", "--api-base", fake_server.api_base)
    assert seen["litellm"] is True and seen["errors"] == 0 and seen["cost"] > 0


def test_bundled_price_names_match_litellms_map():
    # The names read straight from litellm's bundled JSON are the names litellm prices from.
    code = (
        "from lmrl.agents.litellm_agent import _bundled_price_names, _litellm\n"
        "names = _bundled_price_names()\n"
        "keys = set(_litellm().model_cost)\n"
        "print(names is not None and keys <= names and len(names - keys) <= 1)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.stdout.strip() == "True", result.stderr[-2000:]
