# pspnet_repvgg_a0_toy.py with the linear-scaling block (block_type='linear': one conv + one BN
# per block while training); it fuses into the same deploy model:
#   python tools/train.py configs/toy/pspnet_repvgg_a0_linear_toy.py
_base_ = ['./pspnet_repvgg_a0_toy.py']
model = dict(backbone=dict(block_type='linear'))
