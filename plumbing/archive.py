"""Retention of the trainer's archive of published versions (``storage.archive_keep`` /
``storage.archive_every``).

The trainer archives every version it publishes as ``<checkpoint_dir>/versions/v<NNNNNN>.onnx``
plus its manifest ``v<NNNNNN>.json`` and, when it learns one (``trainer.world_value``), its
world-value model ``v<NNNNNN>.world.onnx`` (plumbing/storage.py ``locations().archive``): ≈20 MB a
version for the full network, one version every ~41 s on a GPU box. Without a limit that fills
the checkpoints volume within days. After each publish the trainer prunes the archive to

* the newest ``archive_keep`` versions (the strength tracker measures the newest; rollbacks go
  to a recent one), with
* every ``archive_every``-th version as a milestone (v500, v1000, … for rollbacks further back
  and re-measuring the learning curve), and
* version 1, the untrained baseline the loop's "what training added" plays against.

``archive_keep = 0`` keeps every version (the laptop default). A pruned version loses its ONNX
file first, then its manifest: a crash in between leaves a manifest without a model, which every
reader already skips (``blobzero.strength.manifests``) and the next prune removes. Its strength
measurements stay in ``strength.json``. The same code prunes a directory (a volume, the
checkpoints claim) and a bucket: it speaks only the ``Store`` interface.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from plumbing.storage import Store

log = logging.getLogger("blobzero.trainer")
_KEY_RE = re.compile(r"^v(\d{6,})\.(onnx|world\.onnx|json)$")
#: always kept: the untrained network, the baseline of "what training added"
FIRST_VERSION = 1


@dataclass(frozen=True)
class ArchivePolicy:
    keep: int = 0           # newest versions kept; 0 = every version
    every: int = 0          # also keep each version divisible by this; 0 = no milestones

    @classmethod
    def from_config(cls, section) -> "ArchivePolicy":
        """From a ``[storage]`` config section (plumbing/config.py StorageSection)."""
        return cls(section.archive_keep, section.archive_every)

    def kept(self, version: int, newest: int) -> bool:
        return (self.keep == 0 or version > newest - self.keep or version == FIRST_VERSION
                or (self.every > 0 and version % self.every == 0))


def archived(store: Store) -> dict[int, list[str]]:
    """version -> its keys in the archive (the ONNX file and/or the manifest)."""
    out: dict[int, list[str]] = {}
    for entry in store.list("v"):
        match = _KEY_RE.match(entry.key)
        if match:
            out.setdefault(int(match[1]), []).append(entry.key)
    return out


def prune(store: Store, policy: ArchivePolicy) -> list[int]:
    """Delete the archived versions ``policy`` does not keep (ONNX first, then the manifest);
    returns their numbers, oldest first. StorageError when the archive cannot be listed or a
    delete fails (what was deleted before stays deleted; the next prune goes on)."""
    if policy.keep == 0:
        return []
    versions = archived(store)
    if not versions:
        return []
    newest = max(versions)
    doomed = sorted(v for v in versions if not policy.kept(v, newest))
    for version in doomed:
        for key in sorted(versions[version], key=lambda k: not k.endswith(".onnx")):
            store.delete(key)
    return doomed


def retain(checkpoints: Store, section) -> list[int]:
    """After a publish: prune ``<checkpoints>/versions`` under the ``[storage]`` section's
    archive keys, log what went; a storage error is logged and the next publish tries again
    (training never stops for it). Returns the pruned versions."""
    archive = checkpoints.child("versions")
    try:
        pruned = prune(archive, ArchivePolicy.from_config(section))
    except OSError as exc:
        log.warning("cannot prune the archive %s (%s); trying again after the next publish", archive.url, exc)
        return []
    if pruned:
        log.info("archive retention (storage.archive_keep %d, archive_every %d) deleted %d version(s): %s",
                 section.archive_keep, section.archive_every, len(pruned), _spans(pruned))
    return pruned


def _spans(versions: list[int]) -> str:
    """``[1, 2, 3, 7]`` -> ``v1-v3, v7``."""
    spans: list[list[int]] = []
    for v in versions:
        if spans and v == spans[-1][1] + 1:
            spans[-1][1] = v
        else:
            spans.append([v, v])
    return ", ".join(f"v{a}" if a == b else f"v{a}-v{b}" for a, b in spans)
