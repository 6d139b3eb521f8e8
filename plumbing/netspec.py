"""The network's wire contract: tensor names, shapes and dtypes shared by every stage.

The trainer exports these names, both model-repository flavours declare them, and
every client sends and checks them. Torch-free on purpose: self-play clients and
services import this without pulling in the trainer.

Shapes (B = batch of positions, any size >= 1):
    inputs   state  (B, 256) float32   encoded observation of the player to move
             mask   (B, 52)  float32   1.0 = legal action, 0.0 = illegal
    outputs  policy (B, 52)  float32   distribution over legal actions (sums to 1, 0 on illegal)
             value  (B, 8)   float32   per-seat expected normalised round score in [0, 1];
                                       seat 0 = player to move, then turn order; slots >= the
                                       table's player count carry no meaning

The world-value model (``blobworld``, trainer/world_model.py; docs/search.md, "World values"),
served beside it from the same repository:
    input    world        (B, 620) float32  a whole sampled deal: the mover's observation
                                            (as ``state``) + the hands of relative seats 1..7
    output   world_value  (B, 8)   float32  per-seat expected normalised round score in that
                                            deal, ordered as ``value``
"""
from __future__ import annotations

STATE_DIM = 256   #: features per position (defined by the game core's encoder)
NUM_ACTIONS = 52  #: bids 0..C share indices with cards 0..51
VALUE_DIM = 8     #: one value per seat, up to the maximum of 8 players

MODEL_NAME = "blobnet"           #: model name in every Triton repository
ONNX_FILENAME = "model.onnx"     #: file inside each numeric version directory

STATE, MASK, POLICY, VALUE = "state", "mask", "policy", "value"
INPUTS: dict[str, int] = {STATE: STATE_DIM, MASK: NUM_ACTIONS}      #: name -> width
OUTPUTS: dict[str, int] = {POLICY: NUM_ACTIONS, VALUE: VALUE_DIM}   #: name -> width

WORLD_DIM = 620                  #: features of a whole deal (blobcore.encode.WORLD_SIZE)
WORLD_MODEL_NAME = "blobworld"   #: the world-value model's name in every Triton repository
WORLD, WORLD_VALUE = "world", "world_value"
WORLD_INPUTS: dict[str, int] = {WORLD: WORLD_DIM}
WORLD_OUTPUTS: dict[str, int] = {WORLD_VALUE: VALUE_DIM}

#: model name -> (inputs, outputs): every model a repository may serve
CONTRACTS: dict[str, tuple[dict[str, int], dict[str, int]]] = {
    MODEL_NAME: (INPUTS, OUTPUTS),
    WORLD_MODEL_NAME: (WORLD_INPUTS, WORLD_OUTPUTS),
}
