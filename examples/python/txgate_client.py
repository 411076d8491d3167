"""Send one atomic Kafka transaction through a txgate gateway (POST /v1/transactions), safely.

Every attempt of one transaction carries the same Idempotency-Key and the same body bytes; pauses
grow exponentially with full jitter and honour Retry-After; a definitive answer or a deadline
ends it. Standard library only (Python 3.8+).
"""

from __future__ import annotations

import email.utils
import http.client
import json
import random
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Optional


@dataclass
class Committed:
    """The gateway answered 200: every record is committed, at these positions (request order)."""

    idempotency_key: str
    # [{"topic": ..., "partition": ..., "offset": "<decimal string>"}], offsets being 64-bit
    records: list
    attempts: int
    # True when the answer came from an earlier attempt's outcome (Idempotent-Replayed: true),
    # e.g. the first attempt committed but its answer was lost.
    replayed: bool


class Problem(Exception):
    """A definitive refusal (a 4xx other than 408, 409 and 429): nothing of the request was
    written, and sending it again would be refused again."""

    def __init__(self, status: int, code: Optional[str], detail: Optional[str], body: bytes):
        super().__init__(f"{status} {code}: {detail}")
        self.status, self.code, self.detail, self.body = status, code, detail, body


class GaveUp(Exception):
    """No definitive answer before the deadline. The transaction may or may not have been
    written: retrying later with the same key and body (within the gateway's retention window,
    24 h by default) learns its outcome without writing it twice."""

    def __init__(self, idempotency_key: str, attempts: int, last: str):
        super().__init__(
            f"gave up after {attempts} attempts (last: {last}); the outcome is unknown: retry later "
            f"with Idempotency-Key {idempotency_key} and the same body to learn it"
        )
        self.idempotency_key, self.attempts, self.last = idempotency_key, attempts, last


@dataclass
class Retry:
    """One retry about to happen, for logging."""

    idempotency_key: str
    attempt: int  # the attempt that failed, 1-based
    answer: str  # "503 TXGATE_NOT_READY", or the connection error
    retry_after_s: float
    delay_s: float


@dataclass
class _Answer:
    status: Optional[int] = None  # None: no HTTP answer (connection error, timeout)
    code: Optional[str] = None
    detail: Optional[str] = None
    body: bytes = b""
    retry_after_s: float = 0.0
    replayed: bool = False
    error: Optional[str] = None

    def __str__(self) -> str:
        if self.error is not None:
            return f"connection error: {self.error}"
        return f"{self.status} {self.code}" if self.code else str(self.status)


def retryable(status: int) -> bool:
    """408 (the request did not arrive in time), 409 (this key's first attempt is still running),
    429 (a proxy's rate limit) and every 5xx either wrote nothing or left the outcome open (504,
    500 TXGATE_INTERNAL); with the same key a retry is safe in both cases. Any other status is
    definitive: nothing was written, and the same request would be refused again."""
    return status in (408, 409, 429) or status >= 500


def send_transaction(
    base_url: str,
    records: list,
    *,
    api_key: Optional[str] = None,
    give_up_s: float = 120.0,
    # The gateway may take its retry deadline (30 s) plus its acquire timeout (10 s) before
    # answering 504; an attempt cut short is simply retried with the same key.
    attempt_timeout_s: float = 60.0,
    initial_backoff_s: float = 0.1,
    max_backoff_s: float = 3.0,
    on_retry: Optional[Callable[[Retry], None]] = None,
) -> Committed:
    """Commits `records` (dicts as in the HTTP API: topic, key, value, ...) as one transaction.

    Returns Committed on 200; raises Problem on a definitive refusal, GaveUp at the deadline."""
    # One key and one body per logical transaction, reused byte for byte on every retry: the
    # gateway ties a key to its first body (a different body under the same key is a 422).
    key = str(uuid.uuid4())
    body = json.dumps({"records": records}).encode("utf-8")
    deadline = time.monotonic() + give_up_s
    attempt = 0
    while True:
        attempt += 1
        timeout = max(0.001, min(attempt_timeout_s, deadline - time.monotonic()))
        answer = _attempt(base_url, key, body, api_key, timeout)
        if answer.status == 200:
            try:
                positions = json.loads(answer.body)["records"]
                if len(positions) == len(records):
                    return Committed(key, positions, attempt, answer.replayed)
            except (ValueError, KeyError, TypeError):
                pass
            # A 200 whose body did not arrive whole: the transaction committed, and a retry
            # with the same key replays its answer.
            answer = _Answer(error="unreadable 200 body")
        if answer.status is not None and not retryable(answer.status):
            raise Problem(answer.status, answer.code, answer.detail, answer.body)
        delay = answer.retry_after_s + _full_jitter(attempt, initial_backoff_s, max_backoff_s)
        if time.monotonic() + delay > deadline:
            raise GaveUp(key, attempt, str(answer))
        if on_retry is not None:
            on_retry(Retry(key, attempt, str(answer), answer.retry_after_s, delay))
        time.sleep(delay)


def _attempt(base_url: str, key: str, body: bytes, api_key: Optional[str], timeout: float) -> _Answer:
    headers = {"Content-Type": "application/json", "Idempotency-Key": key}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    request = urllib.request.Request(base_url.rstrip("/") + "/v1/transactions", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return _answer(response.status, response.headers, response.read())
    except urllib.error.HTTPError as e:  # every status but 2xx; it is also the response
        try:
            data = e.read()
        except (OSError, http.client.HTTPException):
            data = b""  # the status is known; only the problem's text is lost
        finally:
            e.close()
        return _answer(e.code, e.headers, data)
    except (OSError, http.client.HTTPException) as e:
        # URLError (refused, DNS), resets, timeouts and truncated answers: nothing definitive
        return _Answer(error=f"{type(e).__name__}: {e}")


def _answer(status: int, headers: Any, data: bytes) -> _Answer:
    answer = _Answer(
        status=status,
        body=data,
        retry_after_s=_parse_retry_after(headers.get("Retry-After")),
        replayed=headers.get("Idempotent-Replayed") == "true",
    )
    if status != 200:
        try:
            problem = json.loads(data)
            answer.code, answer.detail = problem.get("code"), problem.get("detail")
        except (ValueError, AttributeError):
            pass
    return answer


def _parse_retry_after(value: Optional[str]) -> float:
    """Retry-After as seconds: delay-seconds or an HTTP date (RFC 9110, 10.2.3); 0 if absent or invalid."""
    if not value:
        return 0.0
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        at = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 0.0
    if at is None:  # Python before 3.10 returns None for an invalid date
        return 0.0
    return max(0.0, at.timestamp() - time.time())


# SystemRandom: no seed shared between processes, so clients that failed together spread out.
_random = random.SystemRandom()


def _full_jitter(attempt: int, initial_s: float, max_s: float) -> float:
    """A uniformly random pause in [0, min(max, initial * 2^(attempt-1))]."""
    return _random.uniform(0.0, min(max_s, initial_s * 2 ** min(attempt - 1, 30)))
