"""Building blocks shared by several architectures."""

from .attention import ChannelAttention
from .conv import conv3x3, default_conv
from .residual import ResBlock
from .upsample import PixelShuffleUpsampler

__all__ = ["ChannelAttention", "PixelShuffleUpsampler", "ResBlock", "conv3x3", "default_conv"]
