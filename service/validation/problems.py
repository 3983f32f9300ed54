"""Problems found in an uploaded certificate chain and private key, ranked for reporting."""

from __future__ import annotations

import dataclasses
import enum

CHAIN_FIELD = "certificate_chain_pem"
KEY_FIELD = "private_key_pem"
PASSPHRASE_FIELD = "passphrase"


class Rank(enum.IntEnum):
    """Reporting order: problems with a lower rank come first, because fixing them comes first.

    Input that cannot be read hides everything behind it. Names and the key pairing
    tell whether these are the right files at all. Dates, key strength and the chain
    to a trusted root come after.
    """

    INPUT = 10
    KEY_READ = 20
    NAMES = 30
    KEY_MATCH = 40
    VALIDITY = 50
    KEY_STRENGTH = 60
    LEAF_USAGE = 70
    TRUST = 80
    PATH_RULES = 90


@dataclasses.dataclass(frozen=True)
class Problem:
    """One reason to reject an upload, on one request field.

    A message names the problem, the certificate it concerns and the fix. It never
    contains any part of the private key.
    """

    field: str
    rank: Rank
    message: str


class UploadRejected(Exception):
    """An upload with at least one problem. Its problems are sorted, most important first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda problem: problem.rank)
        super().__init__("; ".join(problem.message for problem in self.problems))
