"""Property-based tests of hostname normalisation with random and mutated input."""

from __future__ import annotations

import re

from hypothesis import example, given, settings
from hypothesis import strategies as st

from service.validation.hostname import (
    MAX_HOSTNAME_LENGTH,
    MAX_LABEL_LENGTH,
    Hostname,
    HostnameError,
    normalize_fully,
    normalize_hostname,
)

_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")

labels = st.one_of(
    st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True),
    st.sampled_from(["café", "faß", "bücher", "пример", "例え", "xn--caf-dma", "ＳＨＯＰ"]),
)
valid_looking = st.builds(
    lambda parts, tld, wildcard: ("*." if wildcard else "") + ".".join([*parts, tld]),
    st.lists(labels, min_size=1, max_size=4),
    st.sampled_from(["com", "de", "example", "xn--p1ai"]),
    st.booleans(),
)


@st.composite
def mutated(draw: st.DrawFn) -> str:
    """A plausible hostname with one or two typing or pasting accidents."""
    text = draw(valid_looking)
    for _ in range(draw(st.integers(1, 2))):
        position = draw(st.integers(0, len(text)))
        mutation = draw(st.sampled_from(
            ["insert", "delete", "upper", "dot", "space", "scheme", "port", "repeat"]))
        if mutation == "insert":
            text = text[:position] + draw(st.characters()) + text[position:]
        elif mutation == "delete":
            text = text[:position] + text[position + 1:]
        elif mutation == "upper":
            text = text.upper()
        elif mutation == "dot":
            text = text[:position] + "." + text[position:]
        elif mutation == "space":
            text = f" {text}\t"
        elif mutation == "scheme":
            text = f"https://{text}/"
        elif mutation == "port":
            text = f"{text}:{draw(st.integers(0, 99999))}"
        else:
            text = text + "." + text
    return text


def _check_normal_form(hostname: Hostname) -> None:
    name = hostname.ascii
    assert name.isascii()
    assert name == name.lower()
    assert len(name) <= MAX_HOSTNAME_LENGTH
    assert not name.endswith(".")
    labels_ = name.split(".")
    assert len(labels_) >= 2
    if hostname.wildcard:
        assert labels_[0] == "*"
        labels_ = labels_[1:]
    assert "*" not in ".".join(labels_)
    for label in labels_:
        assert len(label) <= MAX_LABEL_LENGTH
        assert _LABEL.match(label), label


def _normalize_or_none(text: str) -> Hostname | None:
    try:
        return normalize_hostname(text)
    except HostnameError as error:
        assert str(error), "a HostnameError needs a message"
        return None


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=300))
@example("\x00.com")
@example("xn--.com")
@example("xn--a.com")
@example("a." * 130 + "com")
def test_random_text_normal_or_rejected(text: str) -> None:
    hostname = _normalize_or_none(text)

    if hostname is not None:
        _check_normal_form(hostname)


@settings(max_examples=400, deadline=None)
@given(mutated())
def test_mutated_normal_or_rejected(text: str) -> None:
    hostname = _normalize_or_none(text)

    if hostname is not None:
        _check_normal_form(hostname)


@settings(max_examples=300, deadline=None)
@given(st.one_of(valid_looking, mutated()))
def test_normal_form_is_stable(text: str) -> None:
    hostname = _normalize_or_none(text)

    if hostname is not None:
        assert normalize_hostname(hostname.ascii) == hostname
        assert normalize_hostname(hostname.unicode).ascii == hostname.ascii
        assert normalize_hostname(hostname.ascii.upper() + ".").ascii == hostname.ascii


plain_names = st.builds(
    lambda parts, tld, wildcard: ("*." if wildcard else "") + ".".join([*parts, tld]),
    st.lists(st.from_regex(r"[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?", fullmatch=True),
             min_size=0, max_size=5),
    st.sampled_from(["com", "de", "example", "co.uk", "github.io", "local", "123", "xn--p1ai",
                     "a--b", "1e", "1", "uk"]),
    st.booleans(),
)


@given(st.one_of(plain_names, mutated()))
@example("shop.example.com")
@example("*.co.uk")
@example("192.168.0.1")
@example("a" * 63 + "." + "b" * 63 + "." + "c" * 63 + "." + "d" * 57 + ".com")
@example("a" * 63 + "." + "b" * 63 + "." + "c" * 63 + "." + "d" * 58 + ".com")
@settings(max_examples=500)
def test_plain_name_shortcut_matches_full_rules(text: str) -> None:
    def outcome(normalize) -> Hostname | str:
        try:
            return normalize(text)
        except HostnameError as error:
            return f"error: {error}"

    assert outcome(normalize_hostname) == outcome(normalize_fully)
