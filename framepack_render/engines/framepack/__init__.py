"""FramePack: model profiles and loading, the tiny model, conditioning, the transformer pass,
samplers and generation windows."""
