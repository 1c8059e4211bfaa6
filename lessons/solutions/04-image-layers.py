"""Solutions to the exercises of notebook 4, Image layers (instructors' copy).  See 01-hello-world.py
for the shape of this file."""

import hashlib


def image_id(config_bytes):
    return "sha256:" + hashlib.sha256(config_bytes).hexdigest()


def shared_layers(image_a, image_b):
    theirs = set(image_b.attrs["RootFS"]["Layers"])
    return [d for d in image_a.attrs["RootFS"]["Layers"] if d in theirs]


SOLUTIONS = {
    "layers/image-id": image_id,
    "layers/whiteout-name": "etc/.wh.group",
    "layers/shared": shared_layers,
}

WRONG = {
    "layers/image-id": lambda config_bytes: hashlib.sha256(config_bytes).hexdigest(),  # no "sha256:"
    "layers/whiteout-name": "etc/group",  # a layer cannot delete by leaving a file out
    "layers/shared": lambda image_a, image_b: image_a.attrs["RootFS"]["Layers"],  # all of a's
}


def context(client) -> dict[str, dict]:
    return {"layers/image-id": {"client": client}, "layers/shared": {"client": client}}
