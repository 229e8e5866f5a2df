"""Checkpoint formats (spec §9): each format is written here with its real key names and container, then
loaded back through the public API to the same features; errors name the key and the shapes."""

from __future__ import annotations

import argparse
import dataclasses
import json

import pytest
import torch
from safetensors.torch import save_file

from tadcli.errors import WeightFormatError
from tadcli.io.weights import (
    WeightFormat,
    convert_adatad_detector,
    detect_weight_format,
    read_adatad_detector_state,
    read_backbone_weights,
)
from tadcli.model import BackboneOptions, ViTArch, build_backbone, load_backbone, load_backbone_weights

TINY = ViTArch(embed_dim=32, depth=3, num_heads=2, mlp_hidden_dim=64, patch_size=8, img_size=32)
FRAMES = torch.randn(1, 3, 32, 32, 32, generator=torch.Generator().manual_seed(0))


def reference(adaptation: str = "frozen", seed: int = 0, **kwargs):
    """A tiny backbone whose every parameter (q/v biases and adapters included) is random."""
    backbone = build_backbone(TINY, adaptation, **kwargs).eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in backbone.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.1)
    return backbone


def features(backbone) -> torch.Tensor:
    with torch.no_grad():
        return backbone.eval()(FRAMES)


def vit_state(backbone) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in backbone.state_dict().items() if ".adapter." not in k and "ladders." not in k}


def videomae_file(backbone) -> dict:
    """Original VideoMAE finetune checkpoint: timm names, classifier, fc_norm, training args."""
    state = vit_state(backbone)
    state["fc_norm.weight"], state["fc_norm.bias"] = torch.ones(32), torch.zeros(32)
    state["head.weight"], state["head.bias"] = torch.randn(400, 32), torch.zeros(400)
    return {"model": state, "epoch": 29, "args": argparse.Namespace(lr=1e-3, model="vit_small_patch16_224")}


def mmaction_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """tad names -> mmaction2 names (written out here, independently of the converter)."""
    renamed = {}
    for key, value in state.items():
        key = key.replace("patch_embed.proj.", "patch_embed.projection.")
        key = key.replace(".mlp.fc1.", ".mlp.layers.0.0.").replace(".mlp.fc2.", ".mlp.layers.1.")
        renamed["backbone." + key] = value
    return renamed


def mmaction_file(backbone) -> dict:
    state = mmaction_names(vit_state(backbone))
    state["backbone.pos_embed"] = torch.zeros(1, 8 * 4 * 4, 32)
    state["backbone.fc_norm.weight"], state["backbone.fc_norm.bias"] = torch.ones(32), torch.zeros(32)
    state["cls_head.fc_cls.weight"], state["cls_head.fc_cls.bias"] = torch.randn(400, 32), torch.zeros(400)
    return {"meta": {"mmengine_version": "0.7.3", "epoch": 30}, "state_dict": state}


def huggingface_state(backbone, prefix: str) -> dict[str, torch.Tensor]:
    """transformers ``modeling_videomae`` names; q/k/v as separate bias-free Linears."""
    ours = vit_state(backbone)
    hf = {
        f"{prefix}embeddings.patch_embeddings.projection.weight": ours["patch_embed.proj.weight"],
        f"{prefix}embeddings.patch_embeddings.projection.bias": ours["patch_embed.proj.bias"],
    }
    for i in range(TINY.depth):
        layer, block = f"{prefix}encoder.layer.{i}.", f"blocks.{i}."
        query, key, value = ours[block + "attn.qkv.weight"].chunk(3)
        hf[layer + "attention.attention.query.weight"] = query.contiguous()
        hf[layer + "attention.attention.key.weight"] = key.contiguous()
        hf[layer + "attention.attention.value.weight"] = value.contiguous()
        hf[layer + "attention.attention.q_bias"] = ours[block + "attn.q_bias"]
        hf[layer + "attention.attention.v_bias"] = ours[block + "attn.v_bias"]
        for part in ("weight", "bias"):
            hf[layer + f"attention.output.dense.{part}"] = ours[block + f"attn.proj.{part}"]
            hf[layer + f"intermediate.dense.{part}"] = ours[block + f"mlp.fc1.{part}"]
            hf[layer + f"output.dense.{part}"] = ours[block + f"mlp.fc2.{part}"]
            hf[layer + f"layernorm_before.{part}"] = ours[block + f"norm1.{part}"]
            hf[layer + f"layernorm_after.{part}"] = ours[block + f"norm2.{part}"]
    if prefix:  # VideoMAEForVideoClassification
        hf["fc_norm.weight"], hf["fc_norm.bias"] = torch.ones(32), torch.zeros(32)
        hf["classifier.weight"], hf["classifier.bias"] = torch.randn(400, 32), torch.zeros(400)
    return hf


HF_CONFIG = {
    "architectures": ["VideoMAEForVideoClassification"],
    "model_type": "videomae",
    "hidden_size": 32,
    "num_hidden_layers": 3,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "hidden_act": "gelu",
    "image_size": 32,
    "patch_size": 8,
    "num_channels": 3,
    "num_frames": 16,
    "tubelet_size": 2,
    "qkv_bias": True,
    "use_mean_pooling": True,
    "layer_norm_eps": 1e-06,
    "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0,
    "transformers_version": "4.40.0",
}


def adatad_file(tia, detector: dict[str, torch.Tensor]) -> dict:
    """OpenTAD training checkpoint of a DDP-wrapped detector; the EMA weights differ from the raw ones."""
    prefix = "module.backbone.model.backbone."
    ema = {prefix + k[len("backbone.") :]: v for k, v in mmaction_names(tia.state_dict()).items()}
    ema[prefix + "pos_embed"] = torch.zeros(1, 8 * 4 * 4, 32)
    ema[prefix + "fc_norm.weight"], ema[prefix + "fc_norm.bias"] = torch.ones(32), torch.zeros(32)
    ema.update({"module." + k: v for k, v in detector.items()})
    raw = {key: value + 1.0 for key, value in ema.items()}
    return {"epoch": 60, "state_dict": raw, "state_dict_ema": ema}


DETECTOR = {
    "projection.embed.0.conv.weight": torch.randn(16, 32, 3),
    "projection.stem.0.attn.query.weight": torch.randn(16, 16, 1),
    "neck.fpn_norms.0.weight": torch.ones(16),
    "rpn_head.loss_normalizer": torch.tensor(100.0),
    "rpn_head.cls_head.weight": torch.randn(20, 16, 3),
}


def test_original_videomae_checkpoint_loads_to_identical_features(tmp_path):
    ref = reference()
    for container in ("model", "module"):
        checkpoint = videomae_file(ref)
        checkpoint[container] = checkpoint.pop("model")
        torch.save(checkpoint, tmp_path / "vit_s_k400_ft.pth")
        loaded = load_backbone(tmp_path / "vit_s_k400_ft.pth", arch=TINY)
        assert torch.equal(features(loaded), features(ref))
    assert read_backbone_weights(tmp_path / "vit_s_k400_ft.pth").format == WeightFormat.VIDEOMAE


def test_mmaction_checkpoint_loads_to_identical_features(tmp_path):
    ref = reference()
    torch.save(mmaction_file(ref), tmp_path / "vit-base-p16_videomae-k400-pre.pth")
    loaded = load_backbone(tmp_path / "vit-base-p16_videomae-k400-pre.pth", arch=TINY)
    assert torch.equal(features(loaded), features(ref))
    assert read_backbone_weights(tmp_path / "vit-base-p16_videomae-k400-pre.pth").format == WeightFormat.MMACTION


@pytest.mark.parametrize("prefix", ["videomae.", ""])
@pytest.mark.parametrize("weights_file", ["model.safetensors", "pytorch_model.bin"])
def test_huggingface_directory_loads_with_the_arch_from_config(tmp_path, prefix, weights_file):
    ref = reference()
    state = huggingface_state(ref, prefix)
    if weights_file.endswith(".safetensors"):
        save_file(state, str(tmp_path / weights_file))
    else:
        torch.save(state, tmp_path / weights_file)
    (tmp_path / "config.json").write_text(json.dumps(HF_CONFIG))
    loaded = load_backbone(tmp_path)  # no arch: config.json says it
    assert loaded.arch == TINY
    assert torch.equal(features(loaded), features(ref))
    converted = read_backbone_weights(tmp_path)
    assert converted.format == WeightFormat.HUGGINGFACE
    assert not any("k_bias" in key for key in converted.state)  # the key bias stays zero, never invented


def test_sharded_huggingface_checkpoint_is_merged(tmp_path):
    ref = reference()
    state = huggingface_state(ref, "videomae.")
    keys = sorted(state)
    shards = {"model-00001-of-00002.safetensors": keys[:20], "model-00002-of-00002.safetensors": keys[20:]}
    for name, shard_keys in shards.items():
        save_file({key: state[key] for key in shard_keys}, str(tmp_path / name))
    weight_map = {key: name for name, shard_keys in shards.items() for key in shard_keys}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    (tmp_path / "config.json").write_text(json.dumps(HF_CONFIG))
    assert torch.equal(features(load_backbone(tmp_path)), features(ref))


def test_huggingface_config_sets_the_norm_epsilon_and_final_norm(tmp_path):
    ref = reference()
    state = huggingface_state(ref, "videomae.")
    state["videomae.layernorm.weight"], state["videomae.layernorm.bias"] = torch.ones(32) * 2, torch.zeros(32)
    del state["fc_norm.weight"], state["fc_norm.bias"]
    save_file(state, str(tmp_path / "model.safetensors"))
    config = {key: value for key, value in HF_CONFIG.items() if key != "layer_norm_eps"}  # default 1e-12
    (tmp_path / "config.json").write_text(json.dumps({**config, "use_mean_pooling": False}))
    loaded = load_backbone(tmp_path)
    assert loaded.arch.layer_norm_eps == 1e-12 and loaded.arch.final_norm
    assert torch.equal(loaded.norm.weight, torch.full((32,), 2.0))


def test_released_adatad_checkpoint_prefers_ema_and_keeps_the_detector_part(tmp_path):
    tia = reference("tia", seed=1)
    path = tmp_path / "adatad_thumos_videomae_s_768x1_160.pth"
    torch.save(adatad_file(tia, DETECTOR), path)
    loaded = load_backbone(path, arch=TINY, adaptation="tia")
    assert torch.equal(features(loaded), features(tia))
    assert load_backbone_weights(loaded, path).missing_adapter_keys == []
    detector = read_adatad_detector_state(path)
    assert detector.keys() == DETECTOR.keys()
    assert all(torch.equal(detector[key], DETECTOR[key]) for key in DETECTOR)


def test_released_adatad_side_checkpoint_loads_the_ladder(tmp_path):
    side = reference("side", seed=2, adapter_blocks=[1, 2])
    prefix = "module.backbone.model.backbone."
    state = {prefix + k[len("backbone.") :]: v for k, v in mmaction_names(side.state_dict()).items()}
    path = tmp_path / "adatad_side.safetensors"
    save_file(state, str(path))
    loaded = load_backbone(path, arch=TINY, adaptation="side", adapter_blocks=[1, 2])
    assert torch.equal(features(loaded), features(side))
    assert detect_weight_format(state) == WeightFormat.ADATAD


def test_every_backbone_option_reaches_the_loaded_backbone(tmp_path):
    """load_backbone builds from the same options object as build_backbone: none is dropped on the way."""
    path = tmp_path / "vit.pth"
    torch.save(videomae_file(reference()), path)  # a pretrained ViT: the adapters keep their init
    options = BackboneOptions(adaptation="tia", adapter_blocks=(1,), adapter_ratio=0.5, temporal_kernel=5,
                              drop_path_rate=0.2, checkpointing=True, chunk_group=2, compact_checkpoints=True,
                              offload_checkpoints=True)
    assert all(getattr(options, f.name) != f.default for f in dataclasses.fields(BackboneOptions))  # none default
    fields = {f.name: getattr(options, f.name) for f in dataclasses.fields(BackboneOptions)}
    adaptation = fields.pop("adaptation")
    loaded = load_backbone(path, arch=TINY, adaptation=adaptation, **fields)
    assert loaded.options == options
    assert loaded.chunk_group == 2 and loaded.grad_checkpointing
    assert loaded.activation_store.compact and loaded.activation_store.offload
    with pytest.raises(TypeError, match="chunk_groups"):
        load_backbone(path, arch=TINY, chunk_groups=2)


def test_adatad_detector_keys_lose_only_the_module_prefix():
    state = {"module." + k: v for k, v in DETECTOR.items()}
    state["module.backbone.model.backbone.blocks.0.norm1.weight"] = torch.ones(4)
    assert convert_adatad_detector(state).keys() == DETECTOR.keys()


def test_missing_adapter_keys_are_reported_and_keep_their_init(tmp_path):
    ref = reference()
    torch.save(videomae_file(ref), tmp_path / "vit.pth")
    tia = build_backbone(TINY, "tia", adapter_blocks=[0, 2])
    report = load_backbone_weights(tia, tmp_path / "vit.pth")
    assert report.format == WeightFormat.VIDEOMAE
    assert set(report.missing_adapter_keys) == {k for k in tia.state_dict() if ".adapter." in k}
    assert "blocks.2.adapter.up_proj.weight" in report.missing_adapter_keys
    assert torch.equal(features(tia), features(ref))  # zero up projections: an identity


def test_wrong_shape_names_the_format_key_and_both_shapes(tmp_path):
    checkpoint = videomae_file(reference())
    checkpoint["model"]["blocks.1.mlp.fc1.weight"] = torch.zeros(48, 32)
    torch.save(checkpoint, tmp_path / "vit.pth")
    with pytest.raises(WeightFormatError) as error:
        load_backbone(tmp_path / "vit.pth", arch=TINY)
    message = str(error.value)
    assert "videomae" in message and "'blocks.1.mlp.fc1.weight'" in message
    assert "[48, 32]" in message and "[64, 32]" in message


def test_missing_and_unexpected_backbone_keys_are_errors(tmp_path):
    checkpoint = videomae_file(reference())
    del checkpoint["model"]["blocks.2.attn.v_bias"]
    torch.save(checkpoint, tmp_path / "missing.pth")
    with pytest.raises(WeightFormatError, match="'blocks.2.attn.v_bias' is missing"):
        load_backbone(tmp_path / "missing.pth", arch=TINY)
    checkpoint = videomae_file(reference())
    checkpoint["model"]["blocks.0.gamma_1"] = torch.ones(32)  # layer scale: not in this architecture
    torch.save(checkpoint, tmp_path / "unexpected.pth")
    with pytest.raises(WeightFormatError, match="'blocks.0.gamma_1'.*not part of the model"):
        load_backbone(tmp_path / "unexpected.pth", arch=TINY)


def test_adapter_checkpoint_into_a_model_without_adapters_is_an_error(tmp_path):
    tia = reference("tia", seed=1)
    torch.save(adatad_file(tia, DETECTOR), tmp_path / "adatad.pth")
    with pytest.raises(WeightFormatError, match="adatad checkpoint .*adapter"):
        load_backbone(tmp_path / "adatad.pth", arch=TINY, adaptation="frozen")


class NotATensor:
    pass


def test_pickled_objects_are_refused_not_executed(tmp_path):
    checkpoint = videomae_file(reference())
    checkpoint["trainer"] = NotATensor()
    torch.save(checkpoint, tmp_path / "pickled.pth")
    with pytest.raises(WeightFormatError, match="Python objects other than tensors"):
        load_backbone(tmp_path / "pickled.pth", arch=TINY)


def test_unknown_format_missing_file_and_missing_arch_are_clear_errors(tmp_path):
    save_file({"conv1.weight": torch.zeros(2)}, str(tmp_path / "resnet.safetensors"))
    with pytest.raises(WeightFormatError, match="unknown checkpoint format.*conv1.weight"):
        load_backbone(tmp_path / "resnet.safetensors", arch=TINY)
    with pytest.raises(WeightFormatError, match="not found"):
        load_backbone(tmp_path / "absent.pth", arch=TINY)
    torch.save(videomae_file(reference()), tmp_path / "vit.pth")
    with pytest.raises(WeightFormatError, match="pass arch .*width 32, 3 blocks, patch 8"):
        load_backbone(tmp_path / "vit.pth")
    with pytest.raises(WeightFormatError, match="no config.json"):
        load_backbone(tmp_path)


def test_missing_arch_hint_names_the_matching_variant(tmp_path):
    small = build_backbone("S", "frozen", device="meta")
    state = {k: torch.empty(v.shape) for k, v in small.state_dict().items()}
    save_file(state, str(tmp_path / "vit_s.safetensors"))
    with pytest.raises(WeightFormatError, match="pass arch='S'"):
        load_backbone(tmp_path / "vit_s.safetensors")
