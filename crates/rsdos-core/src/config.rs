//! `config.json`: the container configuration, in disk-objectstore's exact format.

use std::path::Path;

use serde_json::{Map, Value};

use crate::{CompressionAlgorithm, Error, HashType, Result};

/// The only `container_version` there is (written, never interpreted, as disk-objectstore).
pub const CONTAINER_VERSION: u64 = 1;

/// disk-objectstore's default `pack_size_target`: 4 GiB.
pub const DEFAULT_PACK_SIZE_TARGET: u64 = 4 * 1024 * 1024 * 1024;

/// The contents of `config.json`.
///
/// Read with defaults for the optional fields (`container_version` 1, `compression_algorithm`
/// `zlib+1`, which containers written before disk-objectstore 0.5 lack), validated, and
/// written back with the same key order and separators as Python's `json.dump`, so that a
/// container initialised by rsdos is byte-for-byte what disk-objectstore would write. Keys
/// rsdos does not know are kept and written back unchanged.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerConfig {
    /// Always [`CONTAINER_VERSION`].
    pub container_version: u64,
    /// Number of hex characters of the hashkey used as the loose shard folder (0 = flat).
    pub loose_prefix_len: usize,
    /// A pack is closed once it reaches this many bytes.
    pub pack_size_target: u64,
    /// The hash that names objects.
    pub hash_type: HashType,
    /// A random id generated at init, never changed.
    pub container_id: String,
    /// The codec used for newly compressed objects.
    pub compression_algorithm: CompressionAlgorithm,
    /// Keys this version does not know, preserved as read.
    pub extra: Map<String, Value>,
}

impl ContainerConfig {
    /// A new configuration with a fresh random `container_id`. Does not validate; call
    /// [`ContainerConfig::validate`].
    pub fn new(
        loose_prefix_len: usize,
        pack_size_target: u64,
        hash_type: HashType,
        compression_algorithm: CompressionAlgorithm,
    ) -> Self {
        ContainerConfig {
            container_version: CONTAINER_VERSION,
            loose_prefix_len,
            pack_size_target,
            hash_type,
            container_id: uuid::Uuid::new_v4().simple().to_string(),
            compression_algorithm,
            extra: Map::new(),
        }
    }

    /// Checks the values: the prefix must leave at least one character for the file name, the
    /// pack size target must be positive, the id non-empty.
    pub fn validate(&self) -> Result<()> {
        let bad = |detail: String| Err(Error::Config { path: None, detail });
        if self.loose_prefix_len >= self.hash_type.hex_len() {
            return bad(format!(
                "loose_prefix_len {} must be less than the {} hashkey length {}",
                self.loose_prefix_len,
                self.hash_type,
                self.hash_type.hex_len()
            ));
        }
        if self.pack_size_target == 0 {
            return bad("pack_size_target must be a positive number of bytes".into());
        }
        if self.container_id.is_empty() {
            return bad("container_id must not be empty".into());
        }
        Ok(())
    }

    /// Parses and validates `config.json` contents.
    pub fn from_json(text: &str) -> Result<Self> {
        let bad = |detail: String| Error::Config { path: None, detail };
        let value: Value =
            serde_json::from_str(text).map_err(|e| bad(format!("not valid JSON: {e}")))?;
        let Value::Object(mut map) = value else {
            return Err(bad("config.json must hold a JSON object".into()));
        };
        fn take_u64(map: &mut Map<String, Value>, key: &str) -> Result<Option<u64>> {
            match map.remove(key) {
                None => Ok(None),
                Some(v) => v.as_u64().map(Some).ok_or_else(|| Error::Config {
                    path: None,
                    detail: format!("{key} must be a non-negative integer, found {v}"),
                }),
            }
        }
        fn take_str(map: &mut Map<String, Value>, key: &str) -> Result<Option<String>> {
            match map.remove(key) {
                None => Ok(None),
                Some(Value::String(s)) => Ok(Some(s)),
                Some(v) => Err(Error::Config {
                    path: None,
                    detail: format!("{key} must be a string, found {v}"),
                }),
            }
        }
        let container_version =
            take_u64(&mut map, "container_version")?.unwrap_or(CONTAINER_VERSION);
        let loose_prefix_len = take_u64(&mut map, "loose_prefix_len")?
            .ok_or_else(|| bad("missing loose_prefix_len".into()))?;
        let pack_size_target = take_u64(&mut map, "pack_size_target")?
            .ok_or_else(|| bad("missing pack_size_target".into()))?;
        let hash_type: HashType = take_str(&mut map, "hash_type")?
            .ok_or_else(|| bad("missing hash_type".into()))?
            .parse()?;
        let container_id = take_str(&mut map, "container_id")?
            .ok_or_else(|| bad("missing container_id".into()))?;
        let compression_algorithm = match take_str(&mut map, "compression_algorithm")? {
            Some(s) => s.parse()?,
            None => CompressionAlgorithm::default(),
        };
        let config = ContainerConfig {
            container_version,
            loose_prefix_len: usize::try_from(loose_prefix_len)
                .map_err(|_| bad(format!("loose_prefix_len {loose_prefix_len} is too large")))?,
            pack_size_target,
            hash_type,
            container_id,
            compression_algorithm,
            extra: map,
        };
        config.validate()?;
        Ok(config)
    }

    /// Reads and validates a `config.json` file; errors name the file.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
        Self::from_json(&text).map_err(|e| match e {
            Error::Config { detail, .. } => Error::Config {
                path: Some(path.to_path_buf()),
                detail,
            },
            other => other,
        })
    }

    /// The JSON text, as Python's `json.dump` writes it (`", "` and `": "` separators, no
    /// trailing newline, disk-objectstore's key order, then any preserved extra keys).
    pub fn to_json(&self) -> String {
        let mut out = format!(
            "{{\"container_version\": {}, \"loose_prefix_len\": {}, \"pack_size_target\": {}, \"hash_type\": {}, \"container_id\": {}, \"compression_algorithm\": {}",
            self.container_version,
            self.loose_prefix_len,
            self.pack_size_target,
            Value::String(self.hash_type.as_str().into()),
            Value::String(self.container_id.clone()),
            Value::String(self.compression_algorithm.to_string()),
        );
        for (k, v) in &self.extra {
            out.push_str(&format!(
                ", {}: {}",
                Value::String(k.clone()),
                python_json(v)
            ));
        }
        out.push('}');
        out
    }
}

/// JSON with Python's default separators, for the extra keys.
fn python_json(v: &Value) -> String {
    match v {
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(python_json).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!("{}: {}", Value::String(k.clone()), python_json(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}
