"""The history checker passes a clean history and catches planted faults: a dropped write, a
resurrected delete, a reordered, duplicated or skipped watch event."""

import uuid

import pytest

from tests.faults.history import CAS, DELETE, FAIL, OK, PUT, UNKNOWN, Final, History, check

JOINED = {"node1": 1_000, "node2": 2_000}


class Clock:
    def __init__(self) -> None:
        self.hlc = 1 << 20

    def tick(self) -> int:
        self.hlc += 1
        return self.hlc


@pytest.fixture
def clock():
    return Clock()


def write(history, clock, *, node="node1", key="k", kind=PUT, outcome=OK, client="c1"):
    op = history.invoke(client=client, node=node, kind=kind, key=key, value=1)
    if outcome == OK:
        history.complete(op, OK, status=200, version=str(uuid.uuid4()), hlc=clock.tick())
    else:
        history.complete(op, outcome)
    return op


def final_of(op, *, deleted=False):
    return Final(version=op.version, hlc=op.hlc, origin=op.node, deleted=deleted)


def tombstone(clock, node="node1"):
    return Final(version=str(uuid.uuid4()), hlc=clock.tick(), origin=node, deleted=True)


def clean_history(clock):
    history = History()
    a1 = write(history, clock, key="a")
    a2 = write(history, clock, key="a", node="node2", client="c2")
    b1 = write(history, clock, key="b", kind=CAS)
    write(history, clock, key="b", outcome=UNKNOWN)  # no answer: may or may not have happened
    write(history, clock, key="b", outcome=FAIL)
    c1 = write(history, clock, key="c")
    write(history, clock, key="c", kind=DELETE)
    c_gone = tombstone(clock)
    state = {"a": final_of(a2), "b": final_of(b1), "c": c_gone}
    stream = history.stream(name="w1", node="node1", prefix="")
    stream.ready = 10
    for revision, (key, op) in enumerate([("a", a1), ("b", b1), ("a", a2), ("c", c1)], start=11):
        stream.events.append(
            {"key": key, "version": op.version, "hlc": op.hlc, "revision": revision}
        )
    stream.reconnects.append((4, 14))  # reconnected after revision 14, resumed from it
    stream.events.append({"key": "c", "version": c_gone.version, "hlc": c_gone.hlc, "revision": 15})
    return history, {"node1": state, "node2": dict(state)}, stream


def test_a_clean_history_passes(clock):
    history, finals, _ = clean_history(clock)
    report = check(history, finals, joined_at=JOINED)
    assert report.ok, report.summary()
    assert (report.operations, report.acknowledged, report.unknown) == (7, 5, 1)


def test_a_dropped_write_is_caught(clock):
    history, finals, _ = clean_history(clock)
    lost = write(history, clock, key="d")  # acknowledged, then nowhere
    report = check(history, finals, joined_at=JOINED)
    assert len(report.lost) == 2 and all(lost.version in line for line in report.lost)
    assert not report.resurrected and not report.stream_faults


def test_a_write_replaced_by_an_older_version_is_lost(clock):
    history, finals, _ = clean_history(clock)
    older = Final(str(uuid.uuid4()), hlc=1, origin="node2", deleted=False)
    finals["node1"]["a"] = older
    report = check(history, finals, joined_at=JOINED)
    assert report.lost and all("node1: a" in line for line in report.lost)


def test_a_higher_version_from_an_earlier_joined_node_wins_a_tie(clock):
    history = History()
    mine = write(history, clock, key="t", node="node2")
    tie = Final(str(uuid.uuid4()), hlc=mine.hlc, origin="node1", deleted=False)  # joined earlier
    assert check(history, {"node1": {"t": tie}}, joined_at=JOINED).ok
    late = Final(str(uuid.uuid4()), hlc=mine.hlc, origin="node2", deleted=False)
    late = late if uuid.UUID(late.version).int > uuid.UUID(mine.version).int else None
    if late is not None:  # same origin, same hlc: the lower id wins, so this one loses
        assert not check(history, {"node1": {"t": late}}, joined_at=JOINED).ok


def test_a_resurrected_delete_is_caught(clock):
    history, finals, _ = clean_history(clock)
    c1 = next(op for op in history.ops if op.key == "c" and op.kind == PUT)
    finals["node2"]["c"] = final_of(c1)  # the tombstone lost, the old value back
    report = check(history, finals, joined_at=JOINED)
    assert len(report.resurrected) == 1 and "node2: c is live again" in report.resurrected[0]
    assert not report.lost


def test_a_write_after_a_delete_is_not_a_resurrection(clock):
    history, finals, _ = clean_history(clock)
    again = write(history, clock, key="c")
    for state in finals.values():
        state["c"] = final_of(again)
    history.streams.clear()
    assert check(history, finals, joined_at=JOINED).ok


def test_a_reordered_event_is_caught(clock):
    history, finals, stream = clean_history(clock)
    stream.events[0], stream.events[2] = stream.events[2], stream.events[0]  # a2 before a1
    faults = check(history, finals, joined_at=JOINED).stream_faults
    assert any("a hlc" in line and "out of order" in line for line in faults)


def test_a_duplicated_event_is_caught(clock):
    history, finals, stream = clean_history(clock)
    stream.events.insert(2, dict(stream.events[1]))
    faults = check(history, finals, joined_at=JOINED).stream_faults
    assert any("delivered twice" in line for line in faults)


def test_a_resume_past_the_last_revision_is_a_silent_gap(clock):
    history, finals, stream = clean_history(clock)
    stream.reconnects[0] = (4, 15)
    faults = check(history, finals, joined_at=JOINED).stream_faults
    assert any("resumed from 15" in line for line in faults)


def test_a_change_missing_from_the_stream_is_caught(clock):
    history, finals, stream = clean_history(clock)
    del stream.events[-1]  # the delete of c never arrived
    faults = check(history, finals, joined_at=JOINED).stream_faults
    assert any("c ends at" in line and "skipped" in line for line in faults)
