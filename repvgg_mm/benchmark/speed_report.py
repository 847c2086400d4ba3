"""Reports of :mod:`~repvgg_mm.benchmark.speed` results: CSV, a text table, the targets and the
paper-style speed-vs-accuracy plot (files written atomically)."""
import csv
import io
from typing import Dict, List, Sequence

from repvgg_mm.utils.fileio import atomic_output, write_text_atomic

from .speed import BenchRow

CSV_FIELDS = [name for name in BenchRow.__dataclass_fields__ if name != 'samples']


def rows_to_csv(rows: Sequence[BenchRow]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS)
    writer.writeheader()
    for row in rows:
        writer.writerow({key: (f'{value:.6g}' if isinstance(value, float) else value)
                         for key, value in row.as_dict().items() if key in CSV_FIELDS})
    return buffer.getvalue()


def write_csv(rows: Sequence[BenchRow], path: str) -> None:
    write_text_atomic(path, rows_to_csv(rows))


def format_table(rows: Sequence[BenchRow]) -> str:
    """Fixed-width text table of the rows (what the CLI prints)."""
    header = (f'{"model":<46} {"params(M)":>9} {"GMACs":>7} {"s/batch":>8} {"img/s":>8} '
              f'{"speedup":>7} {"GFLOP/s":>8} {"/GEMM":>6} {"top-1":>6}')
    lines = [header, '-' * len(header)]
    for r in rows:
        speedup = f'{r.speedup:.2f}x' if r.speedup else ''
        gemm = f'{r.gemm_fraction:.0%}' if r.gemm_fraction else ''
        top1 = f'{r.paper_top1:.2f}' if r.paper_top1 else ''
        params = f'{r.params / 1e6:.2f}' if r.params else ''
        macs = f'{r.macs / 1e9:.2f}' if r.macs else ''
        ips = f'{r.images_per_s:.1f}' if r.images_per_s else ''
        lines.append(f'{r.name:<46} {params:>9} {macs:>7} {r.seconds:>8.4f} {ips:>8} '
                     f'{speedup:>7} {r.gflops:>8.1f} {gemm:>6} {top1:>6}')
    return '\n'.join(lines)


def target_lines(checks: Dict[str, dict]) -> List[str]:
    """The targets of :func:`~repvgg_mm.benchmark.speed.speed_targets`, one line each."""
    lines = ['targets (median of per-round ratios [quartiles]):']
    for name, check in checks.items():
        lines.append(f'  {check["verdict"].upper():<6} {name} = {check["value"]:.2f} '
                     f'[{check["q25"]:.2f}, {check["q75"]:.2f}] (target >= {check["target"]})')
    return lines


def plot_speed_accuracy(rows: Sequence[BenchRow], path: str, title: str = '') -> None:
    """The paper's speed-accuracy figure with this machine's speeds (PNG, written atomically).

    Fused RepVGG and ResNets are placed at their measured img/s and the paper's ImageNet top-1;
    training-time RepVGG appears as hollow markers joined to its fused point.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    def series(family, form):
        points = [(r.images_per_s, r.paper_top1, r.name.split(' (')[0]) for r in rows
                  if r.family == family and r.form == form and r.paper_top1 is not None]
        return sorted(points)

    fused = series('RepVGG', 'fused')
    train = {name: (x, y) for x, y, name in series('RepVGG', 'train-time')}
    resnets = series('ResNet', 'reference')
    fig, ax = plt.subplots(figsize=(7, 5))
    if fused:
        ax.plot([p[0] for p in fused], [p[1] for p in fused], 'o-', color='tab:red',
                label='RepVGG (fused)')
    for x, y, name in fused:
        ax.annotate(name.replace('RepVGG-', ''), (x, y), textcoords='offset points', xytext=(4, 4),
                    fontsize=8, color='tab:red')
        if name in train:
            tx, ty = train[name]
            ax.plot([tx, x], [ty, y], ':', color='tab:red', alpha=0.5)
    if train:
        ax.plot([p[0] for p in train.values()], [p[1] for p in train.values()], 'o',
                markerfacecolor='none', color='tab:red', alpha=0.6, label='RepVGG (training-time)')
    if resnets:
        ax.plot([p[0] for p in resnets], [p[1] for p in resnets], 's-', color='tab:blue',
                label='ResNet (torchvision)')
        for x, y, name in resnets:
            ax.annotate(name.replace('ResNet-', 'R'), (x, y), textcoords='offset points',
                        xytext=(4, -10), fontsize=8, color='tab:blue')
    # Optimised variants (e.g. --optimize jit_freeze), applied to both families alike.
    for family, colour, marker in (('RepVGG', 'tab:red', 'o'), ('ResNet', 'tab:blue', 's')):
        forms = sorted({r.form for r in rows if r.family == family and '+' in r.form})
        for form in forms:
            points = series(family, form)
            ax.plot([p[0] for p in points], [p[1] for p in points], marker + '--', color=colour,
                    alpha=0.45, markersize=4,
                    label=f'{family} ({form.replace("reference+", "").replace("+", ", ")})')
    ax.set_xlabel('measured speed (images/s)')
    ax.set_ylabel('ImageNet top-1 (%, paper)')
    ax.set_title(title or 'RepVGG speed vs accuracy', fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(loc='upper right', fontsize=8)
    fig.tight_layout()
    with atomic_output(path) as tmp_path:
        fig.savefig(tmp_path, dpi=120, format='png')
    plt.close(fig)
