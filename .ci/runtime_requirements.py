"""Print the installed runtime dependency closure of bot4 (no extras) as pinned requirements:
what `pip install .` puts beside the wheel, read from this environment's metadata. Input for the
CycloneDX SBOM in .ci/run."""

from __future__ import annotations

import re
from importlib import metadata

from packaging.requirements import Requirement


def closure(root: str) -> dict[str, str]:
    seen: dict[str, str] = {}
    todo = [Requirement(r) for r in metadata.requires(root) or []]
    while todo:
        req = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue  # extras and other platforms
        name = re.sub(r"[-_.]+", "-", req.name).lower()
        if name in seen:
            continue
        dist = metadata.distribution(req.name)
        seen[name] = dist.version
        todo.extend(Requirement(r) for r in dist.requires or [])
    return seen


if __name__ == "__main__":
    for name, version in sorted(closure("bot4").items()):
        print(f"{name}=={version}")
