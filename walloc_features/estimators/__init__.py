"""Estimators that train on latents (timm models, torch heads): see the estimators issue."""
