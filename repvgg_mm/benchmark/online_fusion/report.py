"""The online-fusion report as a markdown table (thresholds written by the targets themselves)."""
from typing import List

from ..memory import mib
from ..targets import ONLINE_FUSION_TARGETS as TARGETS

HEADER = ['workload', 'mode off', 'mode auto', 'ratio', 'target', 'pass/miss']
KEYS = ('workload', 'off', 'auto', 'ratio', 'target', 'verdict')


def _fmt(value: float, digits: int = 3) -> str:
    return f'{value:.{digits}g}' if abs(value) < 1e-2 and value else f'{value:.{digits}f}'


def _backbone_rows(name: str, r: dict) -> List[List[str]]:
    shape, fp64 = 'x'.join(map(str, r['input'])), r['float64_control']
    return [
        [f'RepVGG-{name} backbone train step, {shape} (s)',
         f'{r["time"]["off"]["median_s"]:.3f}', f'{r["time"]["auto"]["median_s"]:.3f}',
         f'{r["speedup"]["ratio"]:.2f}x faster', str(TARGETS['backbone_speedup']),
         r['speedup']['verdict']],
        [f'RepVGG-{name} activations saved for backward (MiB)',
         f'{mib(r["saved_activations"]["off"]):.1f}', f'{mib(r["saved_activations"]["auto"]):.1f}',
         f'{r["saved_activations"]["ratio"]:.2f} (auto/off)', str(TARGETS['saved_ratio']),
         r['saved_activations']['verdict']],
        [f'RepVGG-{name} all tensors saved for backward, incl. kernel intermediates (MiB)',
         f'{mib(r["saved_total"]["off"]):.1f}', f'{mib(r["saved_total"]["auto"]):.1f}',
         f'{r["saved_total"]["ratio"]:.2f} (auto/off)', str(TARGETS['saved_ratio']),
         r['saved_total']['verdict']],
        [f'RepVGG-{name} outputs, max rel. error', '-',
         _fmt(r['output_max_rel_error']['value']), '-', str(TARGETS['output_error']),
         r['output_max_rel_error']['verdict']],
        [f'RepVGG-{name} grads, max abs diff / max abs grad', '-',
         _fmt(r['grad_max_diff_over_max_grad']['value']), f'{r["relu_flips"]} ReLU flips',
         str(TARGETS['grad_error']), r['grad_max_diff_over_max_grad']['verdict']],
        [f'RepVGG-{name} same in float64, {"x".join(map(str, fp64["input"]))}: '
         'outputs / grads', '-', f'{_fmt(fp64["output"])} / {_fmt(fp64["grad"])}', '-',
         f'{TARGETS["output_error"]} / {TARGETS["grad_error"]}', fp64['verdict']],
    ]


def _detector_rows(r: dict) -> List[List[str]]:
    shape = 'x'.join(map(str, r['input']))
    rows = [[f'{r["title"]} train step, {shape} (s)', f'{r["time"]["off"]["median_s"]:.3f}',
             f'{r["time"]["auto"]["median_s"]:.3f}', f'{r["speedup"]["ratio"]:.2f}x faster',
             str(TARGETS['detector_speedup']), r['speedup']['verdict']]]
    rss = r['peak_rss']
    if rss is None:
        return rows
    growth = rss['growth_during_steps']
    return rows + [
        [f'{r["title"]} peak RSS, {rss["steps"]} steps (MiB)', f'{mib(rss["off"]):.0f}',
         f'{mib(rss["auto"]):.0f}', f'{rss["ratio"]:.2f} (auto/off)', 'auto lower',
         rss['verdict']],
        [f'{r["title"]} RSS growth during those steps (MiB)', f'{mib(growth["off"]):.0f}',
         f'{mib(growth["auto"]):.0f}', '-' if rss['growth_ratio'] is None else
         f'{rss["growth_ratio"]:.2f} (auto/off)', '-', '-'],
    ]


def _segmentation_rows(seg: dict) -> List[List[str]]:
    shape = 'x'.join(map(str, seg['input']))
    return [
        [f'PSPNet-{seg["arch"]}, trained BN: blocks fused online',
         f'{seg["online_blocks"]["off"]}/{seg["blocks"]}',
         f'{seg["online_blocks"]["auto"]}/{seg["blocks"]}', '-', str(TARGETS['seg_online']),
         seg['online_verdict']],
        [f'PSPNet-{seg["arch"]}, trained BN: train step, {shape} (s)',
         f'{seg["time"]["off"]["median_s"]:.3f}', f'{seg["time"]["auto"]["median_s"]:.3f}',
         f'{seg["speedup"]["ratio"]:.2f}x', str(TARGETS['seg_ratio']),
         seg['speedup']['verdict']],
    ]


def _finetune_rows(ft: dict) -> List[List[str]]:
    title = f'Toy RetinaNet-{ft["arch"]} fine-tune, {ft["iterations"]} it'
    return [
        [f'{title}: last loss', f'{ft["last_loss"]["off"]:.6f}',
         f'{ft["last_loss"]["auto"]:.6f}',
         f'{_fmt(ft["last_loss_rel_diff"]["value"])} (rel. diff)', str(TARGETS['loss_diff']),
         ft['last_loss_rel_diff']['verdict']],
        [f'{title}: noise floor, off vs off from 1-ulp perturbed weights: last loss',
         f'{ft["last_loss"]["off"]:.6f}', f'{ft["noise_floor"]["last_loss"]:.6f}',
         f'{_fmt(ft["noise_floor"]["last_loss_rel_diff_vs_off"])} (rel. diff)', '-', 'info'],
        [f'{title}: wall time (s)', f'{ft["wall_s"]["off"]:.2f}', f'{ft["wall_s"]["auto"]:.2f}',
         f'{ft["speedup"]["ratio"]:.2f}x faster', '-', '-'],
    ]


def table_rows(report: dict) -> List[List[str]]:
    """One row per workload of every section in ``report``."""
    rows = []
    for name, result in report.get('backbone', {}).items():
        rows += _backbone_rows(name, result)
    for result in report.get('detectors', {}).values():
        rows += _detector_rows(result)
    if report.get('segmentation'):
        rows += _segmentation_rows(report['segmentation'])
    if report.get('finetune'):
        rows += _finetune_rows(report['finetune'])
    return rows


def markdown_table(rows: List[List[str]]) -> str:
    lines = ['| ' + ' | '.join(HEADER) + ' |', '|' + '|'.join(['---'] * len(HEADER)) + '|']
    lines += ['| ' + ' | '.join(row) + ' |' for row in rows]
    return '\n'.join(lines)


def summary_lines(report: dict) -> List[str]:
    """What the tool prints after the table: the machine, and the segmentation check."""
    machine = report['machine']
    lines = [f'\nCPU: {machine["cpu"]} ({machine["cores"]} cores), {machine["threads"]} torch '
             f'threads, torch {machine["torch"]}, OMP_WAIT_POLICY={machine["omp_wait_policy"]}; '
             'times are medians of interleaved rounds, speed ratios off/auto']
    if 'segmentation' in report:
        lines.append(f'PSPNet-{report["segmentation"]["arch"]} with trained BN '
                     f'(online_fusion=auto): {report["segmentation"]["online_line"]}')
    return lines
