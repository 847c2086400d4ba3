"""Image-only data samples: what a detector's tensor or predict forward needs besides images."""
from torch import Tensor, nn


def is_two_stage(model: nn.Module) -> bool:
    """Whether ``model`` is a two-stage detector (an RPN and an RoI head), whose tensor forward
    needs data samples."""
    return (getattr(model, 'rpn_head', None) is not None
            and getattr(model, 'roi_head', None) is not None)


def detection_samples(inputs: Tensor) -> list:
    """One image-only mmdet ``DetDataSample`` per image of ``inputs`` (N, C, H, W): shapes H x W,
    scale factor 1, no annotations: what a detector's predict/tensor forward needs."""
    from mmdet.structures import DetDataSample
    shape = tuple(inputs.shape[-2:])
    info = dict(img_shape=shape, ori_shape=shape, pad_shape=shape, batch_input_shape=shape,
                scale_factor=(1.0, 1.0))
    return [DetDataSample(metainfo=info) for _ in range(inputs.shape[0])]
