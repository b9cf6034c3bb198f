"""Generate a synthetic town and write its department files: ``python -m synthetic --children 50000 --out DIR``."""

from __future__ import annotations

import argparse
import time

from . import generate_town


def main(argv: list[str] | None = None) -> None:
    """Generate, write, and print record counts per source and the seconds each step took."""
    parser = argparse.ArgumentParser(prog="python -m synthetic", description=__doc__)
    parser.add_argument("--children", type=int, default=50_000, help="children aged 0–17 in the town")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", required=True, help="directory for <source>.csv and truth.csv")
    parser.add_argument(
        "--encoding", action="append", default=[], metavar="SOURCE=ENCODING",
        help="per-source encoding (utf-8, utf-8-sig, cp932), e.g. school=cp932; repeatable",
    )
    args = parser.parse_args(argv)
    encodings = {}
    for item in args.encoding:
        source, sep, encoding = item.partition("=")
        if not sep:
            parser.error(f"--encoding {item!r}: write SOURCE=ENCODING, e.g. school=cp932")
        encodings[source] = encoding

    start = time.perf_counter()
    town = generate_town(n_children=args.children, seed=args.seed)
    generated = time.perf_counter()
    try:
        paths = town.write(args.out, encodings=encodings)
    except ValueError as e:
        parser.error(str(e))
    written = time.perf_counter()

    for source, rows in town.sources.items():
        print(f"{source:<10} {len(rows):>8} records")
    print(f"{'truth':<10} {len(town.truth):>8} rows")
    print(f"generated in {generated - start:.2f} s, written in {written - generated:.2f} s ({len(paths)} files in {args.out})")


if __name__ == "__main__":
    main()
