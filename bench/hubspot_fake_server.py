"""The project's HubSpot fake as its own process, for benchmarks. Prints its URL on the first line.

It starts holding the companies of ``--accounts`` accounts (``acct-0``..., with ``pulse_account_id`` set) and
Pulse's properties. ``GET /_bench/writes`` lists, per batch write received, its wall-clock time, body size and
each input's account id with its ``pulse_last_response_at``; ``GET /_bench/violations`` the contract breaches.

Usage: python bench/hubspot_fake_server.py [--accounts 1000]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time

from fastapi.responses import JSONResponse

from crm_sync.domain.properties import property_defs
from pulse_shared.testing.fake_hubspot import FakeHubSpot, HubSpotCall
from pulse_shared.testing.server import ThreadedServer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=1000)
    args = parser.parse_args()
    hubspot = FakeHubSpot()
    for d in property_defs("pulse_account_id", write_comments=False):
        hubspot.properties[d.name] = {"name": d.name, "type": d.type, "hasUniqueValue": d.unique, "groupName": "pulse"}
    hubspot.groups["pulse"] = {"name": "pulse", "label": "Pulse"}
    for i in range(args.accounts):
        hubspot.add_company(pulse_account_id=f"acct-{i}")
    writes: list[tuple[float, int, list[tuple[str, str | None]]]] = []

    def record(call: HubSpotCall) -> None:
        writes.append((time.time(), call.size, [(item["id"], item["properties"].get("pulse_last_response_at"))
                                                 for item in call.body["inputs"]]))

    hubspot.on_write = record
    app = hubspot.app()

    @app.get("/_bench/writes")
    async def bench_writes() -> JSONResponse:
        return JSONResponse(writes)

    @app.get("/_bench/violations")
    async def violations() -> JSONResponse:
        return JSONResponse(hubspot.violations)

    hubspot.server = ThreadedServer(app).start()
    sys.stdout.write(f"{hubspot.url}\n")
    sys.stdout.flush()
    threading.Event().wait()


if __name__ == "__main__":
    main()
