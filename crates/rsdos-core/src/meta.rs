//! Object metadata and container statistics.

/// Where an object lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectType {
    /// A loose file under `loose/`.
    Loose,
    /// A range of a pack file, listed in the index.
    Packed,
    /// Nowhere.
    Missing,
}

impl ObjectType {
    /// disk-objectstore's spelling: `loose`, `packed`, `missing`.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectType::Loose => "loose",
            ObjectType::Packed => "packed",
            ObjectType::Missing => "missing",
        }
    }
}

/// The location of a packed object: the columns of disk-objectstore's `db_object` row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PackedLocation {
    /// The pack file `packs/<pack_id>`.
    pub pack_id: u64,
    /// Byte offset of the first stored byte in the pack.
    pub offset: u64,
    /// Number of stored bytes (compressed length if `compressed`).
    pub length: u64,
    /// Size of the uncompressed object.
    pub size: u64,
    /// Whether the stored bytes are a zlib stream or a zstd frame.
    pub compressed: bool,
}

/// A hashkey with its packed location: one index row.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PackedEntry {
    /// The object's hashkey.
    pub hashkey: String,
    /// Where it is stored.
    pub location: PackedLocation,
}

/// Metadata of one object, as disk-objectstore's `ObjectMeta`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ObjectMeta {
    /// Loose, packed or missing.
    pub object_type: ObjectType,
    /// Uncompressed size; `None` when missing.
    pub size: Option<u64>,
    /// Set for packed objects only.
    pub packed: Option<PackedLocation>,
}

impl ObjectMeta {
    /// Metadata of a missing object.
    pub fn missing() -> Self {
        ObjectMeta {
            object_type: ObjectType::Missing,
            size: None,
            packed: None,
        }
    }

    /// Metadata of a loose object of `size` bytes.
    pub fn loose(size: u64) -> Self {
        ObjectMeta {
            object_type: ObjectType::Loose,
            size: Some(size),
            packed: None,
        }
    }

    /// Metadata of a packed object.
    pub fn packed(location: PackedLocation) -> Self {
        ObjectMeta {
            object_type: ObjectType::Packed,
            size: Some(location.size),
            packed: Some(location),
        }
    }
}

/// Object counts, as disk-objectstore's `ObjectCount`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ObjectCount {
    /// Rows in the index.
    pub packed: u64,
    /// Loose files (including loose copies of packed objects not yet cleaned).
    pub loose: u64,
    /// Pack files present.
    pub pack_files: u64,
}

/// The five size figures of disk-objectstore's `TotalSize`, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TotalSize {
    /// Sum of the uncompressed sizes of packed objects.
    pub total_size_packed: u64,
    /// Sum of the stored lengths of packed objects.
    pub total_size_packed_on_disk: u64,
    /// Sum of the sizes of the pack files (including holes).
    pub total_size_packfiles_on_disk: u64,
    /// Size of the index file `packs.idx`.
    pub total_size_packindexes_on_disk: u64,
    /// Sum of the sizes of loose files.
    pub total_size_loose: u64,
}
