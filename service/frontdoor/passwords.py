"""The password rule of both services: long enough, not blank, not the user name, not a common password.

Strength is judged by zxcvbn (Dropbox's estimator, PyPI ``zxcvbn``): its
frequency lists hold the common passwords of public breaches, English words,
names and keyboard patterns, and it is told the user name and the service
name as user inputs, so ``yamada2026`` for user ``yamada`` scores as weak. We
add what zxcvbn does not decide for us: a minimum length, no whitespace-only
password, and the user name (in any case, reversed, or with digits and
punctuation around it) refused outright.

Messages are Japanese, for staff; the password itself never appears in one.
"""

from __future__ import annotations

import re
import unicodedata

from zxcvbn import zxcvbn

MIN_LENGTH = 12
MAX_LENGTH = 1024
#: zxcvbn scores 0–4; 3 is "safely unguessable: moderate protection from offline slow-hash scenario".
MIN_SCORE = 3
#: zxcvbn's cost grows with the length; beyond this many characters a password is long enough to judge by its head.
_SCORED_CHARS = 100
_TRIM = re.compile(r"^[\W\d_]+|[\W\d_]+$")


class WeakPassword(ValueError):
    """The password breaks the rule; the message says which part, in Japanese."""


def check_password(password: str, username: str = "", context: tuple[str, ...] = ()) -> None:
    """Raise :class:`WeakPassword` unless ``password`` may be used by ``username``.

    ``context``: other words an attacker would try first (the service's name,
    the municipality), passed to zxcvbn as user inputs.
    """
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"パスワードは {MAX_LENGTH} 文字以内にしてください。")
    try:
        password.encode("utf-8")
    except UnicodeEncodeError:
        raise WeakPassword("パスワードに使えない文字（不正な文字コード）が含まれています。") from None
    if not password.strip():
        raise WeakPassword("空白だけのパスワードは使えません。")
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"パスワードは {MIN_LENGTH} 文字以上にしてください。")
    if username and _is_name_variant(password, username):
        raise WeakPassword("利用者名（またはそれに数字や記号を足しただけのもの）はパスワードに使えません。")
    result = zxcvbn(password[:_SCORED_CHARS], user_inputs=[u for u in (username, *context) if u])
    if result["score"] < MIN_SCORE:
        raise WeakPassword("推測されやすいパスワードです（よく使われるパスワード・単語・繰り返し・利用者名を含むもの等）。"
                           "関係のない単語を 4 つ以上つなげるなど、長く推測しにくいものにしてください。")


def _is_name_variant(password: str, username: str) -> bool:
    """True if the password is the user name give or take case, reversal, repetition, digits and punctuation around it."""
    name = _fold(username)
    core = _TRIM.sub("", _fold(password))
    if not name or not core:
        return False
    local = name.split("@")[0]
    for candidate in {name, local}:
        if not candidate:
            continue
        if core in (candidate, candidate[::-1]) or core.replace(candidate, "") == "" or core.replace(candidate[::-1], "") == "":
            return True
    return False


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()
