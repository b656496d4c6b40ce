"""Write the Triton model repository of an engine pair: `mixquant` (decoupled: generate,
generate_stream, gRPC streaming) and `mixquant_infer` (KServe infer), both Python-backend models
over the same engines. Each model's `1/model.py` imports our model class, so the repository holds
configuration only and works wherever the package is installed (NVIDIA's Triton container, or the
stub environment `trtllm-mixquant triton` prepares)."""

from __future__ import annotations

import os
from pathlib import Path

from trtllm_mixquant.triton.tensors import config_pbtxt

MODELS = {"mixquant": True, "mixquant_infer": False}  # name -> decoupled
SHIM = '''"""Triton loads this file; the model lives in the trtllm_mixquant package."""

from trtllm_mixquant.triton.model import TritonPythonModel  # noqa: F401
'''


def write_repository(engine_dir: Path, output: Path, parameters: dict[str, str] | None = None,
                     execution_env: Path | None = None, models: dict[str, bool] = MODELS) -> Path:
    """engine_dir is written relative to the repository when it lies beside or below it (so a
    repository and its engines can move together); execution_env: the stub's Python environment
    (`EXECUTION_ENV_PATH`), for tritonserver builds whose Python is not the one the package is in."""
    output.mkdir(parents=True, exist_ok=True)
    engine = Path(os.path.relpath(engine_dir.resolve(), output.resolve()))
    if engine.parts[:2] == ("..", ".."):
        engine = engine_dir.resolve()
    params = {"engine_dir": str(engine), "topology": "colocated", **(parameters or {})}
    if execution_env is not None:
        params["EXECUTION_ENV_PATH"] = str(execution_env)
    for name, decoupled in models.items():
        (output / name / "1").mkdir(parents=True, exist_ok=True)
        (output / name / "config.pbtxt").write_text(config_pbtxt(name, decoupled, params))
        (output / name / "1" / "model.py").write_text(SHIM)
    return output
