"""Post-training quantization of the context engine with NVIDIA ModelOpt.

ModelOpt inserts weight and input quantizers into every Linear (lm_head and embeddings excluded),
calibrates the static per-tensor activation scales by running the calibration batches, and exports
a ModelOpt Hugging Face checkpoint (`hf_quant_config.json`), the format TensorRT-LLM consumes.
The KV cache stays unquantized (BF16) so that it matches the generation engine's.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import time
import warnings
from pathlib import Path

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

# Our precision name -> (ModelOpt config attribute, quant_algo written in hf_quant_config.json).
PRECISIONS = {"nvfp4": ("NVFP4_DEFAULT_CFG", "NVFP4"), "fp8": ("FP8_DEFAULT_CFG", "FP8")}


@contextlib.contextmanager
def quiet_third_party():
    """ModelOpt's and transformers' notes a user cannot act on (ModelOpt's "transformers X is not
    tested" and quantizer counts, transformers' `torch_dtype` deprecation from inside ModelOpt), kept
    out of the build log: logged at debug level instead."""
    out = io.StringIO()
    loggers = [logging.getLogger(name) for name in ("modelopt", "transformers")]
    levels = [lg.level for lg in loggers]
    from transformers.utils import logging as hf_logging

    hf_level = hf_logging.get_verbosity()
    try:
        hf_logging.set_verbosity_error()
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(out):
            warnings.filterwarnings("ignore", message=r"transformers .* is not tested with current version of modelopt")
            warnings.filterwarnings("ignore", category=UserWarning, module=r"modelopt\.")
            yield
    finally:
        hf_logging.set_verbosity(hf_level)
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
        if out.getvalue().strip():
            log.debug("ModelOpt: %s", out.getvalue().strip())


def set_parameter_dtype(model: torch.nn.Module, dtype: torch.dtype) -> None:
    """Cast the parameters only: quantizer buffers (calibrated ranges) keep their FP32 values."""
    for param in model.parameters():
        param.data = param.data.to(dtype)


def quantize_and_export(
    model: torch.nn.Module, precision: str, batches: list[torch.Tensor], export_dir: Path
) -> dict:
    """Calibrate `model` (BF16) on `batches` ([1, T] token ids each), quantize it, export to `export_dir`.

    On a CPU the calibration passes run in float32: CPUs without native BF16 matrix units
    (AVX2-only, most AMD before Zen 4) emulate BF16 GEMMs hundreds of times slower than FP32
    (1,237 ms against 4 ms for a 512x512x2048 GEMM with oneDNN limited to AVX2), which made the
    shipped model's calibration take minutes. The weights go back to BF16 before the export, so
    every weight-derived tensor is what a BF16 calibration exports; only the activation ranges come
    from FP32 activations (within BF16 rounding of the BF16 ones). Returns `hf_quant_config.json`.
    """
    import torch
    from tqdm import tqdm

    with quiet_third_party():
        import modelopt.torch.quantization as mtq
        from modelopt.torch.export import export_hf_checkpoint

    config_name, quant_algo = PRECISIONS[precision]
    device = next(model.parameters()).device
    calibration_dtype = torch.float32 if device.type == "cpu" else torch.bfloat16

    def forward_loop(quant_model: torch.nn.Module) -> None:
        with torch.no_grad():
            for batch in tqdm(batches, desc=f"calibrate {precision}", unit="seq", leave=False):
                quant_model(batch.to(device))

    start = time.perf_counter()
    set_parameter_dtype(model, calibration_dtype)
    with quiet_third_party():
        mtq.quantize(model, getattr(mtq, config_name), forward_loop)
    set_parameter_dtype(model, torch.bfloat16)
    log.info("calibrated %s on %d sequences of %d tokens in %.1f s (%s on %s)", precision, len(batches),
             batches[0].shape[-1], time.perf_counter() - start, str(calibration_dtype).removeprefix("torch."), device)
    with quiet_third_party():
        export_hf_checkpoint(model, export_dir=str(export_dir))
    quant_config = json.loads((Path(export_dir) / "hf_quant_config.json").read_text())
    quantization = quant_config["quantization"]
    if quantization["quant_algo"] != quant_algo or quantization.get("kv_cache_quant_algo") is not None:
        raise RuntimeError(
            f"ModelOpt exported quant_algo={quantization['quant_algo']!r}, "
            f"kv_cache_quant_algo={quantization.get('kv_cache_quant_algo')!r}; expected {quant_algo!r} "
            "with an unquantized KV cache. This ModelOpt version changed its defaults."
        )
    log.info("exported %s checkpoint, excluded modules: %s", quant_algo, quantization.get("exclude_modules"))
    return quant_config
