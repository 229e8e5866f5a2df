"""Checkpoint layouts written out by the tests themselves, independently of the loaders (spec §9.1)."""

from __future__ import annotations

import torch

from tadcli.model.adatad import AdaTAD


def opentad_names(model: AdaTAD) -> dict[str, torch.Tensor]:
    """tad state -> OpenTAD's DDP key names (spec §9.1), with the tables OpenTAD files carry besides."""
    state = {}
    for key, value in model.state_dict().items():
        if key.startswith("backbone."):
            key = key[len("backbone.") :]
            key = key.replace("patch_embed.proj.", "patch_embed.projection.")
            key = key.replace(".mlp.fc1.", ".mlp.layers.0.0.").replace(".mlp.fc2.", ".mlp.layers.1.")
            key = "backbone.model.backbone." + key
        elif key.startswith("detector.head."):
            key = "rpn_head." + key[len("detector.head.") :]
        elif key == "detector.loss.normalizer.value":
            key = "rpn_head.loss_normalizer"
        else:
            key = key[len("detector.") :]
        state["module." + key] = value.clone()
    arch = model.backbone.arch
    grid = arch.img_size // arch.patch_size
    prefix = "module.backbone.model.backbone."
    state[prefix + "pos_embed"] = torch.zeros(1, 8 * grid * grid, arch.embed_dim)
    state[prefix + "fc_norm.weight"] = torch.ones(arch.embed_dim)
    state[prefix + "fc_norm.bias"] = torch.zeros(arch.embed_dim)
    return state
