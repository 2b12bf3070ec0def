"""submitit launchers whose requeued jobs resume: ``hydra/launcher=slurm`` and ``slurm_local``.

On preemption or shortly before its time limit, submitit signals the job (USR2), calls the
launcher's ``checkpoint`` in the job's process and requeues what it returns. The plugin's
own ``checkpoint`` requeues the same job with the same overrides, so the requeued job would
find its folder holding a run and refuse, or start again. Here the requeued job gets
``resume=<its run folder>``: it continues from the last epoch-end checkpoint
(``handgestures.runfolder.resume``), replaying the interrupted epoch.
"""

from __future__ import annotations

from typing import Any

try:
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import LocalLauncher, SlurmLauncher
except ImportError:  # the cluster extra is not installed: no launcher here
    LocalLauncher = SlurmLauncher = None


def resume_overrides(overrides: list[str], run_dir: str) -> list[str]:
    """``overrides`` with ``resume=run_dir`` in place of any earlier ``resume=``."""
    return [o for o in overrides if not o.lstrip("+~").startswith("resume=")] + [f"resume={run_dir}"]


class _ResumeOnRequeue:
    def checkpoint(self, sweep_overrides: list[str], *args: Any, **kwargs: Any) -> Any:
        import submitit
        from hydra.core.hydra_config import HydraConfig

        run_dir = HydraConfig.get().runtime.output_dir  # this job's folder, set by Hydra's run_job
        return submitit.helpers.DelayedSubmission(self, resume_overrides(list(sweep_overrides), run_dir), *args,
                                                  **kwargs)  # fmt: skip


if SlurmLauncher is not None:

    class ResumingSlurmLauncher(_ResumeOnRequeue, SlurmLauncher):
        """submitit's SLURM launcher; a requeued job resumes from its checkpoint."""

    class ResumingLocalLauncher(_ResumeOnRequeue, LocalLauncher):
        """submitit's local launcher (the same code path, on this machine); a requeued job resumes."""
