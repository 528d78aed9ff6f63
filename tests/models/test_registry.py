"""Model registry: content addressing, lineage, aliases with history, and refusal of corrupt or
tampered entries with a clear error."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from bot4.errors import ModelError
from bot4.models.registry import Registry, RegistryError, sha256_file


def _model_dir(path: Path, payload: bytes, auc: float = 0.6) -> Path:
    """A model directory in the sidecar format bot4.research.train writes (the model bytes are
    opaque to the registry)."""
    path.mkdir(parents=True)
    (path / "model.onnx").write_bytes(payload)
    side = {"format": "bot4-model/1", "model_file": "model.onnx", "sha256": hashlib.sha256(payload).hexdigest(),
            "n_features": 3, "feature_names": ["a", "b", "c"], "features": {"window": 10},
            "label": {"horizon": 100, "unit": "events"}, "trained_on": "day1",
            "metrics": {"test": {"calibrated": {"auc": auc, "brier": 0.24, "log_loss": 0.68, "ece": 0.03,
                                                "rows": 1000}}}}
    (path / "model.json").write_text(json.dumps(side))
    return path


@pytest.fixture
def reg(tmp_path):
    return Registry(tmp_path / "registry")


@pytest.fixture
def data_file(tmp_path):
    p = tmp_path / "day1.gz"
    p.write_bytes(b"recording bytes")
    return p


def test_register_is_content_addressed_with_lineage(reg, tmp_path, data_file):
    src = _model_dir(tmp_path / "m1", b"model-one")
    e = reg.register(src, data_files=[data_file])
    assert len(e.id) == 64 and e.files["model.onnx"]["sha256"] == hashlib.sha256(b"model-one").hexdigest()
    for name, meta in e.files.items():       # every file stored under its own hash
        obj = reg.root / "objects" / "sha256" / meta["sha256"][:2] / meta["sha256"]
        assert sha256_file(obj) == meta["sha256"] == sha256_file(src / name)
    assert e.lineage["data"] == [{"path": str(data_file), "sha256": sha256_file(data_file), "size": 15}]
    assert e.lineage["features"] == {"window": 10} and e.lineage["parent"] is None
    assert e.lineage["code"]["bot4"]
    assert e.metrics["calibrated_auc"] == 0.6
    # the same bytes and lineage are the same model; a child records its parent
    assert reg.register(src, data_files=[data_file]).id == e.id
    child = reg.register(_model_dir(tmp_path / "m2", b"model-two"), parent=e.id[:8])
    assert child.lineage["parent"] == e.id
    assert [r["id"] for r in reg.list()] == [e.id, child.id]


def test_aliases_promote_and_rollback(reg, tmp_path):
    a = reg.register(_model_dir(tmp_path / "a", b"A"))
    b = reg.register(_model_dir(tmp_path / "b", b"B"))
    with pytest.raises(RegistryError, match="not set"):
        reg.resolve("champion")
    reg.promote(a.id)
    reg.promote(b.id)
    reg.promote(b.id, "challenger")
    assert reg.aliases() == {"champion": b.id, "challenger": b.id}
    assert reg.rollback("champion").id == a.id
    assert reg.resolve("champion").id == a.id
    with pytest.raises(RegistryError, match="no previous model"):
        reg.rollback("champion")
    with pytest.raises(RegistryError, match="unknown alias"):
        reg.promote(a.id, "production")
    events = [json.loads(line)["event"] for line in (reg.root / "log.jsonl").read_text().splitlines()]
    assert events == ["register", "register", "promote", "promote", "promote", "rollback"]


def test_checkout_loads_back_identical_files(reg, tmp_path):
    src = _model_dir(tmp_path / "m", b"bytes")
    e = reg.register(src)
    out = reg.checkout(e.id[:10], tmp_path / "out")
    for name in e.files:
        assert (out / name).read_bytes() == (src / name).read_bytes()


def test_diff_reports_files_lineage_and_metrics(reg, tmp_path, data_file):
    a = reg.register(_model_dir(tmp_path / "a", b"A", auc=0.60), data_files=[data_file])
    b = reg.register(_model_dir(tmp_path / "b", b"B", auc=0.65), parent=a.id)
    d = reg.diff(a.id, b.id)
    assert set(d["files"]) == {"model.onnx", "model.json"}
    assert {"data", "parent"} <= set(d["lineage"])
    assert d["metrics"]["calibrated_auc"]["delta"] == pytest.approx(0.05)
    assert reg.diff(a.id, a.id)["files"] == {}


def test_tampered_object_is_refused(reg, tmp_path):
    e = reg.register(_model_dir(tmp_path / "m", b"weights"))
    obj = reg.root / "objects" / "sha256" / e.files["model.onnx"]["sha256"][:2] / e.files["model.onnx"]["sha256"]
    os.chmod(obj, 0o644)
    obj.write_bytes(b"weightz")
    with pytest.raises(RegistryError, match="model.onnx is corrupt or tampered"):
        reg.get(e.id)
    with pytest.raises(RegistryError, match="tampered"):
        reg.promote(e.id)
    with pytest.raises(RegistryError, match="tampered"):
        reg.checkout(e.id, tmp_path / "out")
    assert isinstance(RegistryError("x"), ModelError)


def test_missing_object_and_edited_manifest_are_refused(reg, tmp_path):
    a = reg.register(_model_dir(tmp_path / "a", b"A"))
    b = reg.register(_model_dir(tmp_path / "b", b"B"))
    reg.promote(a.id)
    reg.promote(b.id)
    # rolling back to a model whose manifest was edited (lineage rewritten) is refused; the alias stays
    path = reg.root / "manifests" / f"{a.id}.json"
    m = json.loads(path.read_text())
    m["lineage"]["trained_on"] = "another day"
    path.write_text(json.dumps(m))
    with pytest.raises(RegistryError, match="was modified"):
        reg.rollback("champion")
    assert reg.aliases()["champion"] == b.id
    listed = {r["id"]: r for r in reg.list()}
    assert "was modified" in listed[a.id]["error"]
    obj = reg.root / "objects" / "sha256" / b.files["model.json"]["sha256"][:2] / b.files["model.json"]["sha256"]
    os.chmod(obj, 0o644)
    obj.unlink()
    with pytest.raises(RegistryError, match="missing"):
        reg.resolve("champion")
    path.write_text("{not json")
    with pytest.raises(RegistryError, match="corrupt"):
        reg.get(a.id)


def test_registering_a_tampered_model_directory_is_refused(reg, tmp_path):
    src = _model_dir(tmp_path / "m", b"good")
    (src / "model.onnx").write_bytes(b"evil")
    with pytest.raises(RegistryError, match="does not match the SHA-256"):
        reg.register(src)
    with pytest.raises(RegistryError, match="not a model directory"):
        reg.register(tmp_path)
    with pytest.raises(RegistryError, match="data file not found"):
        reg.register(_model_dir(tmp_path / "m2", b"ok"), data_files=[tmp_path / "nope.gz"])
    assert reg.ids() == []


def test_references(reg, tmp_path, monkeypatch):
    a = reg.register(_model_dir(tmp_path / "a", b"A"))
    with pytest.raises(RegistryError, match="at least 6 hex"):
        reg.resolve("abc")
    with pytest.raises(RegistryError, match="no model matches"):
        reg.resolve("ffffff" if not a.id.startswith("ffffff") else "000000")
    assert reg.resolve(a.id[:6]).id == a.id
    monkeypatch.delenv("BOT4_REGISTRY", raising=False)
    with pytest.raises(RegistryError, match="BOT4_REGISTRY"):
        Registry()
