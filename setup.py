from setuptools import find_packages, setup

setup(
    name='repvgg_mm',
    version='0.1.0',
    description='RepVGG backbones, re-parameterisation and dense-prediction configs for OpenMMLab 2.x',
    packages=find_packages(include=['repvgg_mm', 'repvgg_mm.*']),
    python_requires='>=3.9',
    install_requires=['torch', 'mmengine>=0.10,<1.0', 'mmcv>=2.0,<2.2'],
)
