"""The Python/JS message protocol is defined once (headpursuit_widget/protocol.py) and the
front end uses only the generated js/protocol.ts; the "layer.head" key has one parser."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import headpursuit_widget as hp
from headpursuit_widget import protocol
from headpursuit_widget.engine.editing.generation import MAX_NEW_TOKENS
from headpursuit_widget.engine.heads import head_key, parse_head_key

JS = Path(__file__).resolve().parent.parent / "js"


def test_js_protocol_is_the_generators_output():
    assert protocol.TS_PATH == JS / "protocol.ts"
    assert protocol.TS_PATH.read_text() == protocol.typescript(), (
        "js/protocol.ts is stale: run `python -m headpursuit_widget.protocol`"
    )
    assert f"export const MAX_NEW_TOKENS = {MAX_NEW_TOKENS};" in protocol.typescript()


def test_front_end_names_message_types_only_through_protocol_ts():
    kinds = "|".join([*protocol.TO_FRONT, *protocol.TO_KERNEL])
    literal = re.compile(rf'(type\s*:|===?)\s*"({kinds})"')  # a message type spelled out as a string
    sources = [p for p in JS.glob("*.ts") if p.name != "protocol.ts" and not p.name.endswith(".test.ts")]
    assert sources
    for path in sources:
        assert not literal.search(path.read_text()), f"{path.name} spells a message type; import it from protocol.ts"
    assert "2048" not in (JS / "text.ts").read_text()


def test_messages_carry_the_declared_fields():
    assert protocol.token("edited", 3, "red") == {"type": "token", "target": "edited", "gen": 3, "piece": "red"}
    assert set(protocol.stream_start("baseline", 1)) == {"type", *protocol.TO_FRONT[protocol.STREAM_START]}
    assert set(protocol.token("baseline", 1, "x")) == {"type", *protocol.TO_FRONT[protocol.TOKEN]}


def test_head_key_round_trip_and_strict_parse():
    assert head_key(12, 3) == "12.3" and parse_head_key("12.3") == (12, 3)
    assert all(parse_head_key(head_key(layer, head)) == (layer, head) for layer in range(3) for head in range(11))
    for bad in ("1-2", " 1.2", "1.2.3", "a.b", "1.", "-1.2", 12, (1, 2)):
        with pytest.raises(hp.HeadPursuitError, match="digits '.' digits"):
            parse_head_key(bad)
