import re
from pathlib import Path

from setuptools import find_packages, setup

VERSION = re.search(r"__version__ = '([^']+)'",
                    (Path(__file__).parent / 'repvgg_mm' / 'version.py').read_text()).group(1)

setup(
    name='repvgg_mm',
    version=VERSION,
    description='RepVGG backbones, re-parameterisation and dense-prediction configs for '
                'OpenMMLab 2.x',
    packages=find_packages(include=['repvgg_mm', 'repvgg_mm.*']),
    python_requires='>=3.9',
    install_requires=['torch', 'mmengine>=0.10,<1.0', 'mmcv>=2.0,<2.2'],
)
