"""Helpers of the test suite (not shipped): tiny arch variants, random weights, checkpoint
wrappings, tiny OpenMMLab model configs, conversion cases, the toy configs shrunk to the tiny arch,
runs of mmseg's/mmdet's stock scripts and of our tools."""
from .archs import BLOCK_KINDS, NUM_CLASSES, TINY_ARCHS, arch_of
from .cases import (
    ONE_THREAD_ENV,
    SAMPLE,
    assert_same_outputs,
    convert_and_check,
    load_written,
    make_case,
    run_concurrently,
    trained_model,
    write_config,
)
from .configs import classifier_cfg, faster_rcnn_cfg, pspnet_cfg, retinanet_cfg
from .fashion_mnist import write_fake_fashion_mnist
from .toy_cases import TINY_TOY_OPTIONS, file_sha256, toy_data_options, write_toy_case
from .weights import (
    WRAPPERS,
    classifier_state,
    logits,
    outputs_rel_error,
    randomize_,
    runner_checkpoint,
)

__all__ = ['BLOCK_KINDS', 'NUM_CLASSES', 'ONE_THREAD_ENV', 'SAMPLE', 'TINY_ARCHS',
           'TINY_TOY_OPTIONS', 'WRAPPERS', 'arch_of', 'assert_same_outputs', 'classifier_cfg',
           'classifier_state', 'convert_and_check', 'faster_rcnn_cfg', 'file_sha256',
           'load_written', 'logits', 'make_case', 'outputs_rel_error', 'pspnet_cfg', 'randomize_',
           'retinanet_cfg', 'run_concurrently', 'runner_checkpoint', 'toy_data_options',
           'trained_model', 'write_config', 'write_fake_fashion_mnist', 'write_toy_case']
