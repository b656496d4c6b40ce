#!/usr/bin/env bash
# TensorRT-LLM disaggregated serving of one engine pair on one host (not run here: TensorRT-LLM cannot be installed on our machines).
set -euo pipefail
HERE=$(dirname "$0")
ENGINES=${ENGINES:-engines/tiny-agent}
pids=()
CUDA_VISIBLE_DEVICES=0 trtllm-serve "$ENGINES/context" --host localhost --port 8001 --config "$HERE/context.yaml" &
pids+=($!)
CUDA_VISIBLE_DEVICES=1 trtllm-serve "$ENGINES/generation" --host localhost --port 8002 --config "$HERE/generation.yaml" &
pids+=($!)
trap 'kill "${pids[@]}"' EXIT
trtllm-serve disaggregated -c "$HERE/disagg-local.yaml" --server_start_timeout 1800 --request_timeout 600
