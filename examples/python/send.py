#!/usr/bin/env python3
"""Commits COUNT transactions through a txgate gateway, one after the other, each of two records
on TOPIC, and prints one JSON line per committed transaction.

    python3 send.py http://127.0.0.1:8080 demo 10

Environment: TXGATE_API_KEY (a bearer token, when the gateway has API keys on),
TXGATE_GIVE_UP_MS (per transaction, default 120000).
Exit status: 0 all committed, 1 a definitive refusal (4xx), 2 gave up (outcome unknown), 64 usage.
"""

import json
import os
import sys

from txgate_client import GaveUp, Problem, Retry, send_transaction


def main(argv: list) -> int:
    if len(argv) != 4 or not argv[3].isdigit():
        print("usage: send.py GATEWAY_URL TOPIC COUNT", file=sys.stderr)
        return 64
    url, topic, count = argv[1], argv[2], int(argv[3])
    give_up_ms = os.environ.get("TXGATE_GIVE_UP_MS", "120000")
    if not give_up_ms.isdigit() or int(give_up_ms) <= 0:
        print("send.py: TXGATE_GIVE_UP_MS must be a positive number of milliseconds", file=sys.stderr)
        return 64

    for n in range(count):

        def log_retry(r: Retry, n: int = n) -> None:
            print(
                f"send: transaction {n} attempt {r.attempt}: {r.answer}; retrying in {round(r.delay_s * 1000)} ms "
                f"(Retry-After {round(r.retry_after_s * 1000)} ms)",
                file=sys.stderr,
                flush=True,
            )

        # Both records commit together or not at all.
        records = [
            {"topic": topic, "key": f"tx-{n}", "value": {"n": n, "part": part, "client": "python"}} for part in (0, 1)
        ]
        try:
            c = send_transaction(
                url,
                records,
                api_key=os.environ.get("TXGATE_API_KEY") or None,
                give_up_s=int(give_up_ms) / 1000,
                on_retry=log_retry,
            )
        except Problem as p:
            print(f"send: transaction {n} refused, nothing of it was written: {p}", file=sys.stderr)
            print(p.body.decode("utf-8", "replace"), file=sys.stderr)
            return 1
        except GaveUp as g:
            print(f"send: transaction {n}: {g}", file=sys.stderr)
            return 2
        line = {"n": n, "idempotencyKey": c.idempotency_key, "attempts": c.attempts, "replayed": c.replayed, "records": c.records}
        # flush: a reader of the pipe sees each transaction as soon as it is committed
        print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
