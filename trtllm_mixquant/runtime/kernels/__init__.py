"""Triton kernels of the model runtime, each with a pure-PyTorch reference it is tested against.

Kernel modules import `triton`; import them by module (`kernels.paged_decode`) so that the
references and the rest of the runtime load without it.
"""

import os

INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"  # kernels run in Triton's CPU interpreter (tests)
