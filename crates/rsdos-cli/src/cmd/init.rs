//! `rsdos init`: create a new, empty container.
//!
//! Defaults are disk-objectstore's (sha256, `zlib+1`, 4 GiB packs, 2-character loose shards),
//! so that a container made without options is one disk-objectstore can open and write.

use anyhow::Result;
use bytesize::ByteSize;
use clap::{Args, ValueEnum};
use rsdos::{CompressionAlgorithm, Container, HashType, InitOptions};

use crate::cmd::{Global, parse_key_value};
use crate::output::note;

/// Arguments of `rsdos init`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example: rsdos -p /data/store init --compression zstd+3 --pack-size-target 1GiB"
)]
pub struct InitArgs {
    /// Hash that names the objects.
    #[arg(long, value_enum, default_value_t = HashArg::Sha256)]
    hash_type: HashArg,

    /// Codec for compressed objects: zlib+1..zlib+9 (readable by disk-objectstore) or
    /// zstd+1..zstd+22 (rsdos only).
    #[arg(long, default_value = "zlib+1", value_parser = parse_compression, value_name = "ALGO+LEVEL")]
    compression: CompressionAlgorithm,

    /// Size after which a pack file is closed and a new one started: bytes, or a size such as
    /// 512MiB or 4GiB.
    #[arg(long, default_value = "4GiB", value_parser = parse_size, value_name = "SIZE")]
    pack_size_target: u64,

    /// Hex characters of the hashkey used as the loose sub-folder name (0 = no sub-folders).
    #[arg(long, default_value_t = 2, value_name = "N")]
    loose_prefix_len: usize,

    #[command(flatten)]
    packs: PacksArgs,
}

/// Where the packs go (shared by `init` and `clone`).
#[derive(Debug, Args)]
pub struct PacksArgs {
    /// Keep sealed packs in remote storage: s3://bucket/prefix, gs://bucket/prefix,
    /// azblob://container/prefix, fs:///folder or memory://. Credentials come from the
    /// service's environment variables (AWS_ACCESS_KEY_ID, GOOGLE_APPLICATION_CREDENTIALS,
    /// AZURE_STORAGE_ACCOUNT_KEY, ...). Recorded in rsdos-packs.json.
    #[arg(long, value_name = "URL")]
    pub packs: Option<String>,

    /// A service option of the remote pack storage (repeatable), e.g. `--packs-option
    /// allow_anonymous=true`; secret options are not written to disk without
    /// --store-credentials.
    #[arg(long = "packs-option", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub packs_options: Vec<(String, String)>,

    /// The remote's endpoint (S3-compatible servers, Azurite, ...): `--packs-option endpoint=...`.
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,

    /// The remote's region: `--packs-option region=...`.
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,

    /// Also write secret options (keys, tokens) into rsdos-packs.json (readable by its owner
    /// only); by default they are never written.
    #[arg(long)]
    pub store_credentials: bool,
}

impl PacksArgs {
    /// The service options, the dedicated flags included.
    pub fn options(&self) -> Vec<(String, String)> {
        let mut all = self.packs_options.clone();
        if let Some(e) = &self.endpoint {
            all.push(("endpoint".into(), e.clone()));
        }
        if let Some(r) = &self.region {
            all.push(("region".into(), r.clone()));
        }
        all
    }
}

/// The hash types, as clap values (so `--help` lists them and typos are usage errors).
#[derive(Debug, Clone, Copy, ValueEnum)]
enum HashArg {
    Sha256,
    Sha1,
}

impl From<HashArg> for HashType {
    fn from(h: HashArg) -> Self {
        match h {
            HashArg::Sha256 => HashType::Sha256,
            HashArg::Sha1 => HashType::Sha1,
        }
    }
}

/// Parses `zlib+1`-style names with the library's parser, so the CLI accepts exactly what
/// `config.json` may hold.
fn parse_compression(s: &str) -> Result<CompressionAlgorithm, String> {
    s.parse::<CompressionAlgorithm>().map_err(|e| e.to_string())
}

/// Parses a byte count (`4294967296`) or a size with a unit (`4GiB`, `500 MB`); 0 is refused
/// here rather than by the library so that it is reported as a usage error.
fn parse_size(s: &str) -> Result<u64, String> {
    let size: ByteSize = s.trim().parse()?;
    if size.0 == 0 {
        return Err("the pack size target must be more than 0 bytes".into());
    }
    Ok(size.0)
}

/// Arguments of `rsdos create`, disk-objectstore's `dostore create`.
#[derive(Debug, Args)]
#[command(after_help = "Example: rsdos -p /data/store create --algorithm zlib+1")]
pub struct CreateArgs {
    /// Codec for compressed objects: zlib+1..zlib+9 (readable by disk-objectstore) or
    /// zstd+1..zstd+22 (rsdos only).
    #[arg(short, long, default_value = "zlib+1", value_parser = parse_compression, value_name = "ALGO+LEVEL")]
    algorithm: CompressionAlgorithm,
}

/// `rsdos create`: `init` with disk-objectstore's defaults and the given algorithm.
pub fn run_create(global: &Global, args: CreateArgs) -> Result<()> {
    create(
        global,
        InitOptions::default().with_compression_algorithm(args.algorithm),
    )
}

/// Creates the container and prints `Created container: <path>`.
pub fn run(global: &Global, args: InitArgs) -> Result<()> {
    let options = InitOptions::default()
        .with_hash_type(args.hash_type.into())
        .with_compression_algorithm(args.compression)
        .with_pack_size_target(args.pack_size_target)
        .with_loose_prefix_len(args.loose_prefix_len);
    let options = match &args.packs.packs {
        Some(url) => {
            let mut options = options
                .with_packs_url(url)
                .with_store_credentials(args.packs.store_credentials);
            for (k, v) in args.packs.options() {
                options = options.with_packs_option(&k, &v);
            }
            options
        }
        None => {
            if !args.packs.options().is_empty() || args.packs.store_credentials {
                anyhow::bail!(
                    "--packs-option, --endpoint, --region and --store-credentials need --packs URL"
                );
            }
            options
        }
    };
    create(global, options)
}

fn create(global: &Global, options: InitOptions) -> Result<()> {
    let compression = options.compression_algorithm;
    let packs = options.packs.as_ref().map(|p| p.display_url());
    Container::init(&global.path, &options)?;
    if !global.quiet {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        writeln!(out, "Created container: {}", global.path.display())?;
        if let Some(url) = packs {
            writeln!(out, "Packs stored in: {url}")?;
        }
        out.flush()?;
    }
    if compression.is_rsdos_only() {
        note(
            global.quiet,
            format_args!(
                "note: objects compressed with {compression} cannot be read by disk-objectstore"
            ),
        );
    }
    Ok(())
}
