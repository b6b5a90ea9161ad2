"""`plinth platforms`: the probe table of every installed platform plugin."""

from __future__ import annotations

from plinth.platform.discovery import PlatformStatus, choose_platform, discover_platforms
from plinth.platform.version import PLATFORM_API, format_api


def _capabilities(status: PlatformStatus) -> str:
    """Key capabilities; loads the platform class only for available platforms."""
    if not status.available or status.descriptor is None:
        return "-"
    try:
        caps = status.descriptor.load().capabilities
    except Exception as exc:  # a broken plugin must not break the table
        return f"failed to load: {exc}"
    parts = [f"dtypes={','.join(caps.dtypes)}", f"graphs={','.join(caps.graph_modes)}"]
    if caps.distributed_backend:
        parts.append(f"dist={caps.distributed_backend}")
    parts += [f"{k}={v}" for k, v in caps.info.items()]
    if caps.features:
        parts.append(f"features={','.join(sorted(caps.features))}")
    return " ".join(parts)


def render_platform_table(statuses: list[PlatformStatus] | None = None) -> str:
    statuses = discover_platforms() if statuses is None else statuses
    rows = [("NAME", "AVAILABLE", "PRIORITY", "API", "SOURCE", "REASON", "CAPABILITIES")]
    for s in statuses:
        d = s.descriptor
        rows.append((
            s.name, "yes" if s.available else "no", str(d.priority) if d else "-",
            format_api(d.api) if d else "-", s.source, s.probe.reason, _capabilities(s),
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1] for r in rows]
    try:
        default = f"default: {choose_platform(statuses).name}"
    except Exception as exc:
        default = f"default: none ({str(exc).splitlines()[0]})"
    api = ".".join(map(str, PLATFORM_API))
    return "\n".join(lines + ["", f"platform API {api}; {default} (override with --device or PLINTH_DEVICE)"])
