"""Reads a container written by rsdos with disk-objectstore and reports what it sees.

Usage: dos_read.py DIR [HASHKEY ...]

Prints JSON:
  objects: {hashkey: {sha256_of_content, size_of_content, content_hex (small ones),
            hash_ok (content hashes to the key with the container's hash type),
            stream_matches (get_objects_stream_and_meta == get_objects_content ==
            get_object_content), meta (from the stream generator), meta_single
            (get_object_meta)}}
  listing (list_all_objects, in its order), count, total_size, validate (dict), is_valid,
  has ({HASHKEY: has_object} for the extra keys given), config,
  copy: disk-objectstore keeps writing a copy of the container (new loose and packed
        objects, pack_all_loose, clean_storage) and reports is_valid, validate,
        contents_unchanged, new_objects_ok, count.
"""

import hashlib
import shutil
import sys
import tempfile
from pathlib import Path

from disk_objectstore import Container

from _common import content_info, count_dict, emit, issues_dict, meta_dict, total_size_dict


def read_all(c):
    listing = list(c.list_all_objects())
    contents = c.get_objects_content(listing)
    return listing, contents


def main():
    folder = sys.argv[1]
    extra_keys = sys.argv[2:]
    report = {}
    with Container(folder) as c:
        listing, contents = read_all(c)
        objects = {}
        seen = set()
        with c.get_objects_stream_and_meta(listing) as triplets:
            for key, stream, meta in triplets:
                assert key not in seen, f'{key} yielded twice'
                seen.add(key)
                data = stream.read()
                entry = content_info(data)
                entry['hash_ok'] = hashlib.new(c.hash_type, data).hexdigest() == key
                entry['stream_matches'] = data == contents.get(key) == c.get_object_content(key)
                entry['meta'] = meta_dict(meta)
                entry['meta_single'] = meta_dict(c.get_object_meta(key))
                objects[key] = entry
        report['objects'] = objects
        report['listing'] = listing
        report['count'] = count_dict(c.count_objects())
        report['total_size'] = total_size_dict(c.get_total_size())
        issues = c.validate()
        report['validate'] = issues_dict(issues)
        report['is_valid'] = issues.is_valid()
        report['has'] = {k: c.has_object(k) for k in extra_keys}
        report['config'] = {
            'loose_prefix_len': c.loose_prefix_len,
            'pack_size_target': c.pack_size_target,
            'hash_type': c.hash_type,
            'compression_algorithm': c.compression_algorithm,
            'container_id': c.container_id,
        }

    tmp = tempfile.mkdtemp(prefix='dos_read_copy_')
    try:
        copy = Path(tmp) / 'container'
        shutil.copytree(folder, copy)
        new_contents = [b'written by disk-objectstore into an rsdos container, loose\n' * 3, b'dos packed 1', b'dos packed 2 ' * 500]
        with Container(copy) as c2:
            new_keys = [c2.add_object(new_contents[0])]
            new_keys += c2.add_objects_to_pack(new_contents[1:], compress=True)
            c2.pack_all_loose()
            c2.clean_storage()
            issues2 = c2.validate()
            listing2, contents2 = read_all(c2)
            new_ok = all(c2.get_object_content(k) == v for k, v in zip(new_keys, new_contents))
            for k in new_keys:
                contents2.pop(k, None)
            report['copy'] = {
                'is_valid': issues2.is_valid(),
                'validate': issues_dict(issues2),
                'contents_unchanged': contents2 == contents,
                'listing_len': len(listing2),
                'new_objects_ok': new_ok,
                'count': count_dict(c2.count_objects()),
            }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    emit(report)


if __name__ == '__main__':
    main()
