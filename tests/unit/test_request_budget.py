"""The bytes of requests a server holds are bounded: admitted against a budget before
they are parsed, given back when the call ends, or when a request that never reached its
handler is collected."""

from __future__ import annotations

import gc

from shared.request_budget import RequestBudget, RequestLimits


def test_requests_are_admitted_until_the_budget_is_spent_and_given_back_after() -> None:
    budget = RequestBudget(limit=10)
    first, second = budget.admit(6), budget.admit(4)
    assert first is not None and second is not None
    assert budget.admit(1) is None  # spent
    first.release()
    first.release()  # given back once only
    assert budget.in_flight == 4
    assert budget.admit(6) is not None


def test_one_request_larger_than_the_budget_is_admitted_when_nothing_else_is_held() -> None:
    budget = RequestBudget(limit=10)
    alone = budget.admit(50)
    assert alone is not None  # the request limit, not the budget, bounds a single call
    assert budget.admit(1) is None
    alone.release()
    assert budget.in_flight == 0


def test_a_ticket_nobody_released_is_given_back_when_collected() -> None:
    budget = RequestBudget(limit=10)
    ticket = budget.admit(8)
    assert budget.in_flight == 8
    del ticket
    gc.collect()
    assert budget.in_flight == 0


def test_limits_name_a_ceiling_per_method() -> None:
    limits = RequestLimits(default=100, by_method={"RecordExecutions": 1000})
    assert limits.ceiling("CreateScript") == 100
    assert limits.ceiling("RecordExecutions") == 1000
