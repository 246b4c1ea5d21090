"""``make bench`` / ``python -m bench [ingress|load|burst] [options]``: the benchmarks.

- ``ingress``: latency of ``POST /telegram/webhook`` (verify the secret, enqueue), no worker;
- ``load``: the whole product under N closed-loop users (``bench/load.py``; ``--help``);
- ``burst``: N users writing at the same moment with Telegram's flood limits on.

With no argument both run with their defaults. Nothing here is part of ``make test``.
"""

from __future__ import annotations

import logging
import sys

from bench import ingress, load
from shared.logging import configure_logging


def main() -> None:
    """Dispatch to the benchmark named on the command line (all when none)."""
    configure_logging("bench", "WARNING")
    logging.getLogger("bench").setLevel(logging.INFO)
    args = sys.argv[1:]
    if not args or args[0] == "ingress":
        ingress.main()
    if not args or args[0] == "load":
        load.main(args[1:])
    if not args or args[0] == "burst":
        load.burst_main(args[1:])


if __name__ == "__main__":
    main()
