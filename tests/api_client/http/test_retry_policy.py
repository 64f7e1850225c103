"""The one rule for sending a POST again, ``may_resend(outcome)``, over a table of outcomes; no server.

Each row is one attempt's outcome and what must follow: resend (after which wait), ask the
usage logs, or give up (with which note). The same rule runs through the stand-in in
tests/api_client/api/test_faults.py and test_tracing.py; here every branch is pinned alone.
"""

from __future__ import annotations

import pytest

from api_client.http.retry import (
    MAX_LOG_RESENDS,
    Action,
    Outcome,
    Reach,
    RetryPolicy,
    Verdict,
    may_resend,
)

POLICY = RetryPolicy(max_retries=3, base_delay=0.5, max_delay=8.0, max_retry_after=60.0, retry_window=10.0)
SOON, LATE = 1.0, 30.0  # seconds from sending: within and past the retry window

RESEND, ASK, GIVE_UP = Action.RESEND, Action.ASK_LOGS, Action.GIVE_UP

# (name, outcome, action, wait or None (not pinned), a fragment of the note or "")
TABLE = [
    # Answers no resend can change.
    ("400 refused", Outcome(status=400, elapsed=SOON), GIVE_UP, 0.0, ""),
    ("401 bad key", Outcome(status=401, elapsed=SOON), GIVE_UP, 0.0, ""),
    ("402 no credits", Outcome(status=402, elapsed=SOON), GIVE_UP, 0.0, ""),
    ("404 wrong base", Outcome(status=404, elapsed=SOON), GIVE_UP, 0.0, ""),
    ("422 invalid", Outcome(status=422, elapsed=SOON), GIVE_UP, 0.0, ""),
    ("302 redirect", Outcome(status=302, elapsed=SOON), GIVE_UP, 0.0, ""),
    ("501 not implemented", Outcome(status=501, elapsed=SOON), GIVE_UP, 0.0, ""),
    # Refused: resent whenever they come, after Retry-After or the backoff.
    ("429 with Retry-After", Outcome(status=429, elapsed=SOON, retry_after=2.0), RESEND, 2.0, ""),
    ("429 late is still refused", Outcome(status=429, elapsed=LATE, retry_after=0.0), RESEND, 0.0, ""),
    ("503 late without Retry-After", Outcome(status=503, elapsed=LATE), RESEND, None, ""),
    ("429 asks too long", Outcome(status=429, elapsed=SOON, retry_after=3600.0), GIVE_UP, 0.0,
     "asked to retry after 3600 s, longer than the 60 s"),
    ("429 retries used up", Outcome(status=429, elapsed=SOON, retries=3), GIVE_UP, 0.0, ""),
    # 500, 502, 504: soon, not processed; late, the API may have worked (and billed).
    ("500 soon", Outcome(status=500, elapsed=SOON), RESEND, None, ""),
    ("502 soon, Retry-After", Outcome(status=502, elapsed=SOON, retry_after=1.5), RESEND, 1.5, ""),
    ("504 soon, retries used up", Outcome(status=504, elapsed=SOON, retries=3), GIVE_UP, 0.0, ""),
    ("500 late", Outcome(status=500, elapsed=LATE), ASK, 0.0, "came 30 s after sending"),
    ("504 late, retries used up", Outcome(status=504, elapsed=LATE, retries=3), ASK, 0.0, "billed"),
    # No answer: how far did it get?
    ("connection refused", Outcome(reach=Reach.NEVER, elapsed=SOON), RESEND, None, ""),
    ("never connected, late", Outcome(reach=Reach.NEVER, elapsed=LATE), RESEND, None, ""),
    ("never connected, retries used up", Outcome(reach=Reach.NEVER, retries=3), GIVE_UP, 0.0, ""),
    ("TLS check failed", Outcome(reach=Reach.NEVER, fixable=False), GIVE_UP, 0.0, ""),
    ("dropped soon", Outcome(reach=Reach.DROPPED, elapsed=SOON), RESEND, None, ""),
    ("dropped late", Outcome(reach=Reach.DROPPED, elapsed=LATE), ASK, 0.0, "connection dropped 30 s after"),
    ("read timeout", Outcome(reach=Reach.RECEIVED, elapsed=SOON), ASK, 0.0, ""),
    ("answer broke off", Outcome(reach=Reach.RECEIVED, elapsed=LATE, retries=3), ASK, 0.0, ""),
    ("answer too large", Outcome(reach=Reach.RECEIVED, fixable=False), GIVE_UP, 0.0, ""),
    # The usage logs' verdict, once asked.
    ("logs: billed", Outcome(status=500, elapsed=LATE, verdict=Verdict.SUCCEEDED), GIVE_UP, 0.0, ""),
    ("logs: no row", Outcome(reach=Reach.RECEIVED, verdict=Verdict.UNKNOWN), GIVE_UP, 0.0, ""),
    ("logs: failed", Outcome(reach=Reach.RECEIVED, verdict=Verdict.FAILED), RESEND, 0.0, ""),
    ("logs: failed, retries used up", Outcome(status=504, elapsed=LATE, retries=3, verdict=Verdict.FAILED),
     RESEND, 0.0, ""),
    ("logs: failed again, resends used up",
     Outcome(reach=Reach.RECEIVED, verdict=Verdict.FAILED, log_resends=MAX_LOG_RESENDS), GIVE_UP, 0.0, ""),
]


@pytest.mark.parametrize(("outcome", "action", "wait", "note"), [row[1:] for row in TABLE],
                         ids=[row[0] for row in TABLE])
def test_may_resend_decides_each_outcome(outcome, action, wait, note):
    decision = may_resend(outcome, POLICY, jitter=0.5)
    assert decision.action is action
    if wait is not None:
        assert decision.wait == pytest.approx(wait)
    assert note in decision.note
    if action is not RESEND:
        assert decision.wait == 0.0


def test_a_resend_on_the_logs_word_is_at_once_and_counted_apart():
    decision = may_resend(Outcome(reach=Reach.RECEIVED, verdict=Verdict.FAILED), POLICY)
    assert decision.by_logs and decision.ambiguous and decision.wait == 0.0
    backoff = may_resend(Outcome(status=503, elapsed=SOON), POLICY)
    assert not backoff.by_logs and not backoff.ambiguous


def test_every_outcome_that_may_have_billed_is_never_resent_without_the_logs():
    # The promise in one line: a POST the API may have processed goes again only on a failed row.
    for name, outcome, action, _, _ in TABLE:
        decision = may_resend(outcome, POLICY)
        if decision.ambiguous and action is RESEND:
            assert outcome.verdict is Verdict.FAILED, name


@pytest.mark.parametrize("retries", [0, 1, 2, 3, 4, 6])
def test_backoff_grows_is_capped_and_jittered_within_half_to_full(retries):
    ceiling = min(POLICY.max_delay, POLICY.base_delay * 2**retries)
    policy = RetryPolicy(max_retries=10)
    low = may_resend(Outcome(status=503, retries=retries), policy, jitter=0.0)
    high = may_resend(Outcome(status=503, retries=retries), policy, jitter=1.0)
    assert low.wait == pytest.approx(ceiling / 2) and high.wait == pytest.approx(ceiling)
    for _ in range(20):  # the real jitter stays within the same bounds
        wait = may_resend(Outcome(status=503, retries=retries), policy).wait
        assert ceiling / 2 <= wait <= ceiling


def test_a_policy_without_retries_gives_up_at_once_but_still_asks_the_logs():
    never = RetryPolicy(max_retries=0)
    assert may_resend(Outcome(status=503), never).action is GIVE_UP
    assert may_resend(Outcome(reach=Reach.NEVER), never).action is GIVE_UP
    assert may_resend(Outcome(reach=Reach.RECEIVED), never).action is ASK


def test_the_retry_window_is_the_policys():
    wide = RetryPolicy(retry_window=60.0)
    assert may_resend(Outcome(status=500, elapsed=LATE), wide).action is RESEND
    assert may_resend(Outcome(reach=Reach.DROPPED, elapsed=LATE), wide).action is RESEND
