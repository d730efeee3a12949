"""The rooms-maze world: a grid of rooms, each a small grid of cells, doors between neighbouring rooms.

Geometry: ``rooms`` x ``rooms`` rooms of ``room`` x ``room`` cells; cell (r, c) for r, c in [0, rooms*room).
Inside a room every move is free; crossing from one room to its neighbour needs the door of that wall, which
sits at one offset along the wall (``doors[i]`` = offset, or ``-1`` = no door). Walls are numbered: first
the vertical walls between horizontally neighbouring rooms (row-major over rooms (i, j)|(i, j+1)), then the
horizontal ones between (i, j) and (i+1, j). The outer border is a wall.

Moves: 0 up, 1 down, 2 left, 3 right, 4 end. An episode is ``(layout, start, goal, moves)``; ``validate``
replays moves: a bump into a wall or the border makes the episode invalid (replay stops there); reaching the
goal ends it (later moves ignored). ``shortest`` is the BFS distance.

Episode tokens (``EpisodeCodec``): a conditioning prefix of symbols -- one per wall (no door / offset),
start cell, goal cell, a return-to-go bucket -- and the move sequence padded with ``end``.
Return buckets, as in Decision Transformer: 0 failed, 1 success with length > 2 x shortest, 2 success with
length <= 2 x shortest, 3 optimal; at test time planners are asked for bucket 3.
"""

from __future__ import annotations

import hashlib
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from ..config import NonNegInt, PosInt, Unit
from ..errors import VQLadderError

MOVES = "UDLR"
END = 4
DELTA = {0: (-1, 0), 1: (1, 0), 2: (0, -1), 3: (0, 1)}
N_BUCKETS = 4


@dataclass
class MazeConfig:
    rooms: PosInt = 3                    # rooms per side
    room: PosInt = 3                     # cells per room side
    extra_doors: Unit = 0.3          # chance of a door on a wall outside the random spanning tree
    max_moves: PosInt = 32               # moves per episode (padded with end)
    detour: Unit = 0.5               # chance a demonstration takes a random detour
    max_detour: NonNegInt = 6               # detour length (random valid moves)
    fail: Unit = 0.15                # chance a demonstration is a failed random walk

    def validate(self) -> None:
        if self.rooms < 1 or self.room < 1:
            raise VQLadderError(f"maze.rooms and maze.room must be >= 1, got {self.rooms}, {self.room}")
        if self.rooms * self.room < 2:
            raise VQLadderError("the maze needs at least 2 cells")
        if self.max_moves < 1:
            raise VQLadderError(f"maze.max_moves must be >= 1, got {self.max_moves}")

    @property
    def side(self) -> int:
        return self.rooms * self.room

    @property
    def n_walls(self) -> int:
        return 2 * self.rooms * (self.rooms - 1)


@dataclass
class Layout:
    cfg: MazeConfig
    doors: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # [n_walls], -1 = none

    def key(self) -> str:
        return hashlib.sha1(self.doors.astype(np.int8).tobytes()).hexdigest()

    def _wall(self, a: tuple[int, int], b: tuple[int, int]) -> int:
        """Index of the wall between neighbouring rooms a and b (a before b)."""
        R = self.cfg.rooms
        (i, j), (k, l) = a, b
        if i == k:  # horizontal neighbours: vertical wall
            return i * (R - 1) + min(j, l)
        return R * (R - 1) + min(i, k) * R + j

    def can_move(self, cell: tuple[int, int], move: int) -> bool:
        S, W = self.cfg.room, self.cfg.side
        r, c = cell
        dr, dc = DELTA[move]
        nr, nc = r + dr, c + dc
        if not (0 <= nr < W and 0 <= nc < W):
            return False
        a, b = (r // S, c // S), (nr // S, nc // S)
        if a == b:
            return True
        offset = c % S if dr else r % S  # position along the wall
        return int(self.doors[self._wall(a, b)]) == offset

    def neighbours(self, cell):
        for m in range(4):
            if self.can_move(cell, m):
                dr, dc = DELTA[m]
                yield m, (cell[0] + dr, cell[1] + dc)

    def move_table(self) -> np.ndarray:
        """``[side * side, 4]``: the cell index (row * side + col) each move leads to from each cell, -1 for a bump."""
        W = self.cfg.side
        out = np.full((W * W, 4), -1, dtype=np.int64)
        for r in range(W):
            for c in range(W):
                for m, (nr, nc) in self.neighbours((r, c)):
                    out[r * W + c, m] = nr * W + nc
        return out

    def bfs(self, start) -> dict:
        """Distances from ``start`` to every reachable cell."""
        dist = {start: 0}
        q = deque([start])
        while q:
            u = q.popleft()
            for _, v in self.neighbours(u):
                if v not in dist:
                    dist[v] = dist[u] + 1
                    q.append(v)
        return dist

    def shortest_path(self, start, goal) -> list[int] | None:
        """Moves of one shortest path (None if the goal is unreachable)."""
        dist = self.bfs(goal)  # distances to the goal: walk downhill from start
        if start not in dist:
            return None
        path, u = [], start
        while u != goal:
            for m, v in self.neighbours(u):
                if dist.get(v, 1 << 30) == dist[u] - 1:
                    path.append(m)
                    u = v
                    break
        return path

    def check_cell(self, cell, what: str) -> None:
        W = self.cfg.side
        if not (0 <= cell[0] < W and 0 <= cell[1] < W):
            raise VQLadderError(f"{what} {cell} is outside the {W}x{W} grid")

    def render(self, start, goal, moves=()) -> str:
        """ASCII picture: walls as # (doors are gaps), S start, G goal, * the path."""
        S, W = self.cfg.room, self.cfg.side
        rows = 2 * W + 1
        grid = [[" "] * (2 * W + 1) for _ in range(rows)]
        for y in range(rows):
            for x in range(2 * W + 1):
                if y in (0, rows - 1) or x in (0, 2 * W):
                    grid[y][x] = "#"
        for r in range(W):
            for c in range(W):
                grid[2 * r + 1][2 * c + 1] = "."
                if c + 1 < W and not self.can_move((r, c), 3):
                    grid[2 * r + 1][2 * c + 2] = "#"
                if r + 1 < W and not self.can_move((r, c), 1):
                    grid[2 * r + 2][2 * c + 1] = "#"
                if (c + 1) % S == 0 or (r + 1) % S == 0:
                    if r + 1 < W and c + 1 < W:
                        grid[2 * r + 2][2 * c + 2] = "#"
        u = start
        for m in moves:
            if m == END or m not in DELTA or not self.can_move(u, m):
                break
            u = (u[0] + DELTA[m][0], u[1] + DELTA[m][1])
            grid[2 * u[0] + 1][2 * u[1] + 1] = "*"
            if u == goal:
                break
        grid[2 * start[0] + 1][2 * start[1] + 1] = "S"
        grid[2 * goal[0] + 1][2 * goal[1] + 1] = "G"
        return "\n".join("".join(row) for row in grid)


@dataclass
class Outcome:
    valid: bool           # no bump into a wall
    reached: bool         # the goal was reached
    length: int           # moves until the goal (or until end / the bump)
    shortest: int         # BFS distance (-1 = unreachable)
    final: tuple          # cell where the replay stopped

    @property
    def optimality(self) -> float:
        return self.shortest / self.length if self.reached and self.length else (1.0 if self.reached else 0.0)


def validate(layout: Layout, start, goal, moves) -> Outcome:
    """Replay ``moves`` (any iterable of ints; unknown symbols count as a bump) -- never raises on moves."""
    dist = layout.bfs(goal)
    shortest = dist.get(tuple(start), -1)
    u = tuple(start)
    n = 0
    if u == tuple(goal):
        return Outcome(True, True, 0, shortest, u)
    for m in moves:
        try:
            m = int(m)
        except (TypeError, ValueError):
            return Outcome(False, False, n, shortest, u)
        if m == END:
            break
        if m not in DELTA or not layout.can_move(u, m):
            return Outcome(False, False, n, shortest, u)
        u = (u[0] + DELTA[m][0], u[1] + DELTA[m][1])
        n += 1
        if u == tuple(goal):
            return Outcome(True, True, n, shortest, u)
    return Outcome(True, False, n, shortest, u)


def replay_many(table: np.ndarray, side: int, start, goal, moves: np.ndarray) -> tuple:
    """``validate``'s replay for many move sequences at once (``moves[n, t]``, any ints; ``table`` from
    ``Layout.move_table``): returns the cell index each replay stopped in ``[n]``, ``valid[n]`` (no bump and no
    unknown symbol before the goal or an end) and ``reached[n]``, as ``validate`` would give row by row. One
    vectorised step per move position, not per row."""
    moves = np.asarray(moves, dtype=np.int64)
    n = len(moves)
    g = goal[0] * side + goal[1]
    cell = np.full(n, start[0] * side + start[1], dtype=np.int64)
    valid = np.ones(n, dtype=bool)
    reached = np.full(n, tuple(start) == tuple(goal))
    live = ~reached
    for m in moves.T:
        if not live.any():
            break
        is_move = live & (m >= 0) & (m < 4)
        nxt = np.where(is_move, table[cell, np.clip(m, 0, 3)], -1)
        step = is_move & (nxt >= 0)
        bump = live & ~step & (m != END)
        cell = np.where(step, nxt, cell)
        hit = step & (cell == g)
        valid &= ~bump
        reached |= hit
        live &= ~(bump | hit | (m == END))
    return cell, valid, reached


def return_bucket(o: Outcome) -> int:
    if not (o.valid and o.reached):
        return 0
    if o.length <= o.shortest:
        return 3
    return 2 if o.length <= 2 * o.shortest else 1


def make_layout(cfg: MazeConfig, rng: np.random.Generator) -> Layout:
    """Random connected layout: a random spanning tree of the room graph gets doors, other walls get one with
    probability ``extra_doors``; each door at a random offset."""
    R = cfg.rooms
    lay = Layout(cfg, np.full(cfg.n_walls, -1, dtype=np.int64))
    parent = list(range(R * R))

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    edges = [((i, j), (i, j + 1)) for i in range(R) for j in range(R - 1)] + \
            [((i, j), (i + 1, j)) for i in range(R - 1) for j in range(R)]
    order = rng.permutation(len(edges))
    for e in order:  # Kruskal with random weights = uniform-ish random spanning tree
        a, b = edges[e]
        ra, rb = find(a[0] * R + a[1]), find(b[0] * R + b[1])
        w = lay._wall(a, b)
        if ra != rb:
            parent[ra] = rb
            lay.doors[w] = rng.integers(cfg.room)
        elif rng.random() < cfg.extra_doors:
            lay.doors[w] = rng.integers(cfg.room)
    return lay


def demonstration(lay: Layout, start, goal, rng: np.random.Generator) -> list[int]:
    """An imperfect demonstration: shortest path, sometimes with a random detour, sometimes a failed walk."""
    cfg = lay.cfg
    if rng.random() < cfg.fail:  # a random walk that is not aimed at the goal
        u, moves = tuple(start), []
        for _ in range(int(rng.integers(1, cfg.max_moves + 1))):
            opts = list(lay.neighbours(u))
            m, u = opts[int(rng.integers(len(opts)))]
            moves.append(m)
            if u == tuple(goal):
                break
        return moves
    path = lay.shortest_path(tuple(start), tuple(goal)) or []
    if rng.random() < cfg.detour and path:
        cut = int(rng.integers(len(path)))
        u = tuple(start)
        for m in path[:cut]:
            u = (u[0] + DELTA[m][0], u[1] + DELTA[m][1])
        det = []
        for _ in range(int(rng.integers(1, cfg.max_detour + 1))):
            opts = list(lay.neighbours(u))
            m, u = opts[int(rng.integers(len(opts)))]
            det.append(m)
        rest = lay.shortest_path(u, tuple(goal)) or []
        path = path[:cut] + det + rest
    return path


class EpisodeCodec:
    """Episodes <-> integer arrays: conditioning prefix symbols and padded moves."""

    def __init__(self, cfg: MazeConfig):
        cfg.validate()
        self.cfg = cfg
        self.door_base = 0                         # symbol = offset + 1, 0 = no door
        self.cell_base = cfg.room + 1
        self.bucket_base = self.cell_base + cfg.side ** 2
        self.cond_vocab = self.bucket_base + N_BUCKETS
        self.cond_len = cfg.n_walls + 3
        self.move_vocab = 5

    def cond(self, lay: Layout, start, goal, bucket: int) -> np.ndarray:
        return np.concatenate([lay.doors + 1, [self.cell_symbol(start), self.cell_symbol(goal),
                                               self.bucket_base + bucket]])

    def cell_symbol(self, cells):
        """The conditioning symbol of a cell, ``(row, column)``, or of cells ``[..., 2]``."""
        cells = np.asarray(cells)
        return self.cell_base + cells[..., 0] * self.cfg.side + cells[..., 1]

    def with_start(self, cond: np.ndarray, cells) -> np.ndarray:
        """A copy of conditioning prefix(es) ``cond[..., c]`` with the start replaced by ``cells[..., 2]`` (where a
        plan stands)."""
        out = np.array(cond, dtype=np.int64)
        out[..., self.cfg.n_walls] = self.cell_symbol(cells)
        return out

    def with_goal(self, cond: np.ndarray, cells) -> np.ndarray:
        """A copy of conditioning prefix(es) ``cond[..., c]`` with the goal replaced by ``cells[..., 2]``."""
        out = np.array(cond, dtype=np.int64)
        out[..., self.cfg.n_walls + 1] = self.cell_symbol(cells)
        return out

    def with_bucket(self, cond: np.ndarray, bucket: int) -> np.ndarray:
        """A copy of conditioning prefix(es) ``cond[..., c]`` asking for return bucket ``bucket``."""
        out = np.array(cond, dtype=np.int64)
        out[..., -1] = self.bucket_base + bucket
        return out

    def decode_cond(self, cond) -> tuple[Layout, tuple, tuple, int]:
        W, n = self.cfg.side, self.cfg.n_walls
        cond = np.asarray(cond)
        lay = Layout(self.cfg, cond[:n].astype(np.int64) - 1)
        s, g = int(cond[n]) - self.cell_base, int(cond[n + 1]) - self.cell_base
        return lay, (s // W, s % W), (g // W, g % W), int(cond[n + 2]) - self.bucket_base

    def moves(self, moves: list[int]) -> np.ndarray:
        out = np.full(self.cfg.max_moves, END, dtype=np.int64)
        m = list(moves)[:self.cfg.max_moves]
        out[:len(m)] = m
        return out


def random_task(lay: Layout, rng: np.random.Generator) -> tuple[tuple, tuple]:
    W = lay.cfg.side
    while True:
        s = (int(rng.integers(W)), int(rng.integers(W)))
        g = (int(rng.integers(W)), int(rng.integers(W)))
        if s != g:
            return s, g


def make_dataset(cfg: MazeConfig, n_layouts: int, episodes_per_layout: int, seed: int,
                 exclude: set | None = None) -> dict:
    """Episodes on ``n_layouts`` random layouts (layouts in ``exclude`` are skipped, so a test set never
    shares a layout with training). Returns arrays cond[e, c], moves[e, T], layout keys and outcomes."""
    codec = EpisodeCodec(cfg)
    rng = np.random.default_rng(seed)
    conds, moves, keys, buckets = [], [], [], []
    seen = set()
    tries = 0
    while len(seen) < n_layouts:
        tries += 1
        if tries > 50 * n_layouts + 1000:
            raise VQLadderError(f"could not find {n_layouts} distinct layouts for this maze size "
                                f"(only {len(seen)}); use fewer layouts or a bigger maze")
        lay = make_layout(cfg, rng)
        k = lay.key()
        if k in seen or (exclude and k in exclude):
            continue
        seen.add(k)
        for _ in range(episodes_per_layout):
            s, g = random_task(lay, rng)
            mv = demonstration(lay, s, g, rng)[:cfg.max_moves]
            o = validate(lay, s, g, mv)
            b = return_bucket(o)
            conds.append(codec.cond(lay, s, g, b))
            moves.append(codec.moves(mv))
            keys.append(k)
            buckets.append(b)
    return {"cond": np.stack(conds), "moves": np.stack(moves), "keys": np.array(keys), "buckets": np.array(buckets)}


def plan_tasks(cfg: MazeConfig, train_layouts: int, episodes_per_layout: int, test_layouts: int, seed: int,
               val_layouts: int = 0) -> dict:
    """A planning benchmark: training demonstrations and held-out tasks on layouts never seen in training (one
    task each, asking for the optimal bucket 3; tasks whose shortest path does not fit ``max_moves`` dropped);
    with ``val_layouts``, validation tasks the same way on layouts in neither split, drawn after the test tasks
    (so the test tasks of a seed are the same with or without them)."""
    train = make_dataset(cfg, train_layouts, episodes_per_layout, seed)
    test = make_dataset(cfg, test_layouts, 1, seed + 1_000_003, exclude=set(train["keys"]))
    codec = EpisodeCodec(cfg)

    def tasks(ds: dict) -> tuple[np.ndarray, np.ndarray]:
        conds, keys = [], []
        for c, k in zip(ds["cond"], ds["keys"]):
            lay, s, g, _ = codec.decode_cond(c)
            if validate(lay, s, g, []).shortest <= cfg.max_moves:
                conds.append(codec.cond(lay, s, g, 3))
                keys.append(k)
        return (np.stack(conds) if conds else np.zeros((0, codec.cond_len), np.int64)), np.asarray(keys)

    test_cond, test_keys = tasks(test)
    out = {"train_cond": train["cond"], "train_moves": train["moves"], "train_keys": train["keys"],
           "train_buckets": train["buckets"], "test_cond": test_cond, "test_keys": test_keys}
    if val_layouts:
        val = make_dataset(cfg, val_layouts, 1, seed + 2_000_029, exclude=set(train["keys"]) | set(test["keys"]))
        out["val_cond"], out["val_keys"] = tasks(val)
    return out
