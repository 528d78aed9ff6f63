"""`bot4 features`: compute the feature matrix of a recording (or the default stream) to a file."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bot4.errors import ConfigError


def _cmd_features(args: argparse.Namespace) -> int:
    import msgspec

    from bot4.cli import _load_stream
    from bot4.features import FeatureConfig, compute, save

    out = Path(args.out)
    if out.suffix not in (".npz", ".parquet"):
        raise ConfigError(f"--out must end in .npz or .parquet, got '{out.name}'")
    config = FeatureConfig()
    if args.config:
        try:
            config = FeatureConfig.from_toml(Path(args.config).read_bytes())
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise ConfigError(f"{args.config}: {exc}") from exc
    data, label, load_seconds = _load_stream(args)
    try:
        features = compute(data, config, progress=not args.json)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    save(features, out)
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


def add_features_command(sub, add_stream_args) -> None:
    p = sub.add_parser("features", help="compute streaming and windowed features to .npz/.parquet")
    add_stream_args(p)
    p.add_argument("--out", required=True, metavar="FILE", help="output file (.npz or .parquet)")
    p.add_argument("--config", metavar="FILE", help="feature config (TOML, fields of bot4.features.FeatureConfig)")
    p.set_defaults(func=_cmd_features)
