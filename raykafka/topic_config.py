"""Topic names and topic configs: Kafka's names, rules and defaults, validated.

Pure functions, used twice: by ``Admin`` so bad input fails at the call, and by
the TopicManager, which never trusts a client. ``to_log_config`` turns the
string-valued Kafka config into the storage engine's typed ``LogConfig``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from raykafka.errors import InvalidConfig, InvalidTopicName
from raykafka.storage import LogConfig

MAX_TOPIC_NAME_CHARS = 249
_TOPIC_NAME_RE = re.compile(r"^[a-zA-Z0-9._-]+$")
_LONG_MAX = (1 << 63) - 1


def validate_topic_name(name: object) -> str:
    """Return ``name`` if it is a legal Kafka topic name, else raise InvalidTopicName."""
    return _validate_name(name, "topic name", InvalidTopicName)


def validate_group_id(group_id: object) -> str:
    """Group ids follow the topic-name rule here (stricter than Kafka: they name a directory)."""
    return _validate_name(group_id, "group_id", ValueError)


def _validate_name(name: object, what: str, error: type[Exception]) -> str:
    if not isinstance(name, str):
        raise error(f"{what} must be a str, got {type(name).__name__}")
    if name in ("", ".", ".."):
        raise error(f"{what} {name!r} is not allowed; use 1-249 chars of [a-zA-Z0-9._-]")
    if len(name) > MAX_TOPIC_NAME_CHARS:
        raise error(f"{what} is {len(name)} chars; the limit is {MAX_TOPIC_NAME_CHARS} (Kafka's rule)")
    if not _TOPIC_NAME_RE.match(name):
        raise error(f"{what} {name!r} has characters outside [a-zA-Z0-9._-]; rename it (Kafka's rule)")
    return name


@dataclass(frozen=True)
class _Key:
    default: str
    parse: Callable[[str], object]
    doc: str


def _long(minimum: int, maximum: int = _LONG_MAX) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"{text!r} is not an integer") from None
        if not minimum <= value <= maximum:
            raise ValueError(f"{value} is outside [{minimum}, {maximum}]")
        return value

    return parse


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in allowed:
            raise ValueError(f"{text!r} is not one of {', '.join(allowed)}")
        return text

    return parse


def _bool(text: str) -> bool:
    if text not in ("true", "false"):
        raise ValueError(f"{text!r} is not 'true' or 'false'")
    return text == "true"


def _cleanup_policy(text: str) -> str:
    if text == "compact" or "compact" in text.split(","):
        raise ValueError("'compact' is not supported yet; use 'delete'")
    return _choice("delete")(text)


_INT_MAX = (1 << 31) - 1
_WEEK_MS = 7 * 24 * 3600 * 1000

#: Kafka's topic config keys that raykafka knows, with Kafka's defaults.
TOPIC_CONFIG_KEYS: dict[str, _Key] = {
    "retention.ms": _Key(str(_WEEK_MS), _long(-1), "delete sealed segments older than this; -1 keeps all"),
    "retention.bytes": _Key("-1", _long(-1), "delete oldest sealed segments beyond this size; -1: no limit"),
    "segment.bytes": _Key(str(1 << 30), _long(14, _INT_MAX), "roll the active segment at this size"),
    "segment.ms": _Key(str(_WEEK_MS), _long(1), "roll the active segment at this age"),
    "max.message.bytes": _Key("1048588", _long(0, _INT_MAX), "largest record batch (Arrow payload bytes)"),
    "cleanup.policy": _Key("delete", _cleanup_policy, "only 'delete' (compaction is not built yet)"),
    "flush.messages": _Key(str(_LONG_MAX), _long(1), "fsync after this many unflushed messages"),
    "flush.ms": _Key(str(_LONG_MAX), _long(0), "fsync when unflushed data is this old"),
    "min.insync.replicas": _Key("1", _long(1, _INT_MAX), "replicas that must hold a write for acks=all"),
    "unclean.leader.election.enable": _Key(
        "false", _bool, "let a reassignment lead from a replica that is not in sync (may lose records)"
    ),
    "message.timestamp.type": _Key(
        "CreateTime", _choice("CreateTime", "LogAppendTime"), "which time a record carries"
    ),
    "producer.id.expiration.ms": _Key(
        "86400000", _long(1), "forget an idempotent producer none of whose batches came for this long"
    ),
}


def validate_topic_config(config: Mapping[str, object] | None) -> dict[str, str]:
    """Check keys and values; return the explicitly set keys as ``{key: str}``."""
    if config is None:
        return {}
    if not isinstance(config, Mapping):
        raise InvalidConfig(f"config must be a dict of Kafka topic configs, got {type(config).__name__}")
    out: dict[str, str] = {}
    for key, raw in config.items():
        if key not in TOPIC_CONFIG_KEYS:
            raise InvalidConfig(
                f"unknown topic config {key!r}; known keys: {', '.join(sorted(TOPIC_CONFIG_KEYS))}"
            )
        if isinstance(raw, bool) or not isinstance(raw, str | int):
            raise InvalidConfig(f"config {key!r} takes a string value, got {type(raw).__name__}")
        text = str(raw).strip()
        try:
            TOPIC_CONFIG_KEYS[key].parse(text)
        except ValueError as exc:
            raise InvalidConfig(f"invalid value for {key!r}: {exc}") from None
        out[key] = text
    return out


def effective_config(explicit: Mapping[str, str]) -> dict[str, str]:
    """Every known key with its value: the explicit one, else Kafka's default."""
    return {key: explicit.get(key, spec.default) for key, spec in TOPIC_CONFIG_KEYS.items()}


def config_value(explicit: Mapping[str, str], key: str) -> object:
    """The parsed value of ``key`` (int, bool or str)."""
    return TOPIC_CONFIG_KEYS[key].parse(explicit.get(key, TOPIC_CONFIG_KEYS[key].default))


def to_log_config(explicit: Mapping[str, str]) -> LogConfig:
    """The storage engine's view of a topic config."""
    flush_messages = config_value(explicit, "flush.messages")
    flush_ms = config_value(explicit, "flush.ms")
    return LogConfig(
        segment_bytes=config_value(explicit, "segment.bytes"),
        segment_ms=config_value(explicit, "segment.ms"),
        retention_ms=config_value(explicit, "retention.ms"),
        retention_bytes=config_value(explicit, "retention.bytes"),
        flush_messages=None if flush_messages == _LONG_MAX else flush_messages,
        flush_ms=None if flush_ms == _LONG_MAX else flush_ms,
        producer_id_expiration_ms=config_value(explicit, "producer.id.expiration.ms"),
    )
