"""Replication logic that needs no Ray: the leader's view of its followers (``isr``).

The PartitionActor is the thin shell that moves bytes; the rules for the
in-sync set and the high watermark live here and are unit-tested alone.
"""
