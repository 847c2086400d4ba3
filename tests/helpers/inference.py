"""Random checkpoints of the toy segmentor and detectors for the inference tests."""
import torch

from repvgg_mm.apis import init_model
from repvgg_mm.models.utils import fuse_repvgg_blocks, randomize_bn_

CONFIGS = {'seg': 'configs/toy/pspnet_repvgg_a0_toy.py',
           'det': 'configs/toy/retinanet_repvgg_a0_toy.py',
           'ins': 'configs/toy/mask_rcnn_repvgg_a0_toy.py'}


def random_checkpoint(repo_root, kind, tmp_path, fused=False):
    model = randomize_bn_(init_model(str(repo_root / CONFIGS[kind])),
                          torch.Generator().manual_seed(0))
    if fused:
        model = fuse_repvgg_blocks(model)
    path = tmp_path / f'{kind}{"_fused" if fused else ""}.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, path)
    return str(path), model
