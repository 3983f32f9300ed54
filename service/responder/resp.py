"""RESP, the Redis serialization protocol (versions 2 and 3): command encoding and an
incremental reply parser, just enough for the responder's Redis link.

The parser returns bulk strings as bytes, nulls as None, errors as ReplyError values
(not raised, so one failed command does not disturb the replies after it) and
out-of-band push messages (RESP3 ">") as Push lists.
"""

from __future__ import annotations

# Returned by parse_reply when the buffer ends inside a reply.
INCOMPLETE = object()


class ReplyError:
    """An error reply ("-ERR ..." or a RESP3 bulk error) from the server."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message

    def __repr__(self) -> str:
        return f"ReplyError({self.message!r})"


class Push(list):
    """An out-of-band RESP3 push message, such as a client-side caching invalidation."""


class ProtocolError(Exception):
    """The server sent bytes that are not RESP."""


def encode_command(*arguments: bytes | str | int) -> bytes:
    """Encode one command as a RESP array of bulk strings."""
    parts = [b"*%d\r\n" % len(arguments)]
    for argument in arguments:
        if isinstance(argument, str):
            argument = argument.encode()
        elif isinstance(argument, int):
            argument = b"%d" % argument
        parts.append(b"$%d\r\n%b\r\n" % (len(argument), argument))
    return b"".join(parts)


def parse_reply(buffer: bytes | bytearray, position: int) -> tuple[object, int]:
    """Parse the reply that starts at position and return it with the position after it.

    Return (INCOMPLETE, position) when the buffer does not contain all of it yet.
    """
    line_end = buffer.find(b"\r\n", position)
    if line_end < 0:
        return INCOMPLETE, position
    kind = buffer[position]
    after_line = line_end + 2

    if kind == 36 or kind == 33 or kind == 61:  # "$" bulk, "!" bulk error, "=" verbatim
        length = int(buffer[position + 1:line_end])
        if length < 0:
            return None, after_line
        end = after_line + length
        if len(buffer) < end + 2:
            return INCOMPLETE, position
        data = bytes(buffer[after_line:end])
        if kind == 33:
            return ReplyError(data.decode("utf-8", "replace")), end + 2
        if kind == 61:
            data = data[4:]  # a verbatim string starts with its format, as in "txt:"
        return data, end + 2

    line = bytes(buffer[position + 1:line_end])
    if kind == 43:  # "+" simple string
        return line, after_line
    if kind == 45:  # "-" error
        return ReplyError(line.decode("utf-8", "replace")), after_line
    if kind == 58 or kind == 40:  # ":" integer, "(" big number
        return int(line), after_line
    if kind == 95:  # "_" null
        return None, after_line
    if kind == 35:  # "#" boolean
        return line == b"t", after_line
    if kind == 44:  # "," double
        return float(line), after_line

    if kind in (42, 126, 62, 37, 124):  # "*" array, "~" set, ">" push, "%" map, "|" attribute
        count = int(line)
        if count < 0:
            return None, after_line
        if kind == 37 or kind == 124:
            count *= 2
        start = position
        items = Push() if kind == 62 else []
        position = after_line
        for _ in range(count):
            item, position = parse_reply(buffer, position)
            if item is INCOMPLETE:
                return INCOMPLETE, start
            items.append(item)
        if kind == 124:
            # Attributes annotate the reply that follows them; the link has no use for them.
            reply, position = parse_reply(buffer, position)
            return (INCOMPLETE, start) if reply is INCOMPLETE else (reply, position)
        if kind == 37:
            return dict(zip(items[::2], items[1::2])), position
        return items, position
    raise ProtocolError(f"unexpected RESP type byte {kind!r} from the Redis server")
