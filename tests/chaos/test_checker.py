"""The chaos checker catches each broken promise planted in an otherwise clean history, and
passes the clean one: a loss, a reorder, two payloads at one offset, a duplicate, a hole, a
commit going backwards. No Ray."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

from raykafka.chaos.checker import check
from raykafka.chaos.history import Acked, Commit, FailedSend, Fault, History, Read

T = "events"


def clean_history(n: int = 10) -> History:
    """Two partitions, n records each, all acknowledged, consumed by the group and served at
    the offsets acknowledged; commits moving forward; two faults."""
    h = History(seed=7, topics={T: 2}, started_s=100.0, produce_stopped_s=100.0 + n + 1)
    for p in (0, 1):
        for i in range(n):
            payload = f"p{p}-{i}".encode()
            h.acked.append(Acked(T, p, i, payload, "prod-0", 100.0 + i + 0.5))
            h.consumed.append(Read(T, p, i, payload, "member-0"))
            h.served.append(Read(T, p, i, payload, "served"))
        for i, offset in enumerate(range(2, n + 1, 2)):
            h.commits.append(Commit("g", T, p, offset, 100.0 + i, 100.2 + i, "member-0"))
    h.commits.append(Commit("g", T, 0, n, 150.0, 150.1, "observer"))
    h.failed.append(FailedSend(T, 0, b"never-acked", "prod-0", 103.0, "RequestTimedOut"))
    h.faults.append(Fault("kill_leader", "events-0 leader", 103.0, 103.0))
    h.faults.append(Fault("node_freeze", "disk-1", 104.0, 109.0))
    return h


def test_a_clean_history_passes_and_reports_what_happened():
    report = check(clean_history())
    assert report.ok, report.render()
    assert report.acknowledged == 20 and report.served == 20 and report.failed_sends == 1
    assert report.undelivered_to_group == 0
    assert report.faults_by_kind == {"kill_leader": 1, "node_freeze": 1}
    assert report.longest_write_gap is not None and report.longest_write_gap.seconds == 1.5
    text = report.render()
    assert "seed 7: OK" in text and "node_freeze" in text and "lost" in text


def test_a_lost_record_is_caught():
    h = clean_history()
    h.served = [r for r in h.served if not (r.partition == 1 and r.offset == 4)]
    report = check(h)
    assert report.lost == 1 and not report.ok
    assert report.holes == 1  # offset 4 of partition 1 is missing between 3 and 5
    assert "events-1 offset 4" in report.render()


def test_a_lost_tail_is_caught_even_without_a_hole():
    h = clean_history()
    h.served = [r for r in h.served if not (r.partition == 0 and r.offset >= 7)]
    report = check(h)
    assert report.lost == 3 and report.holes == 0


def test_a_record_at_another_offset_than_acknowledged_is_caught():
    h = clean_history()
    served = {(r.partition, r.offset): r for r in h.served}
    a, b = served[(0, 3)], served[(0, 4)]  # served swapped: each at the other's offset
    swapped = {id(a): b.payload, id(b): a.payload}
    h.served = [dataclasses.replace(r, payload=swapped[id(r)]) if id(r) in swapped else r for r in h.served]
    report = check(h)
    assert report.moved == 2 and report.lost == 0 and not report.ok
    # the group read 3 and 4 the right way round: each offset was handed out with two payloads
    assert report.conflicting_offsets == 2


def test_an_offset_served_with_two_payloads_is_caught():
    h = clean_history()
    h.consumed.append(Read(T, 1, 6, b"something-else", "member-1"))  # a re-read after a change
    report = check(h)
    assert report.conflicting_offsets == 1 and report.lost == 0 and report.moved == 0 and not report.ok


def test_a_duplicate_is_caught():
    h = clean_history()
    first = h.served[0]
    h.served.append(Read(T, first.partition, 10, first.payload, "served"))  # stored again at the end
    report = check(h)
    assert report.duplicates == 1 and report.lost == 0 and report.moved == 0 and not report.ok


def test_an_unacknowledged_record_may_be_there_or_not():
    h = clean_history()
    h.served.append(Read(T, 0, 10, b"never-acked", "served"))
    assert check(h).ok


def test_a_committed_offset_going_backwards_is_caught():
    h = clean_history()
    h.commits.append(Commit("g", T, 1, 3, 200.0, 200.1, "observer"))  # after 10 was committed
    report = check(h)
    assert report.commits_backwards == 1 and not report.ok
    assert "then 3 (observer" in report.render()


def test_commits_that_overlap_in_time_are_not_ordered():
    h = clean_history()
    # committed 6 while a commit of 8 (100.0+3 .. 100.2+3) was under way: either may land last
    h.commits.append(Commit("g", T, 0, 6, 103.1, 103.3, "member-1"))
    assert check(h).ok


def test_duplicate_deliveries_to_the_group_are_at_least_once_not_a_violation():
    h = clean_history()
    h.consumed += [r for r in h.consumed if r.offset < 3]  # re-read after a member's crash
    assert check(h).ok


def test_the_history_survives_json_and_the_verdict_with_it(tmp_path):
    h = clean_history()
    h.served.append(Read(T, 0, 10, bytes(range(256)), "served"))
    h.notes.append("a note")
    path = tmp_path / "history.json"
    h.write(path)
    again = History.read(path)
    assert again == h
    assert check(again) == check(h)


def test_the_pure_modules_import_no_ray():
    code = (
        "import sys; import raykafka.chaos.checker, raykafka.chaos.schedule, raykafka.chaos.history; "
        "assert 'ray' not in sys.modules, 'ray imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_command_line_checks_a_saved_history(tmp_path, capsys):
    from raykafka.chaos.__main__ import main

    clean, lossy = tmp_path / "clean.json", tmp_path / "lossy.json"
    h = clean_history()
    h.write(clean)
    h.served = h.served[:-1]
    h.write(lossy)
    assert main(["--check", str(clean)]) == 0
    assert "seed 7: OK" in capsys.readouterr().out
    assert main(["--check", str(lossy)]) == 1
    assert "INVARIANTS VIOLATED" in capsys.readouterr().out
