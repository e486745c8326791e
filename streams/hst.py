"""Half-Space Trees on arrays: river's ``HalfSpaceTrees`` scoring and learning for a whole
batch of samples at once, with exactly river's results.

river walks each tree node by node in Python (about 0.1 ms per sample for 25 trees of
height 8). Here the trees are arrays in heap order (node ``i`` has children ``2i + 1`` and
``2i + 2``) and a batch walks them together with numpy. Same numbers because

- a score reads only the reference masses (``r_mass``), which change only when the window
  of ``window_size`` learned samples is complete (the pivot); learning only adds to the
  latest masses (``l_mass``). So the samples between two pivots are scored together, then
  learned together, then the pivot happens, in the order river would;
- a score is a sum of integers (mass times a power of two) that river accumulates in a
  float: exact below 2**53, so the order of the sum does not matter; the final
  normalisation is the same float division;
- the samples carry every feature (no missing-feature branch), which is what our feature
  builders produce.

The river object stays the model of record (built, seeded and pickled by river): the
arrays are taken from it and written back by ``sync`` before it is saved.

Examples
--------
>>> import random
>>> from river.anomaly import HalfSpaceTrees
>>> rng = random.Random(1)
>>> xs = [{"a": rng.random(), "b": rng.random()} for _ in range(60)]
>>> slow = HalfSpaceTrees(n_trees=3, height=4, window_size=10, seed=7)
>>> mirror = ArrayHalfSpaceTrees(HalfSpaceTrees(n_trees=3, height=4, window_size=10, seed=7))
>>> expected = []
>>> for x in xs:
...     expected.append(slow.score_one(x))
...     slow.learn_one(x)
>>> [float(s) for s in mirror.process(xs, [True] * len(xs))] == [float(s) for s in expected]
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Any

import numpy as np
import numpy.typing as npt


class ArrayHalfSpaceTrees:
    """Array mirror of a river ``HalfSpaceTrees`` (``hst``); see the module doc."""

    def __init__(self, hst: Any) -> None:
        self.hst = hst
        self.height: int = hst.height
        self.window_size: int = hst.window_size
        self.size_limit = 0.1 * hst.window_size
        self.max_score = hst.n_trees * hst.window_size * (2 ** (hst.height + 1) - 1)
        self.names: list[str] = []
        self._table: npt.NDArray[np.int64] | None = None  # _path_scores, until the pivot
        self.ready = False
        if hst.trees:
            self._take_trees()

    # -- river <-> arrays ----------------------------------------------------------------
    def _take_trees(self) -> None:
        hst = self.hst
        trees = hst.trees
        n_inner = 2**self.height - 1
        n_nodes = 2 ** (self.height + 1) - 1
        orders = [_heap_order(tree, self.height) for tree in trees]
        self.names = sorted({node.feature for order in orders for node in order[:n_inner]})
        column = {name: i for i, name in enumerate(self.names)}
        self.feature = np.zeros((len(trees), n_inner), dtype=np.int32)
        self.threshold = np.zeros((len(trees), n_inner), dtype=np.float64)
        self.r_mass = np.zeros((len(trees), n_nodes), dtype=np.int64)
        self.l_mass = np.zeros((len(trees), n_nodes), dtype=np.int64)
        for t, order in enumerate(orders):
            for index, node in enumerate(order):
                self.r_mass[t, index] = node.r_mass
                self.l_mass[t, index] = node.l_mass
                if index < n_inner:
                    self.feature[t, index] = column[node.feature]
                    self.threshold[t, index] = node.threshold
        self.counter: int = hst.counter
        self.first_window: bool = hst._first_window
        self._table = None
        self.ready = True

    def sync(self) -> None:
        """Write the masses and counters back into the river object (before pickling it)."""
        if not self.ready:
            return
        hst = self.hst
        for t, tree in enumerate(hst.trees):
            r_mass = self.r_mass[t].tolist()
            l_mass = self.l_mass[t].tolist()
            for index, node in enumerate(_heap_order(tree, self.height)):
                node.r_mass = r_mass[index]
                node.l_mass = l_mass[index]
        hst.counter = self.counter
        hst._first_window = self.first_window

    # -- scoring and learning ------------------------------------------------------------
    def process(
        self, samples: Sequence[Mapping[str, float]], learn: Sequence[bool]
    ) -> npt.NDArray[np.float64]:
        """Score each sample, then learn it if ``learn[i]``, in order: river's
        ``score_one`` then ``learn_one`` sample by sample, in one go."""
        scores = np.zeros(len(samples), dtype=np.float64)
        start = 0
        if not self.ready:
            # river builds (seeded) trees at the first sample it learns; let it.
            first = next((i for i, flag in enumerate(learn) if flag), None)
            if first is None:
                return scores  # no trees: every score is 0, like river's
            self.hst.learn_one(dict(samples[first]))
            self._take_trees()
            start = first + 1
        if start >= len(samples):
            return scores
        names = self.names
        rest = samples[start:]
        if len(names) > 1:
            rows: list[Any] = list(map(itemgetter(*names), rest))
        else:
            rows = [[sample[name] for name in names] for sample in rest]
        matrix = np.array(rows, dtype=np.float64)
        return self._process(matrix, np.asarray(learn, dtype=bool), start, scores)

    def process_matrix(
        self, columns: Sequence[str], matrix: npt.NDArray[np.float64], learn: Sequence[bool]
    ) -> npt.NDArray[np.float64]:
        """``process`` of samples given as the rows of ``matrix`` (features ``columns``, in
        the order a sample's dict would list them: river builds its trees from the first
        learned sample's keys)."""
        scores = np.zeros(len(matrix), dtype=np.float64)
        flags = np.asarray(learn, dtype=bool)
        start = 0
        if not self.ready:
            chosen = np.flatnonzero(flags)
            if not len(chosen):
                return scores
            first = int(chosen[0])
            self.hst.learn_one(dict(zip(columns, matrix[first].tolist(), strict=True)))
            self._take_trees()
            start = first + 1
        if start >= len(matrix):
            return scores
        at = {name: k for k, name in enumerate(columns)}
        picked = matrix[start:, [at[name] for name in self.names]]
        return self._process(picked, flags, start, scores)

    def _process(
        self,
        matrix: npt.NDArray[np.float64],
        learn: npt.NDArray[np.bool_],
        start: int,
        scores: npt.NDArray[np.float64],
    ) -> npt.NDArray[np.float64]:
        """Samples ``start:`` (``matrix``, columns in ``self.names`` order) with trees.

        A sample's path down a tree depends only on its values and the tree's splits, never
        on the masses, and in a complete tree the leaf names the path. So the leaves of all
        samples are found at once; a segment's scores are then one lookup per tree in a
        table made from the reference masses (``_path_scores``), and learning adds the
        learned samples' leaf counts up the trees (``_learn``)."""
        flags = learn[start:]
        leaves = self._leaves(matrix)
        position = 0
        while position < len(matrix):
            # The segment ends with the sample whose learning completes the window.
            room = self.window_size - self.counter
            learned_after = np.cumsum(flags[position:])
            hits = np.flatnonzero(learned_after >= room)
            end = position + (int(hits[0]) + 1 if len(hits) else len(matrix) - position)
            segment = leaves[position:end]
            if not self.first_window:
                scores[start + position : start + end] = self._scores(segment)
            chosen = flags[position:end]
            if chosen.any():
                self._learn(segment[chosen])
                self.counter += int(chosen.sum())
                if self.counter == self.window_size:
                    self.r_mass, self.l_mass = self.l_mass, np.zeros_like(self.l_mass)
                    self._table = None
                    self.first_window = False
                    self.counter = 0
            position = end
        return scores

    def _leaves(self, matrix: npt.NDArray[np.float64]) -> npt.NDArray[np.intp]:
        """Each sample's leaf in each tree ([n, trees], heap index): at a node, go right
        when the sample's value of the node's feature is at least its threshold."""
        n, n_features = matrix.shape
        n_trees, n_inner = self.feature.shape
        feature = self.feature.ravel()
        threshold = self.threshold.ravel()
        values = matrix.ravel()
        small = np.int32  # node and row numbers fit: half the memory traffic of intp
        row_base = (np.arange(n, dtype=small) * n_features)[:, None]
        inner_base = (np.arange(n_trees, dtype=small) * n_inner)[None, :]
        node = np.zeros((n, n_trees), dtype=small)
        for _ in range(self.height):
            inner = inner_base + node
            value = np.take(values, row_base + np.take(feature, inner))
            node = 2 * node + 1 + (value >= np.take(threshold, inner))
        return node.astype(np.intp)

    def _path_scores(self) -> npt.NDArray[np.int64]:
        """Per tree and leaf, what river adds on the way down to it with the reference
        masses: mass * 2**depth at each node, stopping after a node whose mass is under the
        size limit (a sum of integers: exact in any order). Made again at each pivot."""
        if self._table is None:
            r_mass = self.r_mass
            heavy = r_mass >= self.size_limit
            total = r_mass[:, :1]  # root: depth 0
            reach = heavy[:, :1]  # every node from the root down to here heavy enough
            for level in range(1, self.height + 1):
                lo, hi = 2**level - 1, 2 ** (level + 1) - 1
                reach = np.repeat(reach, 2, axis=1)  # the children's parents, in order
                gained = np.where(reach, r_mass[:, lo:hi] << level, 0)
                total = np.repeat(total, 2, axis=1) + gained
                reach = reach & heavy[:, lo:hi]
            self._table = total.ravel()  # per tree, its leaves in order
        return self._table

    def _leaf_index(self, leaves: npt.NDArray[np.intp]) -> npt.NDArray[np.intp]:
        """Heap indices of leaves ([n, trees]) as places in a per-tree table of leaves."""
        n_leaves = 2**self.height
        offset = np.arange(leaves.shape[1]) * n_leaves - (n_leaves - 1)
        index: npt.NDArray[np.intp] = leaves + offset[None, :]
        return index

    def _scores(self, leaves: npt.NDArray[np.intp]) -> npt.NDArray[np.float64]:
        """The scores of samples with ``leaves``, with the current reference masses."""
        total = np.take(self._path_scores(), self._leaf_index(leaves)).sum(axis=1)
        scores: npt.NDArray[np.float64] = 1.0 - total.astype(np.float64) / self.max_score
        return scores

    def _learn(self, leaves: npt.NDArray[np.intp]) -> None:
        """Add one to the latest mass of every node on each sample's path: the leaves
        counted, then each level's counts summed pairwise into its parents'."""
        n_trees = self.l_mass.shape[0]
        n_leaves = 2**self.height
        counts = np.bincount(self._leaf_index(leaves).ravel(), minlength=n_trees * n_leaves)
        level = counts.reshape(n_trees, n_leaves)
        for depth in range(self.height, -1, -1):
            self.l_mass[:, 2**depth - 1 : 2 ** (depth + 1) - 1] += level
            if depth:
                level = level.reshape(n_trees, -1, 2).sum(axis=2)


def _heap_order(tree: Any, height: int) -> list[Any]:
    """The nodes of a complete padded tree, index ``i`` with children ``2i+1``, ``2i+2``."""
    nodes = level = [tree]
    for _ in range(height):
        level = [child for node in level for child in node.children]
        nodes = nodes + level
    return nodes
