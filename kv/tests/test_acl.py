import pytest

from kv.acl import InvalidMode, mode_allows, mode_format, mode_parse


def test_default_mode_round_trips():
    mode = mode_parse("cdwr--wr---r")
    assert mode == 0b1111_0011_0001
    assert mode_format(mode) == "cdwr--wr---r"


def test_each_bit_maps_to_one_letter():
    for bit in range(12):
        text = mode_format(1 << bit)
        assert text.count("-") == 11
        assert mode_parse(text) == 1 << bit


def test_mode_allows_reads_the_right_class():
    mode = mode_parse("cdwr--wr---r")
    assert mode_allows(mode, "owner", "d")
    assert mode_allows(mode, "group", "w")
    assert not mode_allows(mode, "group", "d")
    assert mode_allows(mode, "others", "r")
    assert not mode_allows(mode, "others", "w")


@pytest.mark.parametrize("raw", [0, 4095, "4095", "------------"])
def test_integer_and_letter_forms_are_accepted(raw):
    assert 0 <= mode_parse(raw) <= 4095


@pytest.mark.parametrize("raw", [-1, 4096, "rwx", "cdwr--wr---x", "dcwr--wr---r", True, None, 1.5])
def test_bad_modes_are_refused(raw):
    with pytest.raises(InvalidMode):
        mode_parse(raw)
