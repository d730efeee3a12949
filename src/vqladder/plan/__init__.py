"""Planning in abstract tokens: the rooms-maze domain (``maze``) and the flat-vs-ladder experiment."""

from .maze import EpisodeCodec, Layout, MazeConfig, make_dataset, make_layout, validate  # noqa: F401
