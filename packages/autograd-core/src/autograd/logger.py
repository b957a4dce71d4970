"""Coloured console logging.

Colour follows the common convention: none when ``NO_COLOR`` is set (any
value) or when the stream is not a terminal.
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

    ``use_color`` (default True) turns colour off for one formatter;
    ``NO_COLOR`` in the environment turns it off everywhere.
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

    def format(self, record: logging.LogRecord) -> str:
        """Format ``record`` and wrap it in its level's colour (unless colour is off)."""
        message = super().format(record)
        if not self.use_color or "NO_COLOR" in os.environ:
            return message
        return f"{self.FORMATS.get(record.levelno, self.grey)}{message}{self.reset}"


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def setup_logger(name: Optional[str] = None) -> logging.Logger:
    """A logger with one coloured console handler (on stderr).

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
