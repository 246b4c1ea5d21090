"""CPU caps for benchmarked processes, through Linux control groups (``bench load --worker-cpu``).

The scale-out question ("does a second worker add throughput when one is CPU-bound?") cannot be
answered on two cores that also run the load side, the listener and Redis: the machine runs out
before the workers do. Capping each worker process at a fraction of a core emulates hosts whose
worker is the bottleneck, on the same machine and with the same benchmark: if the design scales,
two capped workers answer twice what one does.

Each capped process gets a control group of its own under the ``cpu`` controller: cgroup v1's
``cpu.cfs_quota_us`` (``/sys/fs/cgroup/cpu``) where it is mounted, else cgroup v2's ``cpu.max``.
Writing there needs root (the project's VM runs the bench as root); without it
:class:`CpuCaps` raises a clear error instead of measuring something else.
"""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path

logger = logging.getLogger("bench.cgroups")

PERIOD_US = 10_000  # a short period: a capped process stalls ≤ 10 ms at a time, not 100 ms
V1_ROOT = Path("/sys/fs/cgroup/cpu")
V2_ROOT = Path("/sys/fs/cgroup")


class CpuCapsUnavailable(RuntimeError):
    """No writable cgroup ``cpu`` controller on this machine."""


class CpuCaps:
    """Control groups that cap processes at a fraction of one core each; removed on close.

    Args:
        fraction: The share of one core each capped process may use (0 < fraction ≤ 64).

    Raises:
        ValueError: For a fraction out of range.
        CpuCapsUnavailable: When neither cgroup v1's nor v2's ``cpu`` controller is writable.
    """

    def __init__(self, fraction: float) -> None:
        if not 0 < fraction <= 64:
            raise ValueError(f"a CPU cap must be in (0, 64] cores, got {fraction}")
        self.fraction = fraction
        self.groups: list[Path] = []
        if (V1_ROOT / "cpu.cfs_quota_us").exists() and os.access(V1_ROOT, os.W_OK):
            self.root, self.v2 = V1_ROOT, False
        elif (V2_ROOT / "cgroup.controllers").exists() and os.access(V2_ROOT, os.W_OK):
            if "cpu" not in (V2_ROOT / "cgroup.subtree_control").read_text().split():
                raise CpuCapsUnavailable("cgroup v2 without the cpu controller enabled")
            self.root, self.v2 = V2_ROOT, True
        else:
            raise CpuCapsUnavailable("no writable cgroup cpu controller (needs root on Linux)")

    def cap(self, pid: int) -> Path:
        """Move a process (all its threads) into a new group capped at ``fraction`` of a core.

        Args:
            pid: The process.

        Returns:
            The group's directory (its ``cpu.stat`` says how often the cap bit).
        """
        group = self.root / f"ai_router_bench_{pid}_{uuid.uuid4().hex[:6]}"
        group.mkdir()
        self.groups.append(group)
        quota = max(1000, round(self.fraction * PERIOD_US))
        if self.v2:
            (group / "cpu.max").write_text(f"{quota} {PERIOD_US}")
        else:
            (group / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (group / "cpu.cfs_quota_us").write_text(str(quota))
        (group / "cgroup.procs").write_text(str(pid))
        logger.info("process %s capped at %.2f of a core (%s)", pid, self.fraction, group)
        return group

    def throttled(self) -> dict[str, float]:
        """How much the caps bit: seconds each group was throttled, by group name."""
        result = {}
        for group in self.groups:
            stats = dict(
                line.split() for line in (group / "cpu.stat").read_text().splitlines() if line
            )
            if self.v2:
                result[group.name] = int(stats.get("throttled_usec", 0)) / 1e6
            else:
                result[group.name] = int(stats.get("throttled_time", 0)) / 1e9
        return result

    def close(self) -> None:
        """Remove the groups; processes still in one go back to the root group first."""
        for group in self.groups:
            try:
                for pid in (group / "cgroup.procs").read_text().split():
                    (self.root / "cgroup.procs").write_text(pid)
                group.rmdir()
            except OSError as exc:
                logger.warning("could not remove %s: %s", group, exc)
        self.groups = []
