"""Registered slimmable backbones: ``create_model(name, **kwargs)``, ``list_models()``."""

from us3l.models import mobilenetv2, resnet, vit  # noqa: F401  (registration side effects)
from us3l.models.base import SlimNet
from us3l.models.registry import create_model, list_models, model_entry, register_model

__all__ = ["SlimNet", "create_model", "list_models", "model_entry", "register_model"]
