# RepVGG-A0 with the original repository's custom L2 (--custwd) instead of plain weight decay on
# the branch kernels: loss += 0.5 * 1e-4 * sum(RepVGGBlock.get_custom_L2()), and no weight decay on
# anything inside the 3x3 and 1x1 branches (their BN weights/biases were already excluded).
_base_ = './repvgg_a0.py'

weight_decay = 1e-4
model = dict(custom_l2_decay=weight_decay)
optim_wrapper = dict(
    optimizer=dict(weight_decay=weight_decay),
    paramwise_cfg=dict(custom_keys={
        'branch_3x3': dict(decay_mult=0.0),
        'branch_1x1': dict(decay_mult=0.0),
    }))
