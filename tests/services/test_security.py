"""bot4.services.security and `bot4 keys`: CURVE over real tcp sockets on 127.0.0.1. An authorised
client receives; a peer without CURVE and a peer with an unknown key receive nothing and their
refusals are counted; bad key files are clear KeyFileErrors (one line, exit 2 in the CLI)."""

from __future__ import annotations

import os
import stat
import time

import pytest
import zmq

from bot4.cli import main
from bot4.errors import InputError, KeyFileError
from bot4.services.security import (
    CurveGuard,
    HandshakeMonitor,
    KeyDir,
    generate_keys,
    load_secret,
    secure_client,
    secure_server,
)


@pytest.fixture
def keys(tmp_path):
    d = tmp_path / "keys"
    generate_keys(d)
    return d


@pytest.fixture
def ctx():
    c = zmq.Context()
    yield c
    c.destroy(linger=0)


def _publish_until(pub, subs, seconds, stop_when=None):
    """Publish for up to `seconds`; returns frames received per subscriber."""
    got = dict.fromkeys(subs, 0)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pub.send(b"tick")
        for k, s in subs.items():
            while s.poll(0):
                assert s.recv() == b"tick"
                got[k] += 1
        if stop_when is not None and stop_when(got):
            break
        time.sleep(0.005)
    return got


def _sub(ctx, port, secure=None):
    s = ctx.socket(zmq.SUB)
    s.linger = 0
    s.subscribe(b"")
    if secure is not None:
        secure(s)
    s.connect(f"tcp://127.0.0.1:{port}")
    return s


def _server(ctx, keys, guard):
    pub = ctx.socket(zmq.PUB)
    pub.linger = 0
    mon = HandshakeMonitor(pub)
    secure_server(pub, keys, guard)
    return pub, mon, pub.bind_to_random_port("tcp://127.0.0.1")


def test_authorised_client_receives_and_others_are_refused_and_counted(keys, ctx):
    with CurveGuard(ctx, keys) as guard:
        pub, mon, port = _server(ctx, keys, guard)
        server_public = KeyDir(keys).server_public()

        def unknown(s):
            public, secret = zmq.curve_keypair()   # a well-formed key the server never authorised
            s.curve_serverkey, s.curve_publickey, s.curve_secretkey = server_public, public, secret

        subs = {"authorised": _sub(ctx, port, lambda s: secure_client(s, keys)),
                "unknown_key": _sub(ctx, port, unknown),
                "plain": _sub(ctx, port)}
        # Publish until the authorised client has 50 frames and both refusals were seen; the others
        # then had every chance to receive the same frames.
        got = _publish_until(pub, subs, 10.0, lambda g: g["authorised"] >= 50
                             and guard.counters()["zap.denied"] >= 1
                             and mon.counters()["handshake.failed_protocol"] >= 1)
        assert got["authorised"] >= 50
        assert got["unknown_key"] == 0 and got["plain"] == 0
        zap = guard.counters()
        assert zap["zap.allowed"] == 1 and zap["zap.denied"] >= 1
        hs = mon.counters()
        assert hs["handshake.succeeded"] == 1
        assert hs["handshake.failed_auth"] >= 1          # the unknown key, refused by ZAP
        assert hs["handshake.failed_protocol"] >= 1      # the peer without CURVE
        mon.stop()
        for s in subs.values():
            s.close()
        pub.close()


def test_second_client_and_reload(keys, ctx):
    generate_keys(keys, name="bob")
    assert sorted(KeyDir(keys).authorised()) == ["bob", "client"]
    with CurveGuard(ctx, [KeyDir(keys).authorised()["client"]]) as guard:  # bob not (yet) admitted
        pub, mon, port = _server(ctx, keys, guard)
        bob = _sub(ctx, port, lambda s: secure_client(s, keys, "bob"))
        got = _publish_until(pub, {"bob": bob}, 10.0, lambda g: guard.counters()["zap.denied"] >= 1)
        assert got["bob"] == 0 and guard.counters()["zap.denied"] >= 1
        bob.close()
        guard.reload(keys)   # clients/ now admits bob
        bob = _sub(ctx, port, lambda s: secure_client(s, keys, "bob"))
        got = _publish_until(pub, {"bob": bob}, 10.0, lambda g: g["bob"] >= 10)
        assert got["bob"] >= 10 and guard.counters()["zap.allowed"] == 1
        mon.stop()
        bob.close()
        pub.close()


def test_guard_must_share_the_sockets_context(keys, ctx):
    other = zmq.Context()
    try:
        with CurveGuard(other, keys) as guard:
            s = ctx.socket(zmq.PUB)
            with pytest.raises(ValueError, match="context"):
                secure_server(s, keys, guard)
            s.close()
    finally:
        other.term()


def test_generated_files_modes_and_no_overwrite(tmp_path):
    d = tmp_path / "k"
    out = generate_keys(d)
    assert out.server_created and len(out.written) == 4
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    for f in ("server.key_secret", "client.key_secret"):
        assert stat.S_IMODE((d / f).stat().st_mode) == 0o600
    before = (d / "client.key_secret").read_bytes()
    with pytest.raises(KeyFileError, match="already exists"):
        generate_keys(d)
    assert (d / "client.key_secret").read_bytes() == before
    server = (d / "server.key_secret").read_bytes()
    again = generate_keys(d, force=True)
    assert not again.server_created and len(again.written) == 2
    assert (d / "client.key_secret").read_bytes() != before
    assert (d / "server.key_secret").read_bytes() == server   # clients keep a valid server key
    assert not [p for p in d.iterdir() if p.name.startswith(".keys-")]  # no staging left behind
    with pytest.raises(InputError, match="client name"):
        generate_keys(d, name="../evil")
    with pytest.raises(InputError, match="client name"):
        generate_keys(d, name="server")


def test_bad_key_files_are_clear_errors(keys, tmp_path):
    kd = KeyDir(keys)
    with pytest.raises(KeyFileError, match="no such keys directory"):
        KeyDir(tmp_path / "none").server_public()
    with pytest.raises(KeyFileError, match="missing"):
        kd.client_secret("nobody")
    (keys / "client.key_secret").chmod(0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        kd.client_secret()
    (keys / "client.key_secret").chmod(0o600)
    kd.client_secret()
    # malformed: no key at all, a key of the wrong length, a secret of another pair
    (keys / "server.key").write_text("not a certificate\n")
    with pytest.raises(KeyFileError, match="cannot read a CURVE certificate"):
        kd.server_public()
    (keys / "server.key").write_text('curve\n    public-key = "tooshort"\n')
    with pytest.raises(KeyFileError, match="40-character Z85"):
        kd.server_public()
    text = (keys / "server.key_secret").read_text()
    other = zmq.curve_keypair()[1].decode()
    secret_line = next(line for line in text.splitlines() if "secret-key" in line)
    (keys / "server.key_secret").write_text(text.replace(secret_line, f'    secret-key = "{other}"'))
    with pytest.raises(KeyFileError, match="does not belong"):
        load_secret(keys / "server.key_secret")
    public_only = keys / "clients" / "client.key"
    os.chmod(public_only, 0o600)
    with pytest.raises(KeyFileError, match="no secret-key"):
        load_secret(public_only)
    for f in (keys / "clients").iterdir():
        f.unlink()
    with pytest.raises(KeyFileError, match="no client certificates"):
        kd.authorised()


def test_cli_generate_and_show(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["keys", "generate", "keys"]) == 0
    assert main(["keys", "generate", "keys", "--name", "bob"]) == 0
    out = capsys.readouterr().out
    assert "wrote keys/clients/bob.key" in out and "kept the existing server keys" in out
    assert main(["keys", "show", "keys"]) == 0
    out = capsys.readouterr().out
    kd = KeyDir("keys")
    assert kd.server_public().decode() in out and "bob" in out
    assert kd.server_secret().secret.decode() not in out   # never a secret
    assert main(["keys", "generate", "keys", "--name", "bob", "--force"]) == 0
    capsys.readouterr()


@pytest.mark.parametrize("argv, damage, message", [
    (["keys", "show", "nowhere"], None, "no such keys directory"),
    (["keys", "generate", "keys"], None, "already exists"),
    (["keys", "show", "keys"], "garbage", "cannot read a CURVE certificate"),
    (["keys", "generate", "keys", "--name", "bob"], "garbage_secret", "cannot read a CURVE certificate"),
    (["keys", "generate", "keys", "--name", "a/b"], None, "not a client name"),
])
def test_cli_errors_are_one_line_exit_2(tmp_path, capsys, monkeypatch, argv, damage, message):
    monkeypatch.chdir(tmp_path)
    assert main(["keys", "generate", "keys"]) == 0
    capsys.readouterr()
    if damage == "garbage":
        (tmp_path / "keys" / "server.key").write_bytes(b"\x00\xff garbage")
    elif damage == "garbage_secret":
        (tmp_path / "keys" / "server.key_secret").write_bytes(b"\x00\xff garbage")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("bot4 keys: error: ") and message in err
    assert "Traceback" not in err
