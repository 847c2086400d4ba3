# The RepVGG paper's schedule: 120 epochs, SGD momentum 0.9, lr 0.1 -> 0 by cosine annealing
# (per iteration), global batch 256, weight decay 1e-4 except on biases and on the BN weights of
# the 3x3 and 1x1 branches (the identity branch's BN weight keeps its decay).
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4),
    paramwise_cfg=dict(
        bias_decay_mult=0.0,
        custom_keys={
            'branch_3x3.bn': dict(decay_mult=0.0),
            'branch_1x1.bn': dict(decay_mult=0.0),
        }))

max_epochs = 120
param_scheduler = dict(
    type='CosineAnnealingLR',
    T_max=max_epochs,
    eta_min=0.0,
    by_epoch=True,
    begin=0,
    end=max_epochs,
    convert_to_iter_based=True)

train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()

# `tools/train.py --auto-scale-lr` scales lr by (GPUs x batch per GPU) / 256.
auto_scale_lr = dict(base_batch_size=256, enable=False)
