"""Build the two engines from one Hugging Face folder: BF16 generation, NVFP4/FP8 context."""

from __future__ import annotations

import datetime
import json
import logging
import shutil
import tempfile
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch

from trtllm_mixquant.builder import calibration
from trtllm_mixquant.builder.quantize import PRECISIONS, quantize_and_export
from trtllm_mixquant.builder.source import SourceModel, SourceModelError, fingerprint, open_source_model
from trtllm_mixquant.devices import resolve_device
from trtllm_mixquant.manifest import DEFAULT_BLOCK_SIZE, EngineManifest, check_engine_pair

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildOptions:
    model: Path
    output: Path
    phase: str = "both"  # "context" | "generation" | "both"
    context_precision: str = "nvfp4"
    calib_file: Path | None = None
    calib_samples: int = 32
    calib_seq_len: int = 512
    max_seq_len: int | None = None
    block_size: int = DEFAULT_BLOCK_SIZE
    device: str = "auto"


def build_engines(opts: BuildOptions) -> dict[str, Path]:
    """Build the engines `opts.phase` asks for; returns {"context": dir, "generation": dir} built now."""
    source = open_source_model(opts.model)
    max_seq_len = resolve_max_seq_len(source, opts.max_seq_len)
    if opts.context_precision not in PRECISIONS:
        raise SourceModelError(f"--context-precision must be one of {', '.join(PRECISIONS)}.")
    ensure_writable(opts.output)
    device = resolve_device(opts.device)
    log.info("source %s (%s), max_seq_len %d, device %s", source.path, source.architecture, max_seq_len, device)
    source_fp = fingerprint(source)
    built: dict[str, Path] = {}
    phases = ("generation", "context") if opts.phase == "both" else (opts.phase,)
    for step, phase in enumerate(phases, 1):
        log.info("[%d/%d] building the %s engine", step, len(phases), phase)
        builder = build_generation if phase == "generation" else build_context
        built[phase] = write_atomically(opts.output / phase, lambda d: builder(source, d, opts, device))
        manifest_for(phase, source, source_fp, opts, max_seq_len, built[phase]).write(built[phase])
    pair = [opts.output / p for p in ("context", "generation")]
    if all((p / "engine.json").is_file() for p in pair):
        check_engine_pair(EngineManifest.read(pair[0]), EngineManifest.read(pair[1]))
        log.info("engines in %s are a valid context/generation pair", opts.output)
    return built


def resolve_max_seq_len(source: SourceModel, requested: int | None) -> int:
    limit = source.max_position_embeddings
    if requested is None:
        return min(limit, 32768)
    if not 1 <= requested <= limit:
        raise SourceModelError(f"--max-seq-len {requested} is outside 1..{limit} (the model's max_position_embeddings).")
    return requested


def ensure_writable(output: Path) -> None:
    try:
        output.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=output):
            pass
    except OSError as err:
        raise SourceModelError(f"cannot write engines to {output} ({err.strerror}); choose another --output.") from err


def write_atomically(target: Path, write) -> Path:
    """Run `write(tmp_dir)`, then replace `target` with it, so a failed build leaves no half engine."""
    tmp = target.with_name(f".{target.name}.building")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        write(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


def load_model_and_tokenizer(source: SourceModel, device: torch.device):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not source.tokenizer_files():
        raise SourceModelError(f"{source.path} has no tokenizer files (tokenizer.json or tokenizer.model).")
    tokenizer = AutoTokenizer.from_pretrained(source.path)
    model = AutoModelForCausalLM.from_pretrained(source.path, dtype=torch.bfloat16).to(device).eval()
    return model, tokenizer


def copy_tokenizer(source: SourceModel, engine_dir: Path) -> None:
    for path in source.tokenizer_files():
        shutil.copy2(path, engine_dir / path.name)


def build_generation(source: SourceModel, engine_dir: Path, opts: BuildOptions, device: torch.device) -> None:
    """The BF16 checkpoint and tokenizer, as a standard Hugging Face folder."""
    model, _ = load_model_and_tokenizer(source, torch.device("cpu"))
    model.save_pretrained(engine_dir, max_shard_size="2GB")
    copy_tokenizer(source, engine_dir)


def build_context(source: SourceModel, engine_dir: Path, opts: BuildOptions, device: torch.device) -> None:
    """ModelOpt PTQ (calibrated static activation scales) exported as a ModelOpt HF checkpoint."""
    model, tokenizer = load_model_and_tokenizer(source, device)
    texts = calibration.read_calibration_file(opts.calib_file) if opts.calib_file else calibration.builtin_texts(tokenizer)
    batches = calibration.calibration_batches(texts, tokenizer, opts.calib_samples, opts.calib_seq_len)
    quantize_and_export(model, opts.context_precision, batches, engine_dir)
    copy_tokenizer(source, engine_dir)


def manifest_for(
    phase: str, source: SourceModel, source_fp: str, opts: BuildOptions, max_seq_len: int, engine_dir: Path
) -> EngineManifest:
    quantization = None
    if phase == "context":
        exported = json.loads((engine_dir / "hf_quant_config.json").read_text())["quantization"]
        quantization = {
            "quant_algo": exported["quant_algo"],
            "group_size": exported.get("group_size"),
            "activation_scale": "static per-tensor, calibrated (max)",
            "exclude_modules": exported.get("exclude_modules", []),
            "calibration": {
                "source": str(opts.calib_file) if opts.calib_file else "builtin",
                "samples": opts.calib_samples,
                "seq_len": opts.calib_seq_len,
            },
        }
    return EngineManifest(
        phase=phase,
        precision=opts.context_precision if phase == "context" else "bf16",
        architecture=source.architecture,
        model_type=source.model_type,
        checkpoint_format="modelopt_hf" if phase == "context" else "hf",
        kv_cache=source.kv_layout(opts.block_size),
        max_seq_len=max_seq_len,
        source_fingerprint=source_fp,
        source_path=str(source.path.resolve()),
        tools=tool_versions(),
        quantization=quantization,
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    )


def tool_versions() -> dict[str, str]:
    versions = {}
    for dist in ("trtllm-mixquant", "torch", "transformers", "nvidia-modelopt", "tensorrt-llm"):
        try:
            versions[dist] = version(dist)
        except PackageNotFoundError:
            versions[dist] = "not installed"
    return versions
