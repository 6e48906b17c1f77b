"""Import checkpoints of other super-resolution code bases into sciSR models.

:func:`load_checkpoint` reads a weight file safely (safetensors, or ``torch.load(weights_only=True)``
through :mod:`sciSR.models.weights_io`), recognises its layout from the state-dict keys, infers
the hyper-parameters from key counts and tensor shapes (the approach of spandrel), renames the
keys onto the matching sciSR architecture, rebuilds the model and loads it strictly (every key
and shape; for sciSR's own files, the architecture in the metadata). RGB input conventions
(EDSR's DIV2K mean shift and 0..255 range, CARN's mean shift in 0..1) are reproduced with
:meth:`SRModel.set_input_transform`, so the imported model takes data in ``[0, 1]`` like the
source implementation's user-facing API and gives the same output.

One module per checkpoint source registers its layouts (:class:`CheckpointFormat`) with
:func:`register_format`; detection tries them by priority and the first matcher that accepts a
state dict wins:

* :mod:`.scisr_files`: sciSR's own files (metadata) and plain sciSR state dicts;
* :mod:`.super_image`: super-image EDSR (sidecar ``config.json``) and MDSR;
* :mod:`.official_edsr`: official EDSR-PyTorch EDSR and MDSR (torchSR EDSR);
* :mod:`.official_rcan`: official RCAN (torchSR RCAN);
* :mod:`.basicsr`: BasicSR EDSR, RCAN, MSRResNet;
* :mod:`.carn`: CARN / CARN-M (original, torchSR, super-image);
* :mod:`.esrgan`: ESRGAN old layout, BasicSR / Real-ESRGAN RRDBNet;
* :mod:`.torchsr`: torchSR VDSR.

:func:`adapt_input_channels` turns RGB weights into 1- or N-channel weights for fine-tuning on
scientific data (DESIGN §3).
"""

from __future__ import annotations

from . import basicsr, carn, esrgan, official_edsr, official_rcan, scisr_files, super_image, torchsr
from .channels import adapt_input_channels
from .common import (
    DIV2K_RGB_MEAN,
    FORMATS,
    CheckpointFormat,
    Context,
    Converted,
    known_formats,
    register_format,
)
from .load import convert_checkpoint, detect_format, load_checkpoint, load_pretrained_into, resolve_arch

#: Modules that registered the built-in layouts.
SOURCES = (scisr_files, super_image, official_edsr, official_rcan, basicsr, carn, esrgan, torchsr)

__all__ = [
    "DIV2K_RGB_MEAN",
    "FORMATS",
    "SOURCES",
    "CheckpointFormat",
    "Context",
    "Converted",
    "adapt_input_channels",
    "convert_checkpoint",
    "detect_format",
    "known_formats",
    "load_checkpoint",
    "load_pretrained_into",
    "register_format",
    "resolve_arch",
]
