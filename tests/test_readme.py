"""README.md opens with the two commands, CI runs the README's test command verbatim, and the main
job runs in a fresh clone."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
INSTALL = ["python3 -m venv .venv", ". .venv/bin/activate", "pip install torch==2.13.0 -e ."]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = text.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line and not line.startswith("#")]


def test_readme_opens_with_main_job_and_test_commands():
    main_job, tests = readme_commands()
    assert "python build.py" in main_job
    assert "pytest" in tests


def test_ci_runs_the_readme_test_command():
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert readme_commands()[1] in ci_lines


@pytest.mark.slow
def test_the_main_job_runs_in_a_fresh_clone(tmp_path):
    """The README's first command after its install steps (this environment already has what they
    install), in a clone of the committed tree: it builds the shipped model's engines and the demo
    shows tool calls and final answers."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs the git checkout")
    steps = readme_commands()[0].split(" && ")
    assert steps[:3] == INSTALL
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    runnable = " && ".join(steps[3:]).replace("python ", f"{sys.executable} ")
    runnable = runnable.replace("trtllm-mixquant ", f"{sys.executable} -m trtllm_mixquant.cli ")
    env = {**os.environ, "PYTHONPATH": str(clone)}
    env.pop("TRITON_INTERPRET", None)
    run = subprocess.run(runnable, shell=True, cwd=clone, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    out = run.stdout
    assert (clone / "engines" / "tiny-agent" / "context" / "engine.json").is_file()
    assert "tool call  lookup(" in out or "tool call  search(" in out, out
    assert "answer     " in out and "tasks answered exactly" in out, out
