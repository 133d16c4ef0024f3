"""The membership simulation (bench/membership_sim.py) at 20 members: the production gossip code
converges, takes a joiner in and declares a killed member dead, within a few intervals."""

import importlib.util
import sys
from pathlib import Path

import pytest

SIM = Path(__file__).resolve().parents[2] / "bench" / "membership_sim.py"


@pytest.fixture(scope="module")
def sim():
    spec = importlib.util.spec_from_file_location("membership_sim", SIM)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_twenty_members_converge_take_a_joiner_and_detect_a_death(sim):
    result = sim.run_size(20, loss=0.01, loss_rounds=5, seed=3)
    assert result.bootstrap_s <= 5
    assert result.join_s <= 5
    # dead after 5 s of silence, plus the time for the last member to hear of it
    assert 5 <= result.dead_s <= 9
    assert result.suspect_s <= result.dead_s
    assert result.false_dead_no_loss == 0 and result.false_dead == 0
    assert result.false_suspect_no_loss == 0
    assert result.message_bytes > 20 * 100  # the whole table travels in every message


def test_messages_are_lost_and_counted(sim):
    cluster = sim.SimCluster(5, seed=2)
    for _ in range(3):
        cluster.interval()
    assert cluster.converged()
    cluster.transport.loss = 1.0
    cluster.interval()
    assert cluster.transport.dropped > 0
    assert sum(cluster.transport.bytes_out.values()) == sum(cluster.transport.bytes_in.values())
