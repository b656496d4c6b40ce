"""End to end: corpus, agent transcripts, tokenizer, training, evaluation, export.

    python -m trtllm_mixquant.training.recipe --out DIR --seed 0 --time-budget-s 550

Deterministic given the seed up to GPU arithmetic and, when no step count is fixed, the number of steps
the time budget allows.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from trtllm_mixquant.agent_tasks import generate_tasks
from trtllm_mixquant.training.corpus import (
    HELD_OUT_PACKAGES, default_site_packages, list_sources, sample_texts, split_corpus,
)
from trtllm_mixquant.training.data import LossClass, encode_documents, generate_transcripts, pack
from trtllm_mixquant.training.evaluate import agent_accuracy, gzip_bits_per_byte, model_bits_per_byte
from trtllm_mixquant.training.export import export_checkpoint
from trtllm_mixquant.training.model import ModelDims, build_model
from trtllm_mixquant.training.model_card import render_model_card
from trtllm_mixquant.training.report import format_report
from trtllm_mixquant.training.tokenizer import EOS_TOKEN, PAD_TOKEN, train_tokenizer
from trtllm_mixquant.training.train import TrainConfig, train


@dataclass(frozen=True)
class RecipeConfig:
    dims: ModelDims = field(default_factory=ModelDims)
    train: TrainConfig = field(default_factory=TrainConfig)
    vocab_size: int = 8192
    code_bytes: int = 180_000_000  # Python text to train on (the image holds about 340 MB)
    tokenizer_bytes: int = 30_000_000  # Python text the tokenizer is trained on (plus 1 in 10 transcripts)
    agent_tasks: int = 45_000
    agent_budgets: tuple[int, int] = (450, 4096)  # token budgets of training transcripts, long ones likelier
    chars_per_token: float = 2.7  # to count budgets before the tokenizer exists
    eval_bytes: int = 4_000_000  # held-out Python for bits per byte
    eval_lengths: tuple[int, ...] = (512, 1024, 2048, 4096)
    eval_tasks: int = 50  # per length
    eval_max_new_tokens: int = 320  # the longest order call is ~250 tokens
    eval_reserve_s: float = 110.0  # kept from the time budget for evaluation and export
    workers: int = field(default_factory=lambda: min(16, os.cpu_count() or 1))


PRESETS = {
    "full": RecipeConfig(),
    "smoke": RecipeConfig(
        dims=ModelDims(hidden_size=64, intermediate_size=128, num_layers=2, num_heads=2, num_kv_heads=1,
                       head_dim=32, max_position_embeddings=1024),
        train=TrainConfig(batch_size=2, max_steps=3, warmup_steps=2, compile=False, log_every=1),
        vocab_size=1024, code_bytes=300_000, tokenizer_bytes=200_000, agent_tasks=12, agent_budgets=(600, 1000),
        chars_per_token=1.8,
        eval_bytes=20_000, eval_lengths=(1024,), eval_tasks=2, eval_max_new_tokens=16, eval_reserve_s=0.0, workers=2,
    ),
}


def run_recipe(out_dir: Path, seed: int, time_budget_s: float, cfg: RecipeConfig,
               site_packages: Path | None = None) -> dict:
    """Train, evaluate and export the model into `out_dir`; returns the metrics (also in training_metrics.json)."""
    start = last = time.perf_counter()
    stamps: dict[str, float] = {}

    def stage(name: str) -> None:
        nonlocal last
        now = time.perf_counter()
        stamps[name], last = round(now - last, 1), now
        print(f"[recipe] {name} done in {stamps[name]}s", flush=True)

    seq_len = cfg.dims.max_position_embeddings
    corpus = split_corpus(list_sources(site_packages or default_site_packages()))
    code_texts = sample_texts(corpus.train, cfg.code_bytes, seed)
    eval_texts = sample_texts(corpus.held_out, cfg.eval_bytes, seed)
    eval_text = "\n".join(eval_texts)
    if not eval_text:
        raise SystemExit(f"no held-out Python: none of {HELD_OUT_PACKAGES} is installed in the site-packages")
    stage("corpus")
    transcripts = generate_transcripts(seed, cfg.agent_tasks, cfg.agent_budgets, cfg.chars_per_token, cfg.workers)
    stage("transcripts")
    tok_texts, size = [], 0
    for text in code_texts:
        if size >= cfg.tokenizer_bytes:
            break
        tok_texts.append(text)
        size += len(text)
    tokenizer = train_tokenizer(tok_texts + ["".join(t for t, _ in parts) for parts in transcripts[::10]],
                                cfg.vocab_size)
    eot, eos = tokenizer.token_to_id(PAD_TOKEN), tokenizer.token_to_id(EOS_TOKEN)
    stage("tokenizer")
    code_docs = encode_documents(tokenizer, [[(t, LossClass.CODE)] for t in code_texts], eot, cfg.workers)
    code = np.concatenate([d.ids for d in code_docs])
    docs = encode_documents(tokenizer, transcripts, eot, cfg.workers)
    data = pack(code, docs, seq_len, seed)
    stage("encode")
    print(f"[recipe] {len(code) / 1e6:.1f}M code tokens, {data.transcripts}/{len(docs)} transcripts fit, "
          f"{len(data.ids)} windows", flush=True)

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(seed)
    model = build_model(cfg.dims, tokenizer.get_vocab_size(), eos, eot)
    budget = time_budget_s - (time.perf_counter() - start) - cfg.eval_reserve_s
    result = train(model, data, replace(cfg.train, time_budget_s=budget, seed=seed), device)
    stage("train")

    model = model.to(torch.bfloat16).eval()
    bpb = model_bits_per_byte(model, tokenizer, eval_text, seq_len)
    gz = gzip_bits_per_byte(eval_text)
    count = lambda text: len(tokenizer.encode(text).ids)  # noqa: E731
    tasks = [t for length in cfg.eval_lengths for t in generate_tasks("eval", 0, cfg.eval_tasks, length, count)]
    agent = agent_accuracy(model, tokenizer, tasks, cfg.eval_max_new_tokens, show_failures=3)
    stage("evaluate")

    metrics = {
        "seed": seed,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU",
        "model": {**asdict(cfg.dims), "vocab_size": tokenizer.get_vocab_size(), "context_length": seq_len,
                  "parameters": sum(p.numel() for p in model.parameters())},
        "data": {"code_files": len(code_texts), "code_bytes": sum(len(t.encode()) for t in code_texts),
                 "code_tokens": len(code), "held_out_packages": list(HELD_OUT_PACKAGES),
                 "agent_tasks": data.transcripts, "windows": len(data.ids),
                 "agent_tokens": data.count(LossClass.CONTEXT) + data.count(LossClass.ASSISTANT)},
        "train": {**{k: v for k, v in asdict(cfg.train).items() if k not in ("time_budget_s", "seed")},
                  "steps": result.steps, "tokens": result.tokens, "seconds": round(result.seconds, 1),
                  "final_loss": result.final_loss, "final_code_loss": result.final_code_loss,
                  "final_assistant_loss": result.final_assistant_loss, "log": result.log},
        "eval": {"bpb": {"model": bpb, "gzip": gz, "ratio": bpb / gz, "text_bytes": len(eval_text.encode()),
                         "files": len(eval_texts)},
                 "agent": {str(k): v for k, v in agent.items()}},
    }
    export_checkpoint(model, tokenizer, out_dir, render_model_card(metrics))
    stage("export")
    metrics["timings_s"] = {**stamps, "total": round(time.perf_counter() - start, 1)}
    (out_dir / "training_metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    print(format_report(metrics, out_dir), flush=True)
    return metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--time-budget-s", type=float, default=550.0)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="full")
    parser.add_argument("--site-packages", type=Path, default=None)
    parser.add_argument("--steps", type=int, default=None, help="fix the step count (else the budget decides)")
    args = parser.parse_args()
    cfg = PRESETS[args.preset]
    if args.steps is not None:
        cfg = replace(cfg, train=replace(cfg.train, max_steps=args.steps))
    run_recipe(args.out, args.seed, args.time_budget_s, cfg, args.site_packages)


if __name__ == "__main__":
    main()
