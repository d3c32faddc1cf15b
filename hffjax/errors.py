"""The one exception type the CLI turns into a one-line message."""


class HFFError(Exception):
  """A user-facing error: bad config, bad data, bad checkpoint.

  The message names the problem and the fix in one line. The CLI prints it
  without a traceback (unless ``--debug``) and exits non-zero.
  """
