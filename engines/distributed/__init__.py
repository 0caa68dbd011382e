"""Training across processes: real ranks on torch.distributed (gloo) on this machine, data parallelism and ZeRO.

Modules, each usable on its own:

- ``launch``: the parent's side. Starts N rank processes torchrun-style
  (MASTER_ADDR=127.0.0.1, MASTER_PORT, RANK, WORLD_SIZE, LOCAL_RANK), carries
  their progress and results back, stops them on cancel, crash or interrupt,
  and leaves no orphan.
- ``rank``: the rank's side (``python -m workbench_engines.distributed.rank``):
  dies with its parent, joins the gloo process group, runs the target function.
- ``wire``: the frames (length + pickle) on the pipes between them.
- ``comm``: ring all-reduce formulas, the bytes the kernel saw a rank send,
  collectives timed after a barrier.
- ``ddp``: data-parallel training of the project's GPT, gradients all-reduced
  by hand over one flat buffer; the gradient check against one process.
- ``zero``: ZeRO stages 1–3 (Rajbhandari et al., 2020) by hand on the same
  process group, per-rank memory measured, and the paper's formula.
- ``recipes``: ``workbench train NAME --procs N``'s engine.
- ``drills``: rank functions that fail or spin, to show the cleanup.

For a lab (all blocking: run them in a worker thread; progress comes back in
the calling thread; a ``threading.Event`` cancels)::

    ddp.data_parallel_run(model_config, train_config, data, *, procs=2, stage=0, cancel=None, stop=None,
                          on_step=None, checkpoint=None, resume=False, return_weights=False, distill=None,
                          timeout_s=120.0) -> ddp.DataParallelReport
    zero.zero_run(stage, model_config, train_config, data, *, procs=2, cancel=None, stop=None, on_step=None,
                  timeout_s=120.0) -> zero.ZeroReport
    launch.launch("pkg.module:function", kwargs, *, procs=2, on_report=None, on_start=None, cancel=None,
                  stop=None, timeout_s=120.0) -> list of each rank's result
    ddp.gradient_check_rank  (a launch target) and ddp.single_process_gradients(model_config, windows, *, seed,
                              micro_batches) -> flat gradient, to show N ranks = one process = accumulation
    zero.zero_memory_per_device(psi, n_d, stage, *, k=12, param_bytes=2, grad_bytes=2) -> bytes (the paper's
                              Figure 1: 120, 31.4, 16.6, 1.9 GB for Ψ = 7.5e9, N_d = 64)
    zero.zero_memory_by_kind(psi, n_d, stage) -> {"params", "grads", "optimizer"} bytes (fp32 AdamW by default)
    comm.ring_allreduce_bytes(buffer_bytes, n) -> 2(n − 1)/n · buffer_bytes

``on_step`` receives a ``ddp.ParallelStep``: step, total, loss, lr, grad_norm,
tokens_per_s, val_loss (train.StepReport's fields), and ``ranks``, one
``ddp.RankStep`` each: compute_s, comm_s, wait_s, buffer_bytes, sent_formula,
sent_measured. The report holds every step, per-rank ``peak_bytes`` and
``held_bytes`` by kind (params, grads, optimizer, buffers),
``peak_total_bytes``, the final flat parameters, ``bytes_sent_per_step``,
``compute_seconds`` and ``comm_seconds``.

Starting two ranks costs a few seconds (each imports torch); to run several
experiments on one group, launch ``rank:sequence`` with a list of jobs.

Nothing here imports torch at module level: a lab or the CLI imports these
modules for free, and torch loads in the ranks (and where a result needs it).
"""
