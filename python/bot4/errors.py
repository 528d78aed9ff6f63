"""One exception tree for everything bot4 raises on purpose."""


class Bot4Error(Exception):
    """Base of every bot4 error."""


class LayoutMismatchError(Bot4Error):
    """A numpy record dtype declared in Python differs from the C++ layout."""


class DataError(Bot4Error):
    """Input data that cannot be used at all (missing file, unknown format)."""


class OffGridError(Bot4Error, ValueError):
    """A decimal price or size that is not a whole number of ticks or lots."""


class DecimalParseError(Bot4Error, ValueError):
    """A price or size string that is not a finite decimal number."""


class ConfigError(Bot4Error, ValueError):
    """Invalid configuration or command-line choice."""


class ModelError(Bot4Error):
    """A model that cannot be loaded or run: corrupt or tampered file, feature mismatch,
    unsupported operator, runtime failure."""


class InputError(Bot4Error, ValueError):
    """An argument a caller can fix: `param` names it, `problem` says what is wrong with it and
    `fix` what to do instead (free text), or `suggest` gives the value to pass (param -> value;
    None = leave that argument out). str() speaks in the library's parameter names; a command
    line shows its own option names through `render`."""

    def __init__(self, param: str, problem: str, fix: str = "", suggest: dict | None = None):
        self.param, self.problem, self.fix, self.suggest = param, problem, fix, dict(suggest or {})
        super().__init__(self.render())

    def render(self, options: dict[str, str] | None = None) -> str:
        """One line; `options` maps parameter names to command-line option names."""
        def name(p: str) -> str:
            return options.get(p, p) if options is not None else p

        def value(p: str, v) -> str:
            if options is not None:
                return f"{name(p)} {v}"
            return f"{p}={v!r}"

        fixes = [self.fix] if self.fix else []
        for p, v in self.suggest.items():
            fixes.append(f"leave out {name(p)}" if v is None else f"pass {value(p, v)}")
        text = f"{name(self.param)}: {self.problem}"
        return text + ("; " + " or ".join(fixes) if fixes else "")


class MessageRejected(Bot4Error, ValueError):
    """A bus frame that is not a valid message of its socket's topic (bot4.contracts.Codec);
    `reason` is one of bot4.contracts.REJECT_REASONS."""

    def __init__(self, reason: str, detail: str):
        self.reason, self.detail = reason, detail
        super().__init__(f"{reason}: {detail}")


class JournalCorruptError(Bot4Error):
    """A journal that cannot be read on: a damaged record before its last segment's tail, a
    missing segment, or a file that is not a journal segment."""


class JournalLockedError(Bot4Error):
    """Another writer holds the journal directory (one writer per journal)."""


class KeyFileError(Bot4Error):
    """A CURVE key directory or certificate file that cannot be used: missing, malformed, a
    secret readable by others, or a secret that does not match its public key (bot4 keys)."""


class VenueLinkError(Bot4Error):
    """The link between an engine and a venue outside its process failed: no reply in time, a
    reply that is not one, out of turn, or the venue's refusal (bot4.services.venue)."""
