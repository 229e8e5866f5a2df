"""GPU memory planning: predict the peak memory of one training step and of inference without allocating it.

- :mod:`~tadcli.profiling.tracker`: the live-tensor memory tracker (real or fake tensors), with the CUDA
  caching allocator's rounding.
- :mod:`~tadcli.profiling.fake`: running real code on fake tensors (values and data-dependent shapes).
- :mod:`~tadcli.profiling.step`: one real training step / inference pass of a preset, predicted or measured.
- :mod:`~tadcli.profiling.workers`: the worker processes (started before torch is imported).
- :mod:`~tadcli.profiling.parallel`: predictions of independent workloads in parallel, in this process and the
  workers (what they run).
- :mod:`~tadcli.profiling.gpus`: the GPU table.
- :mod:`~tadcli.profiling.modes`: the table's rows (adaptation modes), the precision policy, the capacity to fit.
- :mod:`~tadcli.profiling.suggest`: the nearest configurations that fit, each re-profiled.
"""
