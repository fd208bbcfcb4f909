"""RetinaFace ResNet-50 in plain torch, so the original ``retinaface_resnet50.pth`` loads offline.

The original filter got this network from ``torch.hub`` (redcaps-dataset/pytorch-retinaface, a
fork of biubug6/Pytorch_Retinaface) and its weights from Dropbox. Neither is reachable here and
torchvision is not installable, so the architecture is rebuilt with the exact module names of
that code: ``body.*`` follows torchvision's ``resnet50`` (conv1, bn1, layer1..layer4; the fc head
is dropped as ``IntermediateLayerGetter`` does), then ``fpn``, ``ssh1..3`` and the three heads.
A user's ``.pth`` therefore loads with ``strict=True``; any drift in names or shapes fails loudly.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: Anchors per feature-map location (min_sizes has two sizes per level).
NUM_ANCHORS = 2
#: ResNet-50 stages returned to the FPN (layer2/3/4) and the FPN width, as in ``CFG_RESNET50``.
IN_CHANNELS = (512, 1024, 2048)
OUT_CHANNELS = 256


class Bottleneck(nn.Module):
    """torchvision's ResNet v1.5 bottleneck (stride on the 3x3 conv), same attribute names."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or inplanes != out:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out)
            )

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + identity)


def _stage(inplanes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    layers = [Bottleneck(inplanes, planes, stride)]
    layers += [Bottleneck(planes * Bottleneck.expansion, planes) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class ResNet50Body(nn.Module):
    """ResNet-50 without avgpool/fc, returning layer2, layer3 and layer4 (strides 8, 16, 32)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = _stage(64, 64, 3, 1)
        self.layer2 = _stage(256, 128, 4, 2)
        self.layer3 = _stage(512, 256, 6, 2)
        self.layer4 = _stage(1024, 512, 3, 2)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        c2 = self.layer2(self.layer1(x))
        c3 = self.layer3(c2)
        return c2, c3, self.layer4(c3)


def _conv_bn(inp: int, out: int, kernel: int, relu: bool) -> nn.Sequential:
    """biubug6's conv_bn / conv_bn1X1 / conv_bn_no_relu (leaky=0 at 256 channels, i.e. ReLU)."""
    layers: list[nn.Module] = [nn.Conv2d(inp, out, kernel, 1, kernel // 2, bias=False), nn.BatchNorm2d(out)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class FPN(nn.Module):
    def __init__(self, in_channels: tuple[int, int, int], out: int) -> None:
        super().__init__()
        self.output1 = _conv_bn(in_channels[0], out, 1, relu=True)
        self.output2 = _conv_bn(in_channels[1], out, 1, relu=True)
        self.output3 = _conv_bn(in_channels[2], out, 1, relu=True)
        self.merge1 = _conv_bn(out, out, 3, relu=True)
        self.merge2 = _conv_bn(out, out, 3, relu=True)

    def forward(self, feats: tuple[Tensor, Tensor, Tensor]) -> list[Tensor]:
        o1, o2, o3 = self.output1(feats[0]), self.output2(feats[1]), self.output3(feats[2])
        o2 = self.merge2(o2 + F.interpolate(o3, size=o2.shape[-2:], mode="nearest"))
        o1 = self.merge1(o1 + F.interpolate(o2, size=o1.shape[-2:], mode="nearest"))
        return [o1, o2, o3]


class SSH(nn.Module):
    """Context module: 3x3, 5x5 (two 3x3) and 7x7 (three 3x3) branches, concatenated."""

    def __init__(self, inp: int, out: int) -> None:
        super().__init__()
        self.conv3X3 = _conv_bn(inp, out // 2, 3, relu=False)
        self.conv5X5_1 = _conv_bn(inp, out // 4, 3, relu=True)
        self.conv5X5_2 = _conv_bn(out // 4, out // 4, 3, relu=False)
        self.conv7X7_2 = _conv_bn(out // 4, out // 4, 3, relu=True)
        self.conv7x7_3 = _conv_bn(out // 4, out // 4, 3, relu=False)

    def forward(self, x: Tensor) -> Tensor:
        c5_1 = self.conv5X5_1(x)
        branches = [self.conv3X3(x), self.conv5X5_2(c5_1), self.conv7x7_3(self.conv7X7_2(c5_1))]
        return F.relu(torch.cat(branches, dim=1))


class _Head(nn.Module):
    """A 1x1 conv giving ``per_anchor`` values per anchor, flattened to (N, H*W*anchors, k)."""

    def __init__(self, inp: int, per_anchor: int) -> None:
        super().__init__()
        self.per_anchor = per_anchor
        self.conv1x1 = nn.Conv2d(inp, NUM_ANCHORS * per_anchor, 1)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1x1(x).permute(0, 2, 3, 1).contiguous()
        return out.view(out.shape[0], -1, self.per_anchor)


class RetinaFace(nn.Module):
    """RetinaFace-R50 in test phase: returns (loc, softmaxed conf, landmarks) over all anchors."""

    def __init__(self) -> None:
        super().__init__()
        self.body = ResNet50Body()
        self.fpn = FPN(IN_CHANNELS, OUT_CHANNELS)
        self.ssh1 = SSH(OUT_CHANNELS, OUT_CHANNELS)
        self.ssh2 = SSH(OUT_CHANNELS, OUT_CHANNELS)
        self.ssh3 = SSH(OUT_CHANNELS, OUT_CHANNELS)
        self.ClassHead = nn.ModuleList(_Head(OUT_CHANNELS, 2) for _ in range(3))
        self.BboxHead = nn.ModuleList(_Head(OUT_CHANNELS, 4) for _ in range(3))
        self.LandmarkHead = nn.ModuleList(_Head(OUT_CHANNELS, 10) for _ in range(3))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        p = self.fpn(self.body(x))
        feats = [self.ssh1(p[0]), self.ssh2(p[1]), self.ssh3(p[2])]
        loc = torch.cat([h(f) for h, f in zip(self.BboxHead, feats, strict=True)], dim=1)
        conf = torch.cat([h(f) for h, f in zip(self.ClassHead, feats, strict=True)], dim=1)
        landmarks = torch.cat([h(f) for h, f in zip(self.LandmarkHead, feats, strict=True)], dim=1)
        return loc, F.softmax(conf, dim=-1), landmarks


def clean_state_dict(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Unwrap ``{"state_dict": ...}`` checkpoints and strip a DataParallel ``module.`` prefix."""
    if "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_retinaface(path: str | Path, map_location: str | torch.device = "cpu") -> RetinaFace:
    """Build the network and load ``path`` strictly (``weights_only``: a .pth never runs code)."""
    state = torch.load(Path(path), map_location=map_location, weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict, got {type(state).__name__}")
    model = RetinaFace()
    # A plain dict carries no BatchNorm version metadata, so checkpoints saved before
    # ``num_batches_tracked`` existed still load under strict=True.
    model.load_state_dict(clean_state_dict(state), strict=True)
    return model.eval()
