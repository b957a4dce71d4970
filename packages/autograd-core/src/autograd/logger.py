"""Coloured console logging.

Whether messages are coloured, in order (the conventions of no-color.org and
force-color.org, in the precedence CPython's own colour output uses):

1. ``NO_COLOR`` set to a non-empty value: never.
2. ``FORCE_COLOR`` set to a non-empty value: always, also into a file or a
   pipe (CI logs that render ANSI colours, ``less -R``).
3. Otherwise :func:`setup_logger` colours only when its stream (stderr) is a
   terminal, so redirected logs stay plain text; a :class:`ColorFormatter` you
   attach yourself colours unless its ``use_color`` is False.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import IO, Optional

__all__ = ["ColorFormatter", "setup_logger"]

_FORMAT = "%(asctime)s - %(name)s - %(levelname)s - %(message)s"


class ColorFormatter(logging.Formatter):
    """A formatter that colours each message by its level with ANSI codes.

    ``use_color`` (default True) is this formatter's own choice;
    :func:`setup_logger` sets it from whether the stream is a terminal.
    ``NO_COLOR`` (non-empty) turns colour off and ``FORCE_COLOR`` (non-empty)
    turns it on for every formatter, overriding ``use_color``; ``NO_COLOR`` wins
    when both are set.
    """

    grey = "\x1b[38;20m"
    yellow = "\x1b[33;20m"
    red = "\x1b[31;20m"
    bold_red = "\x1b[31;1m"
    cyan = "\x1b[36;20m"
    green = "\x1b[32;20m"
    reset = "\x1b[0m"
    FORMATS = {
        logging.DEBUG: cyan,
        logging.INFO: green,
        logging.WARNING: yellow,
        logging.ERROR: red,
        logging.CRITICAL: bold_red,
    }
    use_color = True

    def __init__(self, fmt=None, datefmt=None, style="%", validate=True, *, defaults=None) -> None:  # noqa: ANN001
        super().__init__(fmt or _FORMAT, datefmt, style, validate, defaults=defaults)

    def color_enabled(self) -> bool:
        """Whether :meth:`format` adds colour now (``NO_COLOR``, then ``FORCE_COLOR``, then ``use_color``)."""
        if _env_flag("NO_COLOR"):
            return False
        if _env_flag("FORCE_COLOR"):
            return True
        return bool(self.use_color)

    def format(self, record: logging.LogRecord) -> str:
        """Format ``record`` and wrap it in its level's colour (unless colour is off)."""
        message = super().format(record)
        if not self.color_enabled():
            return message
        return f"{self.FORMATS.get(record.levelno, self.grey)}{message}{self.reset}"


def _env_flag(name: str) -> bool:
    return bool(os.environ.get(name, ""))


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def setup_logger(name: Optional[str] = None) -> logging.Logger:
    """A logger with one console handler on stderr, coloured when stderr is a terminal.

    Set ``FORCE_COLOR=1`` to colour a redirected stream, ``NO_COLOR=1`` to
    never colour (see the module docstring).

    The level is DEBUG when the ``DEBUG`` environment variable is set to a
    non-empty value, INFO otherwise. Calling it again for the same name
    updates the level but never adds a second handler.
    """
    logger = logging.getLogger(name)
    logger.setLevel(logging.DEBUG if os.environ.get("DEBUG") else logging.INFO)
    if not any(getattr(h, "_autograd_console", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        formatter = ColorFormatter()
        formatter.use_color = _is_terminal(handler.stream)
        handler.setFormatter(formatter)
        handler._autograd_console = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    return logger
