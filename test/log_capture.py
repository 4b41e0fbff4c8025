"""caplog on a named logger, whatever imported before: launch (imported by the upstream tier's
tests) makes every logger created after it a LaunchLogger that does not propagate to the root,
where caplog listens, so a test that reads a module's log listens on that logger itself."""

from __future__ import annotations

import logging
from contextlib import contextmanager


@contextmanager
def listening(caplog, name: str, level: int = logging.INFO):
    """Capture `name`'s records at `level` and above into `caplog`."""
    logger = logging.getLogger(name)
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(level, logger=name):
            yield caplog
    finally:
        logger.removeHandler(caplog.handler)
