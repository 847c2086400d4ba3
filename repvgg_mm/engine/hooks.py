"""Runner hooks: checkpoints that resume exactly, and fusing RepVGG blocks before testing."""
import os.path as osp
from typing import Any, Dict, List, Optional

from mmengine.dist import all_gather_object, get_rank, get_world_size, is_main_process
from mmengine.hooks import CheckpointHook, Hook
from mmengine.runner import IterBasedTrainLoop

from repvgg_mm.models.utils import check_fusable, fuse_repvgg_blocks, iter_repvgg_blocks
from repvgg_mm.registry import HOOKS
from repvgg_mm.utils.errors import UserError
from repvgg_mm.utils.fileio import write_text_atomic

from .random_state import capture_random_state, restore_random_state
from .runner import unwrap_model
from .work_dir import ATOMIC_BACKEND

RANDOM_STATES_KEY = 'random_states'  # in a checkpoint's meta: one state per rank


class _RestoreBeforeFetch:
    """An iterator that puts back a random state right before its ``skip + 1``-th item: an
    iteration-based loop that resumes first replays the data of the finished iterations."""

    def __init__(self, iterator, skip: int, state: Dict[str, Any]):
        self._iterator, self._skip, self._state = iterator, skip, state

    def __iter__(self):
        return self

    def __next__(self):
        if self._skip == 0 and self._state is not None:
            restore_random_state(self._state)
            self._state = None
        self._skip -= 1
        return next(self._iterator)

    def __getattr__(self, name):
        return getattr(self._iterator, name)


@HOOKS.register_module()
class RepVGGCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook`` with checkpoints that are written atomically and resume
    exactly.

    * Checkpoints and ``last_checkpoint`` go through a temporary file and a rename (a full disk
      or a kill never leaves a truncated file; the previous checkpoint is removed only after the
      new one is complete).
    * Each checkpoint records the random states (Python, NumPy, torch) of every rank; ``--resume``
      puts them back where the interrupted run stood, so augmentation and dropout draw the same
      numbers as in an uninterrupted run. Validation leaves the training random states as it found
      them (whether and how often a run validates does not change its training).

    Arguments as ``CheckpointHook``; without ``backend_args`` local files are written through the
    ``repvgg_mm_local`` backend (:class:`~repvgg_mm.engine.work_dir.AtomicLocalBackend`).
    """

    def __init__(self, *args, **kwargs):
        if kwargs.get('backend_args') is None and kwargs.get('file_client_args') is None and \
                '://' not in str(kwargs.get('out_dir') or ''):
            kwargs['backend_args'] = dict(backend=ATOMIC_BACKEND)
        super().__init__(*args, **kwargs)
        self._resumed_states: Optional[List[Dict[str, Any]]] = None
        self._val_state: Optional[Dict[str, Any]] = None

    def _save_checkpoint_with_step(self, runner, step, meta):
        meta = dict(meta, **{RANDOM_STATES_KEY: all_gather_object(capture_random_state())})
        filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(self.out_dir, filename, self.file_client_args,
                               save_optimizer=self.save_optimizer,
                               save_param_scheduler=self.save_param_scheduler, meta=meta,
                               by_epoch=self.by_epoch, backend_args=self.backend_args,
                               **self.args)
        if is_main_process():
            write_text_atomic(osp.join(runner.work_dir, 'last_checkpoint'), self.last_ckpt)
        self._forget_old_checkpoints(runner, step)

    def _forget_old_checkpoints(self, runner, step) -> None:
        """Keep the newest ``max_keep_ckpts`` (once the new one is written)."""
        if self.max_keep_ckpts <= 0 or (self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
            return
        if len(self.keep_ckpt_ids) == self.max_keep_ckpts:  # a deque with that maxlen
            old = self.keep_ckpt_ids.popleft()
            path = self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(old))
            if is_main_process() and self.file_backend.isfile(path):
                self.file_backend.remove(path)
        self.keep_ckpt_ids.append(step)
        runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))

    def after_load_checkpoint(self, runner, checkpoint) -> None:
        self._resumed_states = None
        if not getattr(runner, '_resume', False):
            return
        states = (checkpoint.get('meta') or {}).get(RANDOM_STATES_KEY)
        if states is None:
            runner.logger.warning('the checkpoint holds no random states (written by another '
                                  'checkpoint hook): random augmentation and dropout will differ '
                                  'from an uninterrupted run')
        elif len(states) != get_world_size():
            runner.logger.warning(f'the checkpoint holds the random states of {len(states)} '
                                  f'processes, this run has {get_world_size()}: not restored')
        else:
            self._resumed_states = states

    def before_train(self, runner) -> None:
        super().before_train(runner)
        if self._resumed_states is None:
            return
        state = self._resumed_states[get_rank()]
        self._resumed_states = None
        loop = runner.train_loop
        if isinstance(loop, IterBasedTrainLoop) and loop.iter > 0:
            loop.dataloader_iterator = _RestoreBeforeFetch(loop.dataloader_iterator, loop.iter,
                                                           state)
        else:
            restore_random_state(state)
        runner.logger.info('random states restored from the checkpoint')

    def before_val(self, runner) -> None:
        self._val_state = capture_random_state()

    def after_val(self, runner) -> None:
        if self._val_state is not None:
            restore_random_state(self._val_state)
            self._val_state = None


@HOOKS.register_module()
class RepVGGFuseHook(Hook):
    """Fuse every RepVGG block of the model (in place) right before the test loop.

    Used by ``tools/test.py --fuse`` to test the re-parameterised model from a training-time
    checkpoint; works for classifiers, segmentors and detectors alike.
    """

    priority = 'LOW'

    def before_test(self, runner) -> None:
        model = unwrap_model(runner.model)
        num_blocks = len(list(iter_repvgg_blocks(model)))
        if num_blocks == 0:
            raise UserError('RepVGGFuseHook: the model has no RepVGG blocks to fuse')
        check_fusable(model)  # a GroupNorm/LayerNorm block: one line naming it
        fuse_repvgg_blocks(model, do_copy=False)
        runner.logger.info(f'fused {num_blocks} RepVGG blocks into single 3x3 convs for testing')
