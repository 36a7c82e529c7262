"""Data construction from real 3D scans (ScanNet layout) into the SpatialLadder-26k formats.

``read_scene`` (ScanNet folder -> :class:`ScanScene`), ``detect`` (projection with depth-tested
visibility), ``build_scene`` / ``build_dataset`` (rows, images, stats) and ``write_scannet_scene``
(a box scene, e.g. a synthetic one, written in the ScanNet layout). CLI: ``python -m
spatialladder.construction build --scannet-root DIR --out OUT``.
"""

from spatialladder.construction.build import BuildConfig, build_scene
from spatialladder.construction.cli import build_dataset
from spatialladder.construction.project import Detection, VisibilityConfig, detect
from spatialladder.construction.scannet import ScanNetFormatError, read_scene
from spatialladder.construction.scannet_writer import write_scannet_scene
from spatialladder.construction.scene import Frame, Instance, Intrinsics, OrientedBox, ScanScene

__all__ = [
    "BuildConfig",
    "Detection",
    "Frame",
    "Instance",
    "Intrinsics",
    "OrientedBox",
    "ScanNetFormatError",
    "ScanScene",
    "VisibilityConfig",
    "build_dataset",
    "build_scene",
    "detect",
    "read_scene",
    "write_scannet_scene",
]
