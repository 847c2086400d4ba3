"""demo/image_demo.py draws a prediction of a training-time or fused model on one image; bad images,
bad model values and outputs over its inputs are one-line errors."""
import runpy

import numpy as np
import pytest
from PIL import Image

from repvgg_mm.utils.cli import run_tool
from repvgg_mm.utils.errors import EXIT_ERROR
from tests.helpers.inference import CONFIGS, random_checkpoint


@pytest.mark.parametrize('kind', sorted(CONFIGS))
def test_image_demo_writes_a_png(kind, repo_root, tmp_path, image, capsys):
    path, _ = random_checkpoint(repo_root, kind, tmp_path)
    main = runpy.run_path(str(repo_root / 'demo' / 'image_demo.py'))['main']
    out = tmp_path / 'drawn.png'
    assert run_tool(main, [image, str(repo_root / CONFIGS[kind]), path, '--out-file',
                           str(out)]) == 0
    assert out.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert Image.open(out).size == (96, 96)


def test_image_demo_bad_images_are_one_line(repo_root, tmp_path, capsys, image):
    main = runpy.run_path(str(repo_root / 'demo' / 'image_demo.py'))['main']
    text = tmp_path / 'notes.png'
    text.write_text('not an image')
    empty = tmp_path / 'empty.png'
    empty.write_bytes(b'')
    truncated = tmp_path / 'truncated.jpg'
    Image.open(image).save(tmp_path / 'whole.jpg', quality=90)
    truncated.write_bytes((tmp_path / 'whole.jpg').read_bytes()[:600])
    Image.fromarray(np.zeros((1, 1, 3), dtype=np.uint8)).save(tmp_path / 'pixel.png')
    for img, message in ((tmp_path / 'missing.png', 'image not found'),
                         (tmp_path / 'pixel.png', 'is 1x1 pixels'),
                         (text, 'cannot read image'), (tmp_path, 'is a folder'),
                         (empty, 'is empty (0 bytes)'), (truncated, 'truncated')):
        assert run_tool(main, [str(img), str(repo_root / CONFIGS['seg']), 'w.pth']) == EXIT_ERROR
        err = capsys.readouterr().err
        assert err.startswith('error: ') and err.count('\n') == 1 and message in err, err
        assert err.count('error:') == 1, err


def test_image_demo_never_writes_over_its_inputs(repo_root, tmp_path, capsys, image):
    path, _ = random_checkpoint(repo_root, 'seg', tmp_path)
    (tmp_path / 'link.pth').symlink_to(path)
    main = runpy.run_path(str(repo_root / 'demo' / 'image_demo.py'))['main']
    before = {p: open(p, 'rb').read() for p in (path, image)}
    for out in (path, image, str(tmp_path / 'link.pth'), str(repo_root / CONFIGS['seg'])):
        assert run_tool(main, [image, str(repo_root / CONFIGS['seg']), path,
                               '--out-file', out]) == EXIT_ERROR
        err = capsys.readouterr().err
        assert 'it is an input of this run' in err and err.count('\n') == 1, err
    assert {p: open(p, 'rb').read() for p in before} == before


@pytest.mark.parametrize('options', [['model.backbone.arch=Z9'],
                                     ['model.backbone.online_fusion=maybe']])
def test_bad_model_values_are_one_line(options, repo_root, tmp_path, image, capsys):
    path, _ = random_checkpoint(repo_root, 'seg', tmp_path)
    main = runpy.run_path(str(repo_root / 'demo' / 'image_demo.py'))['main']
    assert run_tool(main, [image, str(repo_root / CONFIGS['seg']), path,
                           '--cfg-options', *options]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert err.startswith('error: cannot build the model') and err.count('\n') == 1, err
