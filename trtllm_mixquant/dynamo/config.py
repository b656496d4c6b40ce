"""A Dynamo worker's options: which role, which engine, where it registers. Importing this module
imports neither torch nor Dynamo, so `--help` stays fast.

Dynamo's own options keep Dynamo's names and environment variables (`--namespace` / DYN_NAMESPACE,
`--discovery-backend` / DYN_DISCOVERY_BACKEND, ...), so an operator's settings for other Dynamo
workers apply to ours unchanged.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

from trtllm_mixquant.engine.config import EngineConfig, add_engine_arguments, engine_config_from_args

ROLES = ("context", "generation")
COMPONENTS = {"context": "context", "generation": "generation"}  # the Dynamo component each role serves
MODE_ANNOTATION = "mode:"  # nvext.annotations entry that picks a request's precision, e.g. "mode:bf16"


@dataclass(frozen=True)
class DynamoWorkerConfig:
    engine: EngineConfig
    role: str  # context (prefill worker) or generation (decode worker)
    namespace: str = "dynamo"
    served_model_name: str | None = None  # None: the engine folder's name
    discovery_backend: str = "etcd"
    request_plane: str = "tcp"
    event_plane: str | None = None  # None: Dynamo's default (zmq)
    hold_seconds: float = 60.0  # context: how long prefilled KV waits for its decode worker to read it
    tool_call_parser: str | None = "hermes"  # the shipped model writes <tool_call>{json}</tool_call>
    reasoning_parser: str | None = None

    def __post_init__(self):
        if self.role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)} (got {self.role!r})")
        if self.hold_seconds <= 0:
            raise ValueError(f"hold_seconds must be positive (got {self.hold_seconds})")

    @property
    def model_name(self) -> str:
        return self.served_model_name or self.engine.engine_dir.resolve().name

    @property
    def component(self) -> str:
        return COMPONENTS[self.role]


def add_worker_arguments(p: argparse.ArgumentParser) -> None:
    env = os.environ.get
    p.add_argument("engine_dir", type=Path, help="build.py output folder (NAME/context, NAME/generation)")
    p.add_argument("--runtime", choices=("dynamo",), default="dynamo", help="the distributed runtime to join")
    p.add_argument("--role", choices=ROLES, required=True,
                   help="context: quantized prefill, holds the KV for its decode worker (a Dynamo prefill worker); "
                        "generation: reads that KV, finishes the prompt and decodes in BF16 (a decode worker)")
    p.add_argument("--served-model-name", default=None, help="model id clients ask for (default: the folder name)")
    p.add_argument("--namespace", default=env("DYN_NAMESPACE", "dynamo"), help="Dynamo namespace (DYN_NAMESPACE)")
    p.add_argument("--discovery-backend", choices=("kubernetes", "etcd", "file", "mem"),
                   default=env("DYN_DISCOVERY_BACKEND", "etcd"),
                   help="how workers and the frontend find each other (DYN_DISCOVERY_BACKEND); file: one host, "
                        "a folder in DYN_FILE_KV")
    p.add_argument("--request-plane", choices=("tcp", "nats"), default=env("DYN_REQUEST_PLANE", "tcp"),
                   help="DYN_REQUEST_PLANE")
    p.add_argument("--event-plane", choices=("zmq", "nats"), default=env("DYN_EVENT_PLANE"),
                   help="how KV events reach the router (DYN_EVENT_PLANE; default zmq)")
    p.add_argument("--hold-seconds", type=float, default=60.0,
                   help="context: seconds prefilled KV waits for its decode worker before it is freed")
    p.add_argument("--tool-call-parser", default="hermes", help="Dynamo's parser for the model's tool calls")
    p.add_argument("--reasoning-parser", default=None, help="Dynamo's parser for the model's reasoning, if any")
    add_engine_arguments(p)


def worker_config_from_args(args: argparse.Namespace) -> DynamoWorkerConfig:
    return DynamoWorkerConfig(engine_config_from_args(args, args.engine_dir), args.role, args.namespace,
                              args.served_model_name, args.discovery_backend, args.request_plane, args.event_plane,
                              args.hold_seconds, args.tool_call_parser, args.reasoning_parser)
