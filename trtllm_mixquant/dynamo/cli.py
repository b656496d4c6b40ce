"""`trtllm-mixquant worker --runtime dynamo --role context|generation ENGINE_DIR`: one Dynamo worker
process, as a pod runs it. Options are parsed before Dynamo or torch is imported (fast `--help`)."""

from __future__ import annotations

import argparse
import sys

from trtllm_mixquant.dynamo.config import DynamoWorkerConfig, add_worker_arguments, worker_config_from_args
from trtllm_mixquant.help_format import HelpFormatter

INSTALL = ("pip install ai-dynamo-runtime==1.6.1 && pip install --no-deps ai-dynamo==1.6.1 && "
           "pip install 'trtllm-mixquant[dynamo,nixl]'")
EPILOG = f"""\
Start Dynamo's frontend (python -m dynamo.frontend --router-mode kv), then one or more workers of each
role, on one host or many. On one host without etcd: DYN_DISCOVERY_BACKEND=file DYN_FILE_KV=<folder>
for every process. Ask for a request's precision with nvext.annotations ["mode:bf16"].
Install: {INSTALL}"""


def parse_worker_args(argv: list[str] | None) -> DynamoWorkerConfig:
    p = argparse.ArgumentParser(prog="trtllm-mixquant worker", formatter_class=HelpFormatter, epilog=EPILOG,
                                description="Serve one engine of a pair as an NVIDIA Dynamo worker: the context "
                                            "engine as a prefill worker, the generation engine as a decode worker.")
    add_worker_arguments(p)
    args = p.parse_args(argv)
    try:
        return worker_config_from_args(args)
    except ValueError as e:
        p.error(str(e))


def worker_main(argv: list[str]) -> int:
    config = parse_worker_args(argv)
    if not config.engine.engine_dir.is_dir():
        sys.exit(f"error: {config.engine.engine_dir} is not an engine folder; build one with "
                 "`trtllm-mixquant build` (or `python build.py`)")
    try:
        from dynamo.common.backend.run import run
    except ImportError:
        sys.exit(f"error: NVIDIA Dynamo is not installed. Install it with:\n  {INSTALL}")
    from trtllm_mixquant.dynamo.engine import MixQuantEngine

    async def factory(_argv):
        engine = MixQuantEngine(config)
        return engine, engine.worker_config()

    run(MixQuantEngine, engine_factory=factory)
    return 0
