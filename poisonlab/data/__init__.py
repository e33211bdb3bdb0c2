"""Datasets: the one ``Dataset`` type, built-in sets, readers for user files, splits."""

from poisonlab.data.builtin import DATASETS
from poisonlab.data.dataset import Dataset, train_test_split
from poisonlab.data.graph import GRAPHS, GraphSplit, KnowledgeGraph, load_graph
from poisonlab.data.readers import load_dataset, write_csv, write_npz

__all__ = [
    "DATASETS",
    "GRAPHS",
    "Dataset",
    "GraphSplit",
    "KnowledgeGraph",
    "load_dataset",
    "load_graph",
    "train_test_split",
    "write_csv",
    "write_npz",
]
