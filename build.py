#!/usr/bin/env python3
"""Build the NVFP4/FP8 context engine and the BF16 generation engine. Run `python build.py --help`."""

import sys

from trtllm_mixquant.builder.cli import main

if __name__ == "__main__":
    sys.exit(main())
