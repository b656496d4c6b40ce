"""KV-cache transports between workers: the interface (`base.KVTransport`, `base.PeerInfo`), NIXL
(`nixl`: one-sided UCX writes, the library TensorRT-LLM's cache transceiver and Dynamo use) and
torch.distributed (`torch_dist`: gloo or NCCL send/recv, the fallback where NIXL is missing).

`TRANSPORTS` names them; `resolve_transport` turns a user's choice ("auto", a name, or an import
path "package.module:Class" of a transport of one's own) into the import path every worker loads,
so a transport registered by a test or a plug-in reaches worker processes without any change to them.
"""

from __future__ import annotations

from trtllm_mixquant.registry import Registry

TRANSPORTS = Registry("KV transport", {"nixl": "trtllm_mixquant.transfer.nixl:NixlKVTransport",
                                       "torch": "trtllm_mixquant.transfer.torch_dist:TorchDistKVTransport"})


def resolve_transport(kind: str) -> str:
    """"auto" picks NIXL where it is installed, torch.distributed otherwise. Returns an import path."""
    if kind == "auto":
        kind = "nixl" if TRANSPORTS.resolve("nixl").available() else "torch"
    target = kind if ":" in kind else TRANSPORTS.target(kind)
    if not TRANSPORTS.resolve(target).available():
        raise ValueError(f"the KV transport {kind!r} cannot run here: its library is not installed"
                         + (" (pip install nixl)" if kind == "nixl" else ""))
    return target
