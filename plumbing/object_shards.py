"""Old import path of the shard writer and reader: plumbing/shards.py has the one writer, the
one reader and the one naming, for a directory and a bucket alike."""
from plumbing.shards import ShardReader, ShardWriter

ObjectShardWriter = ShardWriter
ObjectShardReader = ShardReader
