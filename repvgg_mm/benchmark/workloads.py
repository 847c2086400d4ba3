"""What the benchmarks run: timed workloads (inference, training steps), synthetic batches, and
configs made for measuring (random weights, plain BN, optionally the tiny arch)."""
from typing import Callable, List, Optional, Sequence, Tuple

import torch
from mmengine.config import Config
from torch import Tensor, nn

from repvgg_mm.models.utils import detection_samples
from repvgg_mm.testing import TINY_ARCH
from repvgg_mm.utils.arch_switch import switch_arch
from repvgg_mm.utils.config import load_config, replace_sync_bn

Workload = Callable[[], object]


def inference_workload(runner: Callable[[Tensor], object], inputs: Tensor) -> Workload:
    """``runner(inputs)`` in inference mode."""
    def run():
        with torch.inference_mode():
            runner(inputs)
    return run


def train_step_workload(model: nn.Module, inputs: Tensor, num_classes: int = 1000) -> Workload:
    """Forward + cross-entropy + backward in train mode (one training iteration, no optimizer)."""
    model.train()
    labels = torch.randint(0, num_classes, (inputs.shape[0], ),
                           generator=torch.Generator().manual_seed(0))

    def run():
        model.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(inputs), labels).backward()
    return run


def output_weights(shapes: Sequence[torch.Size], generator: torch.Generator) -> List[Tensor]:
    """One fixed random weight per output (scaled by its size) for :func:`weighted_loss`."""
    return [torch.randn(shape, generator=generator) / shape.numel() ** 0.5 for shape in shapes]


def weighted_loss(outputs: Sequence[Tensor], weights: Sequence[Tensor]) -> Tensor:
    """A scalar loss of all outputs: fixed random weights, so every output gets a gradient."""
    return sum((o * w).sum() for o, w in zip(outputs, weights))


def backbone_step(model: nn.Module, inputs: Tensor, weights: List[Tensor]) -> Workload:
    """Forward, backward of :func:`weighted_loss`, zero grads."""
    def run():
        weighted_loss(model(inputs), weights).backward()
        model.zero_grad(set_to_none=True)
    return run


def loss_step(model: nn.Module, inputs: Tensor, samples: list) -> Callable[[], float]:
    """One training step without optimizer: loss mode, sum of the losses, backward, zero grads."""
    def run():
        losses = model(inputs, samples, mode='loss')
        loss, _ = model.parse_losses(losses)
        loss.backward()
        model.zero_grad(set_to_none=True)
        return loss.item()
    return run


def detection_batch(batch: int, size: int, boxes: int, seed: int, num_classes: int = 3):
    """Random images and ``DetDataSample`` s with ``boxes`` random boxes each."""
    from mmengine.structures import InstanceData
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(batch, 3, size, size, generator=generator)
    samples = detection_samples(inputs)
    for sample in samples:
        corner = torch.rand(boxes, 2, generator=generator) * size * 0.6
        extent = (torch.rand(boxes, 2, generator=generator) * 0.3 + 0.1) * size
        sample.gt_instances = InstanceData(
            bboxes=torch.cat([corner, corner + extent], dim=1),
            labels=torch.randint(0, num_classes, (boxes, ), generator=generator))
    return inputs, samples


def _seg_sample(shape: Tuple[int, int], num_classes: int, generator: torch.Generator):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    sample = SegDataSample(metainfo=dict(img_shape=shape, ori_shape=shape, pad_shape=shape))
    sample.gt_sem_seg = PixelData(data=torch.randint(0, num_classes, (1, *shape),
                                                     generator=generator))
    return sample


def segmentation_batch(batch: int, size: int, num_classes: int, seed: int):
    """Normalised random images and ``SegDataSample`` s with random label maps (loss mode)."""
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(batch, 3, size, size, generator=generator)
    return inputs, [_seg_sample((size, size), num_classes, generator) for _ in range(batch)]


def segmentation_data(batch: int, size: int, num_classes: int, seed: int) -> dict:
    """What a dataloader gives ``train_step``: uint8 images and label maps of ``size``."""
    generator = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for _ in range(batch):
        inputs.append(torch.randint(0, 256, (3, size, size), generator=generator,
                                    dtype=torch.uint8))
        samples.append(_seg_sample((size, size), num_classes, generator))
    return dict(inputs=inputs, data_samples=samples)


def measuring_config(path: str, cfg_options: Optional[dict] = None, tiny: bool = False) -> Config:
    """The config of ``path`` for measuring: SyncBN as BN, no pretrained checkpoint (random
    weights); with ``tiny`` the backbone is :data:`~repvgg_mm.testing.TINY_ARCH` (neck and heads
    fitted to it) and two-stage detectors sample fewer proposals and RoIs."""
    cfg = load_config(path, cfg_options)
    cfg.model = replace_sync_bn(cfg.model)[0]
    cfg.model.backbone.init_cfg = None
    cfg.model.backbone.pop('pretrained', None)
    cfg.model.pop('pretrained', None)
    if tiny:
        switch_arch(cfg, dict(TINY_ARCH))
        train_cfg = cfg.model.get('train_cfg') or {}
        if 'rcnn' in train_cfg:
            train_cfg.rpn_proposal.nms_pre, train_cfg.rpn_proposal.max_per_img = 200, 100
            train_cfg.rcnn.sampler.num = 64
    return cfg
