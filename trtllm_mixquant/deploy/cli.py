"""`trtllm-mixquant deploy ENGINE_DIR --target dynamo|kubernetes|trtllm|all --output DIR`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from trtllm_mixquant.help_format import HelpFormatter

TRANSCEIVERS = ("NIXL", "UCX", "MPI", "DEFAULT")


def selector(text: str) -> dict[str, str]:
    pairs = [p.split("=", 1) for p in text.split(",") if p]
    if any(len(p) != 2 for p in pairs):
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE[,KEY=VALUE] (got {text!r})")
    return dict(pairs)


def add_deploy_arguments(p: argparse.ArgumentParser) -> None:
    """The options build.py shares (everything but the engine folder and the targets)."""
    g = p.add_argument_group("deployment")
    g.add_argument("--deploy-name", dest="name", default=None, help="resource prefix and model id (default: folder name)")
    g.add_argument("--image", default="trtllm-mixquant:0.1.0", help="our image (deploy/Dockerfile)")
    g.add_argument("--storage", default="pvc:mixquant-engines",
                   help="pvc:CLAIM (engines on a volume, mounted at /engines) or image (built into the image)")
    g.add_argument("--namespace", default="default")
    g.add_argument("--context-replicas", type=int, default=1)
    g.add_argument("--generation-replicas", type=int, default=1)
    g.add_argument("--context-gpus", type=int, default=1, help="GPUs per context worker (tensor parallel)")
    g.add_argument("--generation-gpus", type=int, default=1, help="GPUs per generation worker (tensor parallel)")
    g.add_argument("--context-nodes", type=selector, default={},
                   help="node selector KEY=VALUE (default: nvidia.com/gpu.family=blackwell for NVFP4, hopper for FP8)")
    g.add_argument("--generation-nodes", type=selector, default={},
                   help="node selector KEY=VALUE (default: nvidia.com/gpu.family=hopper)")
    g.add_argument("--gpus-per-node", type=int, default=8, help="TensorRT-LLM: servers wider than this span nodes")
    g.add_argument("--trtllm-image", default=None, help="TensorRT-LLM's image (default: the release Dynamo 1.6.1 pins)")
    g.add_argument("--kv-transceiver", choices=TRANSCEIVERS, default="NIXL", help="TensorRT-LLM's cache transceiver")


def deploy(args, engine_dir: Path, targets: list[str], output: Path) -> list[Path]:
    from trtllm_mixquant.deploy import trtllm
    from trtllm_mixquant.deploy.spec import Pool, make_spec
    from trtllm_mixquant.deploy.write import write

    spec = make_spec(engine_dir, args.name, Pool(args.context_replicas, args.context_gpus, args.context_nodes),
                     Pool(args.generation_replicas, args.generation_gpus, args.generation_nodes), image=args.image,
                     storage=args.storage, namespace=args.namespace, gpus_per_node=args.gpus_per_node)
    return write(spec, targets, output, trtllm_image=args.trtllm_image or trtllm.IMAGE,
                 transceiver=args.kv_transceiver)


def main(argv: list[str] | None = None) -> int:
    from trtllm_mixquant.deploy.write import TARGETS

    p = argparse.ArgumentParser(prog="trtllm-mixquant deploy", formatter_class=HelpFormatter,
                                description="Write what Kubernetes, NVIDIA Dynamo and TensorRT-LLM need to serve an "
                                            "engine pair: dynamo (a DynamoGraphDeployment of our workers), "
                                            "kubernetes (`serve` as Deployment, Service, ConfigMap, PDB), trtllm "
                                            "(trtllm-serve configs, launch.sh, LeaderWorkerSet manifests).")
    p.add_argument("engine_dir", type=Path, help="build.py output folder")
    p.add_argument("--target", choices=(*TARGETS, "all"), default="all")
    p.add_argument("--output", type=Path, default=None, help="folder to write (default: deploy/NAME)")
    add_deploy_arguments(p)
    args = p.parse_args(argv)
    from trtllm_mixquant.deploy.spec import DeployError

    targets = list(TARGETS) if args.target == "all" else [args.target]
    output = args.output or Path("deploy") / (args.name or args.engine_dir.resolve().name)
    try:
        written = deploy(args, args.engine_dir, targets, output)
    except DeployError as e:
        sys.exit(f"error: {e} (nothing was written)")
    for path in written:
        print(path)
    return 0
