"""Run the benchmark suite: ``python -m bench [--quick] [--only GROUP ...]``."""

from bench.runner import main

raise SystemExit(main())
