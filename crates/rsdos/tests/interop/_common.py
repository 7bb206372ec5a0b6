"""Helpers shared by the interoperability scripts (standard library + disk_objectstore only)."""

import hashlib
import json
import sys

# Contents up to this many bytes are also reported in full (hex) in the JSON outputs.
SMALL_CONTENT_MAX = 256


def content_info(data):
    """What the Rust side checks about one object's content."""
    info = {'sha256_of_content': hashlib.sha256(data).hexdigest(), 'size_of_content': len(data)}
    if len(data) <= SMALL_CONTENT_MAX:
        info['content_hex'] = data.hex()
    return info


def meta_dict(meta):
    """An ObjectMeta as plain JSON (the enum as its string value)."""
    return {
        'type': meta.type.value,
        'size': meta.size,
        'pack_id': meta.pack_id,
        'pack_offset': meta.pack_offset,
        'pack_length': meta.pack_length,
        'pack_compressed': meta.pack_compressed,
    }


def count_dict(count):
    return {'packed': count.packed, 'loose': count.loose, 'pack_files': count.pack_files}


def total_size_dict(total):
    return {
        'total_size_packed': total.total_size_packed,
        'total_size_packed_on_disk': total.total_size_packed_on_disk,
        'total_size_packfiles_on_disk': total.total_size_packfiles_on_disk,
        'total_size_packindexes_on_disk': total.total_size_packindexes_on_disk,
        'total_size_loose': total.total_size_loose,
    }


def issues_dict(issues):
    return {
        'invalid_hashes_loose': sorted(issues.invalid_hashes_loose),
        'invalid_hashes_packed': sorted(issues.invalid_hashes_packed),
        'invalid_sizes_packed': sorted(issues.invalid_sizes_packed),
        'overlapping_packed': sorted(issues.overlapping_packed),
    }


def emit(obj):
    json.dump(obj, sys.stdout, sort_keys=True)
    sys.stdout.write('\n')
    sys.stdout.flush()
