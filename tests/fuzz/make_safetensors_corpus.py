#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_safetensors: valid files and one file per refusal of the reader.

Independent of the C++ writer on purpose (stdlib only), so the corpus also checks the reader
against the format as the specification lays it out. Run from anywhere; rewrites the folder.
"""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "fuzz_safetensors")


def st_file(header, data=b"", pad=True, length=None):
    h = header.encode("utf-8") if isinstance(header, str) else header
    if pad:
        h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h) if length is None else length) + h + data


def entry(name, dtype, shape, begin, end):
    return '"%s":{"dtype":"%s","shape":[%s],"data_offsets":[%d,%d]}' % (
        name, dtype, ",".join(str(d) for d in shape), begin, end)


def bf16(values):
    return b"".join(struct.pack("<I", struct.unpack("<I", struct.pack("<f", v))[0])[2:] for v in values)


def main():
    files = {}
    f32 = struct.pack("<6f", 1.5, -2.0, 0.0, 3.25, 1e-3, -7.0)
    f16 = struct.pack("<4e", 0.5, -2.0, 1024.0, 3.25)
    b16 = bf16([0.5, -2.0, 1024.0, 3.25])
    valid_header = "{" + ",".join([
        '"__metadata__":{"format":"pt"}',
        entry("w.f32", "F32", [2, 3], 0, 24),
        entry("w.f16", "F16", [4], 24, 32),
        entry("w.bf16", "BF16", [2, 2], 32, 40),
    ]) + "}"
    valid = st_file(valid_header, f32 + f16 + b16)
    files["valid.safetensors"] = valid
    files["valid_f16_first.safetensors"] = st_file(
        "{" + entry("h", "F16", [4], 0, 8) + "," + entry("b", "BF16", [4], 8, 16) + "}", f16 + b16)
    # Every whole-byte dtype, keys out of data order, no padding, a scalar and a zero-size tensor.
    sizes = [("BOOL", 1), ("U8", 1), ("I8", 1), ("F8_E5M2", 1), ("F8_E4M3", 1), ("I16", 2), ("U16", 2),
             ("I32", 4), ("U32", 4), ("F64", 8), ("I64", 8), ("U64", 8)]
    entries, offset = [], 0
    for name, size in reversed(sizes):
        entries.append(entry("t_" + name, name, [3], offset, offset + 3 * size))
        offset += 3 * size
    entries.append(entry("scalar", "F32", [], offset, offset + 4))
    entries.append(entry("empty", "F16", [0, 7], offset + 4, offset + 4))
    files["all_dtypes.safetensors"] = st_file("{" + ",".join(reversed(entries)) + "}",
                                              bytes(i % 251 for i in range(offset)) + f32[:4], pad=False)
    files["empty.safetensors"] = st_file("{}")

    # One file per refusal.
    files["header_len_ge_size.safetensors"] = st_file(valid_header, f32 + f16 + b16, length=len(valid))
    files["header_len_huge.safetensors"] = st_file("{}", length=1 << 62)
    files["truncated.safetensors"] = valid[:-5]
    files["too_short.safetensors"] = valid[:5]
    files["bad_json.safetensors"] = st_file('{"a":{"dtype":"F32",', b"")
    files["not_object.safetensors"] = st_file("[1,2,3]")
    files["too_deep.safetensors"] = st_file('{"__metadata__":{"k":{"x":[1]}}}')
    files["bad_utf8.safetensors"] = st_file(b'{"__metadata__":{"k":"\xff"}}')
    files["overlap.safetensors"] = st_file("{" + entry("a", "F32", [2], 0, 8) + "," + entry("b", "F32", [2], 4, 12) + "}",
                                           bytes(12))
    files["out_of_order.safetensors"] = st_file("{" + entry("a", "F32", [2], 8, 0) + "}", bytes(8))
    files["hole.safetensors"] = st_file("{" + entry("a", "F32", [1], 0, 4) + "," + entry("b", "F32", [1], 8, 12) + "}",
                                        bytes(12))
    files["trailing_bytes.safetensors"] = st_file("{" + entry("a", "F32", [1], 0, 4) + "}", bytes(8))
    files["bytes_mismatch.safetensors"] = st_file("{" + entry("a", "F32", [3], 0, 8) + "}", bytes(8))
    files["shape_overflow.safetensors"] = st_file(
        "{" + entry("a", "F32", [4294967296, 4294967296, 2], 0, 8) + "}", bytes(8))
    files["bytes_overflow.safetensors"] = st_file("{" + entry("a", "F64", [1 << 62], 0, 8) + "}", bytes(8))
    files["past_end.safetensors"] = st_file("{" + entry("a", "F32", [2], 18446744073709551608, 18446744073709551615) + "}",
                                            bytes(8))
    files["unknown_dtype.safetensors"] = st_file("{" + entry("a", "F4", [2], 0, 1) + "}", bytes(1))
    files["duplicate_name.safetensors"] = st_file(
        "{" + entry("a", "F32", [1], 0, 4) + "," + entry("a", "F32", [1], 4, 8) + "}", bytes(8))
    files["duplicate_field.safetensors"] = st_file(
        '{"a":{"dtype":"F32","dtype":"F16","shape":[1],"data_offsets":[0,4]}}', bytes(4))
    files["negative_dim.safetensors"] = st_file('{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}', bytes(4))
    files["metadata_not_string.safetensors"] = st_file('{"__metadata__":{"k":1}}')

    os.makedirs(OUT, exist_ok=True)
    for old in os.listdir(OUT):
        os.remove(os.path.join(OUT, old))
    for name, data in sorted(files.items()):
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    print("wrote %d files to %s" % (len(files), OUT))


if __name__ == "__main__":
    main()
