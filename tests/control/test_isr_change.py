"""alter_isr: only the leader of the recorded epoch changes the ISR; a deposed one is fenced."""

from __future__ import annotations

import pytest

from raykafka.control import alter_isr
from raykafka.errors import FencedLeader, UnknownTopic

from .builders import cluster, partition, topic

META = cluster(topic("t", partition(epoch=5, isr=("a", "b", "c"))))


def isr(metadata):
    return metadata.topics["t"].partitions[0].isr


def test_shrink_and_expand_are_recorded_in_placement_order():
    shrunk = alter_isr(META, "t", 0, 5, ["c", "a"])
    assert isr(shrunk.metadata) == ("a", "c") and shrunk.persist is not None
    grown = alter_isr(shrunk.metadata, "t", 0, 5, ["b", "c", "a"])
    assert isr(grown.metadata) == ("a", "b", "c")
    assert META.topics["t"].partitions[0].isr == ("a", "b", "c")  # the input is untouched


def test_the_same_set_changes_nothing():
    assert alter_isr(META, "t", 0, 5, ["c", "b", "a"]).actions == ()


@pytest.mark.parametrize("epoch", [4, 6])
def test_another_epoch_is_fenced(epoch):
    with pytest.raises(FencedLeader, match=f"epoch {epoch} is not the current 5"):
        alter_isr(META, "t", 0, epoch, ["a"])


def test_the_leader_stays_and_strangers_are_refused():
    with pytest.raises(ValueError, match="must hold the leader a"):
        alter_isr(META, "t", 0, 5, ["b", "c"])
    with pytest.raises(ValueError, match=r"\['z'\] are not replicas"):
        alter_isr(META, "t", 0, 5, ["a", "z"])
    with pytest.raises(UnknownTopic):
        alter_isr(META, "u", 0, 5, ["a"])
    with pytest.raises(ValueError, match=r"partitions 0\.\.0"):
        alter_isr(META, "t", 1, 5, ["a"])
