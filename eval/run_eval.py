#!/usr/bin/env python
"""Evaluate checkpoints on the six spatial benchmarks (one process per device; see eval/run_eval.sh).

    python eval/run_eval.py --model PATH [--model NAME=PATH ...] --data-root DIR --output-dir OUT \
        [--benchmarks all] [--prompt-kind thinking|direct|official] [--num-frames 32] \
        [--min-pixels 12544] [--max-pixels 401408] [--batch-size 4] [--max-new-tokens 1024] \
        [--scorer official|spatialladder] [--limit N] [--skip-missing-media]

Launched by ``accelerate launch`` / ``torchrun`` it runs as one rank of the job (RANK / WORLD_SIZE).
"""

from __future__ import annotations

import sys

from spatialladder.evaluation.runner import main

if __name__ == "__main__":
    sys.exit(main())
