"""User-facing errors. The CLI prints ``error: <message>`` on one line and exits with code 2."""


class VQLadderError(Exception):
    """A problem with the user's input (paths, configs, codes, checkpoints), reported in one line."""

    exit_code = 2


class CheckpointError(VQLadderError):
    """A checkpoint is missing, truncated, corrupted or belongs to another model kind."""


class NonFiniteLossError(VQLadderError):
    """The training loss became NaN or inf."""


class RunFailed(VQLadderError):
    """Part of a run failed (e.g. sweep cells); what succeeded is kept and a rerun retries the rest. Exit code 1."""

    exit_code = 1
