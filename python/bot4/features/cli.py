"""`bot4 features`: compute the feature matrix of a recording (or the default stream) to a file."""

from __future__ import annotations

import argparse
import json

from bot4.errors import ConfigError


def _cmd_features(args: argparse.Namespace) -> int:
    from bot4.cli import check_stream_args, stream_from_args
    from bot4.features import FeatureConfig, compute, save
    from bot4.outdir import check_new_file, staged_file
    from bot4.report.cli import feature_config

    # every argument is checked before the data is read
    out = check_new_file(args.out, suffixes=(".npz", ".parquet"))
    config = feature_config(args.feature_config) or FeatureConfig()
    check_stream_args(args)
    if args.stream:
        return _features_streamed(args, out, config)
    stream = stream_from_args(args)
    data, label, load_seconds = stream.data, stream.label, stream.load_seconds
    try:
        features = compute(data, config, progress=not args.quiet)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    with staged_file(out) as tmp:   # replaced only when completely written
        save(features, tmp)
    summary = features.summary()
    summary.update(source=label, out=str(out), load_seconds=round(load_seconds, 3),
                   events=int(len(data.book) + len(data.orders) + len(data.trades)))
    if args.json:
        print(json.dumps(summary))
        return 0
    rows, cols = features.matrix.shape
    print(f"features      {label}")
    print(f"events        {summary['events']:,}")
    print(f"rows          {rows:,} x {cols} features ({100 * summary['valid_fraction']:.1f}% valid)")
    print(f"kernels       {features.kernel_level}")
    rate = summary["events"] / features.seconds if features.seconds > 0 else 0.0
    print(f"seconds       {features.seconds:.3f} ({rate / 1e6:.2f} M events/s), load {load_seconds:.3f}")
    print(f"written       {out}")
    return 0


def _features_streamed(args: argparse.Namespace, out, config) -> int:
    """`bot4 features --stream`: rows appended to the Parquet file piece by piece
    (bot4.features.compute_parts), the recording read part by part."""
    from bot4.errors import InputError
    from bot4.features import RowWriter, compute_parts
    from bot4.outdir import staged_file
    from bot4.sources import stream_parts

    if out.suffix != ".parquet":
        raise InputError("out", f"{out}: a streamed run appends rows as it goes, which .npz cannot",
                         fix="name a .parquet file")
    stream = stream_parts(args.data, args.venue, seed=args.seed, n_events=args.events, progress=not args.quiet)
    with staged_file(out) as tmp:
        writer = RowWriter(tmp)
        try:
            summary = compute_parts(stream.parts, config, on_rows=writer, progress=not args.quiet)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        finally:
            writer.close()
    summary.update(source=stream.label, out=str(out), streamed=True)
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"features      {stream.label} (streamed part by part)")
    print(f"events        {summary['events']:,}")
    print(f"rows          {summary['rows']:,} x {summary['features']} features "
          f"({100 * summary['valid_fraction']:.1f}% valid)")
    print(f"kernels       {summary['kernel_level']}")
    print(f"seconds       {summary['seconds']:.3f} (reading included)")
    print(f"written       {out}")
    return 0


def add_features_command(sub, add_stream_args) -> None:
    from bot4.cli import Renamed

    p = sub.add_parser("features", help="compute streaming and windowed features to .npz/.parquet")
    add_stream_args(p)
    p.add_argument("--out", required=True, metavar="FILE", help="output file (.npz or .parquet)")
    p.add_argument("--feature-config", metavar="FILE",
                   help="feature config (TOML, fields of bot4.features.FeatureConfig); default FeatureConfig()")
    p.add_argument("--config", action=Renamed, pointer="use --feature-config FILE for the feature TOML")
    p.add_argument("--stream", action="store_true",
                   help="read the recording part by part (Binance, Tardis or LOBSTER files, a `bot4 convert` dataset or the embedded "
                        "stream) and append the rows to the .parquet file as they come: memory holds one part")
    p.set_defaults(func=_cmd_features)
