"""Read back: dissect's probe descriptions of a HandNet beside its written ones."""

from __future__ import annotations

from dataclasses import replace

from handnet.model import HandNet, default_config
from handnet.readable import agreement, agrees, written_and_read


def test_every_channel_of_the_default_bank_reads_as_written() -> None:
    """Every conv1 filter and conv2 rule of the default bank (lines, corners, sides, curves)
    is named by dissect's probes by the words it is written with: probes meet a deeper channel
    at every phase of the pooling before it. (With edges at even offsets only, the bottom and
    right sides were read as plain lines; with shapes drawn at the centre only, the corner
    opening up-left was read as a curve, while the three mirror images of both read right.)"""
    table = written_and_read(HandNet().eval())
    assert len(table) == 24 and table["agrees"].all(), table[~table["agrees"]]
    assert agreement(table)["all"] == {"agreeing": 24, "channels": 24, "share": 1.0}
    assert agreement(table)["conv2"]["channels"] == 16


def test_a_rule_written_with_the_wrong_words_disagrees() -> None:
    config = default_config()
    rules = list(config.conv2)  # 1: horizontal line, 5: corner opening down-right
    rules[0], rules[4] = (replace(rules[0], description=rules[4].description),
                          replace(rules[4], description=rules[0].description))  # fmt: skip
    net = HandNet(replace(config, conv2=tuple(rules))).eval()
    table = written_and_read(net)
    conv2 = table[table["layer"] == "conv2"].set_index("channel")
    assert not conv2.loc[1, "agrees"] and conv2.loc[1, "read"] == "horizontal line"
    assert not conv2.loc[5, "agrees"] and conv2.loc[5, "read"] == "corner opening down-right"
    assert agreement(table)["conv2"]["agreeing"] == 14


def test_words_are_compared_at_the_probes_resolution() -> None:
    assert agrees("line at 45 degrees (/)", "line at 38 degrees", first_layer=True)
    assert agrees("line at 22.5 degrees", "line at 30 degrees", first_layer=True)
    assert not agrees("line at 45 degrees (/)", "line at 38 degrees")  # deeper: as written
    assert agrees("upper-left side of a / line", "upper-left side of a line at 45 degrees")
    assert agrees("horizontal line", "horizontal line, reinforced along itself")
    assert not agrees("horizontal line", "horizontal line segment")
    assert not agrees("", "")
