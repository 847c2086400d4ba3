"""The measuring harness behind the benchmark, experiment and demo tools (the top layer).

Everything compared is measured side by side in one process (interleaved rounds, ratios, the CPU
named): :mod:`.machine` names the machine, :mod:`.targets` holds every pass/miss target,
:mod:`.workloads` the timed steps, synthetic batches and measuring configs, :mod:`.memory` the
saved-tensor and peak-RSS probes, :mod:`.reference_models` the models compared with ours. The
benchmarks: :mod:`.speed` (+ :mod:`.speed_report`), :mod:`.online_fusion`, :mod:`.block_forms`,
:mod:`.form_accuracy`, :mod:`.int8_blocks` (+ :mod:`.toy_task`), :mod:`.model_zoo`,
:mod:`.verify_archs`; :mod:`.demo` holds the end-to-end demos.
"""
