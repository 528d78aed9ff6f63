"""A content-addressed model registry with lineage and aliases (champion, challenger).

Layout under the registry root:
  objects/sha256/<2 hex>/<64 hex>   every file of every registered model, named by its SHA-256
  manifests/<id>.json               one manifest per model: its files (name -> sha256, size),
                                    lineage (data files with their hashes, feature config, label,
                                    code version, parent model) and the sidecar's test metrics
  aliases.json                      alias -> current id, and each alias's history (for rollback)
  log.jsonl                         append-only record of registrations, promotions and rollbacks

A model's id is the SHA-256 of its canonical manifest body (files + lineage), so two registrations
of the same bytes with the same lineage are one model, and an edited manifest no longer matches its
id. Every read verifies: the manifest against its id and each object against its name; a mismatch
raises RegistryError naming the file. Alias updates are atomic (write + rename) under a lock file.
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bot4.errors import ModelError

FORMAT = "bot4-registry/1"
ALIASES = ("champion", "challenger")
SIDECAR_FILE = "model.json"
ENV_ROOT = "BOT4_REGISTRY"
HASH_CHUNK = 1 << 20


class RegistryError(ModelError):
    """A registry entry that is missing, corrupt or tampered with, or a request it cannot satisfy."""


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(HASH_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def code_version() -> dict:
    """bot4's version and, when it runs from a git checkout, the commit and whether the tree is dirty."""
    import bot4

    out: dict[str, object] = {"bot4": bot4.__version__, "git_commit": None, "git_dirty": None}
    here = Path(bot4.__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10)
        if commit.returncode == 0:
            out["git_commit"] = commit.stdout.strip()
            status = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                                    capture_output=True, text=True, timeout=30)
            out["git_dirty"] = bool(status.stdout.strip()) if status.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        pass
    return out


@dataclass(frozen=True)
class Entry:
    """A verified manifest."""
    id: str
    manifest: dict

    @property
    def short(self) -> str:
        return self.id[:12]

    @property
    def files(self) -> dict:
        return self.manifest["files"]

    @property
    def lineage(self) -> dict:
        return self.manifest["lineage"]

    @property
    def created(self) -> str:
        return self.manifest["created"]

    @property
    def metrics(self) -> dict:
        return self.manifest.get("metrics", {})


class Registry:
    """A model registry rooted at `root` (default: $BOT4_REGISTRY; RegistryError without either).

    Layout, ids and integrity rules are in the module docstring.
    """

    def __init__(self, root: str | os.PathLike | None = None):
        root = root if root is not None else os.environ.get(ENV_ROOT)
        if not root:
            raise RegistryError(f"no registry directory: pass one or set {ENV_ROOT}")
        self.root = Path(root)

    # -- storage -------------------------------------------------------------------------------

    def _object(self, digest: str) -> Path:
        return self.root / "objects" / "sha256" / digest[:2] / digest

    def _manifest_path(self, model_id: str) -> Path:
        return self.root / "manifests" / f"{model_id}.json"

    def _ensure(self) -> None:
        for sub in ("objects/sha256", "manifests"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    @contextmanager
    def _locked(self):
        self._ensure()
        with open(self.root / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _put(self, path: Path) -> dict:
        digest = sha256_file(path)
        dest = self._object(digest)
        if dest.exists():
            if sha256_file(dest) != digest:
                raise RegistryError(f"stored object {dest} is corrupt (its content no longer hashes to its name); "
                                    "remove it and register again")
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(f".{digest}.{os.getpid()}.tmp")
            shutil.copyfile(path, tmp)
            if sha256_file(tmp) != digest:
                tmp.unlink()
                raise RegistryError(f"{path} changed while it was being copied into the registry")
            os.chmod(tmp, 0o444)
            os.replace(tmp, dest)
        return {"sha256": digest, "size": path.stat().st_size}

    def _log(self, event: dict) -> None:
        with open(self.root / "log.jsonl", "a") as f:
            f.write(json.dumps({"time": _now(), **event}, sort_keys=True) + "\n")

    # -- register / read -------------------------------------------------------------------------

    def register(self, model_dir: str | os.PathLike, *, data_files=(), parent: str | None = None,
                 note: str = "") -> Entry:
        """Store every file of `model_dir` (a bot4 model directory: model.json + its model file)
        and a manifest with lineage. The sidecar's own SHA-256 of the model file is checked first.
        `data_files` are the recordings the model was trained on (hashed, not copied); `parent`
        an id (or unique prefix, or alias) of the model this one was derived from."""
        src = Path(model_dir)
        sidecar_path = src / SIDECAR_FILE
        if not sidecar_path.is_file():
            raise RegistryError(f"{src} is not a model directory: {SIDECAR_FILE} missing")
        try:
            sidecar = json.loads(sidecar_path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RegistryError(f"{sidecar_path} is not valid JSON: {exc}") from exc
        model_file = src / str(sidecar.get("model_file", ""))
        if not model_file.is_file():
            raise RegistryError(f"model file named by the sidecar is missing: {model_file}")
        if sha256_file(model_file) != str(sidecar.get("sha256", "")).lower():
            raise RegistryError(f"{model_file} does not match the SHA-256 in {sidecar_path} (tampered or replaced); "
                                "not registered")
        paths = sorted(p for p in src.rglob("*") if p.is_file())
        data = []
        for d in data_files:
            dp = Path(d)
            if not dp.is_file():
                raise RegistryError(f"data file not found: {dp}")
            data.append({"path": str(dp), "sha256": sha256_file(dp), "size": dp.stat().st_size})
        parent_id = self.resolve(parent).id if parent else None
        with self._locked():
            files = {p.relative_to(src).as_posix(): self._put(p) for p in paths}
            body = {
                "format": FORMAT,
                "files": files,
                "lineage": {"data": data, "trained_on": sidecar.get("trained_on", ""),
                            "features": sidecar.get("features"), "label": sidecar.get("label"),
                            "model": sidecar.get("model"), "code": code_version(),
                            "versions": sidecar.get("versions"), "parent": parent_id},
            }
            model_id = hashlib.sha256(_canonical(body)).hexdigest()
            path = self._manifest_path(model_id)
            if path.exists():
                return self.get(model_id)
            manifest = {**body, "id": model_id, "created": _now(), "note": note,
                        "metrics": _metric_summary(sidecar)}
            _atomic_write(path, json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n")
            self._log({"event": "register", "id": model_id, "parent": parent_id})
        return self.get(model_id)

    def ids(self) -> list[str]:
        """Every registered model id, sorted."""
        d = self.root / "manifests"
        return sorted(p.stem for p in d.glob("*.json")) if d.is_dir() else []

    def get(self, model_id: str, *, verify_objects: bool = True) -> Entry:
        """The manifest of `model_id`, checked against its id, and (by default) every object."""
        path = self._manifest_path(model_id)
        if not path.is_file():
            raise RegistryError(f"no model {model_id} in {self.root}")
        try:
            manifest = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RegistryError(f"manifest {path} is corrupt: {exc}") from exc
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise RegistryError(f"manifest {path} is not a {FORMAT} manifest")
        try:
            body = {"format": manifest["format"], "files": manifest["files"], "lineage": manifest["lineage"]}
        except KeyError as exc:
            raise RegistryError(f"manifest {path} lacks {exc}") from exc
        if hashlib.sha256(_canonical(body)).hexdigest() != model_id or manifest.get("id") != model_id:
            raise RegistryError(f"manifest {path} was modified: its content no longer hashes to {model_id}")
        entry = Entry(model_id, manifest)
        if verify_objects:
            self.verify(entry)
        return entry

    def verify(self, entry: Entry) -> None:
        """Check that every object of `entry` exists with its recorded size and SHA-256; RegistryError
        naming the file otherwise."""
        for name, meta in entry.files.items():
            obj = self._object(meta["sha256"])
            if not obj.is_file():
                raise RegistryError(f"model {entry.short}: object for {name} is missing ({obj})")
            if obj.stat().st_size != meta["size"] or sha256_file(obj) != meta["sha256"]:
                raise RegistryError(f"model {entry.short}: {name} is corrupt or tampered "
                                    f"(object {obj} no longer hashes to {meta['sha256']})")

    def resolve(self, ref: str) -> Entry:
        """An alias (champion, challenger), a full id, or a unique id prefix (at least 6 hex digits)."""
        if not ref:
            raise RegistryError("empty model reference")
        aliases = self._aliases()
        if ref in aliases.get("current", {}):
            return self.get(aliases["current"][ref])
        if ref in ALIASES:
            raise RegistryError(f"alias {ref!r} is not set in {self.root}")
        if len(ref) < 6 or any(c not in "0123456789abcdef" for c in ref.lower()):
            raise RegistryError(f"{ref!r} is neither an alias {ALIASES} nor an id prefix of at least 6 hex digits")
        hits = [i for i in self.ids() if i.startswith(ref.lower())]
        if not hits:
            raise RegistryError(f"no model matches {ref!r} in {self.root}")
        if len(hits) > 1:
            raise RegistryError(f"{ref!r} is ambiguous: {', '.join(h[:12] for h in hits)}")
        return self.get(hits[0])

    def checkout(self, ref: str, dest: str | os.PathLike) -> Path:
        """Write a verified copy of a model's files to `dest` (created; must not hold other files),
        ready for bot4.models.load."""
        entry = self.resolve(ref)
        out = Path(dest)
        out.mkdir(parents=True, exist_ok=True)
        for name, meta in entry.files.items():
            target = out / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self._object(meta["sha256"]), target)
            if sha256_file(target) != meta["sha256"]:
                raise RegistryError(f"copy of {name} to {target} does not match its hash")
        return out

    # -- aliases -----------------------------------------------------------------------------------

    def _aliases(self) -> dict:
        path = self.root / "aliases.json"
        if not path.is_file():
            return {"current": {}, "history": {}}
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RegistryError(f"{path} is corrupt: {exc}") from exc
        if not isinstance(data, dict) or not isinstance(data.get("current"), dict):
            raise RegistryError(f"{path} is not an alias table")
        data.setdefault("history", {})
        return data

    def aliases(self) -> dict:
        """alias -> id."""
        return dict(self._aliases()["current"])

    def _check_alias(self, alias: str) -> None:
        if alias not in ALIASES:
            raise RegistryError(f"unknown alias {alias!r} (one of {ALIASES})")

    def promote(self, ref: str, alias: str = "champion") -> Entry:
        """Point `alias` at a verified model; the previous target goes on the alias's history."""
        self._check_alias(alias)
        entry = self.resolve(ref)
        with self._locked():
            data = self._aliases()
            previous = data["current"].get(alias)
            if previous == entry.id:
                return entry
            if previous:
                data["history"].setdefault(alias, []).append(previous)
            data["current"][alias] = entry.id
            _atomic_write(self.root / "aliases.json", json.dumps(data, indent=2, sort_keys=True).encode() + b"\n")
            self._log({"event": "promote", "alias": alias, "id": entry.id, "previous": previous})
        return entry

    def rollback(self, alias: str = "champion", reason: str = "") -> Entry:
        """Point `alias` back at its previous model (verified before the switch)."""
        self._check_alias(alias)
        with self._locked():
            data = self._aliases()
            history = data["history"].get(alias, [])
            if not history:
                raise RegistryError(f"alias {alias!r} has no previous model to roll back to")
            target = self.get(history[-1])
            current = data["current"].get(alias)
            data["history"][alias] = history[:-1]
            data["current"][alias] = target.id
            _atomic_write(self.root / "aliases.json", json.dumps(data, indent=2, sort_keys=True).encode() + b"\n")
            self._log({"event": "rollback", "alias": alias, "id": target.id, "from": current, "reason": reason})
        return target

    # -- reports -----------------------------------------------------------------------------------

    def list(self) -> list[dict]:
        """One row per model (oldest first): id, created, aliases, trained_on, parent, test metrics.
        Corrupt manifests are listed with their error instead of being skipped."""
        names: dict[str, list[str]] = {}
        for alias, mid in self.aliases().items():
            names.setdefault(mid, []).append(alias)
        rows: list[dict] = []
        for mid in self.ids():
            try:
                e = self.get(mid, verify_objects=False)
            except RegistryError as exc:
                rows.append({"id": mid, "error": str(exc)})
                continue
            rows.append({"id": mid, "created": e.created, "aliases": sorted(names.get(mid, [])),
                         "trained_on": e.lineage.get("trained_on", ""), "parent": e.lineage.get("parent"),
                         "metrics": e.metrics})
        return sorted(rows, key=lambda r: (r.get("created", ""), r["id"]))

    def diff(self, ref_a: str, ref_b: str) -> dict:
        """What differs between two models: files (by hash), lineage fields, and test metrics (b - a)."""
        a, b = self.resolve(ref_a), self.resolve(ref_b)
        files = {}
        for name in sorted(set(a.files) | set(b.files)):
            ha, hb = a.files.get(name, {}).get("sha256"), b.files.get(name, {}).get("sha256")
            if ha != hb:
                files[name] = {"a": ha, "b": hb}
        lineage = {k: {"a": a.lineage.get(k), "b": b.lineage.get(k)}
                   for k in sorted(set(a.lineage) | set(b.lineage)) if a.lineage.get(k) != b.lineage.get(k)}
        metrics = {}
        for k in sorted(set(a.metrics) | set(b.metrics)):
            va, vb = a.metrics.get(k), b.metrics.get(k)
            if va != vb:
                delta = vb - va if isinstance(va, (int, float)) and isinstance(vb, (int, float)) else None
                metrics[k] = {"a": va, "b": vb, "delta": delta}
        return {"a": a.id, "b": b.id, "files": files, "lineage": lineage, "metrics": metrics}


def _metric_summary(sidecar: dict) -> dict:
    """Flat test metrics of a sidecar (calibrated and raw AUC, Brier, log-loss, ECE)."""
    test = (sidecar.get("metrics") or {}).get("test") or {}
    out = {}
    for part in ("raw", "calibrated", "regime_calibrated"):
        m = test.get(part) or {}
        for k in ("auc", "brier", "log_loss", "ece", "rows"):
            if isinstance(m.get(k), (int, float)):
                out[f"{part}_{k}"] = m[k]
    return out


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds")
