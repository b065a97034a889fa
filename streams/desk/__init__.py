"""The rights desk: a small web app (`streams desk`) to file, lift and look up takedowns and export the audit.

It is a reader and a writer of the takedown topics like the CLI, never a second way to make a takedown: it
reads through `streams.takedowns.ViewFollower` and writes through `streams.takedowns.submit`. See `app` for
the pages and `security` for the sign-in, sessions and CSRF tokens.
"""

from streams.desk.app import Desk, run

__all__ = ["Desk", "run"]
