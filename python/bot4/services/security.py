"""CURVE keys for services across hosts (tcp): a keys directory, a ZAP guard that admits only the
authorised client keys, and the socket options that make a server or a client socket secure.

A keys directory (`bot4 keys generate DIR`) holds::

    server.key            the server's public certificate (give it to every client)
    server.key_secret     the server's secret certificate (mode 0600; stays on the server host)
    clients/NAME.key      the public certificate of each authorised client
    NAME.key_secret       client NAME's secret certificate (mode 0600; copy it to that client's host
                          together with server.key)

Certificates are pyzmq's format (zmq.auth.create_certificates / load_certificate): Z85 keys in a
small text file. Loading checks what libzmq would otherwise take silently: a key that is not 40
Z85 characters, a secret that does not belong to its public key, a secret file readable by group
or others (like ssh, refused with the chmod that fixes it). Every such problem is a
bot4.errors.KeyFileError naming the file.

Without a ZAP handler, libzmq lets any CURVE client in that knows the server's public key, so a
server socket is made secure only together with a CurveGuard (a zmq.auth ThreadAuthenticator on
the socket's context that answers ZAP requests from the authorised keys and counts its answers).
A peer without CURVE never reaches ZAP: its handshake fails on the mechanism, which a
HandshakeMonitor on the server socket counts.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import stat
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85
from zmq.utils.monitor import recv_monitor_message

from bot4.errors import InputError, KeyFileError

log = logging.getLogger("bot4.services.security")

#: The ZAP domain of bot4's secure sockets (the guard answers for this domain only).
ZAP_DOMAIN = "bot4"
SERVER = "server"
CLIENTS = "clients"
PUBLIC_SUFFIX = ".key"
SECRET_SUFFIX = ".key_secret"
DEFAULT_CLIENT = "client"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_Z85_KEY_CHARS = 40  # a 32-byte key in Z85


class KeyPair(NamedTuple):
    """A certificate's keys, Z85 bytes (secret None for a public certificate)."""

    public: bytes
    secret: bytes | None


class GeneratedKeys(NamedTuple):
    """What generate_keys wrote: every path written, and whether the server pair is new (False:
    an existing server pair was kept)."""

    written: tuple[Path, ...]
    server_created: bool


def check_name(name: str) -> str:
    """`name` as a client name (letters, digits, `_.-`; not "server"), else InputError."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name == SERVER:
        raise InputError("name", f"{name!r} is not a client name",
                         fix="use 1-64 letters, digits, '_', '.' or '-' (not 'server')")
    return name


def _check_key(path: Path, key: bytes, what: str) -> bytes:
    try:
        ok = len(key) == _Z85_KEY_CHARS and len(z85.decode(key)) == 32
    except (ValueError, KeyError, IndexError):
        ok = False
    if not ok:
        raise KeyFileError(f"{path}: the {what} key is not a 40-character Z85 CURVE key")
    return key


def load_public(path: str | os.PathLike) -> bytes:
    """The public key (Z85 bytes) of the certificate at `path` (public or secret certificate)."""
    p = Path(path)
    try:
        public, _ = zmq.auth.load_certificate(p)
    except (OSError, ValueError, IndexError) as exc:
        raise KeyFileError(f"{p}: cannot read a CURVE certificate ({exc})") from None
    return _check_key(p, public, "public")


def load_secret(path: str | os.PathLike) -> KeyPair:
    """The key pair of the secret certificate at `path`: it must be private to its owner (no group
    or other permissions), hold a secret key, and that secret must belong to its public key."""
    p = Path(path)
    try:
        mode = p.stat().st_mode
    except OSError as exc:
        raise KeyFileError(f"{p}: cannot read a CURVE secret certificate ({exc.strerror})") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(f"{p}: a secret certificate readable by others (mode {stat.S_IMODE(mode):o}); "
                           f"run `chmod 600 {p}`")
    public = load_public(p)
    _, secret = zmq.auth.load_certificate(p)
    if secret is None:
        raise KeyFileError(f"{p}: no secret-key in this certificate (is it the public one?)")
    _check_key(p, secret, "secret")
    if zmq.curve_public(secret) != public:
        raise KeyFileError(f"{p}: the secret key does not belong to the certificate's public key")
    return KeyPair(public, secret)


class KeyDir:
    """A keys directory (layout in the module docstring); reading it never changes it."""

    def __init__(self, directory: str | os.PathLike):
        self.path = Path(directory)

    def server_public(self) -> bytes:
        """The server's public key (Z85); the file clients need."""
        return load_public(self._existing(self.path / (SERVER + PUBLIC_SUFFIX)))

    def server_secret(self) -> KeyPair:
        """The server's key pair (server host only)."""
        return load_secret(self._existing(self.path / (SERVER + SECRET_SUFFIX)))

    def client_secret(self, name: str = DEFAULT_CLIENT) -> KeyPair:
        """Client `name`'s key pair (that client's host)."""
        return load_secret(self._existing(self.path / (check_name(name) + SECRET_SUFFIX)))

    def authorised(self) -> dict[str, bytes]:
        """Client name -> public key (Z85) of every certificate in clients/ (the keys the server
        admits); an empty or missing clients/ is an error (a guard would admit no one)."""
        folder = self._existing(self.path / CLIENTS, directory=True)
        out = {f.name[: -len(PUBLIC_SUFFIX)]: load_public(f)
               for f in sorted(folder.glob("*" + PUBLIC_SUFFIX)) if f.is_file()}
        if not out:
            raise KeyFileError(f"{folder}: no client certificates (*{PUBLIC_SUFFIX}); "
                               f"add one with `bot4 keys generate {self.path} --name NAME`")
        return out

    def describe(self) -> dict[str, Any]:
        """Public keys and the secret files with their modes (never a secret key), for `bot4 keys show`."""
        secrets = []
        for f in sorted(self.path.glob("*" + SECRET_SUFFIX)):
            mode = stat.S_IMODE(f.stat().st_mode)
            secrets.append({"file": f.name, "mode": f"{mode:o}", "private": not mode & 0o077})
        return {"directory": str(self.path), "server": self.server_public().decode(),
                "clients": {k: v.decode() for k, v in self.authorised().items()}, "secrets": secrets}

    def _existing(self, p: Path, directory: bool = False) -> Path:
        if not self.path.is_dir():
            raise KeyFileError(f"{self.path}: no such keys directory (create one with `bot4 keys generate {self.path}`)")
        if not (p.is_dir() if directory else p.is_file()):
            raise KeyFileError(f"{p}: missing from the keys directory")
        return p


def _new_pair(staging: Path, name: str) -> tuple[Path, Path]:
    public, secret = (Path(s) for s in zmq.auth.create_certificates(staging, name))
    # Written with the process umask inside a 0700 staging folder no one else can enter; made
    # private before it is moved to where others could look.
    secret.chmod(0o600)
    return public, secret


def generate_keys(directory: str | os.PathLike, name: str = DEFAULT_CLIENT, force: bool = False) -> GeneratedKeys:
    """Write client `name`'s certificates into `directory` (created, mode 0700, if missing), and the
    server's when the directory has none yet (an existing server pair is kept, so adding a client
    never invalidates the others). Existing certificates of `name` are refused unless `force`.
    Secret files are mode 0600; every file appears whole (written aside, then renamed)."""
    check_name(name)
    root = Path(directory)
    if root.exists() and not root.is_dir():
        raise KeyFileError(f"{root}: exists and is not a directory")
    client_public = root / CLIENTS / (name + PUBLIC_SUFFIX)
    client_secret = root / (name + SECRET_SUFFIX)
    taken = [p for p in (client_public, client_secret) if p.exists()]
    if taken and not force:
        raise KeyFileError(f"{taken[0]}: already exists; refusing to replace the keys of client {name!r} "
                           "(force=True, `--force` on the command line, replaces them)")
    server_public, server_secret = root / (SERVER + PUBLIC_SUFFIX), root / (SERVER + SECRET_SUFFIX)
    have_server = server_public.exists(), server_secret.exists()
    if have_server[0] != have_server[1]:
        raise KeyFileError(f"{root}: has only one of {server_public.name}, {server_secret.name}; "
                           "restore the other or generate into a new directory")
    if have_server[1]:
        KeyDir(root).server_secret()  # a damaged server pair is reported, not silently kept
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    (root / CLIENTS).mkdir(mode=0o700, exist_ok=True)
    written: list[Path] = []
    staging = Path(tempfile.mkdtemp(prefix=".keys-", dir=root))
    try:
        if not have_server[0]:
            pub, sec = _new_pair(staging, SERVER)
            os.replace(sec, server_secret)
            os.replace(pub, server_public)
            written += [server_public, server_secret]
        pub, sec = _new_pair(staging, name)
        os.replace(sec, client_secret)
        os.replace(pub, client_public)
        written += [client_public, client_secret]
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return GeneratedKeys(tuple(written), not have_server[0])


class _AllowedKeys:
    """ZAP credentials provider (zmq.auth's configure_curve_callback): admits the authorised keys
    and counts every answer. Runs on the authenticator's thread; counters are read from others."""

    def __init__(self, keys: Iterable[bytes]):
        self.keys = frozenset(keys)
        self.allowed = 0
        self.denied = 0
        self.denied_keys: set[bytes] = set()
        self.lock = threading.Lock()

    def callback(self, domain: str, key: bytes) -> bool:
        ok = key in self.keys
        with self.lock:
            if ok:
                self.allowed += 1
            else:
                self.denied += 1
                first = key not in self.denied_keys
                self.denied_keys.add(key)
        if not ok and first:
            log.warning("ZAP: refused an unknown CURVE client key %s (domain %s)", key.decode(errors="replace"), domain)
        return ok


class CurveGuard:
    """The ZAP handler of a context: admits CURVE clients whose public key is authorised (the
    keys directory's clients/, or `keys`) and refuses every other, counting both. One per
    context; stop() it (or use it as a context manager) before terminating the context."""

    def __init__(self, ctx: zmq.Context, keys: KeyDir | str | os.PathLike | Iterable[bytes]):
        self.context = ctx
        self._provider = _AllowedKeys(_authorised(keys))
        self._auth = ThreadAuthenticator(ctx, log=logging.getLogger("bot4.services.security.zap"))
        self._auth.start()
        self._auth.configure_curve_callback(ZAP_DOMAIN, credentials_provider=self._provider)

    def reload(self, keys: KeyDir | str | os.PathLike | Iterable[bytes]) -> None:
        """Replace the authorised keys (takes effect for the next handshake)."""
        self._provider.keys = frozenset(_authorised(keys))

    def counters(self) -> dict[str, int]:
        """zap.allowed and zap.denied: handshakes this guard admitted and refused."""
        with self._provider.lock:
            return {"zap.allowed": self._provider.allowed, "zap.denied": self._provider.denied}

    def stop(self) -> None:
        """Stop answering (sockets secured by this guard then refuse every CURVE client)."""
        self._auth.stop()

    def __enter__(self) -> CurveGuard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _authorised(keys: KeyDir | str | os.PathLike | Iterable[bytes]) -> list[bytes]:
    if isinstance(keys, (str, os.PathLike)):
        keys = KeyDir(keys)
    if isinstance(keys, KeyDir):
        return list(keys.authorised().values())
    out = [bytes(k) for k in keys]
    for k in out:
        _check_key(Path("<keys>"), k, "authorised")
    return out


def secure_server(sock: zmq.Socket, keys: KeyDir | str | os.PathLike, guard: CurveGuard) -> None:
    """Make `sock` a CURVE server with the directory's server keys, its clients checked by
    `guard` (which must run on the socket's context). Call before bind()."""
    if guard.context is not sock.context:
        raise ValueError("the guard runs on another context: a socket's ZAP handler is its own context's")
    pair = (keys if isinstance(keys, KeyDir) else KeyDir(keys)).server_secret()
    sock.curve_secretkey = pair.secret
    sock.curve_publickey = pair.public
    sock.zap_domain = ZAP_DOMAIN.encode()
    sock.curve_server = True


def secure_client(sock: zmq.Socket, keys: KeyDir | str | os.PathLike, name: str = DEFAULT_CLIENT) -> None:
    """Make `sock` a CURVE client as client `name` of the directory's server. Call before connect()."""
    kd = keys if isinstance(keys, KeyDir) else KeyDir(keys)
    pair = kd.client_secret(name)
    sock.curve_serverkey = kd.server_public()
    sock.curve_secretkey = pair.secret
    sock.curve_publickey = pair.public


#: Monitor events a HandshakeMonitor counts, by counter name.
HANDSHAKE_EVENTS: dict[int, str] = {
    zmq.EVENT_HANDSHAKE_SUCCEEDED: "handshake.succeeded",
    zmq.EVENT_HANDSHAKE_FAILED_AUTH: "handshake.failed_auth",          # ZAP refused the client
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "handshake.failed_protocol",  # e.g. a peer without CURVE
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "handshake.failed_other",
}


class HandshakeMonitor:
    """Counts a socket's handshakes (HANDSHAKE_EVENTS) from its monitor, on a thread of its own.
    Start it before bind()/connect() so no handshake is missed; stop() before closing the socket
    (from the socket's own thread)."""

    def __init__(self, sock: zmq.Socket):
        events = 0
        for e in HANDSHAKE_EVENTS:
            events |= e
        self._sock = sock
        self._mon = sock.get_monitor_socket(events)
        self._counts = dict.fromkeys(HANDSHAKE_EVENTS.values(), 0)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bot4-handshake-monitor", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._mon.poll(50):
                continue
            try:
                ev = recv_monitor_message(self._mon)
            except zmq.ZMQError:
                return
            name = HANDSHAKE_EVENTS.get(int(ev["event"]))
            if name is None:
                if ev["event"] == zmq.EVENT_MONITOR_STOPPED:
                    return
                continue
            with self._lock:
                self._counts[name] += 1

    def counters(self) -> dict[str, int]:
        """handshake.<outcome> -> count so far."""
        with self._lock:
            return dict(self._counts)

    def stop(self) -> None:
        """Stop monitoring (call from the socket's thread) and close the monitor socket."""
        self._stop.set()
        self._thread.join()
        try:
            self._sock.disable_monitor()
        except zmq.ZMQError:
            pass
        self._mon.close(linger=0)


def is_tcp(endpoint: str | None) -> bool:
    """Whether `endpoint` is a tcp:// address (the links that need CURVE)."""
    return endpoint is not None and endpoint.startswith("tcp://")


class Transport:
    """Binds and connects one context's service sockets, every link the same way: ipc:// and
    inproc:// endpoints as given (the file system and the process protect them), tcp:// ones
    with CURVE only. A bound tcp socket is a CURVE server (the keys directory's server pair)
    whose clients the context's CurveGuard admits by key, with a HandshakeMonitor counting the
    peers refused before ZAP (no CURVE at all); a connected one is CURVE client `name`. A tcp
    endpoint without keys is a ValueError, so no link ever runs over tcp in the clear.

    counters(): zap.allowed / zap.denied (the guard's) and <link>.handshake.<outcome> per bound
    tcp socket. Close sockets bound here with close() (from the socket's thread) and stop() the
    transport before terminating the context."""

    def __init__(self, ctx: zmq.Context, keys: KeyDir | str | os.PathLike | None = None, name: str = DEFAULT_CLIENT,
                 guard: CurveGuard | None = None):
        self.context = ctx
        self.keys = KeyDir(keys) if keys is not None and not isinstance(keys, KeyDir) else keys
        self.name = check_name(name)
        self._guard = guard
        self._own_guard = False
        self._monitors: dict[int, tuple[str, HandshakeMonitor]] = {}
        self._closed: dict[str, int] = {}
        self._lock = threading.Lock()

    def _keys(self, endpoint: str, link: str) -> KeyDir:
        if self.keys is None:
            raise ValueError(f"{link} endpoint {endpoint}: tcp needs CURVE keys (keys=DIR, `--keys DIR`; create them "
                             "with `bot4 keys generate DIR`): an unauthenticated peer could read or inject frames")
        return self.keys

    def guard(self) -> CurveGuard:
        """The context's CurveGuard (started on first use unless one was given)."""
        with self._lock:
            if self._guard is None:
                assert self.keys is not None
                self._guard = CurveGuard(self.context, self.keys)
                self._own_guard = True
            return self._guard

    def bind(self, sock: zmq.Socket, endpoint: str, link: str) -> str:
        """Bind `sock` at `endpoint` (CURVE server on tcp); returns the bound address (the port
        the system chose for tcp port 0 or *). A failed bind is a ValueError naming the link."""
        if is_tcp(endpoint):
            keys = self._keys(endpoint, link)
            secure_server(sock, keys, self.guard())
            with self._lock:
                self._monitors[id(sock)] = (link, HandshakeMonitor(sock))
        try:
            sock.bind(endpoint)
        except zmq.ZMQError as exc:
            self.close(sock, linger=0)
            raise ValueError(f"{link} endpoint {endpoint}: cannot bind ({exc})") from None
        if is_tcp(endpoint) and endpoint.endswith((":0", ":*")):
            return sock.getsockopt_string(zmq.LAST_ENDPOINT)
        return endpoint

    def connect(self, sock: zmq.Socket, endpoint: str, link: str) -> None:
        """Connect `sock` to `endpoint` (as CURVE client `name` on tcp)."""
        if is_tcp(endpoint):
            secure_client(sock, self._keys(endpoint, link), self.name)
        sock.connect(endpoint)

    def close(self, sock: zmq.Socket, linger: int | None = None) -> None:
        """Stop the socket's handshake monitor (its counts are kept) and close it."""
        with self._lock:
            entry = self._monitors.pop(id(sock), None)
        if entry is not None:
            link, mon = entry
            counts = mon.counters()
            mon.stop()
            with self._lock:
                for k, v in counts.items():
                    self._closed[f"{link}.{k}"] = self._closed.get(f"{link}.{k}", 0) + v
        sock.close(linger)

    def counters(self) -> dict[str, int]:
        """The guard's zap.* counts and the handshakes of every tcp socket bound here."""
        with self._lock:
            out = dict(self._closed)
            live = list(self._monitors.values())
            guard = self._guard
        for link, mon in live:
            for k, v in mon.counters().items():
                out[f"{link}.{k}"] = out.get(f"{link}.{k}", 0) + v
        if guard is not None:
            out.update(guard.counters())
        return out

    def stop(self) -> None:
        """Stop the guard this transport started (not one it was given)."""
        with self._lock:
            guard, own = self._guard, self._own_guard
            self._guard, self._own_guard = (None, False) if own else (guard, False)
        if own and guard is not None:
            guard.stop()


def bind_link(sock: zmq.Socket, endpoint: str, link: str, transport: Transport | None) -> str:
    """`transport.bind` when there is one; else a plain bind, refused for tcp (no keys)."""
    if transport is not None:
        return transport.bind(sock, endpoint, link)
    if is_tcp(endpoint):
        Transport(sock.context)._keys(endpoint, link)
    sock.bind(endpoint)
    return endpoint


def connect_link(sock: zmq.Socket, endpoint: str, link: str, transport: Transport | None) -> None:
    """`transport.connect` when there is one; else a plain connect, refused for tcp (no keys)."""
    if transport is not None:
        transport.connect(sock, endpoint, link)
        return
    if is_tcp(endpoint):
        Transport(sock.context)._keys(endpoint, link)
    sock.connect(endpoint)


def close_link(sock: zmq.Socket, transport: Transport | None, linger: int | None = None) -> None:
    """`transport.close` when there is one; else sock.close()."""
    if transport is not None:
        transport.close(sock, linger)
    else:
        sock.close(linger)


def free_tcp_endpoint(host: str = "127.0.0.1") -> str:
    """A tcp://HOST:PORT address whose port was free a moment ago (for services started on
    their own that must know each other's address before they bind)."""
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        port = s.getsockname()[1]
    return f"tcp://{host}:{port}"
