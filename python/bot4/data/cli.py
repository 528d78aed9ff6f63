"""`bot4 convert`: decode a recording once into a columnar dataset (bot4.data.cache)."""

from __future__ import annotations

import argparse
import json
import time


def _cmd_convert(args: argparse.Namespace) -> int:
    from bot4.data.cache import convert

    started = time.perf_counter()
    manifest = convert(args.data, args.out, venue=args.venue, progress=not args.json,
                       compression=args.compression, force=args.force)
    seconds = time.perf_counter() - started
    summary = {"out": args.out, "venue": manifest["venue"], "counts": manifest["counts"],
               "partitions": sum(len(v) for v in manifest["partitions"].values()),
               "sources": [{"path": s["path"], "sha256": s["sha256"]} for s in manifest["sources"]],
               "rejections": manifest["rejections"]["counts"], "seconds": round(seconds, 3)}
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"converted     {', '.join(args.data)}")
    print(f"venue         {manifest['venue']}")
    print("records       " + ", ".join(f"{k} {v:,}" for k, v in manifest["counts"].items() if v))
    print(f"partitions    {summary['partitions']} (instrument x hour) in {args.out}")
    for s in manifest["sources"]:
        print(f"source        {s['path']} sha256 {s['sha256']}")
    print(f"seconds       {seconds:.3f}")
    return 0


def add_convert_command(sub) -> None:
    from bot4.data import VENUES

    p = sub.add_parser("convert", help="decode a recording once into a Parquet dataset that every "
                                       "--data option accepts")
    p.add_argument("--data", nargs="+", metavar="PATH", required=True,
                   help="recording file(s), one continuous recording in the order given")
    p.add_argument("--venue", choices=VENUES, help="data format (default: guessed from the file)")
    p.add_argument("--out", required=True, metavar="DIR", help="dataset directory to write")
    p.add_argument("--compression", default="zstd", choices=("zstd", "lz4", "snappy", "none"),
                   help="Parquet compression (default zstd); bot4 itself reads the uncompressed "
                        "records.npy beside each Parquet file")
    p.add_argument("--force", action="store_true", help="rebuild even if the dataset is up to date")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_convert)
