"""Asks disk-objectstore for one object of a container whose algorithm is zstd (rsdos only).

Usage: dos_read_zstd.py DIR HASHKEY

Prints JSON {"error_type": ..., "message": ...} if get_object_content raises (expected for a
compressed object: disk-objectstore knows only zlib), else {"content_hex": ..., "meta": ...}
(expected for an uncompressed or loose object).
"""

import sys

from disk_objectstore import Container

from _common import emit, meta_dict


def main():
    folder, hashkey = sys.argv[1], sys.argv[2]
    with Container(folder) as c:
        try:
            content = c.get_object_content(hashkey)
        except Exception as exc:  # pylint: disable=broad-except
            emit({'error_type': type(exc).__name__, 'message': str(exc)})
            return
        emit({'content_hex': content.hex(), 'meta': meta_dict(c.get_object_meta(hashkey))})


if __name__ == '__main__':
    main()
