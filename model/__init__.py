"""DFIMat in PyTorch: ISCN (find the person from the prompts) and MRN (matte them).

    from model import build_dfimat, Prompts
    net = build_dfimat("base")                       # or "small"
    feats = net.iscn.encode_image(image)             # (B, 3, H, W) in [0, 1], once per image
    out = net.iscn.decode(feats, prompts, prev_mask=None)   # every round
    alpha = net.mrn(image, out.mask_logits.sigmoid())
"""

from plugin.prompts import Prompts

from .build import CONFIGS, DFIMat, DFIMatConfig, build_dfimat, count_parameters
from .checkpoint import load_checkpoint, save_checkpoint
from .iscn import ISCN, PromptTensors, image_to_tensor
from .losses import iscn_loss, mrn_loss
from .modeling.contrastive_reasoning import conflict_map, prompt_maps
from .modeling.image_encoder import ImageFeatures
from .modeling.prompt_decoder import DecoderOutput
from .mrn import MRN, MRNOutput

__all__ = [
    "CONFIGS", "DFIMat", "DFIMatConfig", "DecoderOutput", "ISCN", "ImageFeatures", "MRN", "MRNOutput",
    "PromptTensors", "Prompts", "build_dfimat", "conflict_map", "count_parameters", "image_to_tensor",
    "iscn_loss", "load_checkpoint", "mrn_loss", "prompt_maps", "save_checkpoint",
]
