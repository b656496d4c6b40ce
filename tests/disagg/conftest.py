"""Fixtures of the orchestrator tests: an event loop per module, and the tiny NVFP4 engine pair."""

from __future__ import annotations

import asyncio

import pytest


@pytest.fixture(scope="module")
def loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(scope="module")
def engines(tiny_engines):
    return tiny_engines("qwen3", "nvfp4")
