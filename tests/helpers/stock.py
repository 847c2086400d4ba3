"""Running mmseg's and mmdet's own ``tools/test.py`` (shipped in their wheels) and reading what
they wrote: the metrics line of the JSON log and the text log."""
import glob
import json
import os

# The warnings mmengine's load_state_dict prints for a non-strict load.
LOAD_WARNINGS = ('missing keys in source state_dict', 'unexpected key in source state_dict')

# Runs stock scripts as __main__, one argv after the other, in one fresh interpreter (the imports
# of torch, mmseg and mmdet are paid once; each run builds its own Runner).
STOCK_DRIVER = ('import json, runpy, sys\n'
                'for sys.argv in json.loads(sys.argv[1]):\n'
                '    runpy.run_path(sys.argv[0], run_name="__main__")')


def stock_test_script(package) -> str:
    """``package``'s own tools/test.py (``package``: the imported mmseg or mmdet module)."""
    return os.path.join(os.path.dirname(package.__file__), '.mim', 'tools', 'test.py')


def stock_runs(package, tmp_path, runs: dict) -> list:
    """argv lists running ``package``'s own tools/test.py for each ``name: (config, checkpoint,
    extra args)``, work dirs ``tmp_path/wd_<name>``."""
    script = stock_test_script(package)
    return [[script, cfg, ckpt, '--work-dir', str(tmp_path / f'wd_{name}'), *extra]
            for name, (cfg, ckpt, extra) in runs.items()]


def read_metrics(work_dir) -> dict:
    """The metrics of a test run's JSON log (timings dropped)."""
    [log] = glob.glob(os.path.join(work_dir, '*', '*.json'))
    with open(log) as f:
        metrics = json.loads(f.read().strip().splitlines()[-1])
    return {k: v for k, v in metrics.items() if k not in ('time', 'data_time', 'step')}


def read_log(work_dir) -> str:
    [log] = glob.glob(os.path.join(work_dir, '*', '*.log'))
    with open(log) as f:
        return f.read()
