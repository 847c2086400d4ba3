# PSPNet + RepVGG-B2 (output stride 8) on Cityscapes, fine-tuned in the insert-BN form
# (block_type='fused_bn': each block is the fused 3x3 conv followed by a trainable BN, the plain
# network trained directly, the original RepVGG FAQ's cheap option). The ImageNet RepVGG-B2
# checkpoint (training-time or already fused; any layout) is converted on load (the same
# function); the result fuses into the same deploy model as pspnet_repvgg_b2.py
# (tools/convert_whole_model.py).
_base_ = ['./pspnet_repvgg_b2.py']
model = dict(backbone=dict(block_type='fused_bn'))
