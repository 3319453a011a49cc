"""Run the vendor simulators in the foreground: ``python -m latam_messaging.simulators``."""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from latam_messaging.simulators.framework import SimulatorServer
from latam_messaging.vendors import VENDORS


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", action="append", choices=sorted(VENDORS), help="run only these vendors")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--step-seconds", type=float, default=1.0, help="time between two status steps")
    parser.add_argument(
        "--webhook-base",
        default=None,
        help="receiver URL with {vendor}, e.g. http://127.0.0.1:8090/webhooks/{vendor}/SECRET",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    servers = []
    for name in args.only or sorted(VENDORS):
        url = args.webhook_base.format(vendor=name) if args.webhook_base else None
        sim = VENDORS[name].simulator_class()(seed=args.seed, webhook_url=url, step_seconds=args.step_seconds)
        servers.append(SimulatorServer(sim, host=args.host).start())
        logging.info("%s simulator on %s (webhooks to %s)", name, servers[-1].url, url or "nowhere")

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    for server in servers:
        server.stop()


if __name__ == "__main__":
    main()
