"""Per-key rate limit: past the burst, 429 with Retry-After; other keys are not slowed."""

from __future__ import annotations

from tests.conftest import Api, running_backend


def test_a_key_past_its_burst_gets_429_with_retry_after(tmp_path) -> None:
    with running_backend(
        "sqlite", tmp_path, rate_limit_per_second=0.5, rate_limit_burst=3
    ) as backend:
        busy = Api(backend.client, backend.new_project_key())
        calm = Api(backend.client, backend.new_project_key())

        statuses = [busy.get("/v1/jobs").status_code for _ in range(5)]
        assert statuses[:3] == [200, 200, 200]
        assert statuses[3:] == [429, 429]

        refused = busy.get("/v1/jobs")
        assert refused.json()["error"]["code"] == "rate_limited"
        # 1 request at 0.5/s refills in 2 s; Retry-After is whole seconds, rounded up.
        assert 1 <= int(refused.headers["Retry-After"]) <= 2

        assert calm.get("/v1/jobs").status_code == 200


def test_the_limit_refills_with_time() -> None:
    from service.auth.rate_limit import RateLimiter

    now = [0.0]
    limiter = RateLimiter(rate=2.0, burst=1, clock=lambda: now[0])
    assert limiter.acquire("k") == 0.0
    assert limiter.acquire("k") == 0.5
    now[0] += 0.5
    assert limiter.acquire("k") == 0.0


def test_no_limit_when_off() -> None:
    from service.auth.rate_limit import RateLimiter

    limiter = RateLimiter(rate=0.0, burst=1)
    assert all(limiter.acquire("k") == 0.0 for _ in range(1000))
