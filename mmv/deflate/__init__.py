"""Deflation (MMV_SPEC.md D): video backbones turned into image backbones, then BN-tuned to match.

``deflate_video_backbone`` converts (S3D-G: 3D kernels summed over time, pools lose time, the
space-to-depth stem becomes an image space-to-depth; TSM: shift off), ``tune_deflated`` trains only the
BN scale/offset so that the image network on an image matches the video network on the static video,
``run_deflation`` is the ``mmv deflate`` command's library entry point.
"""

from mmv.deflate.convert import (
    ImageS3D,
    boundary_free_copy,
    deflate_video_backbone,
    space_to_depth_image,
    static_video,
)
from mmv.deflate.images import ImageEntry, ImageFiles, collate_images, list_images, load_image, prepare_image
from mmv.deflate.network import ImageNetwork, deflate_model, load_image_network, save_image_network
from mmv.deflate.run import run_deflation
from mmv.deflate.tune import Gap, TuneResult, bn_affine_parameters, measure_gap, tune_deflated

__all__ = ["ImageS3D", "boundary_free_copy", "deflate_video_backbone", "space_to_depth_image", "static_video",
           "ImageEntry", "ImageFiles", "collate_images", "list_images", "load_image", "prepare_image",
           "ImageNetwork", "deflate_model", "load_image_network", "save_image_network", "run_deflation", "Gap",
           "TuneResult", "bn_affine_parameters", "measure_gap", "tune_deflated"]
