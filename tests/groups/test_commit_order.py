"""CommitOrder: a commit numbered lower than one stored for the same client is stale. No Ray."""

from raykafka.groups.commit_order import CommitOrder


def test_older_commits_of_a_client_are_stale_others_are_not():
    order = CommitOrder()
    assert not order.is_stale("a", 1)
    order.stored("a", 2)
    assert order.is_stale("a", 1) and order.is_stale("a", 2) and not order.is_stale("a", 3)
    assert not order.is_stale("b", 1)  # another client has its own numbers
    order.stored("a", 1)  # a late store never lowers what is known
    assert order.is_stale("a", 2)


def test_bounded_forgets_the_least_recent_clients():
    order = CommitOrder(max_clients=2)
    order.stored("a", 5)
    order.stored("b", 5)
    order.stored("a", 6)  # a is recent again
    order.stored("c", 5)
    assert order.is_stale("a", 6) and order.is_stale("c", 5)
    assert not order.is_stale("b", 1)  # forgotten
