"""Online fusion measured: training-time RepVGG with frozen BN, ``online_fusion`` 'auto' vs 'off'
(``tools/analysis_tools/benchmark_online_fusion.py``).

Every comparison runs one model and its deep copy with ``online_fusion`` switched on every
RepVGGBlock (identical weights, random BN statistics), side by side in one process: times are
medians of interleaved rounds and speed claims are ratios of those medians, named with the CPU
they ran on. The sections (:data:`SECTIONS`): :mod:`.backbone`, :mod:`.dense` (``detectors``,
``segmentation``) and :mod:`.finetune`; the table: :mod:`.report`.
"""
import os
import time
from typing import Optional, Sequence

from mmengine.logging import MMLogger

from repvgg_mm.utils.errors import UserError
from repvgg_mm.utils.timing import torch_threads

from ..machine import machine_info
from .backbone import backbone_section
from .dense import detectors_section, segmentation_section
from .finetune import finetune_section
from .report import KEYS, markdown_table, summary_lines, table_rows
from .settings import SECTIONS, make_settings

__all__ = ['SECTIONS', 'make_settings', 'markdown_table', 'run_online_fusion', 'summary_lines',
           'table_rows']


def run_online_fusion(s: dict, sections: Sequence[str] = SECTIONS,
                      data_root: Optional[str] = None,
                      logger: Optional[MMLogger] = None) -> dict:
    """Measure ``sections`` with the settings ``s`` (:func:`make_settings`); return the report
    (settings, machine, one entry per section, the table rows, the seconds it took).
    ``data_root``: the toy dense dataset of the fine-tune (default: generated in the repo)."""
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        raise UserError(f'unknown sections {sorted(unknown)}; choose from {list(SECTIONS)}')
    if data_root is not None and not os.path.isdir(data_root):
        raise UserError(f'--data-root {data_root} is not a folder')
    logger = logger or MMLogger.get_current_instance()
    report = dict(settings=dict(s))
    started = time.perf_counter()
    with torch_threads(s['threads']):
        report['machine'] = machine = machine_info()
        machine['load_average_start'] = machine.pop('load_average')
        logger.info(f'online fusion benchmark ({"quick" if s["quick"] else "full"}): '
                    f'{machine["summary"]}')
        if 'backbone' in sections:
            report['backbone'] = backbone_section(s, logger)
        if 'detectors' in sections:
            report['detectors'] = detectors_section(s, logger)
        if 'segmentation' in sections:
            report['segmentation'] = segmentation_section(s, logger)
        if 'finetune' in sections:
            report['finetune'] = finetune_section(data_root, s, logger)
    report['table'] = [dict(zip(KEYS, row)) for row in table_rows(report)]
    report['seconds'] = time.perf_counter() - started
    report['machine']['load_average_end'] = os.getloadavg()
    return report
