"""Offline model tooling behind `ml-api models ...`: export, install, prepare, list.

It pulls in torch.onnx, transformers' AutoModel and the hub client, none of which a running service needs,
so the serving path never imports this package (tests/test_layering.py checks it). The one exception is
`ml_api.registry`, which reaches the exporter lazily when EMBED_MODEL names a checkpoint not exported yet.
"""
