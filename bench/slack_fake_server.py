"""The project's Slack fake as its own process, for benchmarks (so its timing does not share the load
generator's interpreter). Prints its URL on the first line; ``GET /_bench/posts`` lists each accepted post's
alert id and the wall-clock time the fake received it.

Usage: python bench/slack_fake_server.py
"""

from __future__ import annotations

import sys
import threading

from fastapi.responses import JSONResponse

from pulse_shared.testing.fake_slack import FakeSlack
from pulse_shared.testing.server import ThreadedServer


def main() -> None:
    slack = FakeSlack()
    # Every bench owner is on Slack: csm-N@bench.example is user U0BENCHN.
    slack.users_by_email = _Directory()  # type: ignore[assignment]
    app = slack.app()

    @app.get("/_bench/posts")
    async def posts() -> JSONResponse:
        return JSONResponse([[p.body["metadata"]["event_payload"]["alert_id"], p.wall] for p in slack.posts()])

    @app.get("/_bench/violations")
    async def violations() -> JSONResponse:
        return JSONResponse(slack.violations)

    slack.server = ThreadedServer(app).start()
    sys.stdout.write(f"{slack.url}\n")
    sys.stdout.flush()
    threading.Event().wait()


class _Directory(dict[str, str]):
    def get(self, key: str, default: str | None = None) -> str | None:  # type: ignore[override]
        if key.startswith("csm-") and key.endswith("@bench.example"):
            return "U0BENCH" + key.removeprefix("csm-").removesuffix("@bench.example")
        return default


if __name__ == "__main__":
    main()
