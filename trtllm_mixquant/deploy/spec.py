"""What a deployment is made of, whatever the target: the engine pair (read and checked once), the
image, where the engines are stored, how many workers of each role on which GPUs.

The pair is checked before anything is written: both engines must share the KV layout (dtype,
tokens per block, heads), and a context engine whose checkpoint quantizes the KV cache (ModelOpt's
`kv_cache_quant_algo`) cannot hand its KV to a BF16 generation engine.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from trtllm_mixquant.engine.engine_dirs import EngineDirs, resolve_engine_dirs
from trtllm_mixquant.manifest import KVCacheLayout

# Node label set by NVIDIA's GPU feature discovery (gpu-operator) on every GPU node.
GPU_FAMILY_LABEL = "nvidia.com/gpu.family"
# NVFP4 GEMMs need Blackwell (sm_100+); FP8 runs from Hopper (sm_90) on; BF16 decodes anywhere.
GPU_FAMILY = {"nvfp4": "blackwell", "fp8": "hopper", "bf16": "hopper"}
IMAGE_ENGINES = "/opt/trtllm-mixquant/engines"  # where deploy/Dockerfile builds the shipped model's engines
PVC_MOUNT = "/engines"


class DeployError(ValueError):
    """The engines or the options cannot make this deployment (nothing was written)."""


@dataclass(frozen=True)
class Pool:
    """One role's workers: how many, GPUs each (tensor parallelism), on which nodes."""

    replicas: int = 1
    gpus: int = 1
    node_selector: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        if self.replicas < 1 or self.gpus < 1:
            raise DeployError(f"replicas and GPUs per worker must be at least 1 (got {self.replicas}, {self.gpus})")


@dataclass(frozen=True)
class DeploySpec:
    engine_dir: Path  # the build.py output folder (read here; the cluster sees `engine_path`)
    name: str  # resource name prefix and the served model id
    dirs: EngineDirs
    context: Pool
    generation: Pool
    image: str = "trtllm-mixquant:0.1.0"
    storage: str = "pvc:mixquant-engines"  # "pvc:CLAIM" (mounted at /engines) or "image" (baked into the image)
    namespace: str = "default"
    gpus_per_node: int = 8

    @property
    def engine_path(self) -> str:
        """The engine folder as the containers see it."""
        base = IMAGE_ENGINES if self.storage == "image" else PVC_MOUNT
        return f"{base}/{self.engine_dir.resolve().name}"

    @property
    def claim(self) -> str | None:
        return self.storage.split(":", 1)[1] if self.storage.startswith("pvc:") else None

    @property
    def layout(self) -> KVCacheLayout:
        return self.dirs.layout

    @property
    def precision(self) -> str:
        return self.dirs.precision


def make_spec(engine_dir: Path, name: str | None = None, context: Pool | None = None,
              generation: Pool | None = None, **options) -> DeploySpec:
    """Read and check the engine pair; pools default to one worker with one GPU, on the GPU family
    its precision needs (a context engine in NVFP4 on Blackwell nodes, FP8 and BF16 on Hopper)."""
    engine_dir = Path(engine_dir)
    try:
        dirs = resolve_engine_dirs(engine_dir)
    except ValueError as e:
        raise DeployError(str(e)) from None
    if dirs.context is None:
        raise DeployError(f"{engine_dir} has no context engine; build both with `python build.py --phase both`")
    kv_algo = json.loads((dirs.context / "hf_quant_config.json").read_text())["quantization"].get(
        "kv_cache_quant_algo") if (dirs.context / "hf_quant_config.json").is_file() else None
    if kv_algo:
        raise DeployError(f"the context engine quantizes its KV cache ({kv_algo}) and the generation engine keeps "
                          "it in BF16: they cannot share KV; rebuild with `python build.py --phase both` (which "
                          "leaves the KV cache unquantized)")
    context = context or Pool()
    generation = generation or Pool()
    if not context.node_selector:
        context = Pool(context.replicas, context.gpus, {GPU_FAMILY_LABEL: GPU_FAMILY[dirs.precision]})
    if not generation.node_selector:
        generation = Pool(generation.replicas, generation.gpus, {GPU_FAMILY_LABEL: GPU_FAMILY["bf16"]})
    storage = options.get("storage", "pvc:mixquant-engines")
    if storage != "image" and not (storage.startswith("pvc:") and len(storage) > 4):
        raise DeployError(f"storage must be 'image' or 'pvc:CLAIM' (got {storage!r})")
    name = name or engine_dir.resolve().name
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,40}[a-z0-9])?", name):
        raise DeployError(f"the name {name!r} must be lowercase letters, digits and '-' (a Kubernetes name); "
                          "pass --name")
    return DeploySpec(engine_dir, name, dirs, context, generation, **options)
