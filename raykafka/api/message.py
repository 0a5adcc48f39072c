"""``Message`` and ``MessageSet``: the Kafka paper's message types.

A Message is what a producer sends and what a consumer iterates. ``__slots__``
keep it small, because the message iterator builds one per record.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping


def check_bytes(value: object, what: str, *, allow_none: bool = False) -> None:
    """Raise TypeError unless ``value`` is bytes-like (or None where allowed)."""
    if value is None and allow_none:
        return
    if not isinstance(value, bytes | bytearray | memoryview):
        hint = " (encode it, e.g. s.encode())" if isinstance(value, str) else ""
        raise TypeError(f"{what} must be bytes, got {type(value).__name__}{hint}")


def check_headers(headers: object) -> dict[str, bytes] | None:
    if headers is None:
        return None
    if not isinstance(headers, Mapping):
        raise TypeError(f"headers must be a dict[str, bytes], got {type(headers).__name__}")
    for name, value in headers.items():
        if not isinstance(name, str):
            raise TypeError(f"header names must be str, got {type(name).__name__}")
        check_bytes(value, f"header {name!r}")
    return {k: bytes(v) for k, v in headers.items()}


def check_timestamp(timestamp_ms: object) -> None:
    if timestamp_ms is None:
        return
    if isinstance(timestamp_ms, bool) or not isinstance(timestamp_ms, int):
        raise TypeError(f"timestamp_ms must be an int, got {type(timestamp_ms).__name__}")
    if timestamp_ms < 0:
        raise ValueError(f"timestamp_ms must be >= 0, got {timestamp_ms}")


class Message:
    """One message: a payload of bytes with optional key, headers and timestamp.

    ``topic``, ``partition`` and ``offset`` are None until the message was sent
    (on the RecordMetadata) or consumed.

    >>> m = Message(b"test message str")
    >>> m.payload()
    b'test message str'
    """

    __slots__ = ("headers", "key", "offset", "partition", "timestamp_ms", "topic", "value")

    def __init__(
        self,
        payload: bytes,
        key: bytes | None = None,
        headers: Mapping[str, bytes] | None = None,
        timestamp_ms: int | None = None,
    ):
        check_bytes(payload, "payload")
        check_bytes(key, "key", allow_none=True)
        check_timestamp(timestamp_ms)
        self.value = bytes(payload)
        self.key = None if key is None else bytes(key)
        self.headers = check_headers(headers)
        self.timestamp_ms = timestamp_ms
        self.topic: str | None = None
        self.partition: int | None = None
        self.offset: int | None = None

    @classmethod
    def _consumed(cls, topic, partition, offset, timestamp_ms, key, value, headers) -> Message:
        """Build without validation: the values come from a CRC-checked batch."""
        m = cls.__new__(cls)
        m.topic = topic
        m.partition = partition
        m.offset = offset
        m.timestamp_ms = timestamp_ms
        m.key = key
        m.value = value
        m.headers = headers
        return m

    def payload(self) -> bytes:
        """The message's bytes (the Kafka paper's accessor; same as ``.value``)."""
        return self.value

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message):
            return NotImplemented
        return all(getattr(self, s) == getattr(other, s) for s in self.__slots__)

    __hash__ = None  # mutable

    def __repr__(self) -> str:
        where = "" if self.offset is None else f" {self.topic}[{self.partition}]@{self.offset}"
        shown = self.value if self.value is None or len(self.value) <= 40 else self.value[:40] + b"..."
        return f"<Message{where} key={self.key!r} value={shown!r}>"


class MessageSet:
    """An ordered set of Messages to send together (the Kafka paper's ``MessageSet``).

    >>> len(MessageSet(Message(b"a")))
    1
    """

    __slots__ = ("_messages",)

    def __init__(self, messages: Message | Iterable[Message] = ()):
        items = [messages] if isinstance(messages, Message) else list(messages)
        for m in items:
            if not isinstance(m, Message):
                raise TypeError(f"MessageSet holds Message objects, got {type(m).__name__}")
        self._messages = items

    def __len__(self) -> int:
        return len(self._messages)

    def __iter__(self) -> Iterator[Message]:
        return iter(self._messages)

    def __repr__(self) -> str:
        return f"MessageSet({len(self._messages)} messages)"
