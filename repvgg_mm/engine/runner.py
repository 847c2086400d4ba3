"""mmengine's Runner with the project's checkpoint policy (safe reading, strict loading) and a
terminal that shows progress and results (the rest of the log stays in the log file)."""
import logging

from mmengine.device import get_device
from mmengine.model import BaseTTAModel, is_model_wrapper
from mmengine.runner import Runner
from mmengine.runner.checkpoint import _load_checkpoint_to_model
from torch import nn

from repvgg_mm.checkpoint import load_checkpoint_file, load_state_dict_strict, select_weights
from repvgg_mm.registry import RUNNERS
from repvgg_mm.utils.console import KNOWN_UPSTREAM_LOG_LINES, current_router
from repvgg_mm.utils.errors import UserError, first_line

from .compile import COMPILED_PARTS, compile_kwargs


def unwrap_model(model: nn.Module) -> nn.Module:
    """The network inside DDP-like wrappers and test-time-augmentation models."""
    if is_model_wrapper(model):
        model = model.module
    if isinstance(model, BaseTTAModel):
        model = model.module
    return model


# What mmengine logs at the start of every run, for the log file: the environment, the whole
# config and the hook-priority table; and the upstream notices of every run.
LOG_FILE_ONLY = ('Hooks will be executed in the following order', 'Config:',
                 '\n' + '-' * 60 + '\nSystem environment') + KNOWN_UPSTREAM_LOG_LINES


class ConsoleFilter(logging.Filter):
    """Keeps the start-of-run dumps and known upstream notices (:data:`LOG_FILE_ONLY`) and records
    marked ``extra={'console': False}`` off the terminal handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, 'console', True) is False:
            return False
        return not record.getMessage().startswith(LOG_FILE_ONLY)


def quiet_console(logger: logging.Logger) -> None:
    """Put :class:`ConsoleFilter` on ``logger``'s terminal handlers (not its file handlers)."""
    for handler in logger.handlers:
        if not isinstance(handler, logging.FileHandler):
            handler.addFilter(ConsoleFilter())


@RUNNERS.register_module()
class RepVGGRunner(Runner):
    """A Runner whose ``load_from``, ``--resume`` and test checkpoints go through the safe reader.

    mmengine's own loading unpickles with torch's defaults (code in a crafted file runs once an
    environment variable relaxes them) and loads weights with ``strict=False``, only logging
    mismatches. Here the file is read by :func:`repvgg_mm.checkpoint.load_checkpoint_file`
    (weights-only unpickling, always) and, except when resuming the runner's own files, loaded
    strictly: any missing, unexpected or mis-shaped key is a one-line
    :class:`~repvgg_mm.utils.errors.CheckpointError`.
    """

    def build_logger(self, *args, **kwargs):
        """mmengine's logger; inside a :class:`~repvgg_mm.utils.console.WarningRouter` (the tools'
        runs) its log file gets the warnings and, unless ``verbose``, the terminal loses the
        start-of-run dumps."""
        logger = super().build_logger(*args, **kwargs)
        router = current_router()
        if router is not None:
            if not router.verbose:
                quiet_console(logger)
            router.attach(lambda text: logger.warning(text, extra=dict(console=False)))
        return logger

    def load_checkpoint(self, filename: str, map_location='cpu', strict: bool = False,
                        revise_keys=((r'^module\.', ''), )) -> dict:
        checkpoint = load_checkpoint_file(filename)
        weights = select_weights(checkpoint, source=filename)  # refuses NaN/inf weights
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        if self._resume:  # the runner's own file: mmengine restores it (EMA hooks included)
            _load_checkpoint_to_model(unwrap_model(self.model), checkpoint, strict,
                                      revise_keys=list(revise_keys))
        else:
            load_state_dict_strict(unwrap_model(self.model), weights.state,
                                   source=f'of {filename}')
        self._has_loaded = True
        self.logger.info(f'Load checkpoint from {filename}')
        return checkpoint

    def _maybe_compile(self, target: str) -> None:
        """``compile=True``/``dict(...)``: ``torch.compile`` of the network's backbone and neck
        (see :mod:`repvgg_mm.engine.compile` for why not mmengine's ``train_step``)."""
        kwargs = compile_kwargs(self.cfg.get('compile'), get_device())
        if kwargs is None:
            return
        network = unwrap_model(self.model)
        names = [name for name in COMPILED_PARTS
                 if isinstance(getattr(network, name, None), nn.Module)]
        if not names:
            raise UserError(f'compile: {type(network).__name__} has no backbone or neck to compile')
        try:
            for name in names:
                getattr(network, name).compile(**kwargs)
        except (TypeError, RuntimeError) as exc:  # unknown argument, backend, mode or option
            raise UserError(f'compile={kwargs!r}: {first_line(exc)}') from exc
        self.logger.info(f'compiled {" and ".join(names)} with torch.compile; the first '
                         'iterations will be slow')
