"""The training loop: AdamW, warmup then cosine decay, bf16 autocast over fp32 weights, a wall-clock budget."""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from transformers import Qwen3ForCausalLM

from trtllm_mixquant.training.data import LossClass, PackedData


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int = 16
    lr: float = 2e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 150
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    max_steps: int | None = None  # None: as many as `time_budget_s` allows (timed after `calibration_steps`)
    time_budget_s: float = 300.0
    calibration_steps: int = 30
    context_weight: float = 0.05  # loss weight of agent-transcript tokens the assistant did not write
    assistant_weight: float = 5.0
    compile: bool = True
    log_every: int = 100
    seed: int = 0


@dataclass
class TrainResult:
    steps: int
    tokens: int  # tokens fed to the model (windows x seq_len)
    seconds: float
    final_loss: float  # weighted training loss, mean of the last log interval
    final_code_loss: float  # nats per Python token over the last log interval
    final_assistant_loss: float  # nats per assistant-turn token over the last log interval
    log: list[dict] = field(default_factory=list)


def _lr_factor(step: int, warmup: int, total: int, min_ratio: float) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def _losses(model: Qwen3ForCausalLM, ids: torch.Tensor, classes: torch.Tensor,
            weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For ids and classes [B, S + 1]: the weighted loss, and [2, len(LossClass)] NLL sums and token counts."""
    logits = model(input_ids=ids[:, :-1]).logits  # [B, S, V]
    nll = F.cross_entropy(logits.float().flatten(0, 1), ids[:, 1:].flatten(), reduction="none")
    target_classes = classes[:, 1:].flatten().long()
    w = weights[target_classes]
    sums = torch.zeros_like(weights).scatter_add_(0, target_classes, nll)
    counts = torch.zeros_like(weights).scatter_add_(0, target_classes, torch.ones_like(nll))
    return (nll * w).sum() / w.sum(), torch.stack([sums, counts])


def train(model: Qwen3ForCausalLM, data: PackedData, cfg: TrainConfig, device: torch.device) -> TrainResult:
    """Train `model` in place on `data`, cycling through seeded permutations of its windows."""
    start = time.perf_counter()
    model.to(device).train()
    ids = torch.from_numpy(data.ids).to(device)
    classes = torch.from_numpy(data.classes).to(device)
    weights = torch.zeros(len(LossClass), device=device)
    weights[LossClass.CONTEXT], weights[LossClass.CODE], weights[LossClass.ASSISTANT] = (
        cfg.context_weight, 1.0, cfg.assistant_weight)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=cfg.lr, betas=(0.9, 0.95), fused=device.type == "cuda")
    loss_fn = functools.partial(_losses, model, weights=weights)
    loss_fn = torch.compile(loss_fn) if cfg.compile else loss_fn
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    generator = torch.Generator().manual_seed(cfg.seed)
    order = torch.randperm(len(ids), generator=generator)
    cursor, total, step = 0, cfg.max_steps, 0
    result = TrainResult(0, 0, 0.0, float("nan"), float("nan"), float("nan"))
    running_loss = torch.zeros((), device=device)
    running_classes = torch.zeros(2, len(LossClass), device=device)  # NLL sums, token counts
    calib_start = 0.0
    while total is None or step < total:
        if cursor + cfg.batch_size > len(order):
            order, cursor = torch.randperm(len(ids), generator=generator), 0
        batch = order[cursor:cursor + cfg.batch_size].to(device)
        cursor += cfg.batch_size
        factor = _lr_factor(step, cfg.warmup_steps, total or 10 ** 9, cfg.min_lr_ratio)
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr * factor
        with autocast:
            loss, class_stats = loss_fn(ids[batch].long(), classes[batch])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        running_loss += loss.detach()
        running_classes += class_stats.detach()
        step += 1
        if total is None and step == cfg.calibration_steps // 3:
            _sync(device)
            calib_start = time.perf_counter()
        if total is None and step == cfg.calibration_steps:
            _sync(device)
            per_step = (time.perf_counter() - calib_start) / (step - cfg.calibration_steps // 3)
            total = step + max(0, int((cfg.time_budget_s - (time.perf_counter() - start)) / per_step))
            print(f"[train] {per_step * 1e3:.1f} ms/step -> {total} steps in the budget", flush=True)
        if cfg.max_steps is None and time.perf_counter() - start > cfg.time_budget_s:
            total = step  # a safety stop if steps slowed down after calibration
        if step % cfg.log_every == 0 or step == total:
            interval = (step - 1) % cfg.log_every + 1
            per_class = (running_classes[0] / running_classes[1].clamp(min=1)).tolist()
            entry = {"step": step, "loss": running_loss.item() / interval, "code_loss": per_class[LossClass.CODE],
                     "assistant_loss": per_class[LossClass.ASSISTANT], "context_loss": per_class[LossClass.CONTEXT],
                     "seconds": round(time.perf_counter() - start, 1)}
            running_loss.zero_()
            running_classes.zero_()
            result.log.append(entry)
            result.final_loss, result.final_code_loss, result.final_assistant_loss = (
                entry["loss"], entry["code_loss"], entry["assistant_loss"])
            print(f"[train] step {step}/{total} loss {entry['loss']:.4f} code {entry['code_loss']:.4f} "
                  f"assistant {entry['assistant_loss']:.4f} context {entry['context_loss']:.4f} "
                  f"lr {cfg.lr * factor:.2e} {entry['seconds']:.0f}s", flush=True)
    _sync(device)
    result.steps, result.seconds = step, time.perf_counter() - start
    result.tokens = step * cfg.batch_size * (ids.shape[1] - 1)
    return result


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
