"""The one path from a config file to a model, with one-line errors."""
import pytest
from mmengine.config import Config

from repvgg_mm.models import ImageClassifier
from repvgg_mm.testing import TINY_ARCH
from repvgg_mm.utils.config import build_model, config_scope, load_config, replace_sync_bn
from repvgg_mm.utils.errors import UserError


def write(tmp_path, text, name='cfg.py'):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_builds_in_the_scope_of_the_model_type(tmp_path):
    cfg = load_config(write(tmp_path, f"model = dict(type='ImageClassifier', backbone=dict("
                                      f"type='RepVGG', arch={TINY_ARCH!r}), head=dict("
                                      "type='LinearClsHead', num_classes=3))\n"),
                      {'model.head.num_classes': 4})
    assert config_scope(cfg) == 'repvgg_mm'
    model = build_model(cfg)
    assert isinstance(model, ImageClassifier) and model.head.num_classes == 4
    assert cfg.default_scope == 'repvgg_mm'  # the Runner builds in the guessed scope too


@pytest.mark.parametrize('text, message', [
    ('model = dict(type=', 'cannot load config'),
    ("_base_ = ['missing_base.py']\nmodel = dict(type='X')\n", 'cannot load config'),
    ('x = 1\n', 'defines no model'),
    ("model = dict(type='NoSuchModel')\n", "no known codebase"),
    ("default_scope = 'repvgg_mm'\nmodel = dict(type='RepVGG', arch='Z9')\n",
     'cannot build the model'),
])
def test_broken_configs_are_one_line_errors(tmp_path, text, message):
    with pytest.raises(UserError, match=message) as info:
        build_model(load_config(write(tmp_path, text)))
    assert '\n' not in str(info.value)


def test_missing_and_folder_configs(tmp_path):
    with pytest.raises(UserError, match='config file not found'):
        load_config(str(tmp_path / 'missing.py'))
    with pytest.raises(UserError, match='config is not a file'):
        load_config(str(tmp_path))


def test_bad_cfg_options_keys(tmp_path):
    path = write(tmp_path, "model = dict(type='ImageClassifier', backbone=[1, 2])\n")
    with pytest.raises(UserError, match='cannot apply --cfg-options'):
        load_config(path, {'model.backbone.5': 3})


def test_sync_bn_is_replaced_everywhere():
    cfg = Config(dict(model=dict(backbone=dict(norm_cfg=dict(type='SyncBN')),
                                 heads=[dict(norm_cfg=dict(type='MMSyncBN')), dict(type='GN')])))
    model, count = replace_sync_bn(cfg.model)
    assert count == 2 and model['backbone']['norm_cfg']['type'] == 'BN'
    assert model['heads'][0]['norm_cfg']['type'] == 'BN' and model['heads'][1]['type'] == 'GN'
