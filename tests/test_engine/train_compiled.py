"""Train the toy classification config for one epoch eagerly, then with ``compile=True`` (same
seed), and print the largest relative difference of the trained weights as JSON.

``python train_compiled.py CONFIG DATA_ROOT WORK_DIR SIZE``. The compile test runs it in a
subprocess: a heap corruption inside oneDNN aborts the whole process.
"""
import json
import sys

from repvgg_mm.engine import train, unwrap_model
from repvgg_mm.utils.compare import tensor_difference


def trained_state(config: str, options: dict, work_dir: str, compile_: bool) -> dict:
    name = 'compiled' if compile_ else 'eager'
    model = train(config, work_dir=f'{work_dir}/{name}',
                  cfg_options=dict(options, compile=compile_, experiment_name=name))
    network = unwrap_model(model)
    state = {k: v.detach().clone() for k, v in network.state_dict().items()
             if v.is_floating_point()}
    return state, network.backbone._compiled_call_impl is not None


def main(config: str, data_root: str, work_dir: str, size: int) -> None:
    options = {
        'train_dataloader.dataset.data_root': data_root,
        'val_dataloader.dataset.data_root': data_root,
        'test_dataloader.dataset.data_root': data_root,
        'train_dataloader.num_workers': 0, 'val_dataloader.num_workers': 0,
        'train_dataloader.batch_size': 10,
        'train_dataloader.dataset.transforms': [dict(type='Resize', size=(size, size))],
        # the smallest RepVGG: stem (RGB -> 16 channels, stride 2) and one block per stage
        'model.backbone.arch': dict(_delete_=True, num_blocks=(1, 1, 1, 1),
                                    width_factor=(0.25, 0.25, 0.25, 0.25)),
        'model.head.in_channels': 128,
        'train_cfg.max_epochs': 1, 'train_cfg.val_begin': 2,  # no validation
    }
    eager, eager_compiled = trained_state(config, options, work_dir, False)
    compiled, backbone_compiled = trained_state(config, options, work_dir, True)
    assert eager.keys() == compiled.keys()
    # relative to each tensor's largest value; NaN or infinity raises
    errors = {k: tensor_difference(eager[k], compiled[k], k).max_rel for k in eager}
    worst = max(errors, key=errors.get)
    print(json.dumps(dict(backbone_compiled=[eager_compiled, backbone_compiled], worst=worst,
                          max_rel_error=errors[worst])))


if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
