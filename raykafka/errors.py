"""The typed errors of raykafka's public API.

Every error a user can see is a :class:`RayKafkaError` subclass whose message
says what to do. They are raised in actors as well as in clients, so they are
plain picklable exceptions: client code unwraps Ray's ``RayTaskError`` and
re-raises the original (see ``raykafka.api.rpc``).
"""

from __future__ import annotations


class RayKafkaError(Exception):
    """Base class of every raykafka error."""


class TopicAlreadyExists(RayKafkaError):
    pass


class UnknownTopic(RayKafkaError):
    pass


class InvalidTopicName(RayKafkaError, ValueError):
    pass


class InvalidConfig(RayKafkaError, ValueError):
    pass


class MessageTooLarge(RayKafkaError):
    pass


class OffsetOutOfRange(RayKafkaError):
    """An offset outside ``[earliest, latest]`` of a partition."""

    def __init__(self, message: str, earliest: int | None = None, latest: int | None = None):
        super().__init__(message)
        self.earliest = earliest
        self.latest = latest

    def __reduce__(self):
        return (type(self), (self.args[0], self.earliest, self.latest))


class LogTruncated(OffsetOutOfRange):
    """The log was truncated below a consumer's position: records it read (or its committed
    offset follows) are gone from the leader, which holds other records under those offsets now
    (an only replica lost a tail it had not fsynced; an unclean election). ``divergent_offset``
    is where the consumer's log and the leader's part. With an ``auto_offset_reset`` the
    consumer resumes there by itself; with ``"none"`` it raises this (Kafka's
    LogTruncationException, KIP-320)."""

    def __init__(self, message: str, divergent_offset: int, earliest: int | None = None, latest=None):
        super().__init__(message, earliest, latest)
        self.divergent_offset = divergent_offset

    def __reduce__(self):
        return (type(self), (self.args[0], self.divergent_offset, self.earliest, self.latest))


class UnknownGroup(RayKafkaError):
    pass


class GroupNotEmpty(RayKafkaError):
    pass


class RebalanceInProgress(RayKafkaError):
    pass


class StaleGeneration(RayKafkaError):
    pass


class NotEnoughReplicas(RayKafkaError):
    pass


class NotEnoughReplicasAfterAppend(NotEnoughReplicas):
    """The batch was appended, but the ISR shrank below ``min.insync.replicas`` before every
    in-sync replica had it (Kafka's NOT_ENOUGH_REPLICAS_AFTER_APPEND): it is in the leader's log,
    not acknowledged. An idempotent producer retries it -- the retry is answered with the
    batch's offsets, not stored again -- until ``request_timeout_ms``; without idempotence the
    send fails with it (a retry could store the batch twice)."""


class OutOfOrderSequence(RayKafkaError):
    """A batch's sequence number is not its producer's next one in this partition (Kafka's
    OUT_OF_ORDER_SEQUENCE_NUMBER): a batch before it never arrived within the request timeout,
    or its producer had given it up, or a newer instance of the producer (a higher epoch) wrote
    since. Nothing of the batch was written."""


class RequestTimedOut(RayKafkaError, TimeoutError):
    pass


class ProducerClosed(RayKafkaError):
    pass


class ConsumerClosed(RayKafkaError):
    pass


class NotLeader(RayKafkaError):
    """The replica asked is not (or no longer) its partition's leader. Clients refresh
    metadata and retry by themselves; users see it only if that keeps failing."""


class FencedLeader(RayKafkaError):
    """A replica refused a request from a leader of an older epoch (a deposed leader)."""


class InvalidReplicaAssignment(RayKafkaError, ValueError):
    """A reassignment that names no live node, repeats one, or would leave its partition led by
    a replica that is not in sync (an unclean election: acknowledged records could be lost).
    Nothing was changed."""


class FencedLeaderEpoch(RayKafkaError):
    """A client's request named a leader epoch older than the replica's: the client's metadata
    is stale. Clients refresh it and retry by themselves."""


class CorruptRecord(RayKafkaError):
    """Stored data failed its CRC, or a stored batch is not a valid record batch; it was not
    returned. Operators: see docs/FORMAT.md."""


class InvalidRecord(RayKafkaError, ValueError):
    """A partition refused a batch whose payload is not a valid record batch (malformed Arrow,
    offsets out of order or range, a compressed body, no records); nothing of it was written.
    Not retriable: the same bytes are refused again (Kafka's INVALID_RECORD)."""


class FetchThrottled(RayKafkaError):
    """A partition replica already holds as many waiting long polls as it allows; this fetch
    was answered at once, with no records. Retriable: the consumer retries that partition
    shortly by itself (Kafka's fetch throttle)."""


class RayNotConnected(RayKafkaError, ConnectionError):
    """This process left Ray (``ray.shutdown()``) while a client made before was still open. The
    client does not start a new Ray (Ray's own auto-init would, with none of the old actors):
    call ``raykafka.connect()`` and create new clients."""


class LogDirFailed(RayKafkaError):
    """A replica's data directory failed (a disk error: EIO on fsync or write, read-only file
    system). The replica stops acknowledging and reports itself failed; the partition fails
    over to an in-sync replica. Clients retry against the new leader by themselves."""


class MetadataWriteFailed(RayKafkaError):
    """The TopicManager could not write the cluster metadata (its disk failed or is full).
    Nothing was changed -- in memory or on disk -- and nothing was acted on; retry once the
    disk is healthy. The TopicManager keeps serving what it has and repairs by itself."""


class StorageFull(RayKafkaError):
    """A replica's disk is full. Retriable: nothing of the rejected batch was kept, nothing
    acknowledged is lost, and appends resume by themselves once space is freed (retention,
    ``delete_records``, or the operator). The producer retries it until ``request_timeout_ms``."""


__all__ = [
    "ConsumerClosed",
    "CorruptRecord",
    "FencedLeader",
    "FetchThrottled",
    "GroupNotEmpty",
    "InvalidConfig",
    "InvalidRecord",
    "InvalidTopicName",
    "LogDirFailed",
    "MessageTooLarge",
    "MetadataWriteFailed",
    "NotEnoughReplicas",
    "NotEnoughReplicasAfterAppend",
    "NotLeader",
    "OffsetOutOfRange",
    "OutOfOrderSequence",
    "ProducerClosed",
    "RayKafkaError",
    "RayNotConnected",
    "RebalanceInProgress",
    "RequestTimedOut",
    "StaleGeneration",
    "StorageFull",
    "TopicAlreadyExists",
    "UnknownGroup",
    "UnknownTopic",
]
