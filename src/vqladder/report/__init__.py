"""Reports read run directories after the fact (never imported by training code)."""

import io
from pathlib import Path

from ..io import atomic_write_bytes

PNG_SOFTWARE = "vqladder"  # the PNG text chunk by which the tool knows a figure it wrote


def made_png(path: str | Path) -> bool:
    """Is ``path`` a PNG that vqladder wrote (its ``Software`` text chunk, before the image data)?"""
    from ..io import file_starts_with

    return file_starts_with(Path(path), b"tEXtSoftware\x00" + PNG_SOFTWARE.encode(), 1 << 16)


def save_figure(fig, path: str | Path, dpi: int = 120) -> Path:
    """Write a matplotlib figure beside ``path`` and rename it into place (never a half-written PNG); closes it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    buf = io.BytesIO()
    fig.savefig(buf, dpi=dpi, format="png", metadata={"Software": PNG_SOFTWARE})
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path


def log2_axes(ax, xlabel: str, ylabel: str, legend_size: float | None = None) -> None:
    """The house style of a rate plot: log2 x axis, labels, a light grid, the legend."""
    ax.set_xscale("log", base=2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=legend_size)
