"""Where jaxcomponents keeps files: its cache folder, read from the environment when asked.

Nothing here writes; the callers that write (weight downloads, the native
build) are explicit commands.

Example:
  >>> import os
  >>> cache_dir("models").endswith(os.path.join("jaxcomponents", "models")) or "JAXCOMPONENTS_HOME" in os.environ
  True
"""

from __future__ import annotations

import os

HOME_ENV = "JAXCOMPONENTS_HOME"


def jaxcomponents_home() -> str:
  """jaxcomponents' own cache: `$JAXCOMPONENTS_HOME`, else `~/.cache/jaxcomponents`."""
  return os.environ.get(HOME_ENV, os.path.join(os.path.expanduser("~"), ".cache", "jaxcomponents"))


def cache_dir(name: str) -> str:
  """A folder of the cache (`models`, `native`); not created here."""
  return os.path.join(jaxcomponents_home(), name)
