"""raykafka's consumer groups: membership, generations and partition assignment.

As in Kafka's new consumer protocol (KIP-848) the group coordinator, not a group
leader, computes each member's target assignment. Modules:

* :mod:`.assignors` -- the pure assignment functions (``assign``, ``moved``,
  ``STRATEGIES``): range, roundrobin and cooperative-sticky. No Ray, no I/O, no state;
  the coordinator feeds them subscriptions, partition counts and the current
  assignment, and gets back the target assignment.
"""
