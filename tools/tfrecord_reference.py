#!/usr/bin/env python3
"""Independent TFRecord and TensorBoard counterparts for tests/tfrecord.rs.

  write SPEC.json   writes the shards SPEC lists with the PyPI `tfrecord` package's writer:
                    {"shards": [{"path": P, "records": [{"features": {NAME: [KIND, VALUE]}}]}]}
                    with KIND "byte" (VALUE: a file to read, or {"text": S}) or "int".
  read SHARD...     prints, as JSON, every record of each shard as the `tfrecord` package parses
                    it (bytes features as sha256 hex, or as text for names), after checking both
                    masked CRC-32Cs of every record with the `crc32c` package (the `tfrecord`
                    reader does not check them).
  scalars LOGDIR    prints {tag: [[step, value], ...]} as TensorBoard's own EventAccumulator
                    reads the event files of LOGDIR.
"""
import hashlib
import json
import struct
import sys

MASK_DELTA = 0xA282EAD8


def masked_crc(data):
    import crc32c

    crc = crc32c.crc32c(data)
    return (((crc >> 15) | (crc << 17)) + MASK_DELTA) & 0xFFFFFFFF


def check_crcs(path):
    with open(path, "rb") as f:
        data = f.read()
    at, count = 0, 0
    while at < len(data):
        length_bytes = data[at : at + 8]
        (length,) = struct.unpack("<Q", length_bytes)
        (length_crc,) = struct.unpack("<I", data[at + 8 : at + 12])
        assert length_crc == masked_crc(length_bytes), f"{path} record {count}: length CRC"
        payload = data[at + 12 : at + 12 + length]
        (data_crc,) = struct.unpack("<I", data[at + 12 + length : at + 16 + length])
        assert data_crc == masked_crc(payload), f"{path} record {count}: data CRC"
        at += 16 + length
        count += 1
    assert at == len(data), f"{path}: trailing bytes"
    return count


def write(spec_path):
    from tfrecord import TFRecordWriter

    with open(spec_path) as f:
        spec = json.load(f)
    for shard in spec["shards"]:
        writer = TFRecordWriter(shard["path"])
        for record in shard["records"]:
            datum = {}
            for name, (kind, value) in record["features"].items():
                if kind == "byte":
                    if isinstance(value, dict):
                        value = value["text"].encode()
                    else:
                        with open(value, "rb") as f:
                            value = f.read()
                datum[name] = (value, kind)
            writer.write(datum)
        writer.close()


def read(paths):
    from tfrecord.reader import tfrecord_loader

    out = []
    for path in paths:
        count = check_crcs(path)
        records = []
        for example in tfrecord_loader(path, None):
            features = {}
            for name, value in example.items():
                if isinstance(value, bytes):  # a list of one byte string comes back as bytes
                    raw = value
                    if name.endswith("encoded") or name == "image":
                        features[name] = hashlib.sha256(raw).hexdigest()
                    else:
                        features[name] = raw.decode()
                else:
                    features[name] = [int(v) for v in value]
            records.append(features)
        assert len(records) == count, f"{path}: {len(records)} parsed, {count} framed"
        out.append(records)
    json.dump(out, sys.stdout)


def scalars(logdir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(logdir, size_guidance={"scalars": 0})
    acc.Reload()
    json.dump(
        {tag: [[e.step, e.value] for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]},
        sys.stdout,
    )


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    {"write": lambda: write(args[0]), "read": lambda: read(args), "scalars": lambda: scalars(args[0])}[
        command
    ]()
