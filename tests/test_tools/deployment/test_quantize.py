"""tools/deployment/quantize.py CONFIG CHECKPOINT OUT_DIR: the INT8 model folder, its report, the
convs kept in FP32, the bounded-drop search, scoring through tools/test.py, and bad input."""
import json
import os

import numpy as np
import pytest

from repvgg_mm.deploy import quantized_convs, read_model_info
from repvgg_mm.deploy.model_folder import FP32_FILE, INT8_FILE
from repvgg_mm.utils.cli import run_tool
from tests.helpers.tools import tool_main
from tests.helpers.toy_cases import file_sha256

REPORT = 'quantize_report.json'
FAST = ['--calib', '2', '--latency-repeats', '1', '--cfg-options', 'log_level=WARNING']


@pytest.fixture(scope='module')
def tools():
    return tool_main('deployment/quantize.py'), tool_main('test.py')


def test_partial_int8_model_folder_scores_through_test_tool(cases, tools, tmp_path, capsys):
    quantize, test_tool = tools
    config, checkpoint, _ = cases['pspnet']
    out = tmp_path / 'psp_int8'
    assert run_tool(quantize, [config, checkpoint, str(out), '--keep-fp32', '3', *FAST]) == 0
    printed = capsys.readouterr().out
    assert sorted(os.listdir(out)) == sorted(['deploy.json', 'deploy_config.py', FP32_FILE,
                                              INT8_FILE, REPORT])
    report = json.loads((out / REPORT).read_text())
    ranked = [s['conv'] for s in report['sensitivity']]
    # 8 fused blocks + the PSP head's 6 convs (the auxiliary head does not run at test time)
    assert report['kept_fp32'] == ranked[:3] and len(ranked) == report['quantized_convs'] == 14
    assert report['int8_convs'] == len(quantized_convs(str(out / INT8_FILE))) == 11
    noise = [s['noise_to_signal'] for s in report['sensitivity']]
    assert noise == sorted(noise, reverse=True) and all(0 < n < 1 for n in noise)
    assert report['calibration'] == {'split': 'train', 'images': 2} and report['metrics'] == {}
    assert all(report['latency_ms'][k] > 0 for k in ('pytorch fp32', 'onnxruntime fp32',
                                                     'onnxruntime int8'))
    assert read_model_info(str(out)).quantization['kept_fp32'] == ranked[:3]
    assert 'kept in FP32: 3' in printed and 'onnxruntime int8' in printed
    metrics = tmp_path / 'int8.json'
    assert run_tool(test_tool, [config, str(out / INT8_FILE), '--work-dir',
                                     str(tmp_path / 'wd'), '--out-item', 'metrics', '--out',
                                     str(metrics), '--cfg-options', 'log_level=WARNING']) == 0
    scores = json.loads(metrics.read_text())
    assert 0 <= scores['mIoU'] <= 100 and np.isfinite(scores['aAcc'])


def test_max_drop_search_on_a_detector(cases, tools, tmp_path):
    quantize, _ = tools
    config, checkpoint, _ = cases['retinanet']
    out = tmp_path / 'retina_int8'
    assert run_tool(quantize, [config, checkpoint, str(out), '--val', '--max-drop', '1.0',
                                    *FAST]) == 0
    report = json.loads((out / REPORT).read_text())
    assert report['metric'] == 'coco/bbox_mAP' and report['max_drop'] == 1.0
    # a drop of at most 1.0 mAP always holds: no conv needs to stay in FP32
    assert report['kept_fp32'] == [] and list(report['search']) == ['0']
    metrics = report['metrics']
    assert set(metrics) == {'fp32', 'int8', 'int8 full'} and metrics['int8'] == metrics['int8 full']
    assert all(0 <= m['coco/bbox_mAP'] <= 1 for m in metrics.values())
    assert report['int8_convs'] == report['quantized_convs'] > 0


def test_bad_input_is_one_line_and_writes_nothing(cases, tools, tmp_path, capsys):
    quantize, _ = tools
    config, checkpoint, folder = cases['pspnet']
    inputs = {p: file_sha256(p) for p in (config, checkpoint)}
    os.makedirs(os.path.join(os.path.dirname(config), 'toy_dense', 'img_dir', 'empty'),
                exist_ok=True)
    out = str(tmp_path / 'out')
    runs = {
        'argument --calib: must be >= 1': ['--calib', '0'],
        'fewer than the 50 asked for': ['--calib', '50'],
        'cannot read the train data': ['--calib', '1', '--cfg-options',
                        'train_dataloader.dataset.data_prefix.img_path=img_dir/empty'],
        '--max-drop needs --val': ['--max-drop', '1'],
        'exclude each other': ['--keep-fp32', '1', '--max-drop', '1', '--val'],
        'argument --max-drop: expected a finite number': ['--max-drop', 'nan', '--val'],
        'argument --keep-fp32: must be >= 0': ['--keep-fp32', '-1'],
    }
    for message, options in runs.items():
        assert run_tool(quantize, [config, checkpoint, out, *options]) == 2, message
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith('error:') and message in err[0], err
        assert not os.path.exists(out)
    listing = sorted(os.listdir(folder))
    assert run_tool(quantize, [config, checkpoint, folder, '--calib', '1']) == 2
    assert 'pass --force' in capsys.readouterr().err
    assert sorted(os.listdir(folder)) == listing
    assert {p: file_sha256(p) for p in (config, checkpoint)} == inputs
    assert not [n for n in os.listdir(tmp_path) if 'tmp' in n]
