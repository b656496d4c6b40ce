"""Post-training quantization of the context engine with NVIDIA ModelOpt.

ModelOpt inserts weight and input quantizers into every Linear (lm_head and embeddings excluded),
calibrates the static per-tensor activation scales by running the calibration batches, and exports
a ModelOpt Hugging Face checkpoint (`hf_quant_config.json`), the format TensorRT-LLM consumes.
The KV cache stays unquantized (BF16) so that it matches the generation engine's.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from tqdm import tqdm

log = logging.getLogger(__name__)

# Our precision name -> (ModelOpt config attribute, quant_algo written in hf_quant_config.json).
PRECISIONS = {"nvfp4": ("NVFP4_DEFAULT_CFG", "NVFP4"), "fp8": ("FP8_DEFAULT_CFG", "FP8")}


def quantize_and_export(
    model: torch.nn.Module, precision: str, batches: list[torch.Tensor], export_dir: Path
) -> dict:
    """Calibrate `model` on `batches` ([1, T] token ids each), quantize it, export to `export_dir`.

    Returns the exported `hf_quant_config.json` contents.
    """
    import modelopt.torch.quantization as mtq
    from modelopt.torch.export import export_hf_checkpoint

    config_name, quant_algo = PRECISIONS[precision]
    device = next(model.parameters()).device

    def forward_loop(quant_model: torch.nn.Module) -> None:
        with torch.no_grad():
            for batch in tqdm(batches, desc=f"calibrate {precision}", unit="seq"):
                quant_model(batch.to(device))

    mtq.quantize(model, getattr(mtq, config_name), forward_loop)
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
