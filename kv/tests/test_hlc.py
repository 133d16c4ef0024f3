from kv.hlc import hlc_from_ms, hlc_ms, hlc_observe, hlc_tick


def test_tick_follows_the_wall_clock_when_it_is_ahead():
    assert hlc_tick(hlc_from_ms(1_000), 2_000) == hlc_from_ms(2_000)


def test_tick_counts_within_one_millisecond():
    first = hlc_tick(0, 5_000)
    second = hlc_tick(first, 5_000)
    assert second == first + 1
    assert hlc_ms(second) == 5_000


def test_tick_never_goes_backwards_when_the_wall_clock_lags():
    seen = hlc_from_ms(10_000) + 7
    assert hlc_tick(seen, 9_000) == seen + 1


def test_observe_moves_past_a_remote_timestamp_only_when_it_is_larger():
    assert hlc_observe(100, 250) == 250
    assert hlc_observe(300, 250) == 300


def test_a_write_after_seeing_a_remote_one_orders_after_it():
    remote = hlc_from_ms(50_000)  # a node whose clock runs ahead of ours
    last = hlc_observe(hlc_from_ms(1_000), remote)
    assert hlc_tick(last, 1_001) > remote
