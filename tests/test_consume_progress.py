"""``consume_in_ray`` says where it starts and how far it got; ``track`` shows a loop's progress.

A new group starts at ``auto_offset_reset`` -- ``"latest"`` by default, as in Kafka -- so on a
topic holding records it processes none; with progress on, the start says so and how many
records are skipped. ``wait()`` ends with the records processed and the lag. Off by default
where nobody watches (these tests' stderr is not a terminal, and there is no notebook).
"""

from __future__ import annotations

import sys
import types

import raykafka
from raykafka import Admin, Producer
from raykafka.api import ray_helpers
from raykafka.api.ray_helpers import _GroupProgress, progress_wanted, track

WAIT_S = 60


def ignore(table) -> None:
    pass


def test_a_new_group_says_where_it_starts_and_how_far_it_got(rk, topic_name, capsys):
    topic = topic_name("prog")
    Admin().create_topic(topic, partitions=2)
    with Producer(linger_ms=1) as producer:
        for i in range(20):
            producer.send(topic, b"m%d" % i, partition=i % 2)
    capsys.readouterr()

    # Kafka's default: a new group starts at the log end and skips what is there -- and says so.
    job = raykafka.consume_in_ray(topic, "late", ignore, timeout_s=1, num_cpus=0, progress=True)
    start = capsys.readouterr().err
    assert (
        f"consume_in_ray: group 'late' has no committed offsets in {topic!r}: it starts at the log end "
        f"(auto_offset_reset='latest') and reads only records that arrive from now on; the 20 records "
        f"there are skipped (auto_offset_reset='earliest' reads them)"
    ) in start, start
    assert job.wait(timeout_s=WAIT_S) == 0
    end = capsys.readouterr().err
    assert f"consuming {topic}" in end and "0 records processed, lag 0" in end, end

    job = raykafka.consume_in_ray(
        topic,
        "early",
        ignore,
        num_consumers=2,
        timeout_s=1,
        num_cpus=0,
        auto_offset_reset="earliest",
        progress=True,
    )
    start = capsys.readouterr().err
    assert (
        f"consume_in_ray: group 'early' has no committed offsets in {topic!r}: it starts at the log start "
        f"(auto_offset_reset='earliest'), 20 records to read"
    ) in start, start
    assert job.wait(timeout_s=WAIT_S) == 20
    assert "20 records processed, lag 0" in capsys.readouterr().err

    # A group with committed offsets goes on from them, whatever auto_offset_reset says.
    _, where = _GroupProgress.start(topic, "early", "latest")
    assert where == f"consume_in_ray: group 'early' goes on from its committed offsets in {topic!r}"
    # Nobody watching (not a terminal, not a notebook): nothing is shown by default.
    job = raykafka.consume_in_ray(topic, "early", ignore, timeout_s=1, num_cpus=0)
    assert job.wait(timeout_s=WAIT_S) == 0
    assert capsys.readouterr().err == ""


def test_track_shows_a_loop_on_stderr_when_asked(capsys):
    assert list(track(range(1000), "producing", progress=True)) == list(range(1000))
    err = capsys.readouterr().err
    assert "producing" in err and "1,000 records" in err, err
    assert list(track(iter(range(3)), "producing")) == [0, 1, 2]  # None: nobody watching here
    assert capsys.readouterr().err == ""
    assert progress_wanted(None) is False


def test_in_a_notebook_the_line_is_updated_in_place(monkeypatch, capsys):
    shown, updates = [], []

    class Handle:
        def update(self, obj):
            updates.append(obj)

    def display(obj, display_id=False):
        assert display_id is True
        shown.append(obj)
        return Handle()

    fake = types.ModuleType("IPython.display")
    fake.display = display
    monkeypatch.setitem(sys.modules, "IPython.display", fake)
    monkeypatch.setattr(ray_helpers, "in_notebook", lambda: True)
    assert progress_wanted(None) is True

    assert sum(track(range(5), "producing to events")) == 10
    assert len(shown) == 1 and updates, (shown, updates)
    last = updates[-1]
    assert repr(last).startswith("producing to events: 5 records (")
    assert '<progress value="5" max="5"></progress>' in last._repr_html_()
    assert capsys.readouterr().err == ""  # nothing on stderr: the notebook shows it
