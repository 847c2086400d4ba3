"""Accuracy of the three fine-tuning forms, one recipe and one seed for all (no tuning for any).

The forms are the backbone's ``block_type``: ``'repvgg'`` (three branches, three BNs),
``'linear'`` (:class:`~repvgg_mm.models.LinearRepVGGBlock`) and ``'fused_bn'``
(:class:`~repvgg_mm.models.FusedBNBlock`). Every run is mmengine's Runner
(:func:`repvgg_mm.engine.build_runner`) on CPU.

1. ``scratch``: a RepVGG classifier trained from scratch on Fashion-MNIST in each form (the
   recipe of :func:`classification_config`: SGD, cosine schedule, no weight decay on norms,
   biases and linear scales); top-1 on the test split of the training-time model and of the same
   model fused (they must agree).
2. ``transfer``: the RepVGG-form classifier of section 1 is the pretrained checkpoint; a PSPNet
   (``seg_config``, e.g. ``configs/toy/pspnet_repvgg_a0_toy.py``, with its recipe) is fine-tuned
   from it in each form through ``init_cfg=dict(type='Pretrained', prefix='backbone.')`` (the
   linear and fused+BN backbones convert the file on load), and from scratch as the baseline, the
   same iterations on a segmentation set composed from Fashion-MNIST items
   (:func:`~repvgg_mm.datasets.make_fashion_mnist_seg`: training images hold train-split items,
   val images test-split items). mIoU of the val split, wall time of each fine-tuning.

Wall times run one after the other (not interleaved): run the experiment alone on the machine.
"""
import os
import time
from dataclasses import asdict, dataclass
from typing import List, Optional, Union

from mmengine.config import Config, ConfigDict
from mmengine.logging import MMLogger

from repvgg_mm.datasets.fashion_mnist import DEBIAN_ROOT, load_fashion_mnist
from repvgg_mm.datasets.fashion_mnist_seg import SEG_CLASSES, make_fashion_mnist_seg, seg_palette
from repvgg_mm.engine.runner import unwrap_model
from repvgg_mm.engine.train_test import build_runner, fix_dataloader_workers, run_loop
from repvgg_mm.models.utils import fuse_repvgg_blocks
from repvgg_mm.testing import TINY_NAME, named_arch
from repvgg_mm.utils.arch_switch import switch_arch
from repvgg_mm.utils.config import load_config, replace_sync_bn, setup_codebase
from repvgg_mm.utils.errors import UserError
from repvgg_mm.utils.timing import torch_threads

from .block_forms import FORM_TITLES, FORMS
from .machine import machine_info, machine_line
from .targets import SCRATCH_GAP


@dataclass
class FormAccuracySettings:
    """What :func:`run_form_accuracy` runs; :meth:`quick` is a tiny smoke run."""

    work_dir: str
    seg_config: str  # the PSPNet config fine-tuned in the transfer section
    arch: str = 'A0'
    fashion_mnist_root: str = DEBIAN_ROOT
    # section 1: classification from scratch (by default the size of the QARepVGG comparison of
    # tools/deployment/quantize.py: 15000 training images at 32x32, 3 epochs, batch 64)
    train_limit: Optional[int] = 15000  # the first N training / test images (None: all)
    test_limit: Optional[int] = None
    image_size: int = 32
    batch_size: int = 64
    epochs: int = 3
    lr: float = 0.05
    weight_decay: float = 1e-4
    # section 2: transfer to segmentation
    seg_data_root: Optional[str] = None  # default <work_dir>/fashion_mnist_seg
    seg_train: int = 2000
    seg_val: int = 400
    seg_image_size: int = 96
    seg_iters: int = 1000
    seg_batch_size: int = 8
    threads: Optional[int] = 2
    seed: int = 0
    sections: tuple = ('scratch', 'transfer')

    @classmethod
    def quick(cls, work_dir: str, seg_config: str, **overrides) -> 'FormAccuracySettings':
        values = dict(work_dir=work_dir, seg_config=seg_config, arch=TINY_NAME, train_limit=64,
                      test_limit=32, batch_size=32, epochs=1, seg_train=4, seg_val=2,
                      seg_image_size=64, seg_iters=2, seg_batch_size=2)
        values.update(overrides)
        return cls(**values)

    def check(self) -> None:
        for name in ('image_size', 'batch_size', 'epochs', 'seg_train', 'seg_val',
                     'seg_image_size', 'seg_iters', 'seg_batch_size'):
            if getattr(self, name) < 1:
                raise UserError(f'{name.replace("_", "-")} must be at least 1, got '
                                f'{getattr(self, name)}')
        for name in ('train_limit', 'test_limit'):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise UserError(f'{name.replace("_", "-")} must be at least 1, got '
                                f'{getattr(self, name)}')
        if self.lr <= 0 or self.weight_decay < 0:
            raise UserError(f'lr must be > 0 and weight decay >= 0, got {self.lr} and '
                            f'{self.weight_decay}')
        unknown = set(self.sections) - {'scratch', 'transfer'}
        if unknown or not self.sections:
            raise UserError(f'sections are scratch and/or transfer, got {list(self.sections)}')
        if 'transfer' in self.sections:
            load_config(self.seg_config)  # a missing or broken config: before any run

    @property
    def backbone_arch(self) -> Union[str, dict]:
        return named_arch(self.arch)


def _hooks(log_interval: int) -> dict:
    return dict(timer=dict(type='IterTimerHook'),
                logger=dict(type='LoggerHook', interval=log_interval),
                param_scheduler=dict(type='ParamSchedulerHook'),
                checkpoint=dict(type='CheckpointHook', interval=-1, save_last=True,
                                max_keep_ckpts=1),
                sampler_seed=dict(type='DistSamplerSeedHook'))


def classification_config(s: FormAccuracySettings, form: str, work_dir: str) -> Config:
    """A RepVGG classifier trained from scratch on Fashion-MNIST with ``block_type=form``.

    The recipe (the same for every form): SGD momentum 0.9, ``lr`` with per-iteration cosine
    decay, weight decay on convs and the classifier only (none on norm weights/biases, biases and
    the linear-scaling block's scales), images resized to ``image_size`` and normalised with
    ImageNet's mean/std (as the fine-tuning segmentor's), no augmentation.
    """
    def dataset(split: str, limit: Optional[int]) -> dict:
        return dict(type='FashionMNISTDataset', data_root=s.fashion_mnist_root, split=split,
                    size=s.image_size, indices=limit, test_mode=split == 'test')

    return Config(dict(
        default_scope='repvgg_mm',
        work_dir=work_dir,
        experiment_name=f'scratch_{form}_{time.time_ns()}',
        model=dict(
            type='ImageClassifier',
            # ImageNet's mean/std, as the segmentation configs normalise the fine-tuning images
            data_preprocessor=dict(type='ImgDataPreprocessor', mean=[123.675, 116.28, 103.53],
                                   std=[58.395, 57.12, 57.375]),
            backbone=dict(type='RepVGG', arch=s.backbone_arch, out_indices=(3, ),
                          block_type=form),
            head=dict(type='LinearClsHead', num_classes=10)),
        train_dataloader=dict(
            batch_size=s.batch_size, num_workers=0, collate_fn=dict(type='default_collate'),
            sampler=dict(type='DefaultSampler', shuffle=True),
            dataset=dataset('train', s.train_limit)),
        test_dataloader=dict(
            batch_size=256, num_workers=0, collate_fn=dict(type='default_collate'),
            sampler=dict(type='DefaultSampler', shuffle=False),
            dataset=dataset('test', s.test_limit)),
        test_evaluator=dict(type='Accuracy', topk=(1, )),
        test_cfg=dict(),
        optim_wrapper=dict(
            type='OptimWrapper',
            optimizer=dict(type='SGD', lr=s.lr, momentum=0.9, weight_decay=s.weight_decay),
            paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0,
                               custom_keys={'.scale_': dict(decay_mult=0.0)})),
        param_scheduler=dict(type='CosineAnnealingLR', T_max=s.epochs, by_epoch=True, begin=0,
                             end=s.epochs, convert_to_iter_based=True),
        train_cfg=dict(by_epoch=True, max_epochs=s.epochs, val_interval=s.epochs + 1),
        default_hooks=_hooks(50),
        env_cfg=dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo')),
        log_processor=dict(by_epoch=True),
        log_level='INFO',
        randomness=dict(seed=s.seed),
        launcher='none'))


def segmentation_config(s: FormAccuracySettings, form: str, pretrained: Optional[str],
                        data_root: str, work_dir: str) -> Config:
    """``seg_config`` fine-tuned with ``block_type=form`` on the composed Fashion-MNIST set:
    its model, pipeline and optimizer; ``seg_iters`` iterations (poly decay to the end) with
    ``seg_batch_size`` crops; started from ``pretrained`` (None: from scratch)."""
    cfg = load_config(s.seg_config)
    cfg.model = replace_sync_bn(cfg.model)[0]
    backbone = cfg.model.backbone
    backbone.block_type = form
    backbone.pop('pretrained', None)
    cfg.model.pop('pretrained', None)
    backbone.init_cfg = (None if pretrained is None else
                         dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.'))
    switch_arch(cfg, s.backbone_arch)
    for head in ('decode_head', 'auxiliary_head'):
        if cfg.model.get(head) is not None:
            cfg.model[head].num_classes = len(SEG_CLASSES)
    metainfo = dict(classes=SEG_CLASSES, palette=[list(c) for c in seg_palette()])
    for loader, split in (('train_dataloader', 'train'), ('val_dataloader', 'val'),
                          ('test_dataloader', 'val')):
        dataset = cfg[loader].dataset
        dataset.data_root = data_root
        dataset.metainfo = metainfo
        dataset.data_prefix = dict(img_path=f'img_dir/{split}', seg_map_path=f'ann_dir/{split}')
    cfg.train_dataloader.batch_size = s.seg_batch_size
    schedulers = cfg.param_scheduler
    schedulers = [schedulers] if isinstance(schedulers, dict) else list(schedulers)
    cfg.param_scheduler = [  # the config's schedule cut (or stretched, for PolyLR) to seg_iters
        dict(sched, end=s.seg_iters if sched['type'] == 'PolyLR'
             else min(sched.get('end', s.seg_iters), s.seg_iters))
        for sched in schedulers if sched.get('begin', 0) < s.seg_iters]
    cfg.train_cfg = ConfigDict(type='IterBasedTrainLoop', max_iters=s.seg_iters,
                               val_interval=s.seg_iters + 1)
    cfg.val_dataloader = cfg.val_evaluator = cfg.val_cfg = None
    cfg.default_hooks.checkpoint = ConfigDict(type='CheckpointHook', by_epoch=False,
                                              interval=-1, save_last=False)
    cfg.default_hooks.pop('visualization', None)
    cfg.work_dir = work_dir
    cfg.experiment_name = f'transfer_{form}_{time.time_ns()}'
    if cfg.get('visualizer') is not None:  # one visualizer instance per run (named as the run)
        cfg.visualizer.name = cfg.experiment_name
    cfg.randomness = dict(seed=s.seed)
    cfg.launcher = 'none'
    return cfg


def _train_and_test(cfg: Config, logger: MMLogger, fused_too: bool = False) -> dict:
    setup_codebase(cfg)
    fix_dataloader_workers(cfg)
    runner = build_runner(cfg)
    started = time.perf_counter()
    run_loop(runner.train, cfg.work_dir)
    wall = time.perf_counter() - started
    result = dict(wall_s=wall, metrics=run_loop(runner.test, cfg.work_dir))
    if fused_too:
        fuse_repvgg_blocks(unwrap_model(runner.model), do_copy=False)
        result['fused_metrics'] = run_loop(runner.test, cfg.work_dir)
    checkpoint = os.path.join(cfg.work_dir, 'last_checkpoint')
    if os.path.isfile(checkpoint):
        with open(checkpoint) as handle:
            result['checkpoint'] = handle.read().strip()
    logger.info(f'{cfg.experiment_name}: {result["metrics"]} in {wall:.0f} s')
    return result


def scratch_section(s: FormAccuracySettings, logger: MMLogger) -> dict:
    results = {}
    for form in FORMS:
        work_dir = os.path.join(s.work_dir, f'scratch_{form}')
        logger.info(f'from scratch on Fashion-MNIST: {FORM_TITLES[form]} ({form})')
        run = _train_and_test(classification_config(s, form, work_dir), logger, fused_too=True)
        results[form] = dict(top1=run['metrics']['accuracy/top1'],
                             fused_top1=run['fused_metrics']['accuracy/top1'],
                             wall_s=run['wall_s'], checkpoint=run.get('checkpoint'))
    gap = results['repvgg']['top1'] - results['linear']['top1']
    return dict(forms=results, linear_gap=gap, target=SCRATCH_GAP.value,
                verdict=SCRATCH_GAP.verdict(gap))


def transfer_section(s: FormAccuracySettings, pretrained: str, logger: MMLogger) -> dict:
    data_root = s.seg_data_root or os.path.join(s.work_dir, 'fashion_mnist_seg')
    data = make_fashion_mnist_seg(data_root, s.fashion_mnist_root, s.seg_train, s.seg_val,
                                  s.seg_image_size, seed=s.seed)
    runs = {f'{form} from pretrained': (form, pretrained) for form in FORMS}
    runs['repvgg from scratch'] = ('repvgg', None)
    results = {}
    for name, (form, checkpoint) in runs.items():
        work_dir = os.path.join(s.work_dir, 'transfer_' + name.replace(' ', '_'))
        logger.info(f'segmentation fine-tuning: {name}')
        cfg = segmentation_config(s, form, checkpoint, data_root, work_dir)
        run = _train_and_test(cfg, logger)
        results[name] = dict(form=form, pretrained=checkpoint is not None,
                             mIoU=run['metrics']['mIoU'], aAcc=run['metrics']['aAcc'],
                             wall_s=run['wall_s'])
    return dict(data_root=data_root, data=data, iterations=s.seg_iters, runs=results)


def run_form_accuracy(s: FormAccuracySettings, logger: Optional[MMLogger] = None,
                      pretrained: Optional[str] = None) -> dict:
    """Run the sections; return the report. ``pretrained``: the checkpoint of the transfer
    section when section 1 is not run (a RepVGG classifier of ``arch``, any RepVGG layout)."""
    s.check()
    for split in ('train', 'test'):  # readable before any run starts (one-line error otherwise)
        load_fashion_mnist(s.fashion_mnist_root, split)
    logger = logger or MMLogger.get_current_instance()
    report = dict(settings=asdict(s))
    with torch_threads(s.threads):
        report['machine'] = machine_info()
        logger.info(f'block forms accuracy: {machine_line(report["machine"])}')
        if 'scratch' in s.sections:
            report['scratch'] = scratch_section(s, logger)
            pretrained = pretrained or report['scratch']['forms']['repvgg']['checkpoint']
        if 'transfer' in s.sections:
            if pretrained is None:
                raise UserError('the transfer section needs a pretrained classifier: run the '
                                'scratch section or pass one')
            report['pretrained'] = pretrained
            report['transfer'] = transfer_section(s, pretrained, logger)
    return report


def table_lines(report: dict) -> List[str]:
    """The report as markdown tables (scratch top-1; transfer mIoU and wall time)."""
    lines = []
    scratch = report.get('scratch')
    if scratch:
        lines += ['| from scratch, Fashion-MNIST | top-1 (%) | fused top-1 (%) | train wall (s) |',
                  '|---|---|---|---|']
        lines += [f'| {FORM_TITLES[form]} | {r["top1"]:.2f} | {r["fused_top1"]:.2f} | '
                  f'{r["wall_s"]:.0f} |' for form, r in scratch['forms'].items()]
        lines.append(f'\nlinear-scaling vs RepVGG block: {-scratch["linear_gap"]:+.2f} points '
                     f'(target: within {scratch["target"]:g}): {scratch["verdict"]}')
    transfer = report.get('transfer')
    if transfer:
        lines += ['', f'| PSPNet fine-tuning, {transfer["iterations"]} iterations, composed '
                  'Fashion-MNIST | mIoU (%) | aAcc (%) | wall (s) |', '|---|---|---|---|']
        lines += [f'| {FORM_TITLES[r["form"]]}, '
                  f'{"from the pretrained classifier" if r["pretrained"] else "from scratch"} | '
                  f'{r["mIoU"]:.2f} | {r["aAcc"]:.2f} | {r["wall_s"]:.0f} |'
                  for r in transfer['runs'].values()]
    seed = report['settings']['seed']
    lines.append(f'\nCPU: {machine_line(report["machine"])}; one seed ({seed}), one recipe for '
                 'every form')
    return lines

