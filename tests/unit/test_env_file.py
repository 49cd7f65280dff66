"""scripts/run's .env: its settings fill what the environment leaves unset, and the environment
wins (`PORT=9001 ./scripts/run` listens on 9001 whatever .env says), quoted and multi-line values
intact."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHOW = 'for name in PORT LOG_LEVEL OPENAI_MODEL NOTE; do printf "%s=[%s]\\n" "$name" "$(printenv "$name")"; done'


def _loaded(tmp_path: Path, text: str, **environment: str) -> dict[str, str]:
    """What a process started after `load_env_file` sees, as exported variables."""
    env_file = tmp_path / ".env"
    env_file.write_text(text, encoding="utf-8")
    script = f'set -euo pipefail; source "{ROOT}/scripts/_env.sh"; load_env_file "{env_file}"; {SHOW}'
    clean = {k: v for k, v in os.environ.items() if k not in ("PORT", "LOG_LEVEL", "OPENAI_MODEL", "NOTE")}
    done = subprocess.run(["bash", "-c", script], env={**clean, **environment}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    found = {}
    for line in done.stdout.split("]\n"):
        if line:
            name, _, value = line.partition("=[")
            found[name] = value
    return found


def test_the_environment_wins_over_the_env_file(tmp_path) -> None:
    text = 'PORT=8830\nLOG_LEVEL=DEBUG\n# a comment\nOPENAI_MODEL="gpt 4o"\n'
    found = _loaded(tmp_path, text, PORT="9001", NOTE='say "hi"\nand more')
    assert found == {"PORT": "9001", "LOG_LEVEL": "DEBUG", "OPENAI_MODEL": "gpt 4o", "NOTE": 'say "hi"\nand more'}


def test_the_env_file_fills_what_the_environment_leaves_unset(tmp_path) -> None:
    found = _loaded(tmp_path, "PORT=8830\nexport LOG_LEVEL=WARNING\n")
    assert (found["PORT"], found["LOG_LEVEL"], found["OPENAI_MODEL"]) == ("8830", "WARNING", "")


def test_scripts_run_reads_its_env_file_through_it() -> None:
    run = (ROOT / "scripts" / "run").read_text(encoding="utf-8")
    assert 'load_env_file "${CHATWAIT_ENV_FILE:-.env}"' in run and "source .env" not in run
