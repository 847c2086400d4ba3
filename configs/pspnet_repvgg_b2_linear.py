# PSPNet + RepVGG-B2 (output stride 8) on Cityscapes, fine-tuned with the linear-scaling block
# (block_type='linear': BN(s3*conv3x3 + s1*conv1x1 + s_id*x), trained as one conv + one BN with
# SyncBN training): the recipe of pspnet_repvgg_b2.py at about the training cost of the plain
# network. The ImageNet RepVGG-B2 checkpoint (ours, the original's, timm's or mmpretrain's) is
# converted into the linear blocks on load (the same function); the result fuses into the same
# deploy model as pspnet_repvgg_b2.py (tools/convert_whole_model.py).
_base_ = ['./pspnet_repvgg_b2.py']
model = dict(backbone=dict(block_type='linear'))
