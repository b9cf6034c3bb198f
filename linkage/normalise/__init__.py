"""Japanese normalisation: a CanonicalRecord becomes the one comparable NormalisedRecord.

Pure code: no I/O and no state besides caches of pure functions. Every
function is idempotent on its own output. Modules by job: ``text`` (NFKC,
spaces, unknown characters), ``kanji`` (itaiji folding), ``kana`` (kana keys),
``names`` (scripts, splitting), ``dates`` (birth dates, wareki), ``sex``,
``postal``, ``address``.
"""

from __future__ import annotations

from linkage.normalise.address import kanji_number, normalise_address
from linkage.normalise.dates import parse_birth_date
from linkage.normalise.kana import kana_key
from linkage.normalise.kanji import fold_itaiji, fold_kanji, fold_repetition, is_jis_x_0208
from linkage.normalise.names import (
    KANJI,
    LATIN,
    detect_script,
    latin_tokens_sorted,
    normalise_kanji_name,
    normalise_latin_name,
    normalise_name,
    split_full_kana,
    split_full_name,
)
from linkage.normalise.postal import normalise_postal_code
from linkage.normalise.sex import normalise_sex
from linkage.normalise.text import clean_text, remove_spaces
from linkage.record import CanonicalRecord, NormalisedRecord

__all__ = [
    "KANJI",
    "LATIN",
    "clean_text",
    "detect_script",
    "fold_itaiji",
    "fold_kanji",
    "fold_repetition",
    "is_jis_x_0208",
    "kana_key",
    "kanji_number",
    "latin_tokens_sorted",
    "normalise_address",
    "normalise_kanji_name",
    "normalise_latin_name",
    "normalise_name",
    "normalise_postal_code",
    "normalise_record",
    "normalise_sex",
    "parse_birth_date",
    "remove_spaces",
    "split_full_kana",
    "split_full_name",
]


def _name_script(raw: tuple[str, ...], normalised: tuple[str | None, ...]) -> str | None:
    """Script of the name as given: kanji if any part has kanji or kana, else latin; None without a name."""
    if not any(normalised):
        return None
    scripts = {detect_script(part) for part in raw}
    return LATIN if LATIN in scripts and KANJI not in scripts else KANJI


def normalise_record(rec: CanonicalRecord) -> NormalisedRecord:
    """Normalise every identity field of ``rec``.

    The family_name/given_name columns win when either holds text; otherwise
    full_name is split (``split_full_name``). Kana likewise: family/given kana
    columns, else full_name_kana (``split_full_kana``). The *_split_inferred
    flags say when a split came from a one-field value. A value that cannot
    be understood raises FieldError naming its column, for the caller to
    report with file and row.
    """
    if rec.family_name.strip() or rec.given_name.strip():
        raw_name: tuple[str, ...] = (rec.family_name, rec.given_name)
        family, given = normalise_name(rec.family_name), normalise_name(rec.given_name)
        name_inferred = False
    else:
        raw_name = (rec.full_name,)
        family, given, name_inferred = split_full_name(rec.full_name)
    if rec.family_name_kana.strip() or rec.given_name_kana.strip():
        family_kana, given_kana = kana_key(rec.family_name_kana), kana_key(rec.given_name_kana)
        kana_inferred = False
    else:
        family_kana, given_kana, kana_inferred = split_full_kana(rec.full_name_kana)
    year, month, day = parse_birth_date(rec.birth_date)
    return NormalisedRecord(
        family_name=family,
        given_name=given,
        name_script=_name_script(raw_name, (family, given)),
        name_split_inferred=name_inferred,
        family_kana=family_kana,
        given_kana=given_kana,
        kana_split_inferred=kana_inferred,
        birth_year=year,
        birth_month=month,
        birth_day=day,
        sex=normalise_sex(rec.sex),
        postal_code=normalise_postal_code(rec.postal_code),
        address=normalise_address(rec.address),
    )
