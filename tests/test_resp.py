"""The responder's RESP encoder and incremental reply parser."""

from __future__ import annotations

import pytest

from service.responder.resp import (
    INCOMPLETE,
    ProtocolError,
    Push,
    ReplyError,
    encode_command,
    parse_reply,
)


def _parse_all(data: bytes) -> list[object]:
    replies = []
    position = 0
    while position < len(data):
        reply, position = parse_reply(data, position)
        assert reply is not INCOMPLETE
        replies.append(reply)
    return replies


def test_encode_command() -> None:
    encoded = encode_command("GET", b"k\r\ney", 7)

    assert encoded == b"*3\r\n$3\r\nGET\r\n$5\r\nk\r\ney\r\n$1\r\n7\r\n"


def test_parse_reply_types() -> None:
    data = (b"$5\r\nhello\r\n" b"$-1\r\n" b"_\r\n" b"+OK\r\n" b"-ERR wrong\r\n" b":-2\r\n"
            b"#t\r\n" b",1.5\r\n" b"=8\r\ntxt:abcd\r\n" b"!4\r\nboom\r\n"
            b"*2\r\n$1\r\na\r\n:1\r\n" b"%1\r\n+k\r\n+v\r\n" b"|1\r\n+ttl\r\n:3\r\n+after\r\n")

    replies = _parse_all(data)

    assert replies[:4] == [b"hello", None, None, b"OK"]
    assert isinstance(replies[4], ReplyError)
    assert replies[4].message == "ERR wrong"
    assert replies[5:9] == [-2, True, 1.5, b"abcd"]
    assert isinstance(replies[9], ReplyError)
    assert replies[9].message == "boom"
    assert replies[10] == [b"a", 1]
    assert replies[11] == {b"k": b"v"}
    assert replies[12] == b"after"


def test_push_is_marked() -> None:
    reply, _ = parse_reply(b">2\r\n$10\r\ninvalidate\r\n*1\r\n$3\r\nkey\r\n", 0)

    assert type(reply) is Push
    assert reply == [b"invalidate", [b"key"]]


def test_every_split_point_incomplete() -> None:
    data = (b"$5\r\nhello\r\n" b">2\r\n$10\r\ninvalidate\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n"
            b"|1\r\n+a\r\n+b\r\n:42\r\n")
    whole = _parse_all(data)
    for cut in range(len(data)):
        replies = []
        position = 0
        while True:
            reply, position_after = parse_reply(data[:cut], position)
            if reply is INCOMPLETE:
                assert position_after == position
                break
            replies.append(reply)
            position = position_after
        # Finishing from where the cut stopped gives the same replies as one pass.
        replies += _parse_all(data[position:])
        assert replies == whole, cut


def test_unknown_type_rejected() -> None:
    with pytest.raises(ProtocolError):
        parse_reply(b"?what\r\n", 0)
