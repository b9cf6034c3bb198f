"""A synthetic town's children as each department holds them, with the truth (for benchmarks and tests).

``generate_town(n_children, seed)`` draws households and children, then writes
each child down the way each department does::

    town = generate_town(n_children=50_000, seed=1)
    town.sources["school"][0]["full_name"]     # '髙橋　陽翔' -> '高橋　陽翔' at school
    town.truth                                 # [(source, record_id, person_id), ...]
    town.write("out", encodings={"school": "cp932"})

Sources
-------
============ ================== =============================================================
source       who                how it writes a child
============ ================== =============================================================
residents    every child 0–17   住民記録: record_id 宛名番号 (10 digits); registered kanji with
                                異体字; alphabet names for foreign children (split, or one
                                field in either order); full-width katakana; ISO date; sex 1/2;
                                300-1201; full address (3丁目5番2号); ``moved_in_from``
school       小1–中3 (ages 6–15  校務支援: record_id 'S' + 7 digits; one-field name (full-width
             on 1 April)        space 75 %, half-width 5 %, none 20 %); 異体字 as the common
                                form, 〓 for 1 % of them; hiragana ふりがな; 和暦 (R06.04.01,
                                H27.4.1, 平成27年4月1日, 令和元年5月1日); 男/女; address
                                abbreviated or blank; foreign children by a 通称 (王　小明, or
                                a Japanese surname); ``absence_days``, ``school_aid`` (就学援助: receiving/none)
maternal     children 0–5       母子保健: record_id 8 digits; kanji in two columns (異体字 kept
                                by 85 %); half-width katakana (ｻｲﾄｳ, ﾊﾙﾄ); YYYYMMDD; M/F;
                                ``checkup_missed`` (乳幼児健診: missed/attended)
npo          ~4 % (ages 2–15)   こども食堂 / NPO list: record_id 'N' + 5 digits; kana only
                                (katakana or hiragana; split, or one field with or without a
                                space); 2015-04, 2015年4月 or blank; sex often blank; postal
                                code only, a short address, or nothing
============ ================== =============================================================

Population
----------
==================================== ========================================================
households                           1–4 children (40/42/15/3 %); siblings 1–6 years apart
                                     share surname, reading and address
twins                                1 % of births; same birth date and surname, different
                                     given names (40 % share a first character), same sex 65 %
surnames                             data/surnames.csv (frequency-weighted, multi-reading
                                     ones such as 上田 ウエダ/カミタ)
異体字                               per character share of families (data/itaiji.csv),
                                     about 5–6 % of families in all
given names                          data/given_names.csv by sex and birth cohort
foreign children                     3 % of households (CN 30, VN 25, BR 15, PH 15, NP 15 %)
転入 (moved in)                      5 % of households; school and NPO use the former
                                     address in 40 % of their rows
divorce                              2 % of Japanese households: 住民記録 has the new
                                     surname, school the former, 母子保健 either (50 %)
low income                           12 % of households, 50 % of single-parent ones
school enrolment                     98 % (小), 92 % (中), times 0.88 for foreign children
==================================== ========================================================

Variation (rates per name part for kana and kanji, per record otherwise)
------------------------------------------------------------------------
============================== ========= ======== ======== ======
variation                      residents school   maternal npo
============================== ========= ======== ======== ======
kana hand-entry variant        0.5 %     4 %      3 %      8 %
(サイトウ/サイトー, ヅ/ズ …)
small kana written large       –         1 %      3 %      2 %
(ショウタ -> シヨウタ)
one-character kana typo        0.1 %     1 %      1 %      2 %
kana missing                   –         1 %      3 %      –
kanji typo (similar character) –         0.5 %    0.5 %    –
day/month transposed           –         0.3 %    0.3 %    –
one date digit mistyped        –         0.3 %    0.3 %    –
============================== ========= ======== ======== ======

A variation that cannot apply (no long vowel, day above 12, no look-alike
kanji) leaves the value as it was, so realised rates are somewhat lower.

Encodings
---------
``Town.write`` writes UTF-8 by default, or per source "utf-8-sig" or "cp932".
In a CP932 file every character outside CP932 (𠮷, 𡈽) is 〓 (U+3013), as a
CP932 system holds it; ``town.sources`` keeps the character.
"""

from ._town import Town, generate_town

__all__ = ["Town", "generate_town"]
