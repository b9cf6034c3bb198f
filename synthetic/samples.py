"""Department files of a synthetic town, laid out as each preset's source systems export them.

``python -m synthetic.samples --children 80 --out DIR`` writes, from
``synthetic.generate_town``::

    DIR/edu_network/school.csv           校務支援システム (CP932; 学籍番号, 氏名, ふりがな, 和暦, 男/女, 出欠, 保健室来室, 健診)
    DIR/mynumber_network/residents.csv   住民記録 (CP932 with 外字; 宛名番号, 異動事由, 転入元・転出先, 児童扶養手当, 生活保護, 障害福祉)
    DIR/mynumber_network/gaiji.toml      the 外字 table the residents file needs
    DIR/mynumber_network/maternal.tsv    母子保健 (UTF-8 TSV; half-width katakana, YYYYMMDD, M/F, 乳幼児健診)
    DIR/internet_network/npo.csv         こども食堂・NPO (UTF-8 with BOM; kana only, year-month)
    DIR/internet_network/csw.xlsx        CSW の相談者一覧 (Excel; kana only, year-month)
    DIR/truth.csv                        source, record_id, person_id (for evaluation only)

Without ``--out`` the small samples inside each preset folder are rewritten.
"""

from __future__ import annotations

import argparse
import csv
import random
from datetime import date
from pathlib import Path

from synthetic import Town, generate_town
from synthetic._variation import cp932_text

PRESETS = Path(__file__).resolve().parents[1] / "agents"
#: The school system's own words for 就学援助 (its mapping turns them back into the canonical codes).
_SCHOOL_AID = {"receiving": "1", "none": "0", "": ""}

SCHOOL_COLUMNS = ("学籍番号", "学年", "組", "氏名", "ふりがな", "生年月日", "性別", "郵便番号", "住所",
                  "欠席日数", "就学援助", "保健室来室回数", "健康診断")
RESIDENT_COLUMNS = ("宛名番号", "氏名", "氏名カナ", "生年月日", "性別", "郵便番号", "住所", "異動事由", "異動日",
                    "転入元市区町村コード", "転出先市区町村コード", "児童扶養手当", "生活保護", "障害福祉")
MATERNAL_COLUMNS = ("対象者番号", "氏", "名", "氏ｶﾅ", "名ｶﾅ", "生年月日", "性別", "郵便番号", "住所", "乳幼児健診")
NPO_COLUMNS = ("参加者番号", "ふりがな（姓）", "ふりがな（名）", "ふりがな", "生年月", "性別", "郵便番号", "住所", "参加回数", "備考")
CSW_COLUMNS = ("相談番号", "氏名カナ", "生年月", "性別", "地区", "相談種別")


def _rng(seed: int, *key: str) -> random.Random:
    return random.Random(f"{seed}|" + "|".join(key))


def _full(family: str, given: str, full: str) -> str:
    return full or (f"{family}\u3000{given}" if family or given else "")


def school_rows(town: Town) -> list[list[str]]:
    """校務支援システム export rows."""
    out = []
    for row in town.sources["school"]:
        r = _rng(town.seed, "school", row["record_id"])
        grade = r.randint(1, 9)
        out.append([row["record_id"], f"{'小' if grade <= 6 else '中'}{grade if grade <= 6 else grade - 6}", str(r.randint(1, 4)),
                    row["full_name"], row["full_name_kana"], row["birth_date"], row["sex"], row["postal_code"], row["address"],
                    row["absence_days"], _SCHOOL_AID[row["school_aid"]], str(min(40, int(r.expovariate(0.4)))),
                    "未受診" if r.random() < 0.04 else "受診"])
    return out


def resident_rows(town: Town, cities: list[str]) -> list[list[str]]:
    """住民記録 rows with 異動 (転入・転出) and welfare flags from the 統合宛名 view."""
    out = []
    for row in town.sources["residents"]:
        r = _rng(town.seed, "residents", row["record_id"])
        moved_in, moved_out = row["moved_in_from"], ""
        if not moved_in and r.random() < 0.01:
            moved_out = r.choice(cities)
        reason = "転入" if moved_in else "転出" if moved_out else ""
        moved_on = date(2024, r.randint(1, 12), r.randint(1, 28)).isoformat() if reason else ""
        allowance = r.random() < 0.08
        out.append([row["record_id"], _full(row["family_name"], row["given_name"], row["full_name"]),
                    _full(row["family_name_kana"], row["given_name_kana"], row["full_name_kana"]),
                    row["birth_date"], row["sex"], row["postal_code"], row["address"], reason, moved_on, moved_in, moved_out,
                    "受給" if allowance else "", "受給" if r.random() < (0.15 if allowance else 0.01) else "",
                    "手帳あり" if r.random() < 0.02 else ""])
    return out


def maternal_rows(town: Town) -> list[list[str]]:
    """母子保健 rows."""
    return [[row["record_id"], row["family_name"], row["given_name"], row["family_name_kana"], row["given_name_kana"],
             row["birth_date"], row["sex"], row["postal_code"], row["address"], "未受診" if row["checkup_missed"] == "missed" else "受診"]
            for row in town.sources["maternal"]]


def npo_rows(town: Town) -> list[list[str]]:
    """こども食堂・NPO participant list rows (kana only)."""
    out = []
    for row in town.sources["npo"]:
        r = _rng(town.seed, "npo", row["record_id"])
        out.append([row["record_id"], row["family_name_kana"], row["given_name_kana"], row["full_name_kana"], row["birth_date"],
                    row["sex"], row["postal_code"], row["address"], str(r.randint(1, 30)), ""])
    return out


def csw_rows(town: Town, share: float = 0.1) -> list[list[str]]:
    """CSW (コミュニティソーシャルワーカー) list: a share of the residents, kana only, birth year and month."""
    out = []
    for number, row in enumerate(town.sources["residents"], start=1):
        r = _rng(town.seed, "csw", row["record_id"])
        if r.random() >= share or not row["family_name_kana"]:
            continue
        year, month = row["birth_date"][:4], int(row["birth_date"][5:7])
        district = row["address"].split("市")[-1][:3]
        out.append([f"C{number:05d}", f"{row['family_name_kana']} {row['given_name_kana']}", f"{year}年{month}月",
                    "男" if row["sex"] == "1" else "女", district, r.choice(("生活", "子育て", "学校", "家族"))])
    return out


def write_csv(path: Path, columns: tuple[str, ...], rows: list[list[str]], encoding: str, delimiter: str = ",",
              gaiji: dict[str, str] | None = None) -> None:
    """Write a department file; in CP932, characters outside it get 外字 code points from ``gaiji`` (or 〓 without one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding=encoding, newline="") as fh:
        writer = csv.writer(fh, delimiter=delimiter, lineterminator="\r\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_encodable(cell, encoding, gaiji) for cell in row])


def _encodable(text: str, encoding: str, gaiji: dict[str, str] | None) -> str:
    return cp932_text(text, gaiji) if encoding == "cp932" else text


def _write_xlsx(path: Path, columns: tuple[str, ...], rows: list[list[str]]) -> None:
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("相談者一覧")
    sheet.append(list(columns))
    for row in rows:
        sheet.append(row)
    path.parent.mkdir(parents=True, exist_ok=True)
    workbook.save(path)


def write_samples(out: Path | None, children: int, seed: int) -> dict[str, Path]:
    """Write every preset's department files for a town of ``children``; ``out=None`` rewrites the presets' samples."""
    town = generate_town(n_children=children, seed=seed)
    with (Path(__file__).resolve().parent / "data" / "municipalities.csv").open(encoding="utf-8") as fh:
        cities = [row["code"] for row in csv.DictReader(fh)]

    def where(preset: str, name: str) -> Path:
        return (out / preset / name) if out is not None else PRESETS / preset / "samples" / name

    paths = {
        "school": where("edu_network", "school.csv"),
        "residents": where("mynumber_network", "residents.csv"),
        "gaiji": where("mynumber_network", "gaiji.toml"),
        "maternal": where("mynumber_network", "maternal.tsv"),
        "npo": where("internet_network", "npo.csv"),
        "csw": where("internet_network", "csw.xlsx"),
    }
    write_csv(paths["school"], SCHOOL_COLUMNS, school_rows(town), "cp932")
    gaiji: dict[str, str] = {}
    write_csv(paths["residents"], RESIDENT_COLUMNS, resident_rows(town, cities), "cp932", gaiji=gaiji)
    lines = ["# 外字表: 住民記録システムの外字（私用領域の符号位置）と、それが表す文字（表せない字は 〓）。",
             '# 書き方: "U+E000" = "𠮷"', "[gaiji]"]
    lines += [f'"U+{ord(code):04X}" = "{char}"' for char, code in gaiji.items()]
    paths["gaiji"].write_text("\n".join(lines) + "\n", encoding="utf-8")
    write_csv(paths["maternal"], MATERNAL_COLUMNS, maternal_rows(town), "utf-8", delimiter="\t")
    write_csv(paths["npo"], NPO_COLUMNS, npo_rows(town), "utf-8-sig")
    _write_xlsx(paths["csw"], CSW_COLUMNS, csw_rows(town))
    if out is not None:
        paths["truth"] = out / "truth.csv"
        with paths["truth"].open("w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(("source", "record_id", "person_id"))
            writer.writerows(town.truth)
    return paths


def main(argv: list[str] | None = None) -> None:
    """Command line: write the samples and print where."""
    parser = argparse.ArgumentParser(prog="python -m synthetic.samples", description=__doc__.splitlines()[0])
    parser.add_argument("--children", type=int, default=80)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, help="output folder (default: each preset's samples/ folder)")
    args = parser.parse_args(argv)
    for name, path in write_samples(args.out, args.children, args.seed).items():
        print(f"{name:<10} {path}")


if __name__ == "__main__":
    main()
