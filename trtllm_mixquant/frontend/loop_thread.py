"""An asyncio loop in a daemon thread, for hosts that are not asyncio themselves: command-line tools
that read input synchronously (so that Ctrl-C and Ctrl-D behave as a terminal user expects) and
Triton's Python backend, whose `execute` is called from its own thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any


class LoopThread:
    def __init__(self):
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name="engine-loop", daemon=True).start()

    def run(self, coro) -> Any:
        """Run `coro` on the loop and wait for it; Ctrl-C cancels it (and is raised again)."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result()
        except KeyboardInterrupt:
            future.cancel()
            raise

    def submit(self, coro) -> asyncio.Future:
        """Start `coro` on the loop without waiting."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def iterate(self, agen: AsyncIterator) -> Iterator:
        """An async generator's items, one at a time, from this thread."""
        while True:
            try:
                yield self.run(agen.__anext__())
            except StopAsyncIteration:
                return
