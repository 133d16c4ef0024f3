"""The P6 measures on planted member-table samples: detection time, and false suspicions caught
outside the excused windows and only there."""

from tests.faults.detection import Sample, detection_s, false_suspicions


def samples(*rows: tuple[float, str, str, str]) -> list[Sample]:
    return [Sample(*row) for row in rows]


def test_detection_is_when_the_last_observer_lists_the_member_not_alive():
    log = samples(
        (10.0, "node1", "node3", "alive"),
        (12.5, "node1", "node3", "suspect"),
        (13.0, "node2", "node3", "alive"),
        (13.4, "node2", "node3", "suspect"),
        (15.1, "node1", "node3", "dead"),
        (15.6, "node2", "node3", "dead"),
    )
    both = detection_s(log, member="node3", since=10.0, observers=["node1", "node2"])
    assert round(both, 1) == 3.4
    dead = detection_s(log, member="node3", since=10.0, observers=["node1"], status=("dead",))
    assert round(dead, 1) == 5.1


def test_detection_is_none_when_an_observer_never_noticed():
    log = samples((10.0, "node1", "node3", "suspect"), (10.0, "node2", "node3", "alive"))
    assert detection_s(log, member="node3", since=9.0, observers=["node1", "node2"]) is None


def test_a_suspicion_outside_the_excused_windows_is_false():
    log = samples(
        (1.0, "node1", "node3", "alive"),
        (2.0, "node1", "node3", "suspect"),  # a short stall: false
        (2.2, "node1", "node3", "suspect"),  # the same suspicion, counted once
        (3.0, "node1", "node3", "alive"),
        (10.0, "node1", "node3", "suspect"),  # the real stop: excused
        (12.0, "node1", "node3", "dead"),
        (20.0, "node1", "node3", "alive"),
        (30.0, "node2", "node1", "dead"),  # another member, never excused
    )
    found = false_suspicions(log, excused={"node3": [(9.0, 25.0)]})
    assert len(found) == 2
    assert "node1 listed node3 suspect at 2.0" in found[0]
    assert "node2 listed node1 dead" in found[1]


def test_no_suspicion_no_false_one():
    log = samples((1.0, "node1", "node2", "alive"), (2.0, "node2", "node1", "alive"))
    assert false_suspicions(log) == []
