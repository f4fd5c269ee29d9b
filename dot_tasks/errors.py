"""The one error type that reaches users, and its kinds.

Everything the user can fix is raised as a `DotError` whose message says what
was wrong and what to do. The task layer turns it into an exit code; nothing
else prints a traceback.
"""

from __future__ import annotations


class DotError(Exception):
    """A problem the user can fix. The message is one line and says how."""

    #: dbt's convention: 1 means the run produced failures, 2 means an error.
    exit_code = 2


class ProjectError(DotError):
    """No dbt project, or not inside a git repository."""


class RefError(DotError):
    """A git ref that does not name a commit."""


class ContextError(DotError):
    """A context that is not a plain name, or names no profile output."""


class ProfileError(DotError):
    """The user's profiles.yml is missing or lacks the profile/target."""


class WorktreeError(DotError):
    """An isolated worktree that is missing, damaged or modified."""


class IsolationError(DotError):
    """A build would write outside its own schema."""


class DeferralError(DotError):
    """A deferred build's base is missing, failed or partial, or a build still depends on it."""


class LockTimeout(DotError):
    """Another run held a lock for longer than the configured timeout."""


class WarehouseError(DotError):
    """The warehouse could not be reached or refused a statement."""


class DbtFailed(DotError):
    """dbt ran and failed; its own exit code reaches the shell."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code
