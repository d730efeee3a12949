"""Reports read run directories after the fact (never imported by training code)."""

from pathlib import Path


def save_figure(fig, path: str | Path, dpi: int = 120) -> Path:
    """Write a matplotlib figure beside ``path`` and rename it into place (never a half-written PNG); closes it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=dpi)
    plt.close(fig)
    tmp.replace(path)
    return path
