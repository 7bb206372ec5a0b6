"""Writes a disk-objectstore container exercising every storage path, then prints a manifest.

Usage: dos_write.py OUTDIR PREFIX_LEN HASH_TYPE

OUTDIR must not exist or be empty. The container has a tiny pack_size_target so that several
packs are made, and holds: loose-only objects, the empty object, objects packed with
pack_all_loose (first batch cleaned, second batch left loose too), objects written straight to
packs uncompressed and compressed (with duplicates inside one call, of packed objects and of
loose objects), large objects, loose copies of packed objects, and deleted objects (holes).

The manifest (JSON on stdout) describes what disk-objectstore itself reports afterwards:
  objects: {hashkey: {sha256_of_content, size_of_content, content_hex (small ones), type,
            size, pack_id, pack_offset, pack_length, pack_compressed}}
  count, total_size, listing (sorted list_all_objects), listing_len (unsorted length),
  deleted (keys deleted), config.
"""

import random
import sys

from disk_objectstore import CompressMode, Container

from _common import content_info, count_dict, emit, meta_dict, total_size_dict

PACK_SIZE_TARGET = 4096


def main():
    outdir, prefix_len, hash_type = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    rng = random.Random(f'dos_write-{prefix_len}-{hash_type}')

    def rand(n):
        return rng.randbytes(n)

    def text(n, tag):
        unit = f'{tag}: the quick brown fox jumps over the lazy dog {rng.random()}\n'.encode()
        return (unit * (n // len(unit) + 1))[:n]

    deleted = []
    with Container(outdir) as c:
        c.init_container(pack_size_target=PACK_SIZE_TARGET, loose_prefix_len=prefix_len, hash_type=hash_type)

        # A: loose objects (with the empty one), packed by pack_all_loose, then cleaned.
        batch_a = [b'', b'a', rand(100), text(1500, 'a1'), rand(2000), text(3000, 'a2'), rand(700), rand(2500)]
        keys_a = [c.add_object(x) for x in batch_a]
        c.pack_all_loose(compress=CompressMode.NO)
        c.clean_storage()

        # B: loose objects packed compressed (YES, even random data), left loose as well.
        batch_b = [text(1200, 'b1'), rand(900), text(2600, 'b2'), rand(1800), b'bb']
        keys_b = [c.add_object(x) for x in batch_b]
        c.pack_all_loose(compress=CompressMode.YES)

        # B2: loose objects packed with AUTO and cleaned per pack.
        batch_b2 = [text(2000, 'b2a'), rand(2000), text(10, 'b2b')]
        for x in batch_b2:
            c.add_object(x)
        c.pack_all_loose(compress=CompressMode.AUTO, clean_loose_per_pack=True)

        # L: loose-only objects, one of which is then also written to a pack.
        batch_l = [text(400, 'l1'), rand(300)]
        keys_l = [c.add_object(x) for x in batch_l]

        # C: straight to packs, uncompressed: several packs, a duplicate inside the call,
        # a duplicate of a packed object (a hole: bytes appended, row ignored), a copy of a
        # loose object (now loose and packed).
        batch_c = [rand(rng.randint(300, 1500)) for _ in range(8)] + [text(900, 'c1')]
        batch_c += [batch_c[0], batch_a[3], batch_l[0], batch_c[2]]
        keys_c = c.add_objects_to_pack(batch_c, compress=False)

        # E: straight to packs, compressed, with duplicates of C and of E itself.
        batch_e = [text(rng.randint(800, 3000), f'e{i}') for i in range(6)] + [rand(1000), b'', b'e']
        batch_e += [batch_e[1], batch_c[5]]
        keys_e = c.add_objects_to_pack(batch_e, compress=True)

        # Large objects: uncompressed in a pack, compressed in a pack, loose.
        big_random = rand(1_200_000)
        big_text = text(1_500_000, 'big')
        c.add_objects_to_pack([big_random], compress=False)
        c.add_objects_to_pack([big_text], compress=True)
        c.add_object(text(300_000, 'bigloose'))

        # Loose copies of packed-only objects (disk-objectstore does not look into packs).
        c.add_object(batch_a[2])
        c.add_object(b'')

        # F: loose-only objects written last.
        batch_f = [rand(50), text(5000, 'f1'), rand(4097), b'f']
        keys_f = [c.add_object(x) for x in batch_f]

        # Deletions: packed (uncompressed and compressed; holes in the packs), packed and
        # loose, loose only.
        to_delete = [keys_c[3], keys_c[6], keys_e[2], keys_b[1], keys_f[0], keys_a[6]]
        deleted = sorted(c.delete_objects(to_delete))
        assert sorted(set(to_delete)) == deleted, (to_delete, deleted)

    # Reopen, so that the index is checkpointed and its size is final.
    with Container(outdir) as c:
        listing = list(c.list_all_objects())
        objects = {}
        metas = dict(c.get_objects_meta(listing))
        contents = c.get_objects_content(listing)
        for key in listing:
            entry = content_info(contents[key])
            assert c.get_object_content(key) == contents[key]
            entry.update(meta_dict(metas[key]))
            objects[key] = entry
        for key in deleted:
            assert not c.has_object(key), key
        manifest = {
            'objects': objects,
            'count': count_dict(c.count_objects()),
            'total_size': total_size_dict(c.get_total_size()),
            'listing': sorted(listing),
            'listing_len': len(listing),
            'deleted': deleted,
            'config': {
                'loose_prefix_len': c.loose_prefix_len,
                'pack_size_target': c.pack_size_target,
                'hash_type': c.hash_type,
                'compression_algorithm': c.compression_algorithm,
            },
        }
    emit(manifest)


if __name__ == '__main__':
    main()
