"""`trtllm-mixquant generate` and `chat` on a tiny engine."""

from __future__ import annotations

import io

import pytest

from trtllm_mixquant.cli import main


def test_generate_prints_one_completion_per_prompt(tiny_engines, capsys):
    assert main(["generate", str(tiny_engines("qwen3")), "--prompt", "a", "--prompt", "b", "--max-tokens", "3"]) == 0
    assert len(capsys.readouterr().out.splitlines()) >= 2


@pytest.mark.parametrize("ending", ["exit\n", "/exit\n", ""])  # "" is Ctrl-D
def test_chat_is_multi_turn_and_ends_cleanly(tiny_engines, capsys, monkeypatch, ending):
    monkeypatch.setattr("sys.stdin", io.StringIO("hi\nagain\n" + ending))
    assert main(["chat", str(tiny_engines("qwen3"))]) == 0
    out = capsys.readouterr().out
    assert out.count("assistant> ") == 2 and "lookup" in out and "Ctrl-D" in out  # the banner names the tools


def test_missing_engine_dir_says_how_to_build(tmp_path):
    with pytest.raises(SystemExit, match="Build the engines first with `trtllm-mixquant build`"):
        main(["generate", str(tmp_path / "nope"), "--prompt", "a"])


def test_unknown_command_fails():
    assert main(["frobnicate"]) == 2


def test_enforce_eager_reaches_the_engine_and_the_workers(tiny_engines, monkeypatch):
    from trtllm_mixquant.disagg.orchestrator import Orchestrator
    from trtllm_mixquant.engine import llm as llm_module
    from trtllm_mixquant.server.main import build_parser
    from trtllm_mixquant.server.config import server_config_from_args

    seen = []
    real = llm_module.LLM._start

    def spy(self, config):
        seen.append(config)
        real(self, config)

    monkeypatch.setattr(llm_module.LLM, "_start", spy)
    assert main(["generate", str(tiny_engines("qwen3")), "--prompt", "a", "--max-tokens", "1", "--enforce-eager"]) == 0
    assert not seen[0].cuda_graphs and not seen[0].compile_regions

    args = build_parser().parse_args(["--enforce-eager"])
    specs = Orchestrator(server_config_from_args(args, tiny_engines("qwen3")).orchestrator).worker_specs()
    assert specs and all(not s.engine.cuda_graphs and not s.engine.compile_regions for s in specs)


def test_fp8_attention_flag_takes_a_mode_and_the_bare_flag_means_auto():
    import argparse

    from trtllm_mixquant.engine.config import EngineConfig, add_engine_arguments, engine_config_from_args

    p = argparse.ArgumentParser()
    p.add_argument("engine_dir")
    add_engine_arguments(p)
    for argv, want in (([], "off"), (["--fp8-attention"], "auto"), (["--fp8-attention", "all"], "all")):
        args = p.parse_args(["e", *argv])
        assert engine_config_from_args(args, args.engine_dir).fp8_attention == want
    with pytest.raises(SystemExit):
        p.parse_args(["e", "--fp8-attention", "fast"])
    with pytest.raises(ValueError, match="fp8_attention must be one of off, auto, all"):
        EngineConfig("e", fp8_attention=True)
