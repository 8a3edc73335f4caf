"""Structured log lines for the daemons: `logfmt` key=value pairs on stderr.

Wired by cli.py only (STYLE §2.11): code logs a constant message plus `extra={...}`
fields (service, eip, ip, node, peer, protocol, reason, op, error); this formatter
prints every such field. Keys follow the message in the order given.
"""

from __future__ import annotations

import datetime
import logging
import sys

__all__ = ["setup"]

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


# No field carries unbounded input into a line (issue #19: one 100,241-character line
# from an annotation); tracebacks are exempt, they are ours. The cut reads like
# api.errors.bounded's, written again here because importing openelb.api (pydantic)
# would add 0.1 s to every command that only sets up logging.
MAX_VALUE = 2048


def _bounded(value: object) -> str:
    text = str(value)
    if len(text) > MAX_VALUE:
        return f"{text[:MAX_VALUE]}... ({len(text) - MAX_VALUE} more characters)"
    return text


def _quote(value: object) -> str:
    return _quote_text(_bounded(value))


def _quote_text(text: str) -> str:
    if text == "" or any(c in text for c in ' "=\\\n'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
        parts = [
            f"ts={stamp.strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3]}Z",
            f"level={record.levelname.lower()}",
            f"logger={record.name}",
            f"msg={_quote(record.getMessage())}",
        ]
        parts += [f"{k}={_quote(v)}" for k, v in vars(record).items()
                  if k not in _STANDARD and not k.startswith("_")]
        if record.exc_info:
            parts.append(f"traceback={_quote_text(self.formatException(record.exc_info))}")
        return " ".join(parts)


def setup(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("httpcore", "hpack", "aiohttp.access", "kubernetes_asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
